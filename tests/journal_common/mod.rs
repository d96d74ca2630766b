//! Helpers shared by the `journal_*` integration tests: a storage config in a temp dir, a
//! manual clock, and reading everything back.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use cdrbox::clock::{Clock, ManualClock};
use cdrbox::config::StorageConfig;
use cdrbox::filter::{Filter, Sort};
use cdrbox::journal::{JournalPaths, JournalReader};
use cdrbox::record::CallRecord;

pub fn cfg(dir: &Path) -> StorageConfig {
    StorageConfig {
        path: dir.to_path_buf(),
        flush_interval: Duration::from_millis(200),
        flush_records: 100,
        retention_days: 0,
        max_size_mb: 0,
        ring_kb: 1024,
        memory_queue_records: 100_000,
        memory_queue_kb: 16_384,
        keep_uncopied: false,
        keep_unsent: false,
    }
}

/// A clock the test moves by hand (wall clock at `start`): the journal's timers fire only when
/// the test advances it.
pub fn clock(start: i64) -> (Clock, ManualClock) {
    let hand = ManualClock::new(start);
    (hand.clock(), hand)
}

pub fn paths(dir: &Path) -> JournalPaths {
    JournalPaths::from_path(dir)
}

/// Every stored record in id order.
pub fn stored(dir: &Path) -> Vec<CallRecord> {
    let r = JournalReader::open(&paths(dir)).unwrap();
    let mut out = Vec::new();
    r.for_each::<cdrbox::journal::JournalError>(&Filter::default(), Sort::StartAsc, |rec| {
        out.push(rec);
        Ok(())
    })
    .unwrap();
    out
}

/// The `Sequence` of every stored record, in id order (the tests' records all carry one).
pub fn stored_sequences(dir: &Path) -> Vec<i64> {
    stored(dir)
        .iter()
        .map(|r| r.sequence.expect("a test record with a Sequence"))
        .collect()
}

/// Polls `f` until it is true or `limit` passes; returns the last value.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` for `window` of real time; true when it held every time. Only for checking that
/// something does NOT happen (a retry before its time): what must happen is waited for with
/// [`wait_for`].
pub fn stays(window: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < window {
        if !f() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Another connection takes SQLite's write lock on `db` (`BEGIN EXCLUSIVE`) and holds it for
/// `hold`; returns once the lock is taken, with the thread that lets it go.
pub fn hold_write_lock(db: std::path::PathBuf, hold: Duration) -> std::thread::JoinHandle<()> {
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    holder
}
