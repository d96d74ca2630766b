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
        Kind::List(_) => json!(["^SIP/other-trunk"]),
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
            ("log", "level") => if text == "debug" { "info" } else { "debug" }.to_owned(),
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

/// The key paths whose lines differ between two files (added, removed or changed).
pub fn changed_keys(before: &str, after: &str) -> Vec<String> {
    let (a, b) = (key_lines(before), key_lines(after));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
