//! Group commits: the oldest pending records (up to [`COMMIT_CHUNK`]), the gap ledger's changes
//! and the meta row in ONE transaction; then the durability state moves, the ring may reuse the
//! committed blocks, and waiters are answered. A failed commit rolls back, raises the alarm
//! that names the cause (disk full, locked, other) and is retried with backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::TransactionBehavior;

use crate::clock::Mono;
use crate::record::CallRecord;

use super::super::state::Place;
use super::super::{store, Ack, FailKind};
use super::Writer;

/// Records per SQLite transaction when a backlog drains (keeps the WAL near its steady size).
pub const COMMIT_CHUNK: usize = 1000;
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// Commits are failing: when to try again and how long the last wait was.
pub(crate) struct Failing {
    pub next_retry: Mono,
    pub backoff: Duration,
}

impl Writer {
    /// Commits pending changes: one chunk when merely due, everything when forced.
    pub(super) fn commit(&mut self, force: bool) {
        if let Some(f) = &self.failing {
            if !force && self.clock.now() < f.next_retry {
                return;
            }
        }
        loop {
            match self.commit_chunk() {
                Ok(more) => {
                    self.last_commit = self.clock.now();
                    if self.failing.take().is_some() {
                        tracing::info!(target: "journal", "journal commits work again");
                    }
                    self.shared.problems().commit = None;
                    if !more || !force {
                        break;
                    }
                }
                Err(e) => {
                    self.commit_failed(e);
                    break;
                }
            }
        }
        let committed = self.shared.state().committed();
        let failure = self.shared.problems().commit.as_ref().map(|c| c.1.clone());
        self.flush_waiters.retain(|(target, reply)| {
            if *target <= committed {
                let _ = reply.send(Ok(()));
                false
            } else if let Some(msg) = &failure {
                let _ = reply.send(Err(msg.clone()));
                false
            } else {
                true
            }
        });
    }

    fn commit_failed(&mut self, e: rusqlite::Error) {
        self.shared.counters().commit_failures += 1;
        let db = self.shared.paths.db.display().to_string();
        let (kind, msg) = if store::is_full(&e) {
            (
                FailKind::DiskFull,
                format!(
                    "The journal disk is full ({db}: {e}). Free space or lower [storage] \
                     retention_days / max_size_mb."
                ),
            )
        } else if store::is_busy(&e) {
            (
                FailKind::Locked,
                format!("The journal database {db} is locked by another program (journal stall)."),
            )
        } else {
            (
                FailKind::Other,
                format!("Writing to the journal {db} fails: {e}. Check the storage device."),
            )
        };
        let backoff = match &self.failing {
            Some(f) => (f.backoff * 2).min(RETRY_MAX),
            None => {
                tracing::error!(target: "journal", error = %e, "journal commit failed; retrying");
                RETRY_FIRST
            }
        };
        self.failing = Some(Failing {
            next_retry: self.clock.now() + backoff,
            backoff,
        });
        self.shared.problems().commit = Some((kind, msg));
    }

    /// One transaction: up to COMMIT_CHUNK oldest records, gap changes, meta. Returns whether
    /// records remain pending.
    fn commit_chunk(&mut self) -> rusqlite::Result<bool> {
        let batch: Vec<(u64, Arc<CallRecord>)> = self
            .shared
            .pending()
            .iter()
            .take(COMMIT_CHUNK)
            .map(|p| (p.seq, p.record.clone()))
            .collect();
        // Pending is in seq order and every assigned seq is pending until committed, so the
        // batch's last seq is a prefix watermark.
        let committed_before = self.shared.state().committed();
        let new_committed = batch
            .last()
            .map_or(committed_before, |b| b.0)
            .max(committed_before);
        let now_utc = self.clock.unix();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let mut inserted = 0u64;
        for (seq, r) in &batch {
            if store::insert_record(&tx, *seq, r)? {
                inserted += 1;
            }
        }
        let gap_ids = self.gaps.store(&tx)?;
        store::meta_set(&tx, store::META_COMMITTED_SEQ, new_committed as i64)?;
        store::meta_set(&tx, store::META_LAST_ALIVE, now_utc)?;
        tx.commit()?;

        self.gaps.stored(gap_ids);
        let mut acks = Vec::new();
        let remaining = {
            let mut pending = self.shared.pending();
            for _ in 0..batch.len() {
                if let Some(p) = pending.pop_front() {
                    self.pending_ids.remove(&p.record.identity);
                    if p.place != Place::Ring {
                        if let Some(a) = p.ack {
                            acks.push((a, p.seq));
                        }
                    }
                }
            }
            self.shared.state().committed_upto(new_committed);
            pending.len()
        };
        if let Some(ring) = &mut self.ring {
            ring.release(self.shared.state().releasable());
        }
        self.shared
            .committed_rows
            .fetch_add(inserted, Ordering::SeqCst);
        {
            let mut c = self.shared.counters();
            c.commits += 1;
            c.inserted += inserted;
        }
        for (tx, seq) in acks {
            let _ = tx.send(Ack::Durable { seq });
        }
        Ok(remaining > 0)
    }
}
