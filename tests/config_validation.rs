//! Every config validation message, table-driven: each names the key path, the bad value and
//! what is allowed.

use cdrbox::config::{Config, ConfigError, ProblemKind};

const PBX: &str =
    "[[pbx]]\nname = \"office\"\nhost = \"10.0.0.1\"\nusername = \"cdrbox\"\nsecret = \"s3cret\"\n";

fn problems(text: &str) -> Vec<String> {
    match Config::parse(text, "test.toml") {
        Ok(c) => panic!("accepted:\n{text}\n→ {c:?}"),
        Err(e) => e.problems(),
    }
}

#[test]
fn value_messages() {
    let cases: Vec<(String, &str)> = vec![
        (format!("{PBX}port = 70000\n"), "pbx[0].port: 70000 is not a port number (1–65535)"),
        (format!("{PBX}port = 0\n"), "pbx[0].port: 0 is not a port number (1–65535)"),
        (
            format!("{PBX}{}timezone = \"Europe/Moskow\"\n", PBX.replace("office", "branch")),
            "pbx[1].timezone: \"Europe/Moskow\" is not an IANA time zone (did you mean \"Europe/Moscow\"?)",
        ),
        (
            format!("{PBX}timezone = \"Mars/Olympus\"\n"),
            "pbx[0].timezone: \"Mars/Olympus\" is not an IANA time zone (e.g. \"Europe/Moscow\", \"America/New_York\", \"UTC\")",
        ),
        (
            format!("{PBX}auth = \"sha1\"\n"),
            "pbx[0].auth: \"sha1\" is not allowed (allowed: \"md5\", \"plain\")",
        ),
        (
            format!("{PBX}charset = \"cp9999\"\n"),
            "pbx[0].charset: \"cp9999\" is not a usable charset label (e.g. \"windows-1251\", \"windows-1252\", \"koi8-r\", \"iso-8859-2\", \"utf-8\")",
        ),
        (
            format!("{PBX}charset = \"utf-16\"\n"),
            "pbx[0].charset: \"utf-16\" is not a usable charset label (e.g. \"windows-1251\", \"windows-1252\", \"koi8-r\", \"iso-8859-2\", \"utf-8\")",
        ),
        (format!("{PBX}ping_interval_ms = 10\n"), "pbx[0].ping_interval_ms: 10 is out of range (allowed 1000–3600000 ms)"),
        (format!("{PBX}ping_timeout_ms = 0\n"), "pbx[0].ping_timeout_ms: 0 is out of range (allowed 1000–600000 ms)"),
        (format!("{PBX}connect_timeout_ms = -1\n"), "pbx[0].connect_timeout_ms: -1 is out of range (allowed 100–600000 ms)"),
        (format!("{PBX}login_timeout_ms = 9999999\n"), "pbx[0].login_timeout_ms: 9999999 is out of range (allowed 100–600000 ms)"),
        (
            "[[pbx]]\nhost = \"10.0.0.1\"\nusername = \"u\"\n".to_owned(),
            "pbx[0].name: missing (a short name for this PBX, e.g. \"office\")",
        ),
        (
            "[[pbx]]\nname = \"a\"\nusername = \"u\"\n".to_owned(),
            "pbx[0].host: missing (the PBX's address, e.g. \"192.168.1.10\")",
        ),
        (
            "[[pbx]]\nname = \"a\"\nhost = \"h\"\n".to_owned(),
            "pbx[0].username: missing (the user of a [section] in the PBX's manager.conf)",
        ),
        (
            "[[pbx]]\nname = \" \"\nhost = \"h\"\nusername = \"u\"\n".to_owned(),
            "pbx[0].name: must not be empty (a short name for this PBX, e.g. \"office\")",
        ),
        (
            format!("{PBX}{}", PBX.replace("office", "Office")),
            "pbx[1].name: \"Office\" is already used by pbx[0] (names must be unique)",
        ),
        (
            PBX.replace("\"office\"", "\"a/b\""),
            "pbx[0].name: \"a/b\" is not allowed (1–64 characters, no \"/\", \"\\\" or control characters)",
        ),
        (PBX.replace("10.0.0.1", "pbx .lan"), "pbx[0].host: \"pbx .lan\" is not a host name or IP address"),
        (PBX.replace("s3cret", "a\\r\\nAction: Originate"), "pbx[0].secret: must not contain line breaks"),
        (
            format!("{PBX}trunk_patterns = [\"^ok\", \"(unclosed\"]\n"),
            "pbx[0].trunk_patterns[1]: \"(unclosed\" is not a valid regular expression",
        ),
        (
            "[box]\nname = \"\"\n".to_owned(),
            "box.name: \"\" is not allowed (1–64 characters, no \"/\", \"\\\" or control characters)",
        ),
        ("[storage]\npath = \"\"\n".to_owned(), "storage.path: must not be empty"),
        (
            "[storage]\nflush_interval_ms = 0\n".to_owned(),
            "storage.flush_interval_ms: 0 is out of range (allowed 100–3600000 ms)",
        ),
        ("[storage]\nflush_records = 0\n".to_owned(), "storage.flush_records: 0 is out of range (allowed 1–100000)"),
        (
            "[storage]\nretention_days = -1\n".to_owned(),
            "storage.retention_days: -1 is out of range (allowed 0–36500 days)",
        ),
        (
            "[storage]\nmax_size_mb = -5\n".to_owned(),
            "storage.max_size_mb: -5 is out of range (allowed 0–10000000 MB)",
        ),
        ("[storage]\nring_kb = 4\n".to_owned(), "storage.ring_kb: 4 is out of range (allowed 16–1048576 KiB)"),
        (
            "[storage]\nmemory_queue_records = 10\n".to_owned(),
            "storage.memory_queue_records: 10 is out of range (allowed 1000–10000000)",
        ),
        (
            "[web]\nlisten = \"0.0.0.0\"\n".to_owned(),
            "web.listen: \"0.0.0.0\" is not an address:port (e.g. \"0.0.0.0:80\", \"127.0.0.1:8080\", \"[::]:80\")",
        ),
        ("[web]\nworkers = 0\n".to_owned(), "web.workers: 0 is out of range (allowed 1–64)"),
        (
            "[display]\ndriver = \"ssd1036\"\n".to_owned(),
            "display.driver: \"ssd1036\" is not allowed (allowed: \"ssd1306\", \"none\"; did you mean \"ssd1306\"?)",
        ),
        (
            "[display]\ndriver = \"sh1106\"\n".to_owned(),
            "display.driver: \"sh1106\" is not allowed (allowed: \"ssd1306\", \"none\")",
        ),
        (
            "[display]\naddress = \"0x3E\"\n".to_owned(),
            "display.address: 0x3E (62) is not an SSD1306 address (allowed: 0x3C, 0x3D)",
        ),
        (
            "[display]\naddress = \"zz\"\n".to_owned(),
            "display.address: \"zz\" is not an I2C address (write 0x3C or 60)",
        ),
        ("[display]\ncontrast = 256\n".to_owned(), "display.contrast: 256 is out of range (allowed 0–255)"),
        ("[display]\nrotation = 90\n".to_owned(), "display.rotation: 90 is not allowed (allowed: 0, 180)"),
        (
            "[display]\nscreensaver_minutes = 2000\n".to_owned(),
            "display.screensaver_minutes: 2000 is out of range (allowed 0–1440 minutes)",
        ),
        ("[display]\npage_seconds = 0\n".to_owned(), "display.page_seconds: 0 is out of range (allowed 1–3600 s)"),
        ("[usb]\nmode = \"some\"\n".to_owned(), "usb.mode: \"some\" is not allowed (allowed: \"new\", \"all\")"),
        (
            "[usb]\nprofile = \"exel\"\n".to_owned(),
            "usb.profile: \"exel\" is not a CSV profile (allowed: \"standard\", \"excel\", \"pbxlogger\", \"asterisk\"; did you mean \"excel\"?)",
        ),
        ("[usb]\nmount_root = \"\"\n".to_owned(), "usb.mount_root: must not be empty"),
        (
            "[alarms]\nbusiness_hours = \"Mon-Fri 18:00-09:00\"\n".to_owned(),
            "alarms.business_hours: business hours \"Mon-Fri 18:00-09:00\": ends before it starts",
        ),
        (
            "[alarms]\nbusiness_hours = \"Mo-Fr 09:00-18:00\"\n".to_owned(),
            "alarms.business_hours: business hours \"Mo-Fr 09:00-18:00\": \"Mo-Fr\" is not a day",
        ),
        (
            "[alarms]\nstorage_warning_percent = 90\nstorage_critical_percent = 90\n".to_owned(),
            "alarms.storage_critical_percent: 90 is not above storage_warning_percent (90)",
        ),
        (
            "[log]\nlevel = \"verbose\"\n".to_owned(),
            "log.level: \"verbose\" is not a log filter (allowed: error, warn, info, debug, trace, off, or target=level, comma-separated)",
        ),
    ];
    for (text, want) in cases {
        let got = problems(&text);
        assert_eq!(got.len(), 1, "{text}\n→ {got:?}");
        assert!(
            got[0].starts_with(want),
            "{text}\n got: {}\nwant: {want}",
            got[0]
        );
    }
}

#[test]
fn unknown_key_messages() {
    let cases = [
        (
            "[storage]\nflush_interval = 100\n",
            "unknown key \"flush_interval\" in [storage] (did you mean \"flush_interval_ms\"?) at line 2",
        ),
        ("[stoarge]\npath = \"/x\"\n", "unknown table [stoarge] (did you mean [storage]?) at line 1"),
        ("[web]\nlisten = \"0.0.0.0:80\"\nzzz_qqq = 1\n", "unknown key \"zzz_qqq\" in [web] at line 3"),
        (
            "name = \"x\"\n",
            "unknown key \"name\" at the top level (settings belong in a table such as [box] or [storage]) at line 1",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(problems(text), [want], "{text}");
    }
    // Issue 13 item 7: the rest of the file is still checked (before, an unknown key hid
    // every other problem), but a typo's intended key is not also reported as missing.
    assert_eq!(
        problems("[[pbx]]\nname = \"a\"\nhots = \"h\"\n"),
        [
            "unknown key \"hots\" in pbx[0] (did you mean \"host\"?) at line 3",
            "pbx[0].username: missing (the user of a [section] in the PBX's manager.conf)"
        ]
    );
}

#[test]
fn several_problems_are_all_reported() {
    let text = "[web]\nworkers = 0\n[display]\nrotation = 45\n";
    let err = Config::parse(text, "cdrbox.toml").unwrap_err();
    assert_eq!(err.problems().len(), 2);
    let msg = err.to_string();
    assert!(msg.starts_with("cdrbox.toml: 2 problems:"), "{msg}");
    assert!(
        msg.contains("web.workers") && msg.contains("display.rotation"),
        "{msg}"
    );
    match err {
        ConfigError::Invalid { problems, .. } => {
            assert_eq!(problems[0].path, "web.workers");
            assert_eq!(problems[1].path, "display.rotation");
        }
        other => panic!("{other:?}"),
    }
}

/// Issue 13 item 7: a syntax error no longer hides the rest. Syntax errors, type errors and
/// bad values are all listed problems, each with its line (and column for syntax).
#[test]
fn syntax_and_type_errors_keep_line_and_column() {
    let err = Config::parse(
        "[storage]\npath = \"/x\"\nflush_records = = 3\n",
        "bad.toml",
    )
    .unwrap_err();
    match &err {
        ConfigError::Invalid { origin, problems } => {
            assert_eq!(origin, "bad.toml");
            assert_eq!(problems.len(), 1, "{problems:?}");
            let p = &problems[0];
            assert_eq!(p.kind, ProblemKind::Syntax);
            assert_eq!(p.line, Some(3));
            assert!(p.column.is_some());
            assert_eq!(p.path, "storage.flush_records");
            assert!(p.to_string().contains("line 3"), "{p}");
        }
        other => panic!("{other:?}"),
    }
    let err = Config::parse("[storage]\nflush_records = \"many\"\n", "bad.toml").unwrap_err();
    let problems = err.problems();
    assert_eq!(
        problems,
        ["storage.flush_records: expected a whole number (1–100000), not text at line 2"]
    );
    // [pbx] instead of [[pbx]] is refused, not silently ignored.
    assert_eq!(
        problems_of("[pbx]\nname = \"a\"\n"),
        ["pbx: write [[pbx]] (two brackets): each entry is one [[pbx]] table at line 1"]
    );
    // Several kinds of mistake in one file: every one is reported, in file order.
    let got = problems_of(
        "[web]\nworkers = \"4\"\nlisten = 0.0.0.0:80\n[display]\nrotation = 90\n[stoarge]\npath = \"/x\"\n",
    );
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(
        got[0].starts_with("web.workers: expected a whole number"),
        "{got:#?}"
    );
    assert!(
        got[1].starts_with("invalid TOML") && got[1].contains("line 3"),
        "{got:#?}"
    );
    assert!(
        got[2].starts_with("display.rotation: 90 is not allowed"),
        "{got:#?}"
    );
    assert!(got[3].starts_with("unknown table [stoarge]"), "{got:#?}");
}

fn problems_of(text: &str) -> Vec<String> {
    Config::parse(text, "t").unwrap_err().problems()
}

#[test]
fn accepted_variants() {
    let c = Config::parse("[display]\naddress = 61\n", "t").unwrap();
    assert_eq!(c.display.address, 0x3D);
    let c = Config::parse(
        "[display]\naddress = \"0x3d\"\ndriver = \"NONE\"\nrotation = 180\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.display.address, 0x3D);
    assert_eq!(c.display.driver, cdrbox::config::DisplayDriver::None);
    assert_eq!(c.display.rotation, 180);
    // Business hours are saved in one spelling, whatever the case and spacing.
    let c = Config::parse(
        "[alarms]\nbusiness_hours = \" sat 10:00-13:00 ,mon-fri 09:00-18:00\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        c.alarms.business_hours,
        "Mon-Fri 09:00-18:00, Sat 10:00-13:00"
    );
    let c = Config::parse("[log]\nlevel = \"warn,cdrbox::ami=trace\"\n", "t").unwrap();
    assert_eq!(c.log.level, "warn,cdrbox::ami=trace");
    let c = Config::parse(
        &format!(
            "{PBX}auth = \"plain\"\ncharset = \"cp1251\"\ntrunk_patterns = []\nenabled = false\n"
        ),
        "t",
    )
    .unwrap();
    assert_eq!(c.pbx[0].auth, cdrbox::config::AuthMethod::Plain);
    assert!(c.pbx[0].trunk_patterns.is_empty());
    assert!(!c.pbx[0].enabled);
    let c = Config::parse("[web]\nlisten = \"[::]:8080\"\n", "t").unwrap();
    assert_eq!(c.web.listen.port(), 8080);
}

#[test]
fn warnings() {
    let c = Config::parse(&format!("{PBX}timezone = \"Europe/Moscow\"\n"), "t").unwrap();
    assert_eq!(c.warnings(), Vec::<String>::new());
    let c = Config::parse(
        "[[pbx]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\nauth = \"plain\"\nping_interval_ms = 5000\nping_timeout_ms = 5000\nenabled = false\n",
        "t",
    )
    .unwrap();
    let w = c.warnings();
    assert_eq!(w.len(), 5, "{w:#?}");
    assert!(w[0].contains("enabled = false"));
    assert!(w.iter().any(|s| s.starts_with("pbx[0].secret is empty")));
    assert!(w.iter().any(|s| s.contains("clear text")));
    assert!(w.iter().any(|s| s.contains("ping_timeout_ms (5000)")));
    assert!(w.iter().any(|s| s.contains("timezone is \"UTC\"")));
}

#[test]
fn load_reads_files_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdrbox.toml");
    std::fs::write(&path, format!("{PBX}port = 99999\n")).unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: pbx[0].port: 99999", path.display())),
        "{err}"
    );
    let missing = dir.path().join("nope.toml");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("nope.toml"));
    std::fs::write(&path, PBX).unwrap();
    assert_eq!(Config::load(&path).unwrap().pbx[0].name, "office");
}
