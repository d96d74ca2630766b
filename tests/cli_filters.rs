//! `cdrbox export` filters against `/api/calls` and `/export.csv` on the real binary (issue 13
//! item 7): the same spellings select the same records, and a misspelt value or a reversed range
//! is refused by both with the same sentence (golden text below), never an empty set.

use crate::cli_support;

use std::path::{Path, PathBuf};

use cli_support::box_process::{self, wait_listening};
use cli_support::{free_port, http, BoxConfig, RunningBox, PASS};

/// A box whose journal holds the real Asterisk 22 Master.csv, and its web port.
fn box_with_records(dir: &Path) -> (PathBuf, u16) {
    let port = free_port();
    let config = BoxConfig::imports_only(dir, port).no_display().write();
    let csv = format!(
        "{}/tests/fixtures/ami/meta/cdr-csv-Master.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, _, err) = box_process::cli(&["import", "--pbx", "pbx1", &csv], &config);
    assert!(ok, "import: {err}");
    (config, port)
}

/// `cdrbox export ARGS --config C`: (exit success, stdout, stderr).
fn export(config: &Path, args: &[&str]) -> (bool, String, String) {
    box_process::cli(&[&["export"], args].concat(), config)
}

/// Each bad value on both surfaces, and the exact line the CLI prints.
const REFUSED: &[(&[&str], &str, &str)] = &[
    (
        &["--disposition", "ANSWRED"],
        "disposition=ANSWRED",
        r#"cdrbox: --disposition: "ANSWRED" is not a disposition (did you mean ANSWERED?): use ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION, CANCEL or UNKNOWN (any case; NO_ANSWER works too)"#,
    ),
    (
        &["--from", "2026-12-01", "--to", "2026-11-01"],
        "from=2026-12-01&to=2026-11-01",
        r#"cdrbox: --to: "2026-11-01" is not later than --from "2026-12-01": no call could match (swap the two?)"#,
    ),
    (
        &["--direction", "sideways"],
        "direction=sideways",
        r#"cdrbox: --direction: "sideways" is not a direction: use inbound, outbound, internal or unknown (in and out work too)"#,
    ),
    (
        &["--min-duration", "10", "--max-duration", "5"],
        "minDuration=10&maxDuration=5",
        "cdrbox: --max-duration: 5 is less than --min-duration 10: no call could match",
    ),
    (
        &["--from", "yesterday"],
        "from=yesterday",
        r#"cdrbox: --from: "yesterday" is not a time: use 2026-11-22, "2026-11-22 10:00", 2026-11-22T10:00:00+03:00 or @<unix seconds>"#,
    ),
];

#[test]
fn cli_and_api_accept_the_same_spellings_and_refuse_with_the_same_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = box_with_records(dir.path());

    // Same spellings on the command line as in a query string, and they select records.
    let rows = |args: &[&str]| -> usize {
        let mut all = vec!["--format", "ndjson"];
        all.extend_from_slice(args);
        let (ok, out, err) = export(&config, &all);
        assert!(ok, "{args:?}: {err}");
        out.lines().count()
    };
    let answered = rows(&["--disposition", "ANSWERED"]);
    let all = rows(&[]);
    assert!(answered > 0 && answered < all, "{answered} of {all}");
    assert_eq!(rows(&["--disposition", "answered"]), answered);
    assert_eq!(
        rows(&["--disposition", "no_answer,busy"]),
        rows(&["--disposition", "NO ANSWER"]) + rows(&["--disposition", "BUSY"])
    );
    assert_eq!(
        rows(&["--direction", "in"]),
        rows(&["--direction", "inbound"])
    );

    for (args, _, line) in REFUSED {
        let (ok, out, err) = export(&config, args);
        assert!(!ok, "{args:?} must be refused, got:\n{out}");
        assert_eq!(err.trim_end(), *line, "{args:?}");
    }

    // The running box's API: the same sets, the same refusals.
    box_process::set_password(&config, PASS);
    let running = RunningBox {
        child: box_process::spawn_run(&config, "warn", std::process::Stdio::null()),
        config: config.clone(),
    };
    wait_listening(port);
    let (code, body) = http(port, "GET", "/api/calls?disposition=answered&limit=1", "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], answered, "{body}");
    for (args, query, line) in REFUSED {
        let cli = line.trim_start_matches("cdrbox: ");
        let (flag, sentence) = cli.split_once(": ").unwrap();
        for path in ["/api/calls", "/export.csv"] {
            let (code, body) = http(port, "GET", &format!("{path}?{query}"), "");
            assert_eq!(code, 400, "{path}?{query}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let param = v["param"].as_str().unwrap_or_default();
            assert_eq!(
                flag.trim_start_matches("--").replace('-', ""),
                param.to_ascii_lowercase(),
                "{args:?} vs {query}"
            );
            // The API names other fields its own way (`from`, `minDuration`).
            let api_sentence = sentence
                .replace("--from", "from")
                .replace("--min-duration", "minDuration");
            assert_eq!(
                v["error"].as_str().unwrap_or_default(),
                format!("{param}: {api_sentence}"),
                "{path}?{query}"
            );
        }
    }
    running.stop();
}
