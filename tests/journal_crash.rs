//! Kill -9 at random moments: every record acknowledged as durable before the kill is in the
//! journal exactly once after the next open, and nothing else appears.
//!
//! The child is this test binary re-run with `CDRBOX_JOURNAL_CRASH_CHILD` set: it writes
//! records one at a time through `record_durable` and prints `ACK <n>` after each returns.

mod journal_common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cdrbox::journal::testdata::sample_record;
use cdrbox::journal::{Ack, Journal, JournalReader};
use journal_common::{cfg, clock, paths, stored};

const CHILD_ENV: &str = "CDRBOX_JOURNAL_CRASH_CHILD";
const ROUND_ENV: &str = "CDRBOX_JOURNAL_CRASH_ROUND";
/// Record numbers of round r are r * STRIDE + n.
const STRIDE: u64 = 1_000_000;

fn child_config(dir: &std::path::Path) -> cdrbox::config::StorageConfig {
    let mut c = cfg(dir);
    // Small groups so kills also land inside SQLite commits and checkpoints.
    c.flush_records = 7;
    c.flush_interval = Duration::from_millis(20);
    c.ring_kb = 256;
    c
}

/// Not a test on its own: does nothing unless started by the crash test.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let dir = std::path::PathBuf::from(dir);
    let (j, _) = Journal::open(&child_config(&dir), cdrbox::clock::Clock::system()).unwrap();
    println!("READY");
    for n in 0.. {
        let id = round * STRIDE + n;
        match j
            .record_durable(sample_record(id), Duration::from_secs(30))
            .unwrap()
        {
            Ack::Durable { .. } => println!("ACK {id}"),
            Ack::Duplicate => panic!("{id} is new"),
        }
        if n % 5 == 4 {
            // A repeat of an acknowledged record must never be stored twice.
            let again = j
                .record_durable(sample_record(id - 1), Duration::from_secs(30))
                .unwrap();
            assert_eq!(again, Ack::Duplicate);
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = fastrand::Rng::with_seed(0xCDB0);
    let mut acked_all: BTreeSet<u64> = BTreeSet::new();
    let mut sent_max: Vec<u64> = Vec::new();
    let rounds = 50;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = rng.u64(0..40);
        let mut acked = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ACK ") {
                acked_all.insert(n.parse().unwrap());
                acked += 1;
            } else if line != "READY" {
                continue;
            }
            if acked >= kill_after {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.u64(0..3000)));
        child.kill().unwrap(); // SIGKILL
        for line in lines {
            // What the child printed before it died was acknowledged before the kill.
            if let Some(n) = line.unwrap().strip_prefix("ACK ") {
                acked_all.insert(n.parse().unwrap());
            }
        }
        child.wait().unwrap();
        sent_max.push(
            acked_all
                .range(round * STRIDE..(round + 1) * STRIDE)
                .next_back()
                .map_or(0, |m| m + 1),
        );

        // Every few rounds, check what a CLI export would see without any writer running.
        if round % 10 == 9 {
            let r = JournalReader::open_with_ring(&paths(dir.path())).unwrap();
            let n = r.count(&Default::default()).unwrap() as usize;
            assert!(
                n >= acked_all.len(),
                "round {round}: reader with ring sees {n}"
            );
        }
    }
    // Reopen (replays the ring) and check exactly-once.
    let (c, _) = clock(0);
    let (j, report) = Journal::open(&child_config(dir.path()), c).unwrap();
    j.shutdown();
    let stored: Vec<u64> = stored(dir.path())
        .iter()
        .map(|r| r.sequence.unwrap() as u64)
        .collect();
    let unique: BTreeSet<u64> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "no duplicates");
    let missing: Vec<&u64> = acked_all.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost: {missing:?} ({report:?})"
    );
    // Only records that were sent: per round, the acknowledged ones plus at most the one in
    // flight when the kill came.
    for (round, extra) in unique.difference(&acked_all).map(|n| (n / STRIDE, n)) {
        assert!(
            round < rounds && *extra <= round * STRIDE + sent_max[round as usize] + 1,
            "unexpected record {extra}"
        );
    }
    let extras = unique.len() - acked_all.len();
    assert!(extras <= rounds as usize, "{extras} unacknowledged records");
    assert!(
        acked_all.len() > rounds as usize,
        "the children made progress"
    );
}
