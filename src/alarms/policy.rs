//! When an alarm becomes a message: the raise/clear policy, a pure state machine fed the set of
//! standing alarms and the time, answering with [`Notice`]s (raised, reminder, cleared).
//!
//! The rules, in the words of the person receiving the mail:
//! - **One mail when it starts.** An alarm standing for the first time is [`NoticeKind::Raised`]
//!   at once. (How long a condition must last before it *is* an alarm — `link_down_minutes`,
//!   `quiet_minutes` — is decided where alarms are made, in the status board, so the page, the
//!   OLED and the mail agree on what stands.)
//! - **One mail when it ends**, and only once it has really ended: the alarm must stay away for
//!   a *hold* time ([`Rules::clear_after`], 30 s) before [`NoticeKind::Cleared`] goes out. If it
//!   comes back during the hold, it is the same incident: no mail, a *flap* is counted and the
//!   hold for this alarm doubles (up to [`Rules::clear_after_max`]).
//! - **No storms.** A flapping link therefore mails "raised", then, once it has been stable for
//!   the (grown) hold, one "cleared" that says how often it flapped. An alarm that comes back
//!   soon after its clear starts with the longer hold it had, and that memory fades by one
//!   doubling per [`Rules::clear_after_max`] of calm; so in any window of `W` seconds an alarm
//!   raises at most `1 + LEVELS + 2·W / clear_after_max` times (checked by a property test).
//! - **A reminder** ([`NoticeKind::Reminder`]) every [`Rules::reminder`] while it stands.
//! - **Across restarts**: the open incidents are saved ([`Policy::saved`]) and restored; a
//!   restored alarm counts as absent only after [`Rules::restart_grace`], the time the box needs
//!   to see it again (a link needs `link_down_minutes` to be "down" again), so a restart neither
//!   re-mails a standing alarm nor mails a false "cleared".
//!
//! Time is injected twice: [`Mono`] for every timer (the wall clock of a Pi without RTC jumps at
//! boot), Unix seconds only for what the mail shows ("since 10:04").
//!
//! Must not: do I/O, know about e-mail or webhooks, or look at what an alarm means.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Mono;

/// One incident's name: the alarm's code and what it is about (a PBX, the USB port), as in
/// [`crate::status::Alarm`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlarmKey {
    pub code: String,
    pub subject: Option<String>,
}

impl AlarmKey {
    pub fn new(code: &str, subject: Option<&str>) -> AlarmKey {
        AlarmKey {
            code: code.to_owned(),
            subject: subject.map(str::to_owned),
        }
    }
}

impl std::fmt::Display for AlarmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.subject {
            Some(s) => write!(f, "{} ({s})", self.code),
            None => f.write_str(&self.code),
        }
    }
}

/// An alarm standing now, as the status snapshot shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub key: AlarmKey,
    pub message: String,
}

/// The two readings of "now" the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For timers.
    pub mono: Mono,
    /// For what people read (Unix seconds, box clock).
    pub unix: i64,
}

/// Timing of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long an alarm must stay away before it is cleared (the first hold).
    pub clear_after: Duration,
    /// The longest hold a flapping alarm grows to; also the time of calm that takes one
    /// doubling back off an alarm's memory.
    pub clear_after_max: Duration,
    /// Reminder period while an alarm stands; `None`: never remind.
    pub reminder: Option<Duration>,
    /// After a restart, how long restored alarms are given to show up again before their
    /// absence counts.
    pub restart_grace: Duration,
}

/// The first hold: long enough that a PBX restart (~20 s) or a reconnect does not mail
/// "cleared" while the person reads "raised", short enough that "it is back" arrives promptly.
pub const CLEAR_AFTER: Duration = Duration::from_secs(30);
/// 30 s doubled four times.
pub const CLEAR_AFTER_MAX: Duration = Duration::from_secs(480);
/// Doublings from [`CLEAR_AFTER`] to [`CLEAR_AFTER_MAX`].
pub const LEVELS: u32 = 4;

impl Default for Rules {
    fn default() -> Self {
        Rules {
            clear_after: CLEAR_AFTER,
            clear_after_max: CLEAR_AFTER_MAX,
            reminder: Some(Duration::from_secs(24 * 3600)),
            restart_grace: Duration::from_secs(6 * 60),
        }
    }
}

impl Rules {
    /// The hold at `level` doublings.
    fn hold(&self, level: u32) -> Duration {
        let grown = self
            .clear_after
            .checked_mul(1u32 << level.min(16))
            .unwrap_or(self.clear_after_max);
        grown.min(self.clear_after_max.max(self.clear_after))
    }

    /// The level an alarm cleared at `level` still has after `calm` without it.
    fn faded(&self, level: u32, calm: Duration) -> Option<u32> {
        let step = self.clear_after_max.max(Duration::from_secs(1));
        let steps = (calm.as_secs() / step.as_secs()).min(u64::from(u32::MAX)) as u32;
        level.checked_sub(steps)
    }
}

/// What the policy says to tell people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Raised,
    Reminder,
    Cleared,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Raised => "raised",
            NoticeKind::Reminder => "reminder",
            NoticeKind::Cleared => "cleared",
        }
    }
}

/// One thing to tell about one alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub key: AlarmKey,
    /// The alarm's latest sentence (for a clear: the last one seen while it stood).
    pub message: String,
    /// When the incident started (Unix seconds).
    pub raised_utc: i64,
    /// When this notice was made (Unix seconds).
    pub at_utc: i64,
    /// Times the alarm went away and came back since the previous notice about it.
    pub flaps: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Incident {
    message: String,
    raised_utc: i64,
    last_notice: Mono,
    flaps: u32,
    level: u32,
    /// Since when it is missing from the standing set (`None`: standing).
    absent_since: Option<Mono>,
    /// Restored after a restart: absence does not count before this.
    grace_until: Option<Mono>,
}

/// An alarm that cleared recently: it remembers how flappy it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settled {
    cleared_at: Mono,
    level: u32,
}

/// An open incident as saved on disk between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedIncident {
    pub key: AlarmKey,
    pub message: String,
    pub raised_utc: i64,
    #[serde(default)]
    pub level: u32,
    #[serde(default)]
    pub flaps: u32,
}

/// The raise/clear state machine. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Rules,
    open: BTreeMap<AlarmKey, Incident>,
    settled: BTreeMap<AlarmKey, Settled>,
}

impl Policy {
    pub fn new(rules: Rules) -> Policy {
        Policy {
            rules,
            open: BTreeMap::new(),
            settled: BTreeMap::new(),
        }
    }

    /// A policy that continues the incidents saved by a previous run. Their reminders count
    /// from `now`; their absence counts only after [`Rules::restart_grace`].
    pub fn restore(rules: Rules, saved: Vec<SavedIncident>, now: Now) -> Policy {
        let mut p = Policy::new(rules);
        for s in saved {
            p.open.insert(
                s.key,
                Incident {
                    message: s.message,
                    raised_utc: s.raised_utc,
                    last_notice: now.mono,
                    flaps: s.flaps,
                    level: s.level.min(LEVELS),
                    absent_since: None,
                    grace_until: Some(now.mono + rules.restart_grace),
                },
            );
        }
        p
    }

    /// New timing (a config change); open incidents stay open.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// The open incidents, for saving (oldest key order; stable so an unchanged set saves the
    /// same bytes).
    pub fn saved(&self) -> Vec<SavedIncident> {
        self.open
            .iter()
            .map(|(k, i)| SavedIncident {
                key: k.clone(),
                message: i.message.clone(),
                raised_utc: i.raised_utc,
                level: i.level,
                flaps: i.flaps,
            })
            .collect()
    }

    /// Keys of the open incidents (raised, not yet cleared).
    pub fn open_keys(&self) -> impl Iterator<Item = &AlarmKey> {
        self.open.keys()
    }

    /// The earliest moment at which [`Policy::observe`], fed the same standing alarms as last
    /// time, would say something new: a clear once its hold has passed, a reminder, the end of
    /// a restored alarm's grace. `None`: nothing is due until the standing set changes.
    ///
    /// So a caller may feed the policy only when the standing set changes and at this deadline
    /// (an idle box must not wake every second to ask): the notices are the same as with a
    /// feed every second (checked by a property test). Valid after each `observe`.
    pub fn next_deadline(&self) -> Option<Mono> {
        let rules = self.rules;
        self.open
            .values()
            .filter_map(|inc| match inc.absent_since {
                Some(since) => Some(since + rules.hold(inc.level)),
                // Standing, or restored and still within its grace (absence not yet counted).
                None => {
                    let reminder = rules.reminder.map(|every| inc.last_notice + every);
                    [reminder, inc.grace_until].into_iter().flatten().min()
                }
            })
            .min()
    }

    /// Feeds the alarms standing at `now`; returns what to tell, in key order (raises and
    /// clears of one moment go out together as one message).
    pub fn observe(&mut self, now: Now, standing: &[Standing]) -> Vec<Notice> {
        let rules = self.rules;
        let mut out = Vec::new();
        let mut present: BTreeMap<&AlarmKey, &str> = BTreeMap::new();
        for s in standing {
            present.insert(&s.key, &s.message);
        }
        for (key, message) in &present {
            if let Some(inc) = self.open.get_mut(*key) {
                if inc.absent_since.take().is_some() {
                    inc.flaps = inc.flaps.saturating_add(1);
                    inc.level = (inc.level + 1).min(LEVELS);
                }
                if inc.message != *message {
                    inc.message = (*message).to_owned();
                }
                continue;
            }
            let level = self
                .settled
                .remove(*key)
                .and_then(|s| rules.faded(s.level, now.mono - s.cleared_at))
                .map_or(0, |l| (l + 1).min(LEVELS));
            self.open.insert(
                (*key).clone(),
                Incident {
                    message: (*message).to_owned(),
                    raised_utc: now.unix,
                    last_notice: now.mono,
                    flaps: 0,
                    level,
                    absent_since: None,
                    grace_until: None,
                },
            );
            out.push(Notice {
                kind: NoticeKind::Raised,
                key: (*key).clone(),
                message: (*message).to_owned(),
                raised_utc: now.unix,
                at_utc: now.unix,
                flaps: 0,
            });
        }
        let mut cleared = Vec::new();
        for (key, inc) in self.open.iter_mut() {
            if present.contains_key(key) {
                if let Some(every) = rules.reminder {
                    if now.mono - inc.last_notice >= every {
                        out.push(Notice {
                            kind: NoticeKind::Reminder,
                            key: key.clone(),
                            message: inc.message.clone(),
                            raised_utc: inc.raised_utc,
                            at_utc: now.unix,
                            flaps: std::mem::take(&mut inc.flaps),
                        });
                        inc.last_notice = now.mono;
                    }
                }
                continue;
            }
            let counted_from = match inc.grace_until {
                Some(g) if g > now.mono => continue,
                _ => now.mono,
            };
            // Over: [`Policy::next_deadline`] must not keep returning a past grace.
            inc.grace_until = None;
            let since = *inc.absent_since.get_or_insert(counted_from);
            if now.mono - since >= rules.hold(inc.level) {
                cleared.push(key.clone());
            }
        }
        for key in cleared {
            if let Some(inc) = self.open.remove(&key) {
                self.settled.insert(
                    key.clone(),
                    Settled {
                        cleared_at: now.mono,
                        level: inc.level,
                    },
                );
                out.push(Notice {
                    kind: NoticeKind::Cleared,
                    key,
                    message: inc.message,
                    raised_utc: inc.raised_utc,
                    at_utc: now.unix,
                    flaps: inc.flaps,
                });
            }
        }
        // Forget calm alarms whose memory has faded completely.
        self.settled
            .retain(|_, s| rules.faded(s.level, now.mono - s.cleared_at).is_some());
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_795_341_600;

    fn at(secs: u64) -> Now {
        Now {
            mono: Mono::ZERO + Duration::from_secs(secs),
            unix: T0 + secs as i64,
        }
    }

    fn link_down(pbx: &str) -> Standing {
        Standing {
            key: AlarmKey::new("LINK DOWN", Some(pbx)),
            message: format!("PBX '{pbx}' is not connected"),
        }
    }

    /// The default rules with a reminder every hour while an alarm stands.
    fn hourly_reminders() -> Rules {
        Rules {
            reminder: Some(Duration::from_secs(3600)),
            ..Rules::default()
        }
    }

    fn kinds(n: &[Notice]) -> Vec<(NoticeKind, String)> {
        n.iter().map(|n| (n.kind, n.key.to_string())).collect()
    }

    #[test]
    fn one_raise_then_one_clear_after_the_hold() {
        let mut p = Policy::new(Rules::default());
        let n = p.observe(at(0), &[link_down("office")]);
        assert_eq!(
            kinds(&n),
            vec![(NoticeKind::Raised, "LINK DOWN (office)".into())]
        );
        assert!(p.observe(at(1), &[link_down("office")]).is_empty());
        assert!(
            p.observe(at(10), &[]).is_empty(),
            "gone, but within the hold"
        );
        assert!(p.observe(at(39), &[]).is_empty());
        let n = p.observe(at(40), &[]);
        assert_eq!(
            kinds(&n),
            vec![(NoticeKind::Cleared, "LINK DOWN (office)".into())]
        );
        assert_eq!(n[0].raised_utc, T0);
        assert_eq!(n[0].flaps, 0);
        assert!(p.observe(at(100), &[]).is_empty());
    }

    #[test]
    fn two_pbxs_are_two_incidents() {
        let mut p = Policy::new(Rules::default());
        let n = p.observe(at(0), &[link_down("a"), link_down("b")]);
        assert_eq!(n.len(), 2);
        p.observe(at(5), &[link_down("b")]);
        let n = p.observe(at(40), &[link_down("b")]);
        assert_eq!(
            kinds(&n),
            vec![(NoticeKind::Cleared, "LINK DOWN (a)".into())]
        );
    }

    #[test]
    fn a_message_change_is_not_a_new_alarm() {
        let mut p = Policy::new(Rules::default());
        p.observe(at(0), &[link_down("a")]);
        let mut s = link_down("a");
        s.message = "PBX 'a' is not connected: connection refused".into();
        assert!(p.observe(at(1), &[s]).is_empty());
        p.observe(at(2), &[]);
        let n = p.observe(at(40), &[]);
        assert!(n[0].message.ends_with("connection refused"));
    }

    #[test]
    fn twenty_flaps_in_a_minute_make_one_raise_and_one_clear() {
        let mut p = Policy::new(Rules::default());
        let mut notices = Vec::new();
        for i in 0..20u64 {
            notices.extend(p.observe(at(i * 3), &[link_down("office")]));
            notices.extend(p.observe(at(i * 3 + 1), &[]));
        }
        for s in 60..3600 {
            notices.extend(p.observe(at(s), &[]));
        }
        assert_eq!(
            kinds(&notices),
            vec![
                (NoticeKind::Raised, "LINK DOWN (office)".into()),
                (NoticeKind::Cleared, "LINK DOWN (office)".into())
            ]
        );
        assert_eq!(notices[1].flaps, 19, "the clear says how often it flapped");
        // The grown hold: the clear came only after the longest hold of calm.
        assert_eq!(
            notices[1].at_utc,
            T0 + 58 + CLEAR_AFTER_MAX.as_secs() as i64
        );
    }

    #[test]
    fn reminders_at_the_interval_while_it_stands() {
        let rules = hourly_reminders();
        let mut p = Policy::new(rules);
        let mut n = Vec::new();
        for s in (0..=7200).step_by(60) {
            n.extend(p.observe(at(s), &[link_down("a")]));
        }
        assert_eq!(
            n.iter().map(|n| n.kind).collect::<Vec<_>>(),
            vec![
                NoticeKind::Raised,
                NoticeKind::Reminder,
                NoticeKind::Reminder
            ]
        );
        assert_eq!(n[2].raised_utc, T0, "a reminder says since when");
        let none = Rules {
            reminder: None,
            ..rules
        };
        let mut p = Policy::new(none);
        p.observe(at(0), &[link_down("a")]);
        assert!(p.observe(at(1_000_000), &[link_down("a")]).is_empty());
    }

    #[test]
    fn a_restart_neither_re_raises_nor_falsely_clears() {
        let rules = Rules::default();
        let mut p = Policy::new(rules);
        p.observe(at(0), &[link_down("a"), link_down("b")]);
        let saved = p.saved();
        // New run: the monotonic clock starts again at zero, the wall clock goes on.
        let boot = Now {
            mono: Mono::ZERO,
            unix: T0 + 500,
        };
        let mut p = Policy::restore(rules, saved, boot);
        let after = |s: u64| Now {
            mono: Mono::ZERO + Duration::from_secs(s),
            unix: T0 + 500 + s as i64,
        };
        // 'a' shows up again after 5 minutes (link_down_minutes), 'b' never does.
        let mut n = Vec::new();
        for s in 0..300 {
            n.extend(p.observe(after(s), &[]));
        }
        assert!(n.is_empty(), "nothing within the grace: {n:?}");
        for s in 300..1000 {
            n.extend(p.observe(after(s), &[link_down("a")]));
        }
        assert_eq!(
            kinds(&n),
            vec![(NoticeKind::Cleared, "LINK DOWN (b)".into())]
        );
        assert_eq!(
            n[0].raised_utc, T0,
            "the incident began in the previous run"
        );
        assert_eq!(n[0].at_utc, T0 + 500 + 360 + 30);
    }

    #[test]
    fn an_alarm_back_soon_after_its_clear_keeps_a_longer_hold() {
        let mut p = Policy::new(Rules::default());
        p.observe(at(0), &[link_down("a")]);
        p.observe(at(1), &[]);
        assert_eq!(p.observe(at(31), &[]).len(), 1, "cleared after 30 s");
        assert_eq!(
            p.observe(at(40), &[link_down("a")]).len(),
            1,
            "raised again"
        );
        p.observe(at(41), &[]);
        assert!(
            p.observe(at(71), &[]).is_empty(),
            "30 s is no longer enough"
        );
        assert_eq!(p.observe(at(101), &[]).len(), 1, "60 s is");
        // After a long calm the memory is gone: the next incident has the short hold again.
        p.observe(at(100_000), &[link_down("a")]);
        p.observe(at(100_001), &[]);
        assert_eq!(p.observe(at(100_031), &[]).len(), 1);
    }

    /// Feeds `p` only when the standing set changes and at [`Policy::next_deadline`], as the
    /// running mailer does: `script` is (second, standing set) changes in time order, fed up to
    /// `end`.
    fn fed_on_change_and_deadline(
        p: &mut Policy,
        script: &[(u64, Vec<Standing>)],
        end: u64,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        let mut standing: Vec<Standing> = Vec::new();
        let mut next = script.iter().peekable();
        loop {
            let change = next.peek().map(|(t, _)| *t);
            let deadline = p.next_deadline().map(|d| (d - Mono::ZERO).as_secs());
            let Some(t) = [change, deadline].into_iter().flatten().min() else {
                break;
            };
            if t > end {
                break;
            }
            if change == Some(t) {
                if let Some((_, s)) = next.next() {
                    standing = s.clone();
                }
            }
            out.extend(p.observe(at(t), &standing));
        }
        out
    }

    #[test]
    fn a_clear_comes_at_its_deadline_without_a_feed_every_second() {
        // 20 flaps, each change fed once, then nothing but the deadline: the same single
        // raise and the single clear after the grown hold as with a feed every second.
        let mut script = Vec::new();
        for i in 0..20u64 {
            script.push((i * 3, vec![link_down("office")]));
            script.push((i * 3 + 1, vec![]));
        }
        let mut p = Policy::new(Rules::default());
        let n = fed_on_change_and_deadline(&mut p, &script, 3600);
        assert_eq!(
            kinds(&n),
            vec![
                (NoticeKind::Raised, "LINK DOWN (office)".into()),
                (NoticeKind::Cleared, "LINK DOWN (office)".into())
            ]
        );
        assert_eq!(n[1].flaps, 19);
        assert_eq!(n[1].at_utc, T0 + 58 + CLEAR_AFTER_MAX.as_secs() as i64);
        assert_eq!(p.next_deadline(), None, "nothing left to wake for");
    }

    #[test]
    fn the_deadline_names_the_hold_the_reminder_and_the_grace() {
        let rules = hourly_reminders();
        let mut p = Policy::new(rules);
        assert_eq!(p.next_deadline(), None);
        p.observe(at(10), &[link_down("a")]);
        assert_eq!(p.next_deadline(), Some(at(3610).mono), "the reminder");
        p.observe(at(20), &[]);
        assert_eq!(p.next_deadline(), Some(at(50).mono), "the hold");
        let saved = p.saved();
        let mut p = Policy::restore(rules, saved, at(0));
        p.observe(at(0), &[]);
        assert_eq!(p.next_deadline(), Some(at(360).mono), "the restart grace");
        assert!(p.observe(at(360), &[]).is_empty());
        assert_eq!(p.next_deadline(), Some(at(390).mono), "then the hold");
        assert_eq!(p.observe(at(390), &[]).len(), 1);
    }

    /// One test step: which of four alarms stand for how many seconds.
    fn steps() -> impl Strategy<Value = Vec<(u8, u16)>> {
        proptest::collection::vec((0u8..16, 1u16..120), 1..200)
    }

    proptest! {
        /// Per key, notices alternate: Raised (Reminder*) Cleared Raised …, so every raise is
        /// followed by exactly one clear or is still open at the end; and a key is open exactly
        /// when the policy says so.
        #[test]
        fn every_raise_is_cleared_exactly_once_or_still_open(script in steps()) {
            let rules = Rules { reminder: Some(Duration::from_secs(600)), ..Rules::default() };
            let mut p = Policy::new(rules);
            let keys: Vec<Standing> = ["a", "b", "c", "d"].iter().map(|k| link_down(k)).collect();
            let mut t = 0u64;
            let mut open: BTreeMap<AlarmKey, bool> = BTreeMap::new();
            for (mask, secs) in script {
                let standing: Vec<Standing> = keys.iter().enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0).map(|(_, s)| s.clone()).collect();
                for _ in 0..secs {
                    for n in p.observe(at(t), &standing) {
                        let was_open = open.get(&n.key).copied().unwrap_or(false);
                        match n.kind {
                            NoticeKind::Raised => prop_assert!(!was_open, "raised twice: {n:?}"),
                            NoticeKind::Reminder | NoticeKind::Cleared =>
                                prop_assert!(was_open, "{:?} without a raise: {n:?}", n.kind),
                        }
                        open.insert(n.key.clone(), n.kind != NoticeKind::Cleared);
                    }
                    t += 1;
                }
            }
            let still: Vec<&AlarmKey> = open.iter().filter(|(_, o)| **o).map(|(k, _)| k).collect();
            let policy_open: Vec<&AlarmKey> = p.open_keys().collect();
            prop_assert_eq!(still, policy_open);
        }

        /// A policy fed only at changes and at its deadline says exactly what one fed every
        /// second says (the running mailer relies on it to sleep while nothing changes).
        #[test]
        fn fed_at_changes_and_deadlines_it_says_what_a_feed_every_second_says(script in steps()) {
            let rules = Rules { reminder: Some(Duration::from_secs(600)), ..Rules::default() };
            let keys: Vec<Standing> = ["a", "b", "c", "d"].iter().map(|k| link_down(k)).collect();
            let mut every_second = Policy::new(rules);
            let mut expected = Vec::new();
            let mut changes = Vec::new();
            let mut t = 0u64;
            for (mask, secs) in script {
                let standing: Vec<Standing> = keys.iter().enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0).map(|(_, s)| s.clone()).collect();
                changes.push((t, standing.clone()));
                for _ in 0..secs {
                    expected.extend(every_second.observe(at(t), &standing));
                    t += 1;
                }
            }
            // The last standing set keeps standing for the rest of the run.
            let last = changes.last().map(|(_, s)| s.clone()).unwrap_or_default();
            for s in t..t + 3600 {
                expected.extend(every_second.observe(at(s), &last));
            }
            let mut on_change = Policy::new(rules);
            let got = fed_on_change_and_deadline(&mut on_change, &changes, t + 3599);
            prop_assert_eq!(got, expected);
        }

        /// However an alarm flaps over a window of W seconds, it raises at most
        /// 1 + LEVELS + 2·W/CLEAR_AFTER_MAX times, and a minute of flapping sends at most four
        /// messages about it (raise, clear, raise, and the final clear).
        #[test]
        fn flapping_raises_a_bounded_number_of_times(
            toggles in proptest::collection::vec(1u64..40, 1..400),
        ) {
            let mut p = Policy::new(Rules { reminder: None, ..Rules::default() });
            let mut t = 0u64;
            let mut up = true;
            let mut raises = 0u64;
            for d in &toggles {
                for _ in 0..*d {
                    let standing = if up { vec![link_down("a")] } else { vec![] };
                    raises += p.observe(at(t), &standing).iter()
                        .filter(|n| n.kind == NoticeKind::Raised).count() as u64;
                    t += 1;
                }
                up = !up;
            }
            let bound = 1 + u64::from(LEVELS) + 2 * t / CLEAR_AFTER_MAX.as_secs();
            prop_assert!(raises <= bound, "{raises} raises in {t} s (bound {bound})");
        }

        #[test]
        fn a_minute_of_flapping_sends_at_most_four_messages(
            toggles in proptest::collection::vec(1u64..20, 1..60),
        ) {
            let mut p = Policy::new(Rules::default());
            let mut t = 0u64;
            let mut up = true;
            let mut notices = Vec::new();
            for d in &toggles {
                for _ in 0..*d {
                    if t >= 60 { break; }
                    let standing = if up { vec![link_down("a")] } else { vec![] };
                    notices.extend(p.observe(at(t), &standing));
                    t += 1;
                }
                up = !up;
            }
            for s in 60..3600 {
                notices.extend(p.observe(at(s), &[]));
            }
            prop_assert!(notices.len() <= 4, "{} messages: {notices:?}", notices.len());
            prop_assert_eq!(notices.last().map(|n| n.kind), Some(NoticeKind::Cleared));
        }
    }
}
