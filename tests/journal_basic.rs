//! Journal integration tests: persistence, exactly-once, ring replay after a crash, torn ring
//! entries, a damaged database, migrations, the gap ledger, retention, the reader's ring view.

use crate::journal_common;

use std::collections::HashSet;
use std::time::Duration;

use cdrbox::filter::{Filter, Page, Sort};
use cdrbox::journal::testdata::{sample_record, BASE_UTC};
use cdrbox::journal::{ring, Ack, Integrity, Journal, JournalReader};
use cdrbox::sink::{DownKind, LinkEvent, RecordSink};
use journal_common::{cfg, clock, paths, stays, stored, wait_for};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn records_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let (j, report) = Journal::open(&cfg(dir.path()), c.clone()).unwrap();
    assert!(report.created);
    assert_eq!(report.migrated_from, Some(0));
    assert!(j.ring_report(WAIT).unwrap().ring_created);
    let ring_len = std::fs::metadata(&report.paths.ring).unwrap().len();
    assert_eq!(ring_len, 1024 * 1024, "ring pre-sized to ring_kb");
    let live = j.subscribe();
    for n in 0..50 {
        j.record(sample_record(n));
    }
    j.flush().unwrap();
    assert_eq!(j.status().committed, 50);
    assert_eq!(j.status().pending, 0);
    let got: Vec<u64> = live
        .try_iter()
        .map(|r| r.sequence.unwrap() as u64)
        .collect();
    assert_eq!(
        got,
        (0..50).collect::<Vec<_>>(),
        "subscribers see every new record in order"
    );
    j.shutdown();

    let (j, report) = Journal::open(&cfg(dir.path()), c).unwrap();
    assert!(!report.created);
    assert_eq!(report.committed, 50);
    let ring = j.ring_report(WAIT).unwrap();
    assert_eq!(
        ring.replay_found, 0,
        "clean shutdown leaves nothing to replay"
    );
    assert!(!ring.ring_created, "the ring is kept");
    let back = stored(dir.path());
    let want: Vec<_> = (0..50).map(sample_record).collect();
    assert_eq!(back, want, "every field comes back exactly");
    assert_eq!(
        std::fs::metadata(&report.paths.ring).unwrap().len(),
        ring_len
    );
    drop(j);
}

#[test]
fn same_identity_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let (j, _) = Journal::open(&cfg(dir.path()), c.clone()).unwrap();
    let a = j.record_durable(sample_record(1), WAIT).unwrap();
    assert!(matches!(a, Ack::Durable { .. }));
    assert_eq!(
        j.record_durable(sample_record(1), WAIT).unwrap(),
        Ack::Duplicate,
        "pending dup"
    );
    j.flush().unwrap();
    assert_eq!(
        j.record_durable(sample_record(1), WAIT).unwrap(),
        Ack::Duplicate,
        "stored dup"
    );
    let mut changed = sample_record(1);
    changed.caller_id = "someone else".into();
    assert_eq!(
        j.record_durable(changed, WAIT).unwrap(),
        Ack::Duplicate,
        "identity decides, not the other fields"
    );
    j.record(sample_record(2));
    j.record(sample_record(2));
    j.flush().unwrap();
    assert_eq!(j.counters().duplicates, 4);
    j.shutdown();
    assert_eq!(stored(dir.path()).len(), 2);
}

#[test]
fn ring_replay_after_a_crash_stores_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.flush_interval = Duration::from_secs(3600);
    conf.flush_records = 10_000;
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    for n in 0..5 {
        j.record(sample_record(n));
    }
    j.flush().unwrap();
    let mut seqs = Vec::new();
    for n in 5..25 {
        match j.record_durable(sample_record(n), WAIT).unwrap() {
            Ack::Durable { seq } => seqs.push(seq),
            Ack::Duplicate => panic!("not a duplicate"),
        }
    }
    assert_eq!(j.durable_seq(), *seqs.last().unwrap());
    assert_eq!(
        j.pending_records().len(),
        20,
        "received, durable, not yet committed"
    );
    assert_eq!(j.status().pending, 20);
    j.crash();
    assert!(j.alarms().iter().any(|a| a.code == "JOURNAL STOPPED"));
    drop(j);
    // Nothing after the flush reached SQLite.
    assert_eq!(stored(dir.path()).len(), 5);

    // The replay runs after open returns (start-up never waits for it, issue 10 item 4): the
    // ring thread finds the entries, the commit thread stores them with its first commit.
    let (j, report) = Journal::open(&conf, c.clone()).unwrap();
    assert_eq!(report.committed, 5);
    assert_eq!(j.ring_report(WAIT).unwrap().replay_found, 20);
    j.flush().unwrap();
    assert_eq!(j.status().committed, 25);
    assert_eq!(j.counters().inserted, 20);
    // New records get seqs above everything in the ring.
    match j.record_durable(sample_record(100), WAIT).unwrap() {
        Ack::Durable { seq } => assert!(seq > *seqs.last().unwrap()),
        Ack::Duplicate => panic!(),
    }
    j.crash();
    drop(j);
    // A second replay finds the old entries committed and only the new one missing.
    let (j, _) = Journal::open(&conf, c).unwrap();
    assert_eq!(j.ring_report(WAIT).unwrap().replay_found, 1);
    j.flush().unwrap();
    assert_eq!(j.counters().inserted, 1);
    j.shutdown();
    let back = stored(dir.path());
    assert_eq!(back.len(), 26);
    let ids: HashSet<_> = back.iter().map(|r| r.identity).collect();
    assert_eq!(ids.len(), 26);
}

#[test]
fn torn_and_corrupt_ring_entries_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.flush_interval = Duration::from_secs(3600);
    conf.flush_records = 10_000;
    let (j, report) = Journal::open(&conf, c.clone()).unwrap();
    let ring_path = report.paths.ring.clone();
    for n in 0..10 {
        j.record_durable(sample_record(n), WAIT).unwrap();
    }
    j.crash();
    drop(j);
    // One record per batch, so record n sits at block n.
    let scan = ring::scan_file(&ring_path).unwrap();
    assert_eq!(scan.entries.len(), 10);
    for (i, e) in scan.entries.iter().enumerate() {
        assert_eq!(e.offset, (i * ring::BLOCK) as u64);
    }
    let mut data = std::fs::read(&ring_path).unwrap();
    data[3 * ring::BLOCK + 300] ^= 0x5A; // a flipped bit in record 3
    let torn = 6 * ring::BLOCK + 700;
    data[torn..7 * ring::BLOCK].fill(0); // record 6 half written
    std::fs::write(&ring_path, &data).unwrap();

    let (j, _) = Journal::open(&conf, c).unwrap();
    let ring = j.ring_report(WAIT).unwrap();
    assert_eq!(ring.ring_corrupt, 2);
    assert_eq!(ring.replay_found, 8);
    j.flush().unwrap();
    assert_eq!(j.counters().inserted, 8);
    j.shutdown();
    let seqs = journal_common::stored_sequences(dir.path());
    assert_eq!(seqs, vec![0, 1, 2, 4, 5, 7, 8, 9]);
}

/// A damaged file is set aside and a fresh one refilled from the ring — found while opening
/// when open's own reads hit the damage (a broken header), or by the background quick_check
/// after recording has started (a broken page deeper in). Either way nothing the ring holds
/// is lost, no crash loop follows, and records arriving while it happens are kept.
#[test]
fn damaged_database_is_set_aside_and_refilled_from_the_ring() {
    for damage in ["header", "page"] {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = clock(BASE_UTC);
        let conf = cfg(dir.path());
        let (j, report) = Journal::open(&conf, c.clone()).unwrap();
        let db = report.paths.db.clone();
        for n in 0..30 {
            j.record_durable(sample_record(n), WAIT).unwrap();
        }
        j.shutdown();
        let mut data = std::fs::read(&db).unwrap();
        assert!(data.len() > 3 * 4096, "{damage}: the db has several pages");
        match damage {
            "header" => data[..100].fill(0xEE),
            // The cdr table's pages, which open's own reads (meta, newest row) do not need.
            _ => damage_cdr_pages(&db, &mut data),
        }
        std::fs::write(&db, &data).unwrap();

        let (j, report) = Journal::open(&conf, c.clone()).unwrap();
        // Recording goes on whatever the check finds.
        for n in 100..105 {
            assert!(matches!(
                j.record_durable(sample_record(n), WAIT).unwrap(),
                Ack::Durable { .. }
            ));
        }
        let aside = match damage {
            "header" => report.damaged_set_aside.clone().expect("found at open"),
            _ => {
                assert!(
                    report.damaged_set_aside.is_none(),
                    "open does not read it all"
                );
                assert!(
                    wait_for(WAIT, || matches!(j.integrity(), Integrity::Replaced { .. })),
                    "{:?}",
                    j.integrity()
                );
                match j.integrity() {
                    Integrity::Replaced { path, .. } => path,
                    other => panic!("{other:?}"),
                }
            }
        };
        assert!(aside.exists(), "{damage}: damaged file kept for inspection");
        assert!(aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("journal.sqlite.damaged-"));
        assert!(j.alarms().iter().any(|a| a.code == "DB REPLACED"));
        j.flush().unwrap();
        j.shutdown();
        let seqs: HashSet<i64> = journal_common::stored_sequences(dir.path())
            .into_iter()
            .collect();
        let want: HashSet<i64> = (0..30).chain(100..105).collect();
        assert_eq!(seqs, want, "{damage}: the ring still held every record");
        // And the next start is normal: no crash loop, nothing set aside again.
        let (j, report) = Journal::open(&conf, c.clone()).unwrap();
        assert!(report.damaged_set_aside.is_none());
        assert_eq!(report.committed, 35);
        assert!(
            wait_for(WAIT, || j.integrity() == Integrity::Fine),
            "{:?}",
            j.integrity()
        );
        drop(j);
    }
}

/// Overwrites one leaf of the `cdr` table (found from sqlite_schema's rootpage) so that open
/// succeeds and quick_check fails.
fn damage_cdr_pages(db: &std::path::Path, data: &mut [u8]) {
    let c = rusqlite::Connection::open(db).unwrap();
    let root: i64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'cdr'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(c);
    // 30 records of ~1 KB fill several leaves under an interior root: damage the leftmost
    // leaf (the oldest rows). Open reads only meta, gaps and the newest row (rightmost leaf).
    let page = 4096usize;
    let root_at = (root as usize - 1) * page;
    assert_eq!(data[root_at], 5, "the cdr root is an interior table page");
    let first_cell = u16::from_be_bytes([data[root_at + 12], data[root_at + 13]]) as usize;
    let at = root_at + first_cell;
    let left_child = u32::from_be_bytes(data[at..at + 4].try_into().unwrap());
    let leaf_at = (left_child as usize - 1) * page;
    data[leaf_at + 8..leaf_at + page].fill(0xEE);
}

#[test]
fn migrates_an_empty_version_0_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calls.sqlite3");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE x(y); DROP TABLE x;").unwrap();
        let v: i32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
    }
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.path = db.clone();
    let (j, report) = Journal::open(&conf, c).unwrap();
    assert_eq!(report.migrated_from, Some(0));
    assert_eq!(report.paths.ring, dir.path().join("calls.sqlite3.ring"));
    j.record(sample_record(1));
    j.shutdown();
    let c = rusqlite::Connection::open(&db).unwrap();
    let v: i32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        v, 4,
        "migrated to the current schema (v4: the calls summary cdr_call)"
    );
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let indexes: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'cdr'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        indexes, 3,
        "the identity UNIQUE key, start_utc and the (partial) match_key index, nothing more"
    );
    let n: i64 = c
        .query_row("SELECT count(*) FROM cdr", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn gap_ledger_records_link_down_intervals_and_box_off_time() {
    let dir = tempfile::tempdir().unwrap();
    let (c, now) = clock(BASE_UTC);
    let conf = cfg(dir.path());
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    let down = |reason: &str| LinkEvent::Down {
        reason: reason.into(),
        kind: DownKind::Transient,
    };
    let up = LinkEvent::Up {
        banner: None,
        pbx_restarted: false,
    };
    j.link_event("main", BASE_UTC, LinkEvent::Connecting { attempt: 1 });
    j.link_event("main", BASE_UTC + 1, up.clone());
    j.link_event("main", BASE_UTC + 100, down("connection reset by the PBX"));
    j.link_event("main", BASE_UTC + 110, LinkEvent::Connecting { attempt: 2 });
    j.link_event("main", BASE_UTC + 160, up.clone());
    j.link_event("main", BASE_UTC + 200, down("PBX shut down"));
    j.flush().unwrap();
    assert_eq!(j.status().gaps, 2);
    let r = JournalReader::open(&paths(dir.path())).unwrap();
    let gaps = r.gaps(None, None).unwrap();
    assert_eq!(gaps.len(), 2);
    assert_eq!(
        (gaps[0].down_utc, gaps[0].up_utc, gaps[0].reason.as_str()),
        (
            BASE_UTC + 100,
            Some(BASE_UTC + 160),
            "connection reset by the PBX"
        )
    );
    assert_eq!((gaps[1].down_utc, gaps[1].up_utc), (BASE_UTC + 200, None));
    assert_eq!(
        r.gaps(Some(BASE_UTC + 150), Some(BASE_UTC + 190))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(r.gaps(None, Some(BASE_UTC + 100)).unwrap().len(), 0);
    now.set_unix(BASE_UTC + 300);
    j.shutdown(); // last_alive = +300

    // Next run: "main" is still in its open gap; "branch" had no gap, so the box-off time is one.
    now.set_unix(BASE_UTC + 1000);
    let (j, _) = Journal::open(&conf, c).unwrap();
    j.link_event("main", BASE_UTC + 1005, up.clone());
    j.link_event("branch", BASE_UTC + 1007, up.clone());
    j.flush().unwrap();
    let gaps = r.gaps(None, None).unwrap();
    assert_eq!(gaps.len(), 3, "{gaps:?}");
    assert_eq!(
        (gaps[1].down_utc, gaps[1].up_utc),
        (BASE_UTC + 200, Some(BASE_UTC + 1005))
    );
    assert_eq!(gaps[1].pbx, "main");
    assert_eq!(gaps[2].pbx, "branch");
    assert_eq!(
        (gaps[2].down_utc, gaps[2].up_utc),
        (BASE_UTC + 300, Some(BASE_UTC + 1007))
    );
    assert_eq!(gaps[2].reason, "cdrbox was not running");
    drop(j);
}

#[test]
fn reader_with_ring_sees_records_a_dead_writer_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.flush_interval = Duration::from_secs(3600);
    conf.flush_records = 10_000;
    let (j, _) = Journal::open(&conf, c).unwrap();
    for n in 0..5 {
        j.record(sample_record(n));
    }
    j.flush().unwrap();
    for n in 5..12 {
        j.record_durable(sample_record(n), WAIT).unwrap();
    }
    assert_eq!(
        j.record_durable(sample_record(3), WAIT).unwrap(),
        Ack::Duplicate
    );
    j.crash();
    drop(j);
    let p = paths(dir.path());
    let plain = JournalReader::open(&p).unwrap();
    assert_eq!(plain.count(&Filter::default()).unwrap(), 5);
    let with_ring = JournalReader::open_with_ring(&p).unwrap();
    assert_eq!(with_ring.ring_records(), 7);
    assert_eq!(with_ring.count(&Filter::default()).unwrap(), 12);
    let page = with_ring
        .query(
            &Filter::default(),
            Sort::StartDesc,
            Page {
                limit: 3,
                offset: 0,
            },
        )
        .unwrap();
    let seqs: Vec<i64> = page.iter().map(|r| r.sequence.unwrap()).collect();
    assert_eq!(seqs, vec![11, 10, 9]);
    let mut ids = Vec::new();
    with_ring
        .for_each_after_id::<cdrbox::journal::JournalError>(0, &Filter::default(), |id, _| {
            ids.push(id);
            Ok(())
        })
        .unwrap();
    assert_eq!(ids, (1..=12).collect::<Vec<i64>>());
}

#[test]
fn retention_by_age_respects_the_copy_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400;
    let (c, now) = clock(BASE_UTC + 10 * day);
    let conf = cfg(dir.path());
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    // 100 records, 10 per day over the 10 days before "now", in arrival = time order.
    for n in 0..100u64 {
        let mut r = sample_record(n);
        r.start.utc = Some(BASE_UTC + n as i64 * day / 10);
        j.record(r);
    }
    j.flush().unwrap();
    let max_id = j.reader().unwrap().max_id().unwrap();
    assert_eq!(max_id, 100);
    j.set_copy_watermark(20).unwrap();
    j.shutdown();
    assert_eq!(
        JournalReader::open(&paths(dir.path()))
            .unwrap()
            .copy_watermark()
            .unwrap(),
        20
    );

    // keep_uncopied: only rows ≤ 20 may go, even though 50 are older than 5 days.
    let mut conf = cfg(dir.path());
    conf.retention_days = 5;
    conf.keep_uncopied = true;
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    let count = || {
        JournalReader::open(&paths(dir.path()))
            .unwrap()
            .count(&Filter::default())
            .unwrap()
    };
    assert!(wait_for(WAIT, || count() == 80), "count {}", count());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), 80, "nothing uncopied deleted");
    assert_eq!(j.status().committed, 80);
    j.shutdown();

    // Without the guard, everything older than 5 days goes, nothing newer.
    conf.keep_uncopied = false;
    now.set_unix(BASE_UTC + 10 * day);
    let (j, _) = Journal::open(&conf, c).unwrap();
    assert!(wait_for(WAIT, || count() == 50), "count {}", count());
    let oldest = JournalReader::open(&paths(dir.path()))
        .unwrap()
        .query(
            &Filter::default(),
            Sort::StartAsc,
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .unwrap();
    assert_eq!(oldest[0].start.utc, Some(BASE_UTC + 5 * day));
    drop(j);
}

#[test]
fn retention_by_age_respects_the_uplink_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400;
    let (c, _now) = clock(BASE_UTC + 10 * day);
    let (j, _) = Journal::open(&cfg(dir.path()), c.clone()).unwrap();
    // 100 records, 10 per day over the 10 days before "now".
    for n in 0..100u64 {
        let mut r = sample_record(n);
        r.start.utc = Some(BASE_UTC + n as i64 * day / 10);
        j.record(r);
    }
    j.flush().unwrap();
    j.shutdown();
    let reader = || JournalReader::open(&paths(dir.path())).unwrap();
    // The uplink confirmed ids 1..=30; the USB copy took 1..=40.
    reader().set_uplink_watermark(30).unwrap();
    reader().set_copy_watermark(40).unwrap();
    let count = || reader().count(&Filter::default()).unwrap();

    // keep_unsent alone: 50 are older than 5 days, only the 30 sent ones may go.
    let mut conf = cfg(dir.path());
    conf.retention_days = 5;
    conf.keep_unsent = true;
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    assert!(wait_for(WAIT, || count() == 70), "count {}", count());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), 70, "nothing unsent deleted");
    j.shutdown();

    // Both guards: the lower watermark (the uplink's) holds; once the uplink catches up to 45,
    // the USB one (40) holds.
    conf.keep_uncopied = true;
    reader().set_uplink_watermark(45).unwrap();
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    assert!(wait_for(WAIT, || count() == 60), "count {}", count());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), 60, "nothing uncopied deleted");
    j.shutdown();

    // The user chose to let retention run (keep_unsent off, keep_uncopied off): age alone.
    conf.keep_uncopied = false;
    conf.keep_unsent = false;
    let (j, _) = Journal::open(&conf, c).unwrap();
    assert!(wait_for(WAIT, || count() == 50), "count {}", count());
    j.shutdown();
}

#[test]
fn retention_by_size_deletes_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.flush_records = 1000;
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    for n in 0..3000 {
        j.record(sample_record(n));
    }
    j.flush().unwrap();
    j.shutdown();
    let db = paths(dir.path()).db;
    let used = |db: &std::path::Path| {
        let c = rusqlite::Connection::open(db).unwrap();
        let p: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        let f: i64 = c
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        (p - f) * 4096
    };
    assert!(
        used(&db) > 3 * 1024 * 1024,
        "3000 records use more than 3 MiB"
    );

    conf.max_size_mb = 1;
    let (j, _) = Journal::open(&conf, c).unwrap();
    let r = JournalReader::open(&paths(dir.path())).unwrap();
    assert!(wait_for(Duration::from_secs(20), || used(&db) <= 1024 * 1024));
    std::thread::sleep(Duration::from_millis(200));
    let left = r.count(&Filter::default()).unwrap();
    assert!(left > 100 && left < 3000, "left {left}");
    let first = r.records_after_id(0, 1).unwrap();
    assert_eq!(
        first[0].0,
        3000 - left as i64 + 1,
        "the newest records are kept"
    );
    j.flush().unwrap();
    assert_eq!(j.status().committed, left);
    drop(j);
}

#[test]
fn group_commit_fires_when_flush_interval_passes_on_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (c, hand) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.flush_interval = Duration::from_secs(60);
    conf.flush_records = 1000;
    let (j, _) = Journal::open(&conf, c).unwrap();
    assert!(matches!(
        j.record_durable(sample_record(1), WAIT).unwrap(),
        Ack::Durable { .. }
    ));
    hand.advance(Duration::from_secs(59));
    assert!(
        stays(Duration::from_millis(300), || j.status().committed == 0),
        "committed before flush_interval"
    );
    hand.advance(Duration::from_secs(1));
    assert!(
        wait_for(WAIT, || j.status().committed == 1),
        "{:?}",
        j.status()
    );
    assert_eq!(j.counters().commits, 1);
    j.shutdown();
}
