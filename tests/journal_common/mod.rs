//! Helpers shared by the `journal_*` integration tests: a storage config in a temp dir, a
//! settable clock, and reading everything back.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdrbox::config::StorageConfig;
use cdrbox::filter::{Filter, Sort};
use cdrbox::journal::{Clock, JournalPaths, JournalReader};
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
        keep_uncopied: false,
    }
}

/// A clock the test moves by hand.
pub fn clock(start: i64) -> (Clock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(start));
    let c = now.clone();
    (Arc::new(move || c.load(Ordering::SeqCst)), now)
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
