//! `cdrbox import` on the real binary: the real Asterisk 22 Master.csv imported over a journal
//! that already holds some of the same calls from AMI stores only the missing ones, the export
//! is then Master.csv row for row (each once), a repeated or overlapping import changes nothing,
//! stdin works, and malformed lines are reported by number without stopping the import.

use crate::box_process;
use crate::import_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use box_process::BoxConfig;
use cdrbox::clock::Clock;
use cdrbox::journal::{Ack, Journal};
use import_support::{ami_records, master_csv, moscow, sorted_lines, storage};

fn write_config(dir: &Path) -> std::path::PathBuf {
    BoxConfig::new(dir)
        .pbx(
            "pbx1",
            5038,
            ("cdrbox", "s3cret"),
            &["timezone = \"Europe/Moscow\"", "charset = \"windows-1251\""],
        )
        .storage(&[])
        .web(0, &[])
        .write()
}

fn cdrbox(args: &[&str], config: &Path, stdin: Option<&[u8]>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdrbox"));
    cmd.arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..]);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn import(config: &Path, file: &Path) -> String {
    let (ok, out, err) = cdrbox(
        &["import", "--pbx", "pbx1", file.to_str().unwrap()],
        config,
        None,
    );
    assert!(ok, "import failed: {err}");
    out
}

/// The asterisk profile byte for byte as `Master.csv`: the formula guard off, by explicit
/// choice (issue 11: it is on in every CSV profile by default).
fn export_asterisk(config: &Path) -> Vec<u8> {
    box_process::export(
        config,
        &[
            "--format",
            "csv",
            "--profile",
            "asterisk",
            "--no-formula-guard",
        ],
    )
}

/// How many exported records carry each origin (`cdrbox export --format ndjson`).
fn origins(config: &Path) -> std::collections::BTreeMap<String, usize> {
    let out = box_process::export(config, &["--format", "ndjson"]);
    let mut counts = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let origin = v["origin"].as_str().unwrap_or("(none)").to_owned();
        *counts.entry(origin).or_insert(0) += 1;
    }
    counts
}

/// The first `n` AMI records of the captures, stored as the AMI link would have.
fn prefill_from_ami(dir: &Path, n: usize) {
    let (journal, _) = Journal::open(&storage(dir), Clock::system()).unwrap();
    for r in ami_records(&moscow()).into_iter().take(n) {
        let ack = journal.record_durable(r, Duration::from_secs(30)).unwrap();
        assert!(matches!(ack, Ack::Durable { .. }));
    }
    journal.shutdown();
}

#[test]
fn master_csv_over_an_ami_journal_fills_exactly_the_missing_calls() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    // The link was up for the first 20 CDRs of the captures, then the box was off.
    prefill_from_ami(dir.path(), 20);
    let file = dir.path().join("Master.csv");
    std::fs::write(&file, master_csv()).unwrap();
    let out = import(&config, &file);
    assert!(
        out.contains("42 lines read: 22 new, 20 already present, 0 rejected"),
        "{out}"
    );
    let exported = export_asterisk(&config);
    assert_eq!(
        sorted_lines(&exported),
        sorted_lines(&master_csv()),
        "the export is Master.csv row for row, each once"
    );
    assert_eq!(
        origins(&config),
        [("ami".to_owned(), 20), ("master-csv".to_owned(), 22)].into(),
        "each stored record says where it came from (cdr.origin)"
    );
    // Again: nothing changes.
    let out = import(&config, &file);
    assert!(
        out.contains("42 lines read: 0 new, 42 already present, 0 rejected"),
        "{out}"
    );
    assert_eq!(export_asterisk(&config), exported);
    // From standard input, too.
    let (ok, out, err) = cdrbox(
        &["import", "--pbx", "pbx1", "-"],
        &config,
        Some(&master_csv()),
    );
    assert!(ok, "{err}");
    assert!(out.contains("0 new, 42 already present"), "{out}");
}

/// `line` (one cdr_csv line) without its `i`-th column (0-based): quotes respected, the other
/// fields' bytes kept as they are.
fn without_column(line: &[u8], i: usize) -> Vec<u8> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut fields: Vec<&[u8]> = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (at, b) in body.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                fields.push(&body[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    fields.push(&body[start..]);
    fields.remove(i);
    let mut out = fields.join(&b","[..]);
    out.push(b'\n');
    out
}

/// cdr_csv's default is `loguniqueid = no`: such a Master.csv has no UniqueID column, and its
/// lines must still be found again among the calls the AMI link stored (every other field
/// agrees), not stored a second time.
#[test]
fn a_master_csv_without_uniqueids_still_matches_its_ami_twins() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    prefill_from_ami(dir.path(), 20);
    // The golden file has loguniqueid and loguserfield on: column 17 is the uniqueid.
    let bare: Vec<u8> = master_csv()
        .split_inclusive(|b| *b == b'\n')
        .flat_map(|l| without_column(l, 16))
        .collect();
    assert!(!String::from_utf8_lossy(&bare).contains("1795331226.1"));
    let file = dir.path().join("Master-no-uniqueid.csv");
    std::fs::write(&file, &bare).unwrap();
    let out = import(&config, &file);
    assert!(
        out.contains("42 lines read: 22 new, 20 already present, 0 rejected"),
        "{out}"
    );
    assert_eq!(
        origins(&config),
        [("ami".to_owned(), 20), ("master-csv".to_owned(), 22)].into(),
        "each call once"
    );
    let out = import(&config, &file);
    assert!(out.contains("0 new, 42 already present"), "{out}");
    // The file with uniqueids afterwards finds every call too.
    let full = dir.path().join("Master.csv");
    std::fs::write(&full, master_csv()).unwrap();
    let out = import(&config, &full);
    assert!(out.contains("0 new, 42 already present"), "{out}");
}

#[test]
fn overlapping_files_and_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let all = master_csv();
    let lines: Vec<&[u8]> = all.split_inclusive(|b| *b == b'\n').collect();
    // File A: lines 1–30, with two broken lines in the middle. File B: lines 21–42.
    let mut a = Vec::new();
    for (i, l) in lines[..30].iter().enumerate() {
        a.extend_from_slice(l);
        if i == 9 {
            a.extend_from_slice(b"\"not\",\"a\",\"cdr\"\n");
            a.extend_from_slice(&lines[10][..30]);
            a.push(b'\n');
        }
    }
    let b: Vec<u8> = lines[20..].concat();
    let (fa, fb) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    std::fs::write(&fa, &a).unwrap();
    std::fs::write(&fb, &b).unwrap();
    let out = import(&config, &fa);
    assert!(
        out.contains("32 lines read: 30 new, 0 already present, 2 rejected"),
        "{out}"
    );
    assert!(
        out.contains("  line 11: 3 columns; cdr_csv writes 16 to 21"),
        "{out}"
    );
    assert!(
        out.contains("  line 12: a quoted field is not closed"),
        "{out}"
    );
    let out = import(&config, &fb);
    assert!(
        out.contains("22 lines read: 12 new, 10 already present, 0 rejected"),
        "{out}"
    );
    assert_eq!(sorted_lines(&export_asterisk(&config)), sorted_lines(&all));
}

#[test]
fn two_identical_lines_stay_two_and_a_repeat_adds_none() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let all = master_csv();
    let first = all.split_inclusive(|b| *b == b'\n').next().unwrap();
    let twice = [first, first].concat();
    let f = dir.path().join("twice.csv");
    std::fs::write(&f, &twice).unwrap();
    assert!(import(&config, &f).contains("2 new, 0 already present"));
    assert!(import(&config, &f).contains("0 new, 2 already present"));
    assert_eq!(
        sorted_lines(&export_asterisk(&config)),
        sorted_lines(&twice)
    );
}

#[test]
fn errors_name_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (ok, _, err) = cdrbox(&["import", "--pbx", "nope", "x.csv"], &config, None);
    assert!(!ok);
    assert!(
        err.contains("no [[pbx]] named \"nope\" in the config (configured: pbx1)"),
        "{err}"
    );
    let (ok, _, err) = cdrbox(
        &["import", "--pbx", "pbx1", "/no/such/Master.csv"],
        &config,
        None,
    );
    assert!(!ok);
    assert!(err.contains("opening /no/such/Master.csv"), "{err}");
    let (ok, _, err) = cdrbox(
        &[
            "import",
            "--pbx",
            "pbx1",
            "--columns",
            "uniqueid,bogus",
            "x.csv",
        ],
        &config,
        None,
    );
    assert!(!ok);
    assert!(err.contains("--columns"), "{err}");
}

/// Issue 12 item 4: an import marks the closed gaps it covers as filled, with the records it
/// added inside each, and leaves the others open; a repeat adds nothing and fills nothing new.
#[test]
fn an_import_fills_the_gaps_it_covers_and_leaves_the_rest_open() {
    use cdrbox::journal::{JournalPaths, JournalReader};
    use cdrbox::sink::{DownKind, LinkEvent, RecordSink};

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let ami = ami_records(&moscow());
    let end = |r: &cdrbox::record::CallRecord| r.end.utc.unwrap();
    let last_end = ami.iter().map(end).max().unwrap();
    // The link delivered the first 20 CDRs, then was down until the last call had ended;
    // a second outage after the file's last call is beyond what Master.csv can say.
    let down = end(&ami[19]) + 1;
    let (journal, _) = Journal::open(&storage(dir.path()), Clock::system()).unwrap();
    for r in ami.iter().take(20) {
        journal
            .record_durable(r.clone(), Duration::from_secs(30))
            .unwrap();
    }
    let link_down = LinkEvent::Down {
        reason: "connection reset by the PBX".into(),
        kind: DownKind::Transient,
    };
    let link_up = LinkEvent::Up {
        banner: None,
        pbx_restarted: false,
    };
    journal.link_event("pbx1", down, link_down.clone());
    journal.link_event("pbx1", last_end, link_up.clone());
    journal.link_event("pbx1", last_end + 600, link_down);
    journal.link_event("pbx1", last_end + 660, link_up);
    journal.flush().unwrap();
    assert_eq!(journal.status().gaps, 2, "two open gaps before the import");
    journal.shutdown();

    let file = dir.path().join("Master.csv");
    std::fs::write(&file, master_csv()).unwrap();
    let out = import(&config, &file);
    assert!(
        out.contains("42 lines read: 22 new, 20 already present, 0 rejected; 1 gap filled"),
        "{out}"
    );
    let paths = JournalPaths::from_config(&storage(dir.path()));
    let gaps = || {
        JournalReader::open(&paths)
            .unwrap()
            .gaps(None, None)
            .unwrap()
    };
    let g = gaps();
    assert_eq!(g.len(), 2, "{g:?}");
    // Every record the import stored ended inside the first gap.
    let inside = ami[20..]
        .iter()
        .filter(|r| (down..=last_end).contains(&end(r)))
        .count() as u64;
    assert_eq!(
        inside, 22,
        "the fixture's calls 21..42 all ended in the gap"
    );
    assert_eq!(
        (
            g[0].filled_from.as_deref(),
            g[0].filled_records,
            g[0].is_open()
        ),
        (Some("master-csv"), inside, false),
        "{g:?}"
    );
    assert!(g[1].is_open() && g[1].filled_from.is_none(), "{g:?}");
    // The status counts open gaps only.
    let (journal, _) = Journal::open(&storage(dir.path()), Clock::system()).unwrap();
    assert_eq!(journal.status().gaps, 1, "one open gap after the import");
    journal.shutdown();

    // A repeat stores nothing and adds nothing to the gap's count.
    let out = import(&config, &file);
    assert!(out.contains("0 new, 42 already present"), "{out}");
    let again = gaps();
    assert_eq!(again[0].filled_records, inside, "{again:?}");
    assert_eq!(
        again[0].filled_utc, g[0].filled_utc,
        "the first fill stays dated"
    );
    assert!(again[1].is_open());
}
