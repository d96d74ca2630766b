//! Group commits: the oldest pending records (up to [`COMMIT_CHUNK`] of them and
//! [`budget::COMMIT_BYTES`] of their bytes), the gap ledger's changes
//! and the meta row in ONE transaction; then the durability state moves, the ring may reuse the
//! committed blocks, and waiters are answered. A failed commit rolls back, raises the alarm
//! that names the cause (disk full, locked, other) and is retried with backoff.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::TransactionBehavior;

use crate::clock::Mono;

use super::super::{budget, store, Ack, FailKind};
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
        // A drained backlog leaves its freed records in the malloc arenas: give them back, so
        // RSS after a burst returns near the floor instead of staying at the peak.
        if self.pending.is_empty() && self.since_trim >= budget::TRIM_AFTER_BYTES {
            self.since_trim = 0;
            // The pending list never shrinks by itself: after a burst that filled the ring
            // (~30,000 items of ~100 bytes) it would keep ~3.4 MB for good (heaptrack).
            self.pending.shrink_to_fit();
            budget::give_back_freed_memory();
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
        if store::is_damage(&e) && !self.replaced {
            // The file is damaged where this commit touched it: set it aside now rather than
            // retry forever (the pending records stay pending for the fresh file).
            self.replace_damaged(format!("a commit failed: {e}"));
            if self.replaced {
                return;
            }
        }
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
        // Records not kept in memory are read back from the ring (their blocks stay protected
        // until this commit is done). One that cannot be read is lost: counted, never a stuck
        // journal. The chunk ends at COMMIT_CHUNK records or COMMIT_BYTES of records, whichever
        // comes first (at least one), so huge records are committed a few at a time.
        let mut loaded = Vec::new();
        let mut unreadable = 0u64;
        let mut bytes = 0u64;
        for it in self.pending.iter().take(COMMIT_CHUNK) {
            if !loaded.is_empty() && bytes >= budget::COMMIT_BYTES {
                break;
            }
            match self.load(it) {
                Ok(r) => {
                    bytes += match (&it.record, &r) {
                        (Some(_), _) => it.bytes,
                        (None, Some(read)) => budget::record_bytes(read),
                        (None, None) => 0,
                    };
                    loaded.push(r);
                }
                Err(e) => {
                    tracing::error!(target: "journal", seq = it.seq, error = %e,
                        "a pending record cannot be read back from the ring; it is lost");
                    unreadable += 1;
                    loaded.push(None);
                }
            }
        }
        let n = loaded.len();
        // Pending is in seq order and every assigned seq is pending until committed, so the
        // chunk's last seq is a prefix watermark.
        let committed_before = self.shared.state().committed();
        let new_committed = self
            .pending
            .get(n.wrapping_sub(1))
            .map_or(committed_before, |it| it.seq)
            .max(committed_before);
        let now_utc = self.clock.unix();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let mut inserted = 0u64;
        // Taken over only once the transaction is committed (a rollback gives nothing out).
        let mut id_high = self.marks.id_high;
        for (it, read) in self.pending.iter().zip(&loaded) {
            let Some(r) = it.record.as_deref().or(read.as_ref()) else {
                continue;
            };
            let id = store::next_id(it.seq, id_high);
            if store::insert_record(&tx, id, it.seq, r)? {
                inserted += 1;
                id_high = id;
            }
        }
        if id_high != self.marks.id_high {
            store::meta_set(&tx, store::META_ID_HIGH, id_high)?;
        }
        let gap_ids = self.gaps.store(&tx)?;
        let rows = self.shared.committed_rows.load(Ordering::SeqCst) + inserted;
        store::meta_set(&tx, store::META_ROWS, rows as i64)?;
        store::meta_set(&tx, store::META_COMMITTED_SEQ, new_committed as i64)?;
        store::meta_set(&tx, store::META_LAST_ALIVE, now_utc)?;
        tx.commit()?;

        self.marks.id_high = id_high;
        self.gaps.stored(gap_ids);
        self.since_trim += bytes;
        let mut acks = Vec::new();
        for _ in 0..n {
            let Some(it) = self.pending.pop_front() else {
                break;
            };
            match (&it.loc, &it.record) {
                (Some(_), Some(_)) => self.shared.cache.release(it.bytes),
                (None, _) => self.shared.held.release(it.bytes),
                (Some(_), None) => {}
            }
            if let Some(a) = it.ack {
                acks.push((a, it.seq));
            }
        }
        self.shared.state().committed_upto(new_committed);
        self.shared.committed.notify_all();
        self.shared
            .committed_rows
            .fetch_add(inserted, Ordering::SeqCst);
        if unreadable > 0 {
            self.shared.lost.fetch_add(unreadable, Ordering::SeqCst);
        }
        {
            let mut c = self.shared.counters();
            c.commits += 1;
            c.inserted += inserted;
            c.duplicates += (n as u64 - unreadable).saturating_sub(inserted);
        }
        for (a, seq) in acks {
            a.send(Ack::Durable { seq });
        }
        Ok(!self.pending.is_empty())
    }
}
