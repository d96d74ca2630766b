//! The USB copy watermark (issue 10 item 6): ids are never reused, so retention deleting the
//! newest row cannot hide a later record below the watermark; `cdrbox usb-export` beside the
//! running box moves the watermark the same way the box's own copies do, and retention sees it.
//!
//! Drives the real binary for the copies (`cdrbox usb-export`, which finds the journal held by
//! this test's writer and copies read-only) and the journal API for the box.

use crate::box_process;
use crate::journal_common;

use std::path::Path;
use std::time::Duration;

use cdrbox::journal::testdata::{sample_record, BASE_UTC};
use cdrbox::journal::{Journal, JournalReader};
use cdrbox::sink::RecordSink;
use journal_common::{cfg, clock, paths, wait_for};

const DAY: i64 = 86_400;
const WAIT: Duration = Duration::from_secs(20);

fn write_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("cdrbox.toml");
    std::fs::write(
        &config,
        format!(
            "[box]\nname = \"office\"\n\n[[pbx]]\nname = \"p\"\nhost = \"127.0.0.1\"\nport = 9\n\
             username = \"u\"\nsecret = \"s\"\n\n[storage]\npath = \"{}\"\n\n\
             [web]\nlisten = \"127.0.0.1:0\"\n\n[display]\ndriver = \"none\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    config
}

/// `cdrbox usb-export --to STICK`; returns its stdout.
fn usb_export(config: &Path, stick: &Path) -> String {
    let stick = stick
        .to_str()
        .expect("the test's temporary directory is UTF-8");
    let (ok, out, err) = box_process::cli(&["usb-export", "--to", stick], config);
    assert!(ok, "usb-export failed: {err}");
    out
}

/// Every file's text under `dir`, concatenated.
fn stick_text(dir: &Path) -> String {
    let mut text = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return text;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            text.push_str(&stick_text(&p));
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            text.push_str(&t);
        }
    }
    text
}

#[test]
fn retention_deleting_the_newest_row_never_hides_the_next_record_from_the_stick() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path());
    let now = BASE_UTC + 100 * DAY;
    let (c, hand) = clock(now);
    let mut conf = cfg(&data);
    conf.retention_days = 30;
    conf.keep_uncopied = true;
    let (j, _) = Journal::open(&conf, c).unwrap();

    // A recent call, then an old one (an imported Master.csv line, say) as the newest row.
    let mut recent = sample_record(1);
    recent.start.utc = Some(now - DAY);
    let mut old = sample_record(2);
    old.start.utc = Some(now - 60 * DAY);
    j.record(recent.clone());
    j.record(old.clone());
    j.flush().unwrap();
    let newest = j.reader().unwrap().max_id().unwrap();

    // The first stick takes both; the watermark is the old row's id.
    let stick1 = dir.path().join("stick1");
    let said = usb_export(&config, &stick1);
    assert!(said.contains("copied 2 records"), "{said}");
    let on1 = stick_text(&stick1);
    assert!(on1.contains(&recent.unique_id) && on1.contains(&old.unique_id));
    let reader = JournalReader::open(&paths(&data)).unwrap();
    assert_eq!(reader.copy_watermark().unwrap(), newest);

    // Retention's next round (hourly) deletes the old row: copied, so allowed. It read the
    // watermark the CLI wrote.
    hand.advance(Duration::from_secs(3601));
    assert!(
        wait_for(WAIT, || j.counters().retention_deleted == 1),
        "{:?}",
        j.counters()
    );
    assert_eq!(reader.count(&Default::default()).unwrap(), 1);

    // A new call arrives. SQLite's own rowid choice would give it the deleted row's id — at
    // the watermark, so no stick would ever get it.
    let mut next = sample_record(3);
    next.start.utc = Some(now);
    j.record(next.clone());
    j.flush().unwrap();

    let stick2 = dir.path().join("stick2");
    let said = usb_export(&config, &stick2);
    assert!(
        said.contains("copied 1 records"),
        "the next stick gets the new call: {said}"
    );
    let on2 = stick_text(&stick2);
    assert!(
        on2.contains(&next.unique_id),
        "the next stick gets the new call"
    );
    assert!(
        !on2.contains(&recent.unique_id),
        "and nothing copied before"
    );
    assert!(reader.max_id().unwrap() > newest, "ids are never reused");

    // The id stays unused across a restart too (meta keeps the highest id given).
    j.shutdown();
    let (j, _) = Journal::open(&conf, clock(now).0).unwrap();
    let before = j.reader().unwrap().max_id().unwrap();
    j.record(sample_record(4));
    j.flush().unwrap();
    assert!(j.reader().unwrap().max_id().unwrap() > before);
    j.shutdown();
}

/// The watermark only moves forward, whoever writes it: the writer (the box's own copies) and
/// a reader (`cdrbox usb-export` beside the box) use the same statement.
#[test]
fn the_watermark_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let (j, _) = Journal::open(&cfg(dir.path()), c).unwrap();
    for n in 0..10 {
        j.record(sample_record(n));
    }
    j.flush().unwrap();
    let reader = JournalReader::open(&paths(dir.path())).unwrap();
    j.set_copy_watermark(7).unwrap();
    reader.set_copy_watermark(5).unwrap();
    assert_eq!(
        reader.copy_watermark().unwrap(),
        7,
        "a reader cannot move it back"
    );
    reader.set_copy_watermark(9).unwrap();
    j.set_copy_watermark(8).unwrap();
    assert_eq!(reader.copy_watermark().unwrap(), 9, "nor can the writer");
    j.shutdown();
}
