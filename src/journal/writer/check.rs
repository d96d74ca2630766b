//! The background integrity check: `PRAGMA quick_check` over the whole database, on its own
//! read connection and thread, at the lowest CPU priority, once the ring thread has finished its
//! start-up scan — so the links connect and records are durable before it starts (issue 10
//! item 4; on a 1 GB journal it takes ~2 s here, far longer on an SD card).
//!
//! It only reads and reports ([`ToCommit::Checked`]); what a damaged file means (set it aside,
//! start a fresh one, refill it from the ring) is the commit thread's, since it owns the file.
//! Until the answer, the ring keeps every record committed since start (`Durability`'s hold).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::super::{store, Shared};
use super::ToCommit;

/// How long the check waits for the ring thread's start-up before starting anyway.
const WAIT_FOR_RING: Duration = Duration::from_secs(60);

/// What the check found: the outcome, or why it could not run.
pub(crate) type CheckResult = Result<store::CheckOutcome, String>;

pub(crate) fn spawn(
    shared: Arc<Shared>,
    out: mpsc::Sender<ToCommit>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("journal-check".into())
        .spawn(move || {
            let _ = shared.wait_ring_report(WAIT_FOR_RING);
            lower_priority();
            // Instant, not the Clock: it only measures the real work for the log.
            let started = std::time::Instant::now();
            let result = run(&shared);
            tracing::info!(target: "journal", took = ?started.elapsed(), ?result,
                "journal integrity check done");
            let _ = out.send(ToCommit::Checked(result));
        })
}

fn run(shared: &Shared) -> CheckResult {
    let db = &shared.paths.db;
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {} for the check: {e}", db.display()))?;
    store::persist_wal(&conn).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    {
        let mut stop = shared.check_stop();
        if stop.stopped {
            return Err("the journal stopped before the check".into());
        }
        stop.interrupt = Some(conn.get_interrupt_handle());
    }
    let outcome = store::quick_check(&conn);
    shared.check_stop().interrupt = None;
    match outcome {
        Ok(o) => Ok(o),
        // A file too damaged to even be read through is damaged, not "unchecked".
        Err(e) if store::is_damage(&e) => Ok(store::CheckOutcome::Damaged(e.to_string())),
        Err(e) => Err(format!("quick_check did not finish: {e}")),
    }
}

/// The check is background work: it must not take CPU from the links or the commits.
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id (PRIO_PROCESS with a
    // tid sets that thread's nice value on Linux) only changes scheduling.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
    };
    if rc != 0 {
        tracing::debug!(target: "journal", "cannot lower the check thread's priority");
    }
}
