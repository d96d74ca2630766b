//! Write-cost probe for the benchmark (ignored: it measures, it asserts nothing about speed).
//! Run: `cargo test --release --test timing -- journal_cost:: --ignored --nocapture`, ideally with
//! `CDRBOX_COST_DIR` on a quiet dedicated filesystem (e.g. a loop-mounted ext4), since device
//! counters include every other writer on the same disk.

use crate::journal_common;

use std::time::Duration;

use cdrbox::journal::measure::{per_record, snapshot};
use cdrbox::journal::testdata::{sample_record, BASE_UTC};
use cdrbox::journal::Journal;
use cdrbox::sink::RecordSink;
use journal_common::{cfg, clock};

fn sync_all() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

#[test]
#[ignore]
fn print_write_cost_per_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var("CDRBOX_COST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let (c, _) = clock(BASE_UTC);
    let mut conf = cfg(&dir);
    conf.flush_interval = Duration::from_secs(60);
    conf.flush_records = std::env::var("CDRBOX_COST_GROUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let (j, _) = Journal::open(&conf, c).unwrap();
    // Warm up: grow the WAL to its steady size.
    for n in 0..3000 {
        j.record(sample_record(10_000_000 + n));
    }
    j.flush().unwrap();
    sync_all();

    // Office rate: records one at a time (each acknowledged before the next).
    let before = snapshot(&j);
    for n in 0..300 {
        j.record_durable(sample_record(n), Duration::from_secs(10))
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let ring_only = per_record(&before, &snapshot(&j));
    println!("office, before the last commit: {ring_only:?}");
    j.flush().unwrap();
    sync_all();
    let office = per_record(&before, &snapshot(&j));
    println!("office (1 at a time, commit per 100): {office:?}");

    // Burst: back to back.
    let before = snapshot(&j);
    for n in 1000..6000 {
        j.record(sample_record(n));
    }
    j.flush().unwrap();
    sync_all();
    let burst = per_record(&before, &snapshot(&j));
    println!("burst (back to back): {burst:?}");
    j.shutdown();
}
