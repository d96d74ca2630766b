//! The settings round trip without a browser (issue 10 item 2): for every key of the key table,
//! a form change of that key alone changes the file in that key alone; sending back what the
//! form shows (file values and defaults) changes nothing; the file parses after each save.

use crate::settings_support;

use cdrbox::config::parse::normalize;
use cdrbox::config::{keys, Config};
use cdrbox::web::settings::{apply_changes, config_view};
use serde_json::{json, Map, Value};
use settings_support::{changed_keys, changed_value};

/// A hand-written file: comments, some keys given (one in hex, one at its default), most left
/// out, one PBX with a secret.
const BASE: &str = r#"# Office box
[box]
name = "office-box" # on the page

# The PBX in the server room.
[[pbx]]
name = "office"
host = "127.0.0.1"
port = 5038
username = "cdrbox"
secret = "s3cret"
timezone = "Europe/Moscow"

[storage]
path = "/var/lib/cdrbox"
flush_records = 0x1F4

[web]
listen = "127.0.0.1:8080"

[display]
driver = "none"
"#;

fn normalized(text: &str) -> toml::Table {
    let n = normalize(text);
    assert!(n.problems.is_empty(), "{:?}", n.problems);
    n.root
}

/// `None` for a key that is not set (an optional key without a default, e.g. `alarms.ca_file`).
fn value_at<'a>(root: &'a toml::Table, table: &str, key: &str) -> Option<&'a toml::Value> {
    match &root[table] {
        toml::Value::Array(list) => list[0].get(key),
        t => t.get(key),
    }
}

/// The change the form sends when one field is edited.
fn form_change(key: &cdrbox::config::spec::Key, value: Value) -> Value {
    if key.table == "pbx" {
        let mut entry = Map::new();
        entry.insert("_index".into(), json!(0));
        entry.insert(key.key.into(), value);
        // A new address or plain login needs the secret typed again (the same one here).
        if matches!(key.key, "host" | "auth") {
            entry.insert("secret".into(), json!("s3cret"));
        }
        json!({ "pbx": [entry] })
    } else {
        json!({ key.table: { key.key: value } })
    }
}

#[test]
fn every_field_changes_its_key_alone() {
    let before = normalized(BASE);
    for key in keys::KEYS {
        let path = key.path((key.table == "pbx").then_some(0));
        let unset = toml::Value::String(String::new());
        let new = changed_value(key, value_at(&before, key.table, key.key).unwrap_or(&unset));
        let out = apply_changes(BASE, &form_change(key, new.clone()))
            .unwrap_or_else(|e| panic!("{path} = {new}: {e}"));
        Config::parse(&out, "saved").unwrap_or_else(|e| panic!("{path} = {new}: {e}\n{out}"));
        assert_eq!(
            changed_keys(BASE, &out),
            std::slice::from_ref(&path),
            "{path} = {new}:\n{out}"
        );
        // And in meaning: every other key is what it was.
        let after = normalized(&out);
        for other in keys::KEYS {
            if (other.table, other.key) != (key.table, key.key) {
                assert_eq!(
                    value_at(&before, other.table, other.key),
                    value_at(&after, other.table, other.key),
                    "changing {path} changed {}.{}",
                    other.table,
                    other.key
                );
            }
        }
        assert_ne!(
            value_at(&before, key.table, key.key),
            value_at(&after, key.table, key.key),
            "{path}"
        );
        // Comments stay.
        for c in [
            "# Office box",
            "# on the page",
            "# The PBX in the server room.",
        ] {
            assert!(out.contains(c), "{path}: lost {c:?}");
        }
    }
}

/// The bug of issue 10: a key left at its default was shown empty/unticked and written back
/// (`enabled = false`, `trunk_patterns = []`). What the form shows, sent back whole, is no change.
#[test]
fn sending_back_what_the_form_shows_changes_nothing() {
    let (view, _) = config_view(BASE).unwrap();
    assert_eq!(apply_changes(BASE, &json!(view)).unwrap(), BASE);
    // Every field at its shown value: the file's own, else the default.
    let root = normalized(BASE);
    let mut all = Map::new();
    let mut pbx = Map::new();
    for key in keys::KEYS {
        if key.secret {
            continue;
        }
        // The form leaves a key that is not set out.
        let Some(shown) = value_at(&root, key.table, key.key) else {
            continue;
        };
        let v: Value = serde_json::to_value(shown).unwrap();
        if key.table == "pbx" {
            pbx.insert(key.key.into(), v);
        } else {
            all.entry(key.table)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .insert(key.key.into(), v);
        }
    }
    pbx.insert("_index".into(), json!(0));
    all.insert("pbx".into(), json!([pbx]));
    assert_eq!(apply_changes(BASE, &Value::Object(all)).unwrap(), BASE);
}

#[test]
fn a_removed_pbx_goes_with_its_lines_and_an_added_one_gets_only_what_was_typed() {
    let out = apply_changes(BASE, &json!({"pbx": []})).unwrap();
    assert!(
        !out.contains("office\"") && !out.contains("s3cret"),
        "{out}"
    );
    assert_eq!(
        changed_keys(BASE, &out),
        [
            "pbx[0].host",
            "pbx[0].name",
            "pbx[0].port",
            "pbx[0].secret",
            "pbx[0].timezone",
            "pbx[0].username"
        ]
    );
    let out = apply_changes(
        BASE,
        &json!({"pbx": [{"_index": 0}, {"_index": null, "name": "branch", "host": "10.0.0.9", "port": 5038, "username": "u", "enabled": true, "auth": "md5"}]}),
    )
    .unwrap();
    assert_eq!(
        changed_keys(BASE, &out),
        ["pbx[1].host", "pbx[1].name", "pbx[1].username"]
    );
    assert_eq!(Config::parse(&out, "t").unwrap().pbx.len(), 2);
}

/// The diff the tests above rely on sees what `diff` would: a lost blank line or comment, or a
/// reformatted value, is a change of its own.
#[test]
fn the_line_diff_sees_formatting_changes() {
    let cases = [
        (BASE.replacen("\n\n[web]", "\n[web]", 1), "a blank line"),
        (BASE.replace("# Office box\n", ""), "# Office box"),
        (BASE.replace("0x1F4", "500"), "storage.flush_records"),
        (
            BASE.replace("# The PBX in the server room.", "# The PBX."),
            "# The PBX.",
        ),
    ];
    for (after, want) in cases {
        assert!(
            changed_keys(BASE, &after).iter().any(|k| k == want),
            "{want}: {:?}",
            changed_keys(BASE, &after)
        );
    }
    assert!(changed_keys(BASE, BASE).is_empty());
}
