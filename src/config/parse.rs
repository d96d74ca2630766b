//! From config text to normalised values, with every problem found in one pass: syntax errors
//! (the TOML parser recovers and goes on), unknown tables and keys (with the closest known
//! name), wrong types and bad values (checked by [`super::spec::check_value`] against the key
//! table). The result is a `toml::Table` holding every key of the table — given or default —
//! in its normalised form, which `super` turns into the typed [`super::Config`].
//!
//! Pure code. A message never quotes a line of the file that could hold a secret.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::keys::{self, names_a_secret, TABLES};
use super::spec::{check_entries, check_value, required_problem, Input, Key, Kind, MapSpec};

/// What kind of problem a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not TOML at that place.
    Syntax,
    /// A table or key the box does not know (a typo, usually).
    Unknown,
    /// A known key with a value of the wrong type or out of range, or a required key missing.
    Value,
}

/// One thing wrong in a config file. `path` is the key path (`pbx[1].timezone`) so the web page
/// can point at the field; `detail` says what is wrong without the key (for beside the field);
/// `message` is the full sentence, naming the key once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub path: String,
    pub detail: String,
    pub message: String,
    /// 1-based line and column in the file, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " at line {l}, column {c}"),
            (Some(l), None) => write!(f, " at line {l}"),
            _ => Ok(()),
        }
    }
}

impl Problem {
    /// A problem with a key's value: the message is `path: detail`.
    pub fn value(path: String, detail: String, line: Option<usize>) -> Problem {
        Problem {
            kind: ProblemKind::Value,
            message: format!("{path}: {detail}"),
            path,
            detail,
            line,
            column: None,
        }
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word` by edit distance (case-insensitive), if close enough to be
/// a plausible typo.
pub fn did_you_mean<'a, I: IntoIterator<Item = &'a str>>(
    word: &str,
    candidates: I,
) -> Option<&'a str> {
    let w = word.to_lowercase();
    let limit = (w.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&w, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The text of 1-based line `n`.
fn line_text(text: &str, n: usize) -> Option<&str> {
    text.lines().nth(n.checked_sub(1)?)
}

/// The bare key at the start of a `key = value` line (`secret` of `  secret = "x"`).
fn key_of_line(line: &str) -> Option<&str> {
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
    (!k.is_empty()).then_some(k)
}

/// A line without its trailing comment (a comment may say anything, a secret too).
fn without_comment(line: &str) -> &str {
    let t = line.trim();
    let cut = t.match_indices('#').find(|(i, _)| {
        // A `#` inside a quoted value is no comment: count the quotes before it.
        let before = &t[..*i];
        before.matches('"').count().is_multiple_of(2)
            && before.matches('\'').count().is_multiple_of(2)
    });
    cut.map_or(t, |(i, _)| t[..i].trim_end())
}

/// Whether a line may be quoted in a message: a bare table header, or a line that starts with
/// a known key that holds no secret and does not name one anywhere (`name = "a" secret = "x"`
/// is one broken line). Anything else (a secret, an unknown key that may be a mistyped secret,
/// a header with more on its line) is never shown. Quote it through [`quoted_line`], which
/// also leaves out the comment and the lines inside a secret's value.
pub fn quotable(line: &str) -> bool {
    let t = without_comment(line);
    if names_a_secret(t) {
        return false;
    }
    if t.starts_with('[') {
        // Only `[name]` / `[[name]]` alone: anything after the header could be a value.
        let inner = t.trim_start_matches('[').trim_end_matches(']');
        let brackets = t.len() - inner.len();
        return (brackets == 2 || brackets == 4)
            && !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
    }
    match key_of_line(t) {
        Some(k) => keys::KEYS.iter().any(|s| s.key == k && !s.secret),
        None => false,
    }
}

/// The lines any secret's value spans in `text` (a multi-line string can hide a line that
/// looks like `name = …`), found with the recovering parser.
fn secret_lines(text: &str) -> BTreeSet<usize> {
    fn of_table(text: &str, table: &str, t: &DeTable<'_>, out: &mut BTreeSet<usize>) {
        for (k, v) in t.iter() {
            if keys::is_secret(table, k.get_ref()) {
                let span = v.span();
                let first = line_col(text, span.start.min(k.span().start)).0;
                let last = line_col(text, span.end).0;
                out.extend(first..=last);
            }
        }
    }
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut out = BTreeSet::new();
    for (name, v) in doc.get_ref().iter() {
        match v.get_ref() {
            DeValue::Table(t) => of_table(text, name.get_ref(), t, &mut out),
            DeValue::Array(a) => {
                for e in a.iter() {
                    if let DeValue::Table(t) = e.get_ref() {
                        of_table(text, name.get_ref(), t, &mut out);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Line `n` of `text` as a message may quote it (without its comment), or `None` when it may
/// hold a secret.
pub fn quoted_line(text: &str, n: usize) -> Option<&str> {
    let line = line_text(text, n)?;
    (quotable(line) && !secret_lines(text).contains(&n)).then(|| without_comment(line))
}

/// The key path a line belongs to, by the table headers above it (`pbx[1].host`, `web`).
fn path_at_line(text: &str, line: usize) -> String {
    let mut table = String::new();
    let mut pbx_index: HashMap<String, usize> = HashMap::new();
    for l in text.lines().take(line) {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let i = pbx_index
                .entry(name.clone())
                .and_modify(|i| *i += 1)
                .or_insert(0);
            table = format!("{name}[{i}]");
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_owned();
        }
    }
    let key = line_text(text, line).and_then(key_of_line).filter(|_| {
        // A key of a line that is itself a header is no key.
        !line_text(text, line).is_some_and(|l| l.trim_start().starts_with('['))
    });
    match (table.is_empty(), key) {
        (true, Some(k)) => k.to_owned(),
        (true, None) => "config".to_owned(),
        (false, Some(k)) => format!("{table}.{k}"),
        (false, None) => table,
    }
}

/// "Text needs quotes" for a line like `listen = 0.0.0.0:80`, the most common mistake in a
/// hand-edited file (TOML itself says "invalid float"). Never for a secret's line.
fn quotes_hint(line: &str) -> Option<String> {
    let (k, v) = line.split_once('=')?;
    let (k, v) = (k.trim(), v.trim());
    let key = keys::KEYS.iter().find(|s| s.key == k && !s.secret)?;
    let textual = matches!(
        key.kind,
        Kind::Text(_) | Kind::Path | Kind::Listen | Kind::Choice { .. }
    );
    let quoted = v.starts_with(['"', '\'', '[']);
    (textual && !quoted && !v.is_empty()).then(|| {
        format!(
            "; text needs quotes: {k} = {}",
            super::spec::toml_string(v.split(" #").next().unwrap_or(v).trim())
        )
    })
}

/// A syntax error as a problem: the parser's words, where, and the line itself when it holds
/// nothing secret.
pub fn syntax_problem(text: &str, span: Option<Range<usize>>, message: &str) -> Problem {
    let (line, column) = match span {
        Some(s) => {
            let (l, c) = line_col(text, s.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let quoted = line
        .and_then(|l| quoted_line(text, l))
        .map(|l| format!(" (in: {l})"))
        .unwrap_or_default();
    let hint = line
        .and_then(|l| quoted_line(text, l))
        .and_then(quotes_hint)
        .unwrap_or_default();
    let detail = format!("invalid TOML: {}{quoted}{hint}", message.trim());
    Problem {
        kind: ProblemKind::Syntax,
        path: line.map_or_else(|| "config".to_owned(), |l| path_at_line(text, l)),
        message: detail.clone(),
        detail,
        line,
        column,
    }
}

fn input_of<'a>(v: &'a DeValue<'a>) -> Input<'a> {
    match v {
        DeValue::String(s) => Input::Str(s.as_ref()),
        DeValue::Integer(i) => {
            let digits = i.as_str();
            match i64::from_str_radix(digits, i.radix()) {
                Ok(n) => Input::Int(n),
                Err(_) => Input::Other("a number too large"),
            }
        }
        DeValue::Float(_) => Input::Other("a decimal number"),
        DeValue::Boolean(b) => Input::Bool(*b),
        DeValue::Datetime(_) => Input::Other("a date"),
        DeValue::Array(a) => Input::List(a.iter().map(|e| input_of(e.get_ref())).collect()),
        DeValue::Table(_) => Input::Other("a table"),
    }
}

fn type_words(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "text",
        DeValue::Integer(_) | DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "true/false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// The result of reading a config text: every key of the table, normalised (defaults filled
/// in), the problems found, and the line each key path was given on.
#[derive(Debug, Default)]
pub struct Normalized {
    pub root: toml::Table,
    pub problems: Vec<Problem>,
    pub lines: HashMap<String, usize>,
}

struct Walk<'t> {
    text: &'t str,
    error_lines: BTreeSet<usize>,
    out: Normalized,
}

impl Walk<'_> {
    fn line(&self, span: Range<usize>) -> Option<usize> {
        (span.end > span.start || span.start > 0).then(|| line_col(self.text, span.start).0)
    }

    /// True when `line` is below a table header with a syntax error (`[[pbx]`) and above the
    /// next header: the parser puts such keys at the top level, but they belong to that table,
    /// and the header's own error already covers them (`unknown table [port]` would mislead).
    fn under_broken_header(&self, line: usize) -> bool {
        let lines: Vec<&str> = self.text.lines().collect();
        (1..line)
            .rev()
            .find(|&l| {
                lines
                    .get(l - 1)
                    .is_some_and(|t| t.trim_start().starts_with('['))
            })
            .is_some_and(|header| self.error_lines.contains(&header))
    }

    /// Recovered placeholders sit on a line with a syntax error or have an empty span: they
    /// are reported as the syntax error, not again as a value.
    fn damaged(&self, span: &Range<usize>) -> bool {
        span.is_empty() && span.start == 0
            || self
                .line(span.clone())
                .is_some_and(|l| self.error_lines.contains(&l))
    }

    fn unknown(&mut self, path: String, message: String, span: Range<usize>) {
        let line = self.line(span);
        self.out.problems.push(Problem {
            kind: ProblemKind::Unknown,
            path,
            detail: message.clone(),
            message,
            line,
            column: None,
        });
    }

    fn value_problem(&mut self, path: String, detail: String, line: Option<usize>) {
        self.out.problems.push(Problem::value(path, detail, line));
    }

    /// Checks one table of the file against its keys; returns it normalised.
    fn table(&mut self, name: &str, t: Option<&DeTable<'_>>, index: Option<usize>) -> toml::Table {
        let shown = match index {
            Some(i) => format!("{name}[{i}]"),
            None => format!("[{name}]"),
        };
        let prefix = match index {
            Some(i) => format!("{name}[{i}]"),
            None => name.to_owned(),
        };
        let allowed: Vec<&str> = keys::keys_of(name).map(|k| k.key).collect();
        // Keys an unknown key was probably meant to be: their "missing" would say the same
        // mistake twice.
        let mut suggested: Vec<&str> = Vec::new();
        if let Some(t) = t {
            for (k, v) in t.iter() {
                let key: &str = k.get_ref();
                if allowed.contains(&key) || self.damaged(&k.span()) || self.damaged(&v.span()) {
                    continue;
                }
                let guess = did_you_mean(key, allowed.iter().copied());
                suggested.extend(guess);
                let hint = guess
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                self.unknown(
                    format!("{prefix}.{key}"),
                    format!("unknown key {key:?} in {shown}{hint}"),
                    k.span(),
                );
            }
        }
        let mut out = toml::Table::new();
        for spec in keys::keys_of(name) {
            let path = spec.path(index);
            let given = t.and_then(|t| t.get(spec.key));
            match given {
                Some(v) if !self.damaged(&v.span()) => {
                    let line = self.line(v.span());
                    if let Some(l) = line {
                        self.out.lines.insert(path.clone(), l);
                    }
                    self.value(spec, &path, v.get_ref(), line, &mut out);
                }
                // A damaged value is reported as the syntax error; keep the default so the
                // rest can still be checked.
                Some(_) => self.fallback(spec, &mut out),
                None => {
                    let typo = suggested.contains(&spec.key);
                    if let Some(msg) = required_problem(spec, false).filter(|_| !typo) {
                        self.value_problem(path, msg, None);
                    }
                    self.fallback(spec, &mut out);
                }
            }
        }
        out
    }

    /// Checks a table of free keys (`[names]`) entry by entry; returns the good entries
    /// normalised (a bad one is left out, its problem reported).
    fn map_table(&mut self, name: &str, spec: &MapSpec, t: Option<&DeTable<'_>>) -> toml::Table {
        let mut out = toml::Table::new();
        let Some(t) = t else {
            return out;
        };
        let mut given: Vec<_> = t
            .iter()
            .filter(|(k, v)| !self.damaged(&k.span()) && !self.damaged(&v.span()))
            .collect();
        // File order: the first of two spellings of one number is the one kept.
        given.sort_by_key(|(k, _)| k.span().start);
        let entries: Vec<(&str, Input<'_>)> = given
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), input_of(v.get_ref())))
            .collect();
        let good = match check_entries(spec, &entries) {
            Ok(good) => good,
            Err(problems) => {
                for p in problems {
                    let Some((k, _)) = given.get(p.entry).or(given.last()) else {
                        continue;
                    };
                    let path = map_path(name, k.get_ref());
                    let line = self.line(k.span());
                    self.value_problem(path, p.detail, line);
                }
                // The good entries still count: one bad line does not hide every name.
                given
                    .iter()
                    .filter_map(|(k, v)| {
                        let key = (spec.key_check)(k.get_ref()).ok()?;
                        let DeValue::String(s) = v.get_ref() else {
                            return None;
                        };
                        Some((key, (spec.value_check)(s).ok()?))
                    })
                    .collect()
            }
        };
        for (k, v) in good {
            out.entry(k).or_insert(toml::Value::String(v));
        }
        for (k, v) in &given {
            if let Some(l) = self.line(v.span()) {
                self.out.lines.insert(map_path(name, k.get_ref()), l);
            }
        }
        out
    }

    fn value(
        &mut self,
        spec: &Key,
        path: &str,
        v: &DeValue<'_>,
        line: Option<usize>,
        out: &mut toml::Table,
    ) {
        let input = input_of(v);
        if matches!(&input, Input::Str(s) if s.trim().is_empty()) {
            if let Some(msg) = required_problem(spec, true) {
                self.value_problem(path.to_owned(), msg, line);
                self.fallback(spec, out);
                return;
            }
        }
        match check_value(spec, &input) {
            Ok(n) => {
                out.insert(spec.key.to_owned(), n);
            }
            Err(problems) => {
                for p in problems {
                    let at = match p.item {
                        Some(j) => format!("{path}[{j}]"),
                        None => path.to_owned(),
                    };
                    self.value_problem(at, p.detail, line);
                }
                self.fallback(spec, out);
            }
        }
    }

    /// The default, or (for a required key) an empty placeholder that lets the rest of the
    /// config be built; a problem has been reported for it.
    fn fallback(&mut self, spec: &Key, out: &mut toml::Table) {
        let v = spec
            .default_value()
            .or_else(|| required_problem(spec, false).map(|_| toml::Value::String(String::new())));
        if let Some(v) = v {
            out.insert(spec.key.to_owned(), v);
        }
    }
}

/// The path of one entry of a table of free keys: `names.101`, or `names."1 0x"` for a key
/// that is no bare TOML key.
pub fn map_path(table: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("{table}.{key}")
    } else {
        format!("{table}.{}", super::spec::toml_string(key))
    }
}

/// Reads `text` against the key table. Never fails: problems are collected in the result.
pub fn normalize(text: &str) -> Normalized {
    let (_, errors) = DeTable::parse_recoverable(text);
    // A table header the parser cannot read (`[[pbx]`) makes its recovery misread the rest of
    // the file (`[web]` became a list, its keys went unchecked). The tree is read from the text
    // with such header lines blanked (same length, so every span and line stays where it was):
    // the rest of the file is checked as written, and the keys under the broken header are left
    // to its own error (`Walk::under_broken_header`).
    let broken_headers: BTreeSet<usize> = errors
        .iter()
        .filter_map(|e| e.span())
        .map(|span| line_col(text, span.start).0)
        .filter(|&l| {
            text.lines()
                .nth(l - 1)
                .is_some_and(|t| t.trim_start().starts_with('['))
        })
        .collect();
    let readable: String = if broken_headers.is_empty() {
        text.to_owned()
    } else {
        text.split_inclusive('\n')
            .enumerate()
            .map(|(i, line)| {
                if broken_headers.contains(&(i + 1)) {
                    let body = line.trim_end_matches(['\r', '\n']);
                    format!("{}{}", " ".repeat(body.len()), &line[body.len()..])
                } else {
                    line.to_owned()
                }
            })
            .collect()
    };
    let (doc, _) = DeTable::parse_recoverable(&readable);
    let mut walk = Walk {
        text,
        error_lines: BTreeSet::new(),
        out: Normalized::default(),
    };
    let mut errors: Vec<_> = errors
        .iter()
        .map(|e| syntax_problem(text, e.span(), e.message()))
        .collect();
    errors.sort_by_key(|p| (p.line, p.column));
    // One message per line: a broken line often makes the parser say two things about it.
    errors.dedup_by_key(|p| p.line);
    walk.error_lines = errors.iter().filter_map(|p| p.line).collect();
    walk.out.problems = errors;

    let root = doc.get_ref();
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    for (k, v) in root.iter() {
        let key: &str = k.get_ref();
        if names.contains(&key) || walk.damaged(&k.span()) {
            continue;
        }
        let is_table = matches!(v.get_ref(), DeValue::Table(_))
            || matches!(v.get_ref(), DeValue::Array(a) if !a.is_empty() && a.iter().all(|e| matches!(e.get_ref(), DeValue::Table(_))));
        // A plain `key = value` at the top is a setting without its table, not a mistyped
        // `[names]` (whose lines are numbers): only tables of settings are suggested for it.
        let hint = if is_table {
            did_you_mean(key, names.iter().copied())
        } else {
            did_you_mean(
                key,
                TABLES.iter().filter(|t| t.map.is_none()).map(|t| t.name),
            )
        };
        let message = if is_table {
            format!(
                "unknown table [{key}]{}",
                hint.map(|c| format!(" (did you mean [{c}]?)"))
                    .unwrap_or_default()
            )
        } else {
            format!(
                "unknown key {key:?} at the top level (settings belong in a table such as [box] or [storage]){}",
                hint.map(|c| format!(" (did you mean [{c}]?)")).unwrap_or_default()
            )
        };
        walk.unknown(key.to_owned(), message, k.span());
    }

    for t in TABLES {
        let given = root.get(t.name);
        let value = if t.array {
            let mut list = Vec::new();
            match given.map(|v| v.get_ref()) {
                None => {}
                Some(DeValue::Array(a)) => {
                    for (i, e) in a.iter().enumerate() {
                        match e.get_ref() {
                            DeValue::Table(tab) => list.push(toml::Value::Table(walk.table(
                                t.name,
                                Some(tab),
                                Some(i),
                            ))),
                            other => {
                                let line = walk.line(e.span());
                                walk.value_problem(
                                    format!("{}[{i}]", t.name),
                                    format!(
                                        "expected a [[{}]] table, not {}",
                                        t.name,
                                        type_words(other)
                                    ),
                                    line,
                                );
                            }
                        }
                    }
                }
                Some(other) => {
                    let line = given.and_then(|v| walk.line(v.span()));
                    let detail = match other {
                        DeValue::Table(_) => format!(
                            "write [[{0}]] (two brackets): each entry is one [[{0}]] table",
                            t.name
                        ),
                        o => format!("expected [[{}]] tables, not {}", t.name, type_words(o)),
                    };
                    walk.value_problem(t.name.to_owned(), detail, line);
                }
            }
            toml::Value::Array(list)
        } else {
            // `[name]` must be a table, whether its keys are fixed or a map (`[names]`).
            let tab = match given.map(|v| v.get_ref()) {
                None => None,
                Some(DeValue::Table(tab)) => Some(tab),
                Some(other) => {
                    let line = given.and_then(|v| walk.line(v.span()));
                    walk.value_problem(
                        t.name.to_owned(),
                        format!("expected a [{}] table, not {}", t.name, type_words(other)),
                        line,
                    );
                    None
                }
            };
            match t.map {
                Some(spec) => toml::Value::Table(walk.map_table(t.name, spec, tab)),
                None => toml::Value::Table(walk.table(t.name, tab, None)),
            }
        };
        walk.out.root.insert(t.name.to_owned(), value);
    }
    // Keys under a broken header were read into the table above it (or the top level): a
    // problem found there would name the wrong table. The header's error stands for them.
    let problems = std::mem::take(&mut walk.out.problems);
    walk.out.problems = problems
        .into_iter()
        .filter(|p| {
            p.kind == ProblemKind::Syntax || !p.line.is_some_and(|l| walk.under_broken_header(l))
        })
        .map(|mut p| {
            if p.line.is_some_and(|l| broken_headers.contains(&l)) {
                let more = "; the keys below it are checked once this line is fixed";
                p.message.push_str(more);
                p.detail.push_str(more);
            }
            p
        })
        .collect();
    walk.out
        .problems
        .sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    walk.out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13 item 7: `[[pbx]` also gave "unknown table [port]" for the key below it.
    #[test]
    fn keys_under_a_broken_header_are_not_reported_again() {
        let n = normalize(
            "[[pbx]\nname = \"x\"\nport = 99999\n[web]\nworkerz = 3\n[storag\npath = 5\n[box]\nnme = \"a\"\n",
        );
        let got: Vec<String> = n.problems.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(
            got[0].starts_with("invalid TOML: unclosed array table")
                && got[0].ends_with(
                    "; the keys below it are checked once this line is fixed at line 1, column 7"
                ),
            "{got:#?}"
        );
        assert_eq!(
            got[1], "unknown key \"workerz\" in [web] (did you mean \"workers\"?) at line 5",
            "checking goes on after the next good header"
        );
        assert!(got[2].contains("at line 6"), "{got:#?}");
        assert_eq!(
            got[3], "unknown key \"nme\" in [box] (did you mean \"name\"?) at line 9",
            "`path = 5` under [storag is not blamed on [web]"
        );
    }

    #[test]
    fn every_problem_of_a_file_in_one_pass() {
        let text = "[storage]\npath = \"/x\"\nflush_records = = 3\nretention_days = -1\n[web]\nlisten = 5 6\nworkerz = 3\n[[pbx]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\nport = 0\n";
        let n = normalize(text);
        let got: Vec<String> = n.problems.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].starts_with("invalid TOML: extra `=`"), "{got:#?}");
        assert!(
            got[0].ends_with("(in: flush_records = = 3) at line 3, column 17"),
            "{got:#?}"
        );
        assert_eq!(n.problems[0].path, "storage.flush_records");
        assert_eq!(
            got[1],
            "storage.retention_days: -1 is out of range (allowed 0–36500 days) at line 4"
        );
        assert!(
            got[2].starts_with("invalid TOML") && got[2].contains("line 6"),
            "{got:#?}"
        );
        assert!(
            got[2].contains("; text needs quotes: listen = \"5 6\""),
            "{got:#?}"
        );
        assert_eq!(
            got[3],
            "unknown key \"workerz\" in [web] (did you mean \"workers\"?) at line 7"
        );
        assert_eq!(
            got[4],
            "pbx[0].port: 0 is not a port number (1–65535) at line 12"
        );
    }

    #[test]
    fn a_secret_line_is_never_quoted() {
        for text in [
            "[[pbx]]\nname = \"a\"\nsecret = \"hunter2\" x\n",
            "[[pbx]]\nname = \"a\"\nsecrte = \"hunter2\" x\n",
            "[[pbx]]\nsecret = \"\"\"hunter2\nmore\" x\n",
            // Two keys on one broken line, the first harmless.
            "[[pbx]]\nname = \"a\" secret = \"hunter2\"\n",
            "[[pbx]]\nname = \"a\", secret = \"hunter2\"\n",
            "[[pbx]]\nport = 5038 Secret = \"hunter2\"\n",
            // More after a table header.
            "[[pbx]] secret = \"hunter2\"\nname = \"a\"\n",
            "[pbx] secret = \"hunter2\"\n",
            // A comment that tells it.
            "[[pbx]]\nport = 5038 x # the secret is hunter2\n",
            // Inside a multi-line secret, a line that looks like a harmless key.
            "[[pbx]]\nsecret = \"\"\"\nname = hunter2 = x\"\"\"\nport = = 1\n",
            "[[pbx]]\nsecret = '''\nport = hunter2 x\n",
            // Inline tables.
            "pbx = [{ name = \"a\", secret = \"hunter2\" x }]\n",
        ] {
            let n = normalize(text);
            assert!(!n.problems.is_empty(), "{text}");
            for p in &n.problems {
                assert!(!p.to_string().contains("hunter2"), "{p}");
            }
        }
        // A harmless line is quoted, to help find it (without its comment).
        let n = normalize("[web]\nworkers = 3 3 # four was too many\n");
        assert!(
            n.problems[0].message.contains("(in: workers = 3 3)"),
            "{:?}",
            n.problems
        );
        let n = normalize("[web]\nlisten = \"a#b\" x\n[box] x\n");
        assert!(
            n.problems[0].message.contains("(in: listen = \"a#b\" x)"),
            "{:?}",
            n.problems
        );
        assert!(!n.problems[1].message.contains("(in:"), "{:?}", n.problems);
    }

    /// Every way of breaking a line of a file that holds a secret: no problem of the result
    /// quotes the secret, wherever the damage is (issue 11 item 5).
    #[test]
    fn no_damage_anywhere_quotes_the_secret() {
        let good = "# box\n[box]\nname = \"b\"\n\n[[pbx]]\nname = \"office\" # main\nhost = \"10.0.0.2\"\nusername = \"cdrbox\"\nsecret = \"hunter2\"\nport = 5038\n[web]\nlisten = \"0.0.0.0:80\"\n";
        let lines: Vec<&str> = good.lines().collect();
        let damage = [
            " x",
            " = 1",
            "\"",
            "'",
            "[",
            "]",
            " \"\"\"",
            " '''",
            ", secret = \"hunter2\"",
            " # hunter2",
        ];
        let mut broken = 0;
        for i in 0..lines.len() {
            for d in damage {
                for at_start in [false, true] {
                    let changed = if at_start {
                        format!("{d}{}", lines[i])
                    } else {
                        format!("{}{d}", lines[i])
                    };
                    let mut l = lines.clone();
                    l[i] = &changed;
                    let text = l.join("\n");
                    let n = normalize(&text);
                    broken += usize::from(!n.problems.is_empty());
                    for p in &n.problems {
                        assert!(!p.to_string().contains("hunter2"), "{p}\n--- file\n{text}");
                    }
                }
            }
        }
        assert!(broken > 100, "only {broken} variants were broken");
    }

    /// Issue 13 item 2: [names] entries are checked one by one, in plain words, and the good
    /// ones still count.
    #[test]
    fn names_table_is_checked_entry_by_entry() {
        let n = normalize(
            "[names]\n101 = \"  Анна Петрова \"\n\"+7 (499) 123-45-67\" = \"Бухгалтерия\"\n",
        );
        assert!(n.problems.is_empty(), "{:?}", n.problems);
        let names = n.root["names"].as_table().unwrap();
        assert_eq!(names["101"].as_str(), Some("Анна Петрова"));
        assert_eq!(names["+74991234567"].as_str(), Some("Бухгалтерия"));
        let long = "я".repeat(65);
        let text = format!(
            "[names]\n101 = \"\"\n102 = \"Борис\"\n\"1 02\" = \"Другой\"\n103 = \"{long}\"\n\"10/4\" = \"x\"\n105 = 5\n"
        );
        let n = normalize(&text);
        let got: Vec<String> = n.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "names.101: the name is empty: write the person's name, or remove the entry at line 2",
                "names.\"1 02\": number \"102\" is given twice: keep one at line 4",
                "names.103: the name is too long (65 characters, at most 64) at line 5",
                "names.\"10/4\": \"10/4\" is not an extension or number ('/' is not allowed; digits, letters, + * # and _ are) at line 6",
                "names.105: expected text in quotes, not a number at line 7",
            ]
        );
        let names = n.root["names"].as_table().unwrap();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(
            names["102"].as_str(),
            Some("Борис"),
            "the first 102 is kept"
        );
        // Absent: an empty table, and the typed config has no names.
        let n = normalize("");
        assert_eq!(n.root["names"].as_table().map(toml::Table::len), Some(0));
        let e = crate::config::Config::parse("names = 5\n", "t").unwrap_err();
        assert!(e.to_string().contains("expected a [names] table"), "{e}");
    }

    #[test]
    fn too_many_names_are_refused() {
        let mut text = String::from("[names]\n");
        for i in 0..5_001 {
            text.push_str(&format!("{i} = \"n\"\n"));
        }
        let n = normalize(&text);
        assert_eq!(n.problems.len(), 1, "{:?}", n.problems.first());
        assert!(
            n.problems[0]
                .message
                .contains("too many entries: 5001 given, at most 5000 allowed"),
            "{}",
            n.problems[0]
        );
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let n = normalize("[storage]\nring_kb = 64\n");
        assert!(n.problems.is_empty(), "{:?}", n.problems);
        assert_eq!(n.root["storage"]["ring_kb"].as_integer(), Some(64));
        assert_eq!(n.root["storage"]["flush_records"].as_integer(), Some(500));
        assert_eq!(n.root["display"]["address"].as_integer(), Some(0x3C));
        assert_eq!(n.root["pbx"].as_array().map(Vec::len), Some(0));
        assert_eq!(n.lines.get("storage.ring_kb"), Some(&2));
    }

    #[test]
    fn path_of_a_line() {
        let text = "[box]\nname = \"x\"\n[[pbx]]\nname = \"a\"\n[[pbx]]\nhost = \"b\"\n";
        assert_eq!(path_at_line(text, 2), "box.name");
        assert_eq!(path_at_line(text, 6), "pbx[1].host");
        assert_eq!(path_at_line(text, 5), "pbx[1]");
    }
}
