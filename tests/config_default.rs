//! The shipped `config/cdrbox.toml` is the documentation: it must parse, say exactly the
//! built-in defaults, and mention every key the parser accepts (so docs cannot drift).

use cdrbox::config::{schema, AuthMethod, Config, DisplayDriver, UsbMode, DEFAULT_TOML};
use std::time::Duration;

/// The file with the example `[[pbx]]` block switched on (lines `#key = …` → `key = …`).
fn with_example_pbx() -> String {
    DEFAULT_TOML
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn default_file_says_the_builtin_defaults() {
    let from_file = Config::parse(DEFAULT_TOML, "config/cdrbox.toml").unwrap();
    let builtin = Config::parse("", "empty").unwrap();
    assert_eq!(from_file, builtin);
    assert_eq!(Config::default_config(), builtin);
}

#[test]
fn default_values() {
    let c = Config::default_config();
    assert_eq!(c.box_name, "cdrbox");
    assert!(c.pbx.is_empty());
    assert_eq!(c.storage.path.to_str(), Some("/var/lib/cdrbox"));
    assert_eq!(c.storage.flush_interval, Duration::from_secs(60));
    assert_eq!(c.storage.flush_records, 500);
    assert_eq!(c.storage.retention_days, 0);
    assert_eq!(c.storage.max_size_mb, 0);
    assert_eq!(c.storage.ring_kb, 32_768);
    assert_eq!(c.storage.memory_queue_records, 100_000);
    assert_eq!(c.storage.memory_queue_kb, 1_024);
    assert!(c.storage.keep_uncopied);
    assert_eq!(c.web.listen.to_string(), "0.0.0.0:80");
    assert_eq!(c.web.workers, 4);
    assert_eq!(c.display.driver, DisplayDriver::Ssd1306);
    assert_eq!(c.display.i2c_bus.to_str(), Some("/dev/i2c-1"));
    assert_eq!(c.display.address, 0x3C);
    assert_eq!(c.display.contrast, 128);
    assert_eq!(c.display.rotation, 0);
    assert_eq!(c.display.screensaver, Duration::from_secs(600));
    assert_eq!(c.display.page_interval, Duration::from_secs(5));
    assert_eq!(c.usb.mount_root.to_str(), Some("/media/cdrbox"));
    assert_eq!(c.usb.mounts_file.to_str(), Some("/proc/self/mounts"));
    assert_eq!(c.usb.mode, UsbMode::New);
    assert_eq!(c.usb.profile, "excel");
    assert_eq!(c.log.level, "info");
    // Zero PBXs is valid (added later from the web page) but worth a warning.
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].contains("no [[pbx]]"));
}

#[test]
fn example_pbx_block_parses_to_the_pbx_defaults() {
    let c = Config::parse(&with_example_pbx(), "example").unwrap();
    assert_eq!(c.pbx.len(), 1);
    let p = &c.pbx[0];
    assert_eq!(
        (p.name.as_str(), p.host.as_str(), p.port),
        ("office", "192.168.1.10", 5038)
    );
    assert_eq!(
        (p.username.as_str(), p.secret.0.as_str()),
        ("cdrbox", "change-me")
    );
    assert_eq!(p.auth, AuthMethod::Md5);
    assert_eq!(p.timezone, "UTC");
    assert_eq!(p.charset, "windows-1252");
    assert_eq!(p.trunk_patterns, [cdrbox::record::DEFAULT_TRUNK_PATTERN]);
    assert_eq!(p.ping_interval, Duration::from_secs(20));
    assert_eq!(p.ping_timeout, Duration::from_secs(10));
    assert_eq!(p.connect_timeout, Duration::from_secs(10));
    assert_eq!(p.login_timeout, Duration::from_secs(10));
    assert_eq!(p.reconnect_quick, Duration::from_secs(1));
    assert_eq!(p.reconnect_quick_retries, 5);
    assert!(p.enabled);
    // The example's values are the defaults: only the required keys matter.
    let minimal = "[[pbx]]\nname = \"office\"\nhost = \"192.168.1.10\"\nusername = \"cdrbox\"\nsecret = \"change-me\"\n";
    // The optional CDR database has an example but no default (issue 12).
    let mut p = p.clone();
    assert!(p.cdr_db.take().is_some(), "the example shows cdr_db");
    assert_eq!(Config::parse(minimal, "minimal").unwrap().pbx[0], p);
}

#[test]
fn every_key_is_documented_in_the_default_file() {
    let text = with_example_pbx();
    for (table, keys) in schema() {
        let header = if table == "pbx" {
            "[[pbx]]".to_owned()
        } else {
            format!("[{table}]")
        };
        assert!(
            text.lines().any(|l| l.trim() == header),
            "{header} missing from config/cdrbox.toml"
        );
        for key in keys {
            let documented = text
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} = ")));
            assert!(
                documented,
                "key {table}.{key} is not documented in config/cdrbox.toml"
            );
        }
    }
    // And every key line is preceded by a comment explaining it.
    let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start_matches('#');
        if t.contains(" = ") && !l.starts_with("# ") && i > 0 {
            assert!(
                lines[i - 1].starts_with("# "),
                "line {}: {l:?} has no comment above it",
                i + 1
            );
        }
    }
}

#[test]
fn secret_is_redacted_in_debug() {
    let c = Config::parse(&with_example_pbx(), "example").unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("change-me"), "{dbg}");
    assert!(dbg.contains("\"***\""));
}
