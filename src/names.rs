//! Who is behind a number (issue 13, item 2): the `[names]` table of the config, and the names
//! learned from CallerID where it has none. Resolution order: configured name > learned name >
//! none. Pure code over [`CallRecord`]s and a lock; no I/O (the runtime seeds it from the
//! journal and feeds it every new record; the web page reads it).
//!
//! Learning: a call FROM an internal extension (direction outbound or internal, so its `src` is
//! the extension) carries the CallerID name the phone is set up with — that is the extension's
//! name. Calls from outside are never learned: anyone can send any CallerID name from a trunk.
//! Memory is bounded: at most [`LEARNED_CAP`] numbers; the newest sighting wins, and when full
//! the number seen longest ago is forgotten.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use crate::filter::{contains_folded, fold_case};
use crate::record::{CallRecord, Direction};

/// Most numbers whose CallerID name is remembered: an office has tens to hundreds of
/// extensions, so this is room for every one with little memory (≈ 100 bytes each).
pub const LEARNED_CAP: usize = 2_000;

/// CallerID names that name no one (Asterisk's and phones' placeholders).
const NO_NAME: &[&str] = &[
    "anonymous",
    "unknown",
    "unavailable",
    "private",
    "restricted",
];

/// The extension and name a record teaches, when it does: a call from an internal extension
/// with a real CallerID name (not a placeholder, not the number itself).
pub fn learned_from(r: &CallRecord) -> Option<(String, String)> {
    if !matches!(r.direction, Direction::Outbound | Direction::Internal) {
        return None;
    }
    let number = r.source.trim();
    if number.is_empty() {
        return None;
    }
    let name = r.caller_name();
    let name = name.trim();
    let placeholder = NO_NAME.iter().any(|n| name.eq_ignore_ascii_case(n));
    if name.is_empty() || placeholder || name == number {
        return None;
    }
    // As long as a configured name may be (what a cell shows).
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(crate::config::checks::PERSON_NAME_MAX)
        .collect();
    Some((number.to_owned(), name))
}

/// Learned names, bounded: newest sighting wins, the least recently seen number goes first.
#[derive(Debug, Clone)]
pub struct Learned {
    cap: usize,
    /// number → (name, sighting sequence number).
    by_number: HashMap<String, (String, u64)>,
    /// sighting sequence number → number, oldest first (what to forget when full).
    by_age: BTreeMap<u64, String>,
    next: u64,
}

impl Learned {
    pub fn new(cap: usize) -> Learned {
        Learned {
            cap: cap.max(1),
            by_number: HashMap::new(),
            by_age: BTreeMap::new(),
            next: 0,
        }
    }

    /// Remembers `name` for `number`, replacing what was known (the newest wins).
    pub fn learn(&mut self, number: &str, name: &str) {
        let seq = self.next;
        self.next += 1;
        if let Some((old_name, old_seq)) = self.by_number.get_mut(number) {
            self.by_age.remove(old_seq);
            *old_seq = seq;
            if old_name != name {
                name.clone_into(old_name);
            }
            self.by_age.insert(seq, number.to_owned());
            return;
        }
        while self.by_number.len() >= self.cap {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.by_number.remove(&oldest);
        }
        self.by_number
            .insert(number.to_owned(), (name.to_owned(), seq));
        self.by_age.insert(seq, number.to_owned());
    }

    /// Learns from one record (see [`learned_from`]); whether it taught anything.
    pub fn learn_from(&mut self, r: &CallRecord) -> bool {
        match learned_from(r) {
            Some((number, name)) => {
                self.learn(&number, &name);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, number: &str) -> Option<&str> {
        self.by_number.get(number).map(|(n, _)| n.as_str())
    }

    pub fn len(&self) -> usize {
        self.by_number.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_number
            .iter()
            .map(|(k, (n, _))| (k.as_str(), n.as_str()))
    }
}

/// The names of the running box: `[names]` (replaced live when the settings are saved) and
/// what was learned. Shared by the record sink (writes) and the web workers (reads).
#[derive(Debug)]
pub struct Directory {
    configured: RwLock<Arc<BTreeMap<String, String>>>,
    learned: Mutex<Learned>,
}

impl Directory {
    pub fn new(configured: BTreeMap<String, String>, cap: usize) -> Directory {
        Directory {
            configured: RwLock::new(Arc::new(configured)),
            learned: Mutex::new(Learned::new(cap)),
        }
    }

    /// A saved `[names]` table takes effect at once.
    pub fn set_configured(&self, names: BTreeMap<String, String>) {
        *self.configured.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(names);
    }

    pub fn learn_from(&self, r: &CallRecord) -> bool {
        self.learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .learn_from(r)
    }

    /// Remembers `name` for `number` (a sighting read back from the journal).
    pub fn learn_number(&self, number: &str, name: &str) {
        self.learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .learn(number, name);
    }

    /// Remembers `name` for `number` unless a name was learned for it already: a sighting read
    /// back from the journal, newest first, while the links may already be teaching newer ones.
    pub fn learn_number_if_unknown(&self, number: &str, name: &str) {
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        if learned.get(number).is_none() {
            learned.learn(number, name);
        }
    }

    fn configured(&self) -> Arc<BTreeMap<String, String>> {
        self.configured
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A view for one answer: names resolved without taking the learned map's lock per row.
    pub fn snapshot(&self) -> Names {
        Names {
            configured: self.configured(),
            learned: Arc::new(
                self.learned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
        }
    }
}

/// Names as of one moment: configured > learned > none.
#[derive(Debug, Clone, Default)]
pub struct Names {
    configured: Arc<BTreeMap<String, String>>,
    learned: Arc<HashMap<String, String>>,
}

impl Names {
    /// For tests and backends without a running box.
    pub fn new(configured: BTreeMap<String, String>, learned: HashMap<String, String>) -> Names {
        Names {
            configured: Arc::new(configured),
            learned: Arc::new(learned),
        }
    }

    /// The name of `number` (as the PBX wrote it; trimmed), if anyone is known by it.
    pub fn name_of(&self, number: &str) -> Option<&str> {
        let n = number.trim();
        if n.is_empty() {
            return None;
        }
        self.configured
            .get(n)
            .or_else(|| self.learned.get(n))
            .map(String::as_str)
    }

    /// Every number whose name (as [`Names::name_of`] resolves it) contains `text`,
    /// case-insensitively for Cyrillic too (the filters' own folding). Sorted, each once.
    pub fn numbers_named(&self, text: &str) -> Vec<String> {
        let needle = fold_case(text.trim());
        if needle.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<String> = self
            .configured
            .iter()
            .filter(|(_, name)| contains_folded(name, &needle))
            .map(|(n, _)| n.clone())
            .collect();
        out.extend(
            self.learned
                .iter()
                // A configured name hides the learned one, for search as for display.
                .filter(|(n, _)| !self.configured.contains_key(*n))
                .filter(|(_, name)| contains_folded(name, &needle))
                .map(|(n, _)| n.clone()),
        );
        out.sort();
        out.dedup();
        out
    }

    pub fn is_empty(&self) -> bool {
        self.configured.is_empty() && self.learned.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(src: &str, clid: &str, direction: Direction) -> CallRecord {
        let mut r = crate::journal::testdata::sample_record(1);
        r.source = src.into();
        r.caller_id = clid.into();
        r.direction = direction;
        r
    }

    #[test]
    fn configured_beats_learned_beats_none() {
        let mut learned = Learned::new(10);
        learned.learn("101", "Anna P.");
        learned.learn("102", "Борис Иванов");
        let dir = Directory::new(BTreeMap::from([("101".into(), "Анна Петрова".into())]), 10);
        *dir.learned.lock().unwrap() = learned;
        let names = dir.snapshot();
        assert_eq!(names.name_of("101"), Some("Анна Петрова"));
        assert_eq!(names.name_of(" 102 "), Some("Борис Иванов"));
        assert_eq!(names.name_of("103"), None);
        assert_eq!(names.name_of(""), None);
        // Live: a saved table replaces the old one at once.
        dir.set_configured(BTreeMap::new());
        assert_eq!(dir.snapshot().name_of("101"), Some("Anna P."));
    }

    #[test]
    fn search_by_name_folds_cyrillic_and_respects_the_order() {
        let names = Names::new(
            BTreeMap::from([
                ("101".into(), "Анна Петрова".into()),
                ("+74991234567".into(), "Бухгалтерия".into()),
            ]),
            HashMap::from([
                ("101".into(), "Someone Else".into()),
                ("105".into(), "Пётр ПЕТРОВ".into()),
            ]),
        );
        assert_eq!(names.numbers_named("петров"), ["101", "105"]);
        assert_eq!(names.numbers_named("ПЕТРОВА"), ["101"]);
        assert_eq!(names.numbers_named("бУХ"), ["+74991234567"]);
        // 101's learned name is hidden by the configured one.
        assert!(names.numbers_named("someone").is_empty());
        assert!(names.numbers_named("  ").is_empty());
    }

    #[test]
    fn only_internal_callers_with_a_real_name_are_learned() {
        let cases = [
            (
                call("101", "\"Анна\" <101>", Direction::Internal),
                Some("Анна"),
            ),
            (
                call("101", "\"Анна\" <101>", Direction::Outbound),
                Some("Анна"),
            ),
            // From outside anyone can send any name.
            (
                call("79161234567", "\"Boss\" <79161234567>", Direction::Inbound),
                None,
            ),
            (call("101", "\"Anonymous\" <>", Direction::Internal), None),
            (call("101", "\"101\" <101>", Direction::Internal), None),
            (call("101", "<101>", Direction::Internal), None),
            (call("", "\"Анна\" <>", Direction::Internal), None),
        ];
        for (r, want) in cases {
            let got = learned_from(&r);
            assert_eq!(got.as_ref().map(|(_, n)| n.as_str()), want, "{r:?}");
        }
        let long = call(
            "101",
            &format!("\"{}\" <101>", "я".repeat(200)),
            Direction::Internal,
        );
        assert_eq!(learned_from(&long).unwrap().1.chars().count(), 64);
    }

    #[test]
    fn the_learned_map_is_capped_and_the_newest_wins() {
        let mut l = Learned::new(3);
        l.learn("101", "A");
        l.learn("102", "B");
        l.learn("103", "C");
        // Seen again: newest name, and it is now the most recent sighting.
        l.learn("101", "A2");
        l.learn("104", "D");
        assert_eq!(l.len(), 3);
        assert_eq!(l.get("101"), Some("A2"));
        assert_eq!(l.get("102"), None, "the least recently seen number goes");
        assert_eq!((l.get("103"), l.get("104")), (Some("C"), Some("D")));
        // Flat memory whatever arrives.
        for i in 0..10_000 {
            l.learn(&i.to_string(), "x");
        }
        assert_eq!((l.len(), l.by_age.len()), (3, 3));
        assert_eq!(l.get("9999"), Some("x"));
    }
}
