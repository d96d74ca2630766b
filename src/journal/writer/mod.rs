//! The journal writer thread: the one owner of the SQLite write connection and the ring file.
//!
//! Loop: wait for messages (or the next deadline), take everything available, write all new
//! records to the ring in ONE batch (one pwrite + one fdatasync), acknowledge them, then group
//! commit into SQLite when `flush_interval` has passed since the oldest pending record, when
//! `flush_records` are pending, or when asked (flush, USB watermark, shutdown). A failed commit
//! (disk full, locked, I/O error) rolls back and is retried with backoff while ring writes go
//! on; the records stay pending. Retention runs here too, in small batches.
//!
//! Files: [`open`] (start-up), [`commit`] (group commits and their failures), [`gaps`] (the gap
//! ledger), [`retention`]. Must not block producers: they only ever `send` on a channel.

mod commit;
pub(crate) mod gaps;
pub(crate) mod open;
mod retention;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::Connection;

use crate::clock::{Clock, Mono};
use crate::config::StorageConfig;
use crate::record::CallRecord;

use super::ring::{self, Ring};
use super::state::Place;
use super::{payload, store, Ack, JournalError, Msg, Pending, Shared};
use commit::Failing;
use gaps::GapLedger;
use retention::Policy;

/// Messages taken off the channel per loop turn.
const MAX_DRAIN: usize = 512;
/// Without calls, `last_alive_utc` is still refreshed this often (it dates "box was off" gaps).
const HEARTBEAT: Duration = Duration::from_secs(15 * 60);

pub(crate) fn io_err(what: &str, path: &std::path::Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn sql_err(what: &str, path: &std::path::Path, source: rusqlite::Error) -> JournalError {
    JournalError::Sqlite {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    clock: Clock,
    conn: Connection,
    ring: Option<Ring>,
    rx: mpsc::Receiver<Msg>,
    pending_ids: HashSet<[u8; 16]>,
    flush_interval: Duration,
    flush_records: usize,
    policy: Policy,
    usb_copied_id: i64,
    failing: Option<Failing>,
    /// Flush requests: reply once everything up to the seq is committed.
    flush_waiters: Vec<(u64, mpsc::Sender<Result<(), String>>)>,
    gaps: GapLedger<Mono>,
    last_commit: Mono,
    next_retention: Mono,
    retention_more: bool,
}

/// A record taken off the channel this turn.
struct Arrival {
    record: CallRecord,
    payload: Vec<u8>,
    ack: Option<mpsc::Sender<Ack>>,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        conn: Connection,
        ring: Option<Ring>,
        rx: mpsc::Receiver<Msg>,
        cfg: &StorageConfig,
        policy: Policy,
        usb_copied_id: i64,
        gaps: GapLedger<Mono>,
    ) -> Writer {
        let clock = shared.clock.clone();
        let now = clock.now();
        let pending_ids = shared.pending().iter().map(|p| p.record.identity).collect();
        Writer {
            shared,
            clock,
            conn,
            ring,
            rx,
            pending_ids,
            flush_interval: cfg.flush_interval,
            flush_records: cfg.flush_records.max(1),
            policy,
            usb_copied_id,
            failing: None,
            flush_waiters: Vec::new(),
            gaps,
            last_commit: now,
            next_retention: now,
            retention_more: false,
        }
    }

    pub(crate) fn run(mut self) {
        tracing::info!(target: "journal", db = %self.shared.paths.db.display(), "journal writer started");
        let mut shutdown = false;
        while !shutdown {
            let now = self.clock.now();
            let mut msgs = Vec::new();
            let first = match self.next_deadline(now) {
                Some(d) => self
                    .rx
                    .recv_timeout(self.clock.until(d))
                    .map_err(|e| matches!(e, mpsc::RecvTimeoutError::Disconnected)),
                None => self.rx.recv().map_err(|_| true),
            };
            match first {
                Ok(m) => msgs.push(m),
                Err(disconnected) => shutdown |= disconnected,
            }
            while msgs.len() < MAX_DRAIN {
                match self.rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
            let mut arrivals = Vec::new();
            let mut force = false;
            for m in msgs {
                match m {
                    Msg::Record { record, ack } => {
                        self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                        if self.is_duplicate(&record) {
                            self.shared.counters().duplicates += 1;
                            if let Some(a) = ack {
                                let _ = a.send(Ack::Duplicate);
                            }
                            continue;
                        }
                        self.pending_ids.insert(record.identity);
                        let payload = payload::encode(&record);
                        arrivals.push(Arrival {
                            record: *record,
                            payload,
                            ack,
                        });
                    }
                    Msg::Link { pbx, at_utc, event } => {
                        if self.gaps.event(&pbx, at_utc, &event, self.clock.now()) {
                            self.shared.gaps.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Msg::Flush(reply) => {
                        let upto = self.shared.state().next_seq() - 1 + arrivals.len() as u64;
                        self.flush_waiters.push((upto, reply));
                        force = true;
                    }
                    Msg::SetCopyWatermark { id, reply } => {
                        let r = store::meta_set(&self.conn, store::META_USB_COPIED_ID, id)
                            .map_err(|e| format!("cannot store the USB copy watermark: {e}"));
                        if r.is_ok() {
                            self.usb_copied_id = id;
                        }
                        let _ = reply.send(r);
                    }
                    #[cfg(any(test, feature = "testing"))]
                    Msg::SetMaxPageCount { pages, reply } => {
                        let r = self
                            .conn
                            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                                r.get::<_, i64>(0)
                            })
                            .map(|n| n.max(0) as u64)
                            .map_err(|e| e.to_string());
                        let _ = reply.send(r);
                    }
                    Msg::Shutdown => shutdown = true,
                    Msg::Wake => {}
                    #[cfg(any(test, feature = "testing"))]
                    Msg::Crash => {
                        self.shared.writer_running.store(false, Ordering::SeqCst);
                        return;
                    }
                }
            }
            // A burst goes to the ring in slices of at most half the ring, with a commit in
            // between when due, so the ring has room for the next slice (otherwise records
            // would be held in memory only while SQLite is perfectly able to take them).
            let half_ring = self
                .ring
                .as_ref()
                .map_or(usize::MAX, |r| r.bytes() as usize / 2);
            let mut slice = Vec::new();
            let mut slice_bytes = 0;
            for a in arrivals {
                let size = ring::entry_size(a.payload.len());
                if !slice.is_empty() && slice_bytes + size > half_ring {
                    self.accept(std::mem::take(&mut slice), half_ring);
                    slice_bytes = 0;
                    if self.commit_due(self.clock.now()) {
                        self.commit(false);
                    }
                }
                slice_bytes += size;
                slice.push(a);
            }
            if !slice.is_empty() {
                self.accept(slice, half_ring);
            }
            if shutdown {
                force = true;
            }
            if force || self.commit_due(self.clock.now()) {
                self.commit(force);
            }
            if !shutdown && self.failing.is_none() && self.clock.now() >= self.next_retention {
                self.retention_step();
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        let (left, memory_only) = {
            let st = self.shared.state();
            (st.pending(), st.memory_only())
        };
        if left > 0 {
            tracing::error!(target: "journal", left, memory_only,
                "journal stopping with uncommitted records; ring records replay at next start");
        }
        self.shared.writer_running.store(false, Ordering::SeqCst);
        for (_, w) in self.flush_waiters.drain(..) {
            let _ = w.send(Err("the journal is shutting down".into()));
        }
        tracing::info!(target: "journal", "journal writer stopped");
    }

    fn is_duplicate(&self, r: &CallRecord) -> bool {
        if self.pending_ids.contains(&r.identity) {
            return true;
        }
        // A failing lookup (locked, I/O) is not a reason to drop a record: the insert's
        // ON CONFLICT still guarantees exactly-once.
        store::identity_exists(&self.conn, &r.identity).unwrap_or(false)
    }

    /// When the loop must wake up without a message.
    fn next_deadline(&self, now: Mono) -> Option<Mono> {
        // While commits fail, only the retry timer matters (retention and heartbeat wait for
        // a working database; waking for them would spin).
        if let Some(f) = &self.failing {
            return Some(f.next_retry);
        }
        let mut d: Option<Mono> = None;
        let mut consider = |t: Mono| d = Some(d.map_or(t, |x: Mono| x.min(t)));
        if self.retention_more {
            consider(now);
        }
        consider(self.next_retention);
        consider(self.last_commit + HEARTBEAT);
        if let Some(o) = self.oldest_change() {
            if self.group_full() {
                consider(now);
            } else {
                consider(o + self.flush_interval);
            }
        }
        d
    }

    /// `flush_records` are pending, or the ring is half full (so it never fills while SQLite
    /// works, whatever `flush_records` is).
    fn group_full(&self) -> bool {
        self.shared.state().pending() >= self.flush_records
            || self
                .ring
                .as_ref()
                .is_some_and(|r| r.used_blocks() * 2 >= r.blocks())
    }

    /// Arrival time of the oldest uncommitted change (record or gap).
    fn oldest_change(&self) -> Option<Mono> {
        let rec = self.shared.pending().front().map(|p| p.arrived);
        match (rec, self.gaps.dirty_since()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn commit_due(&self, now: Mono) -> bool {
        if let Some(f) = &self.failing {
            // Retry even with nothing pending: a successful (meta-only) commit is what clears
            // the alarm.
            return now >= f.next_retry;
        }
        if self.group_full() {
            return true;
        }
        if let Some(o) = self.oldest_change() {
            if now >= o + self.flush_interval {
                return true;
            }
        }
        now >= self.last_commit + HEARTBEAT
    }

    /// Writes new records to the ring (batches of at most `max_batch` bytes), queues them for
    /// SQLite, acknowledges the durable ones.
    fn accept(&mut self, arrivals: Vec<Arrival>, max_batch: usize) {
        let first_seq = self.shared.state().next_seq();
        let mut placed = vec![Place::Memory; arrivals.len()];
        if let Some(ring) = &mut self.ring {
            ring.release(self.shared.state().releasable());
            let max = ring.max_payload();
            let mut next = 0;
            while next < arrivals.len() && arrivals[next].payload.len() <= max {
                let entries: Vec<(u64, &[u8])> = arrivals[next..]
                    .iter()
                    .take_while(|a| a.payload.len() <= max)
                    .enumerate()
                    .map(|(i, a)| (first_seq + (next + i) as u64, a.payload.as_slice()))
                    .collect();
                match ring.append(&entries, max_batch) {
                    Ok(locs) if locs.is_empty() => break,
                    Ok(locs) => {
                        placed[next..next + locs.len()].fill(Place::Ring);
                        next += locs.len();
                        let mut c = self.shared.counters();
                        c.ring_writes = ring.writes;
                        c.ring_bytes = ring.bytes_written;
                    }
                    Err(e) => {
                        tracing::error!(target: "journal", error = %e, "ring write failed");
                        self.shared.problems().ring = Some(format!(
                            "Writing the ring file {} failed ({e}); new records are held in \
                             memory until committed. Check the storage device.",
                            self.shared.paths.ring.display()
                        ));
                        break;
                    }
                }
            }
        }
        let now = self.clock.now();
        let memory_only = placed.iter().filter(|p| **p == Place::Memory).count() as u64;
        self.shared.counters().records += arrivals.len() as u64;
        // Acks go out after the state is updated, so an acknowledged record is always covered
        // by durable_seq.
        let mut acks = Vec::new();
        {
            let mut pending = self.shared.pending();
            let mut state = self.shared.state();
            for (a, place) in arrivals.into_iter().zip(placed) {
                let seq = state.assign(place);
                let record = Arc::new(a.record);
                let mut ack = a.ack;
                if place == Place::Ring {
                    if let Some(tx) = ack.take() {
                        acks.push((tx, seq));
                    }
                }
                self.notify(&record);
                pending.push_back(Pending {
                    seq,
                    record,
                    arrived: now,
                    place,
                    ack,
                });
            }
        }
        for (tx, seq) in acks {
            let _ = tx.send(Ack::Durable { seq });
        }
        if memory_only > 0 {
            self.shared.counters().memory_only_records += memory_only;
        }
    }

    fn notify(&self, record: &CallRecord) {
        let mut subs = self
            .shared
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !subs.is_empty() {
            subs.retain(|s| s.send(record.clone()).is_ok());
        }
    }

    /// One small retention batch; reschedules itself.
    fn retention_step(&mut self) {
        let now_utc = self.clock.unix();
        match retention::step(&self.conn, &self.policy, now_utc, self.usb_copied_id) {
            Ok(retention::Step::Deleted(n)) => {
                self.shared
                    .committed_rows
                    .fetch_sub(n as u64, Ordering::SeqCst);
                self.shared.counters().retention_deleted += n as u64;
                self.retention_more = true;
                self.next_retention = self.clock.now();
            }
            Ok(retention::Step::Done) => {
                self.retention_more = false;
                self.next_retention = self.clock.now() + retention::RETENTION_EVERY;
            }
            Err(e) => {
                tracing::warn!(target: "journal", error = %e, "retention failed; retrying later");
                self.retention_more = false;
                self.next_retention = self.clock.now() + commit::RETRY_MAX;
            }
        }
    }
}
