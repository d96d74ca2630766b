//! Journal under trouble: another process holding the database lock (a "journal stall") and a
//! full disk (a real SQLITE_FULL via `max_page_count`). Producers must never block, nothing that
//! arrived may be lost, and the journal must resume by itself.

use crate::journal_common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cdrbox::journal::testdata::{sample_record, BASE_UTC};
use cdrbox::journal::{Ack, Journal};
use cdrbox::sink::RecordSink;
use journal_common::{cfg, clock, hold_write_lock, paths, stays, stored, wait_for};

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn stall_holding_an_exclusive_lock_loses_nothing_and_never_blocks_producers() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let (j, report) = Journal::open(&cfg(dir.path()), c).unwrap();
    j.record(sample_record(999_999));
    j.flush().unwrap();

    // Another connection takes the write lock for 5 s.
    let db = report.paths.db.clone();
    let holder = hold_write_lock(db, Duration::from_secs(5));

    // 1,000 records/s for 5 s from another thread, timing each record() call.
    let producer = {
        let j = j.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let start = Instant::now();
            for n in 0..5000u64 {
                let due = start + Duration::from_millis(n);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let t = Instant::now();
                j.record(sample_record(n));
                worst = worst.max(t.elapsed());
            }
            worst
        })
    };
    // While the lock is held the alarm shows and records wait.
    assert!(wait_for(Duration::from_secs(4), || j
        .alarms()
        .iter()
        .any(|a| a.code == "JOURNAL STALL")));
    assert!(j.status().pending + j.status().memory_only > 0);
    let worst = producer.join().unwrap();
    holder.join().unwrap();
    // A blocking check, not a performance measurement: record() only queues.
    assert!(
        worst < Duration::from_millis(50),
        "record() blocked for {worst:?}"
    );

    j.flush().unwrap();
    let st = j.status();
    assert_eq!(st.pending, 0);
    assert_eq!(st.memory_only, 0);
    assert_eq!(st.committed, 5001);
    assert!(
        j.alarms().iter().all(|a| a.code != "JOURNAL STALL"),
        "{:?}",
        j.alarms()
    );
    j.shutdown();
    let got: HashSet<i64> = journal_common::stored_sequences(dir.path())
        .into_iter()
        .collect();
    assert_eq!(got.len(), 5001);
    assert!((0..5000).all(|n| got.contains(&n)));
}

#[test]
fn disk_full_keeps_records_raises_an_alarm_and_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (c, hand) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.flush_records = 20;
    conf.flush_interval = Duration::from_millis(100);
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    for n in 0..10 {
        j.record(sample_record(n));
    }
    j.flush().unwrap();
    // Freeze the file at its current size: the next pages needed give SQLITE_FULL.
    let pages = j.set_max_page_count(1).unwrap();
    assert!(pages > 1);

    // 200 one-by-one arrivals take 200 of the ring's 256 blocks.
    for n in 10..210 {
        // Durable on arrival even though SQLite cannot take them.
        let ack = j
            .record_durable(sample_record(n), Duration::from_secs(10))
            .unwrap();
        assert!(matches!(ack, Ack::Durable { .. }), "record {n}: {ack:?}");
    }
    let err = j.flush().unwrap_err().to_string();
    assert!(err.contains("disk is full"), "{err}");
    let alarms = j.alarms();
    assert!(alarms.iter().any(|a| a.code == "DISK FULL"), "{alarms:?}");
    let st = j.status();
    assert_eq!(st.committed, 10);
    assert_eq!(st.pending, 200);
    assert_eq!(st.memory_only, 0);
    assert_eq!(j.pending_records().len(), 200);

    // Retries back off (0.5 s, 1 s, 2 s, ...) instead of spinning: on the manual clock a retry
    // happens exactly when its back-off has passed, never before. The forced flush above was
    // the second failure, so the next retry is due 1 s after it.
    let failures = || j.counters().commit_failures;
    let before = failures();
    hand.advance(Duration::from_millis(999));
    assert!(
        stays(Duration::from_millis(300), || failures() == before),
        "retried early"
    );
    hand.advance(Duration::from_millis(1));
    assert!(wait_for(WAIT, || failures() == before + 1), "retry at 1 s");
    hand.advance(Duration::from_millis(1999));
    assert!(
        stays(Duration::from_millis(300), || failures() == before + 1),
        "back-off doubled"
    );
    hand.advance(Duration::from_millis(1));
    assert!(
        wait_for(WAIT, || failures() == before + 2),
        "retry at 2 s more"
    );

    // Space comes back: the writer's next retry (4 s on) commits everything without being asked.
    j.set_max_page_count(1_000_000).unwrap();
    hand.advance(Duration::from_secs(4));
    assert!(
        wait_for(WAIT, || j.status().committed == 210),
        "resumed: {:?}",
        j.status()
    );
    assert!(j.alarms().iter().all(|a| a.code != "DISK FULL"));
    assert_eq!(j.status().memory_only, 0);
    j.shutdown();
    let got: HashSet<i64> = journal_common::stored_sequences(dir.path())
        .into_iter()
        .collect();
    assert_eq!(got, (0..210).collect());
}

/// Issue 10: the link is never paused for storage trouble. With the ring full and SQLite
/// refusing, records are held in memory up to `memory_queue_records`; beyond that they are
/// dropped — counted, alarmed and entered in the gap ledger with their count, never silently.
#[test]
fn full_ring_holds_records_in_memory_then_drops_beyond_the_bound_into_the_gap_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.ring_kb = 64; // 16 blocks
    conf.memory_queue_records = 40;
    conf.flush_interval = Duration::from_secs(3600);
    conf.flush_records = 10_000;
    let (j, _) = Journal::open(&conf, c.clone()).unwrap();
    j.set_max_page_count(1).unwrap();
    for n in 0..16 {
        let ack = j
            .record_durable(sample_record(n), Duration::from_secs(5))
            .unwrap();
        assert!(matches!(ack, Ack::Durable { .. }));
    }
    // 40 more fit in memory; the 10 after them are over the bound.
    for n in 16..66 {
        j.record(sample_record(n));
    }
    assert!(
        wait_for(WAIT, || j.status().memory_only == 40),
        "{:?}",
        j.status()
    );
    let st = j.status();
    assert_eq!(
        st.pending, 16,
        "one record per block while they arrive one by one"
    );
    assert_eq!(j.counters().dropped, 10);
    let codes: Vec<String> = j.alarms().into_iter().map(|a| a.code).collect();
    assert!(codes.contains(&"RING FULL".to_string()), "{codes:?}");
    assert!(codes.contains(&"RECORDS DROPPED".to_string()), "{codes:?}");
    assert!(j.flush().is_err());

    j.set_max_page_count(1_000_000).unwrap();
    j.flush().unwrap();
    assert_eq!(j.status().memory_only, 0);
    assert_eq!(j.status().committed, 56);
    // The drops are in the gap ledger, per PBX, with their count.
    let gaps = j.reader().unwrap().gaps(None, None).unwrap();
    let lost: u64 = gaps.iter().map(|g| g.lost).sum();
    assert_eq!(lost, 10, "{gaps:?}");
    assert!(
        gaps.iter().all(|g| g.reason.contains("records dropped")),
        "{gaps:?}"
    );
    assert!(gaps.iter().all(|g| g.up_utc.is_some()));
    // The ring is usable again after the commit.
    assert!(matches!(
        j.record_durable(sample_record(100), Duration::from_secs(5))
            .unwrap(),
        Ack::Durable { .. }
    ));
    j.shutdown();
    let got: HashSet<i64> = journal_common::stored_sequences(&paths(dir.path()).dir)
        .into_iter()
        .collect();
    assert_eq!(got.len(), 57);
    assert!(
        (0..56).all(|n| got.contains(&n)),
        "what was not dropped is stored"
    );
}

/// The memory bound is in bytes too (`memory_queue_kb`): with the ring full and SQLite
/// refusing, huge records are held only while their bytes fit — far below the record-count
/// bound — and the rest are dropped: counted, alarmed and in the gap ledger with their count.
#[test]
fn huge_records_beyond_the_byte_bound_are_dropped_into_the_gap_ledger() {
    const HUGE: usize = 100_000;
    const BOUND_KB: u32 = 256;
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.ring_kb = 64; // 16 blocks; a 100 KB record never fits it
    conf.memory_queue_records = 100_000;
    conf.memory_queue_kb = BOUND_KB;
    conf.flush_interval = Duration::from_secs(3600);
    conf.flush_records = 10_000;
    let (j, _) = Journal::open(&conf, c).unwrap();
    j.set_max_page_count(1).unwrap();
    let huge = |n: u64| {
        let mut r = sample_record(n);
        r.raw.resize(HUGE, b'x');
        r.raw.shrink_to_fit();
        r
    };
    for n in 0..20 {
        j.record(huge(n));
    }
    // Nothing can leave memory (SQLite is full), so what is held stays held.
    assert!(
        wait_for(WAIT, || j.status().memory_only + j.counters().dropped == 20),
        "{:?} {:?}",
        j.status(),
        j.counters()
    );
    let held = j.status().memory_only;
    let dropped = j.counters().dropped;
    assert!(held >= 1, "one record is always taken");
    assert!(
        held * HUGE as u64 <= u64::from(BOUND_KB) * 1024,
        "{held} records of {HUGE} bytes held under a {BOUND_KB} KiB bound"
    );
    assert_eq!(dropped, 20 - held);
    let codes: Vec<String> = j.alarms().into_iter().map(|a| a.code).collect();
    assert!(codes.contains(&"RECORDS DROPPED".to_string()), "{codes:?}");
    let dropped_alarm = j
        .alarms()
        .into_iter()
        .find(|a| a.code == "RECORDS DROPPED")
        .unwrap();
    assert!(
        dropped_alarm.message.contains("memory_queue_kb"),
        "the alarm names the key to raise: {}",
        dropped_alarm.message
    );

    j.set_max_page_count(1_000_000).unwrap();
    j.flush().unwrap();
    assert_eq!(j.status().memory_only, 0);
    assert_eq!(j.status().committed, held);
    let gaps = j.reader().unwrap().gaps(None, None).unwrap();
    assert_eq!(
        gaps.iter().map(|g| g.lost).sum::<u64>(),
        dropped,
        "{gaps:?}"
    );
    // The memory is given back: a record of the same size is taken again.
    j.record(huge(100));
    j.flush().unwrap();
    assert_eq!(j.counters().dropped, dropped);
    j.shutdown();
    let got = stored(dir.path());
    assert_eq!(got.len() as u64, held + 1);
    assert!(got.iter().all(|r| r.raw.len() == HUGE), "stored whole");
}

/// Records waiting for a stalled SQLite are not all kept in memory: past the commit thread's
/// cache they are read back from the ring when their commit comes.
#[test]
fn a_stall_longer_than_the_memory_cache_is_read_back_from_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.ring_kb = 16 * 1024;
    conf.memory_queue_records = 1000;
    conf.flush_interval = Duration::from_secs(3600);
    conf.flush_records = 100_000;
    let (j, _) = Journal::open(&conf, c).unwrap();
    j.set_max_page_count(1).unwrap();
    let acks = j
        .record_batch(
            (0..5000).map(sample_record).collect(),
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(acks.len(), 5000);
    assert!(acks.iter().all(|a| matches!(a, Ack::Durable { .. })));
    assert_eq!(j.status().memory_only, 0, "all in the ring");
    assert!(j.flush().is_err(), "SQLite is still full");
    j.set_max_page_count(1_000_000).unwrap();
    j.flush().unwrap();
    let counters = j.counters();
    assert!(counters.ring_reads >= 2900, "{counters:?}");
    assert_eq!(counters.inserted, 5000);
    j.shutdown();
    let got: HashSet<i64> = journal_common::stored_sequences(dir.path())
        .into_iter()
        .collect();
    assert_eq!(got, (0..5000).collect());
}

#[test]
fn a_burst_larger_than_the_ring_stays_durable_when_sqlite_works() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(dir.path());
    conf.ring_kb = 64;
    conf.flush_records = 10_000; // the ring-half-full trigger must commit instead
    conf.flush_interval = Duration::from_secs(3600);
    let (j, _) = Journal::open(&conf, c).unwrap();
    for n in 0..3000 {
        j.record(sample_record(n));
    }
    j.flush().unwrap();
    let counters = j.counters();
    assert_eq!(counters.records, 3000);
    assert_eq!(counters.memory_only_records, 0, "{counters:?}");
    assert!(counters.commits >= 2, "{counters:?}");
    assert!(
        counters.ring_writes < 3000,
        "bursts share ring batches: {counters:?}"
    );
    j.shutdown();
    assert_eq!(stored(dir.path()).len(), 3000);
}
