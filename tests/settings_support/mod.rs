//! For the settings tests (`settings_roundtrip.rs` without a browser, `web_e2e_settings.rs`
//! with one): a valid new value for every key of the key table, and a line-level reading of a
//! config file to prove a save changed one key alone.

#![allow(dead_code)]

use std::collections::BTreeMap;

use cdrbox::config::spec::{Key, Kind};
use serde_json::{json, Value};

/// A valid value for `key` that differs from `current` (the file's normalised value), as the
/// settings form would send it. A key with free text needs a sample here: the test names it.
pub fn changed_value(key: &Key, current: &toml::Value) -> Value {
    let int = current.as_integer();
    let text = current.as_str().unwrap_or("");
    match key.kind {
        Kind::Bool => json!(!current.as_bool().unwrap_or(false)),
        Kind::Int { min, max } => {
            let n = int.unwrap_or(min);
            json!(if n < max { n + 1 } else { n - 1 }.max(min))
        }
        Kind::Port => json!(int.map_or(5038, |n| if n < 65535 { n + 1 } else { n - 1 })),
        Kind::Choice { words, .. } => json!(words.iter().find(|w| **w != text).copied()),
        Kind::IntChoice(v) => json!(v.iter().find(|n| Some(**n) != int).map(|n| n.to_string())),
        Kind::I2cAddress(v) => {
            json!(v
                .iter()
                .find(|n| Some(**n) != int)
                .map(|n| format!("0x{n:02X}")))
        }
        Kind::Secret => json!("another-secret"),
        Kind::Listen => json!("127.0.0.1:18089"),
        Kind::Path => json!(format!("{text}-2")),
        Kind::List(_) => match (key.table, key.key) {
            ("alarms", "to") => json!(["ops@example.com"]),
            ("web", "hostnames") => json!(["calls.office.lan"]),
            _ => json!(["^SIP/other-trunk"]),
        },
        Kind::Text(_) => json!(match (key.table, key.key) {
            ("box", "name") => "renamed-box".to_owned(),
            ("pbx", "name") => format!("{text}-2"),
            ("pbx", "host") => if text == "localhost" {
                "127.0.0.1"
            } else {
                "localhost"
            }
            .to_owned(),
            // Asterisk (and the simulator) match the AMI user case-insensitively.
            ("pbx", "username") => text.to_uppercase(),
            ("pbx", "timezone") => if text == "Europe/Berlin" {
                "Europe/Moscow"
            } else {
                "Europe/Berlin"
            }
            .to_owned(),
            ("pbx", "charset") => if text == "koi8-r" {
                "windows-1251"
            } else {
                "koi8-r"
            }
            .to_owned(),
            ("alarms", "from") => "cdrbox <box@example.com>".to_owned(),
            ("alarms", "business_hours") => "Mon-Sat 08:00-17:00".to_owned(),
            ("alarms", "daily_report") => "07:30".to_owned(),
            ("uplink", "box_id") => "branch-7".to_owned(),
            ("log", "level") => if text == "debug" { "info" } else { "debug" }.to_owned(),
            ("pbx", "cdr_db") => {
                "mysql://cdrbox:db-pass@127.0.0.1:3306/asteriskcdrdb".to_owned()
            }
            ("pbx", "cdr_db_table") => if text == "cdr" {
                "asteriskcdrdb.cdr"
            } else {
                "cdr"
            }
            .to_owned(),
            (t, k) =>
                panic!("add a sample value for the text key {t}.{k} to tests/settings_support"),
        }),
    }
}

/// Every `key = value` line of a config file by key path (`pbx[0].port`, `storage.ring_kb`),
/// the value as written (comments after it dropped). Enough for the files these tests write:
/// one key per line, `[table]` and `[[pbx]]` headers.
pub fn key_lines(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut table = String::new();
    let mut arrays: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let i = arrays
                .entry(name.to_owned())
                .and_modify(|i| *i += 1)
                .or_insert(0);
            table = format!("{name}[{i}]");
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = name.to_owned();
        } else if let Some((k, v)) = t.split_once('=') {
            let v = match v.find(" #") {
                Some(i) if !v[..i].contains('"') || v[..i].matches('"').count() % 2 == 0 => &v[..i],
                _ => v,
            };
            out.insert(format!("{table}.{}", k.trim()), v.trim().to_owned());
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Line {
    Blank,
    Comment,
    Header,
    Key,
}

/// Each line of a config file with its kind and what it belongs to: a `key = value` line its
/// key path, a table header its table (`pbx[1]`, `log`), a comment or blank line itself.
fn line_owners(text: &str) -> Vec<(&str, Line, String)> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut arrays: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let t = line.trim();
        let (kind, owner) = if t.is_empty() {
            (Line::Blank, "a blank line".to_owned())
        } else if t.starts_with('#') {
            (Line::Comment, t.to_owned())
        } else if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let i = arrays
                .entry(name.to_owned())
                .and_modify(|i| *i += 1)
                .or_insert(0);
            table = format!("{name}[{i}]");
            (Line::Header, table.clone())
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.to_owned();
            (Line::Header, table.clone())
        } else {
            let k = t.split_once('=').map_or(t, |(k, _)| k).trim();
            (Line::Key, format!("{table}.{k}"))
        };
        out.push((line, kind, owner));
    }
    out
}

/// What changed between two files, from a line diff of the raw text (as `diff` shows it): a
/// changed, added or removed `key = value` line gives its key path; a changed comment gives
/// itself, so a save that touches anything but the key's own line shows up. Within one hunk
/// a table header added or removed takes its comments and blank lines with it (removing a PBX
/// removes the comment above its `[[pbx]]`), and is itself left out when keys of its table
/// changed with it (setting a key in a table the file did not have adds the header); blank
/// lines beside other changes are part of them.
pub fn changed_keys(before: &str, after: &str) -> Vec<String> {
    let (a, b) = (line_owners(before), line_owners(after));
    // Longest common subsequence of the raw lines (the files are small).
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i].0 == b[j].0 {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // The changed lines, in hunks of consecutive changes.
    let mut hunks: Vec<Vec<(Line, String)>> = vec![Vec::new()];
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i].0 == b[j].0 {
            if !hunks.last().is_some_and(Vec::is_empty) {
                hunks.push(Vec::new());
            }
            i += 1;
            j += 1;
            continue;
        }
        let (_, kind, owner) = if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            j += 1;
            &b[j - 1]
        } else {
            i += 1;
            &a[i - 1]
        };
        if let Some(h) = hunks.last_mut() {
            h.push((*kind, owner.clone()));
        }
    }
    let mut changed = Vec::new();
    for hunk in hunks.iter().filter(|h| !h.is_empty()) {
        let header = hunk
            .iter()
            .find(|(k, _)| *k == Line::Header)
            .map(|(_, o)| o);
        let substantive = hunk.iter().any(|(k, _)| *k != Line::Blank);
        for (kind, owner) in hunk {
            match (kind, header) {
                (Line::Blank | Line::Comment, Some(h)) => changed.push(h.clone()),
                (Line::Blank, None) if substantive => {}
                _ => changed.push(owner.clone()),
            }
        }
    }
    let mut keys: Vec<String> = changed
        .iter()
        .filter(|c| {
            // A header that came or went with keys of its own table.
            !changed.iter().any(|k| {
                k.len() > c.len() && k.starts_with(c.as_str()) && k[c.len()..].starts_with('.')
            })
        })
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
