//! The journal's two threads. [`intake`] is the ring thread (durability); this file is the
//! commit thread, the one owner of the SQLite write connection.
//!
//! Commit loop: wait for work from the ring thread (or the next deadline on the injected
//! clock), then group commit when `flush_interval` has passed since the oldest pending change,
//! when `flush_records` are pending, when the ring is half full, or when asked (flush, shutdown).
//! A failed commit (disk full, locked, I/O error) rolls back and is retried with back-off while
//! the ring thread goes on; the records stay pending (in the ring, read back when their turn
//! comes). Retention runs here too, in small batches, only while commits work.
//!
//! Files: [`open`] (start-up), [`intake`] (the ring thread), [`check`] (the background
//! integrity check), [`commit`] (group commits and their failures), [`gaps`] (the gap ledger),
//! [`retention`], [`replace`] (a damaged file set aside while recording goes on).

mod check;
mod commit;
pub(crate) mod gaps;
pub(crate) mod intake;
pub(crate) mod open;
mod replace;
mod retention;

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::Connection;

use crate::clock::{Clock, Mono};
use crate::config::StorageConfig;
use crate::record::CallRecord;
use crate::sink::LinkEvent;

use super::ring::{self, EntryLoc};
use super::{payload, store, AckTo, Control, JournalError, Shared};
use commit::Failing;
use gaps::GapLedger;
use retention::Policy;

/// Without calls, `last_alive_utc` is still refreshed this often (it dates "box was off" gaps).
const HEARTBEAT: Duration = Duration::from_secs(15 * 60);
/// How often the day summary looks for days that ended.
const SUMMARY_EVERY: Duration = Duration::from_secs(3600);
/// The first look, after start-up's own work (the integrity check, the background indexes, the
/// first records): summarising an old journal's days takes the writer a while in steps.
const SUMMARY_AFTER_START: Duration = Duration::from_secs(30);
/// Records waiting for the ring thread from which commits give way to it ([`Writer::yield_to_ring`]):
/// a burst, not the few records of ordinary traffic.
const YIELD_BACKLOG: u64 = 256;
/// How often a commit that gave way looks again (the ring thread's messages wake it sooner).
const YIELD_POLL: Duration = Duration::from_millis(5);

pub(crate) fn io_err(what: &str, path: &std::path::Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

/// A record waiting for SQLite, as the commit thread holds it: where it is in the ring, and
/// the record itself while the memory budget allows (always, when it is not in the ring).
pub(crate) struct Item {
    pub seq: u64,
    pub loc: Option<EntryLoc>,
    pub record: Option<Box<CallRecord>>,
    /// A producer waiting for this memory-only record to be committed.
    pub ack: Option<AckTo>,
    pub arrived: Mono,
    /// What `record` is charged with ([`super::budget::record_bytes`]) — to the cache when it is a
    /// copy of a ring record, to the memory queue when it is memory-only; 0 without `record`.
    pub bytes: u64,
}

/// From the ring thread to the commit thread.
pub(crate) enum ToCommit {
    /// The ring file as the ring thread opened (or recreated) it at start: sent before any item
    /// that lives in it, so the commit thread reads back from the same file the ring writes.
    RingFile(File),
    Items(Vec<Item>),
    Link {
        pbx: String,
        at_utc: i64,
        event: LinkEvent,
    },
    /// Reply once every seq ≤ `upto` is committed (or commits fail).
    Flush {
        upto: u64,
        reply: mpsc::Sender<Result<(), String>>,
    },
    Control(Control),
    Shutdown,
    #[cfg(any(test, feature = "testing"))]
    Crash,
    /// The background quick_check's answer.
    Checked(check::CheckResult),
    /// The injected clock moved (a test's manual clock): re-check deadlines.
    Wake,
}

/// Marks that must outlive the database file (carried into a fresh one when a damaged file is
/// replaced, so ids and the USB watermark never go back).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marks {
    /// The USB copy watermark as last read or written (the stored value is the truth: see
    /// `store::advance_copy_watermark`; `cdrbox usb-export` may move it while the box runs).
    pub usb_copied_id: i64,
    /// The highest `cdr.id` given (`store::next_id`).
    pub id_high: i64,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    clock: Clock,
    conn: Connection,
    rx: mpsc::Receiver<ToCommit>,
    /// The ring file, for reading back records not kept in memory.
    ring: Option<File>,
    pending: VecDeque<Item>,
    flush_interval: Duration,
    flush_records: usize,
    policy: Policy,
    marks: Marks,
    failing: Option<Failing>,
    /// Flush requests: reply once everything up to the seq is committed.
    flush_waiters: Vec<(u64, mpsc::Sender<Result<(), String>>)>,
    gaps: GapLedger<Mono>,
    last_commit: Mono,
    next_retention: Mono,
    retention_more: bool,
    /// When to build the [`store::BACKGROUND_INDEXES`] (`None`: done).
    next_index_build: Option<Mono>,
    /// When to move the day summary over the days that ended (`store::summarise_step`).
    next_summary: Mono,
    /// A damaged file was already replaced in this run (a second time means the device is
    /// failing: alarm, do not loop).
    replaced: bool,
    /// Bytes of records committed since the heap was last trimmed
    /// ([`super::budget::give_back_freed_memory`]).
    since_trim: u64,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        conn: Connection,
        rx: mpsc::Receiver<ToCommit>,
        cfg: &StorageConfig,
        policy: Policy,
        marks: Marks,
        gaps: GapLedger<Mono>,
        indexes_built: bool,
    ) -> Writer {
        let clock = shared.clock.clone();
        let now = clock.now();
        Writer {
            shared,
            clock,
            conn,
            rx,
            ring: None,
            pending: VecDeque::new(),
            flush_interval: cfg.flush_interval,
            flush_records: cfg.flush_records.max(1),
            policy,
            marks,
            failing: None,
            flush_waiters: Vec::new(),
            gaps,
            last_commit: now,
            next_retention: now,
            retention_more: false,
            next_index_build: (!indexes_built).then_some(now),
            next_summary: now + SUMMARY_AFTER_START,
            replaced: false,
            since_trim: 0,
        }
    }

    pub(crate) fn run(mut self) {
        tracing::info!(target: "journal", db = %self.shared.paths.db.display(), "journal writer started");
        let mut shutdown = false;
        while !shutdown {
            let now = self.clock.now();
            let first = match self.next_deadline(now) {
                Some(d) => self
                    .rx
                    .recv_timeout(self.clock.until(d))
                    .map_err(|e| matches!(e, mpsc::RecvTimeoutError::Disconnected)),
                None => self.rx.recv().map_err(|_| true),
            };
            let mut msgs = Vec::new();
            match first {
                Ok(m) => msgs.push(m),
                Err(disconnected) => shutdown |= disconnected,
            }
            while let Ok(m) = self.rx.try_recv() {
                msgs.push(m);
                if msgs.len() >= 64 {
                    break;
                }
            }
            let mut force = false;
            for m in msgs {
                match m {
                    ToCommit::RingFile(f) => self.ring = Some(f),
                    ToCommit::Items(items) => self.pending.extend(items),
                    ToCommit::Link { pbx, at_utc, event } => {
                        if self.gaps.event(&pbx, at_utc, &event, self.clock.now()) {
                            self.shared.gaps.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    ToCommit::Flush { upto, reply } => {
                        self.flush_waiters.push((upto, reply));
                        force = true;
                    }
                    ToCommit::Control(c) => self.control(c),
                    ToCommit::Shutdown => shutdown = true,
                    #[cfg(any(test, feature = "testing"))]
                    ToCommit::Crash => {
                        self.shared.writer_running.store(false, Ordering::SeqCst);
                        return;
                    }
                    ToCommit::Checked(result) => self.checked(result),
                    ToCommit::Wake => {}
                }
            }
            self.absorb_drops();
            if shutdown || !self.flush_waiters.is_empty() {
                force = true;
            }
            if force || self.commit_due(self.clock.now()) {
                self.commit(force);
            }
            if !shutdown && self.failing.is_none() && self.clock.now() >= self.next_retention {
                self.retention_step();
            }
            if !shutdown && self.failing.is_none() && self.pending.is_empty() {
                self.build_indexes();
                self.summarise_days();
            }
        }
        self.finish();
    }

    /// The background check answered.
    fn checked(&mut self, result: check::CheckResult) {
        match result {
            Ok(store::CheckOutcome::Fine) => {
                self.shared.state().end_hold();
                *self.shared.integrity() = super::Integrity::Fine;
            }
            Ok(store::CheckOutcome::Damaged(problems)) => self.replace_damaged(problems),
            Err(why) => {
                tracing::warn!(target: "journal", %why, "the journal integrity check did not run");
                self.shared.state().end_hold();
                *self.shared.integrity() = super::Integrity::NotChecked(why);
            }
        }
    }

    /// Builds the background indexes once, when there is nothing to commit. Records arriving
    /// meanwhile wait in the ring (durable) until it is done.
    fn build_indexes(&mut self) {
        let now = self.clock.now();
        if self.next_index_build.is_none_or(|t| now < t) {
            return;
        }
        // Instant, not the Clock: it only measures the real work for the log (the build's
        // schedule above is on the Clock).
        let started = std::time::Instant::now();
        match store::create_background_indexes(&self.conn) {
            Ok(()) => {
                tracing::info!(target: "journal", took = ?started.elapsed(), "background indexes built");
                self.next_index_build = None;
            }
            Err(e) => {
                tracing::warn!(target: "journal", error = %e, "building an index failed; retrying later");
                self.next_index_build = Some(now + retention::RETENTION_EVERY);
            }
        }
    }

    /// Moves the day summaries (records, then calls) over days that ended before yesterday, and
    /// redoes the summarised days of calls changed since, one step at a time when
    /// there is nothing to commit (records arriving meanwhile wait in the ring, durable): at
    /// once while an old journal is being summarised, else once an hour (a step that finds
    /// nothing to do writes nothing). Yesterday stays out: its late records and imports would
    /// each touch the summary's page.
    fn summarise_days(&mut self) {
        let now = self.clock.now();
        if now < self.next_summary {
            return;
        }
        let target = self.clock.unix().div_euclid(store::DAY) * store::DAY - store::DAY;
        // Records per day first (the records counts), then the calls summary.
        let step = store::summarise_step(&self.conn, target).and_then(|more| match more {
            true => Ok(true),
            false => store::summarise_calls_step(&self.conn, target),
        });
        match step {
            Ok(true) => self.next_summary = now,
            Ok(false) => self.next_summary = now + SUMMARY_EVERY,
            Err(e) => {
                tracing::warn!(target: "journal", error = %e, "the day summary step failed; retrying later");
                self.next_summary = now + SUMMARY_EVERY;
            }
        }
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::SetCopyWatermark { id, reply } => {
                let r = store::advance_copy_watermark(&self.conn, id)
                    .map_err(|e| format!("cannot store the USB copy watermark: {e}"));
                if r.is_ok() {
                    self.marks.usb_copied_id = self.marks.usb_copied_id.max(id);
                }
                let _ = reply.send(r);
            }
            Control::PendingRecords(reply) => {
                let _ = reply.send(self.pending_records());
            }
            Control::FillGaps { coverage, reply } => {
                let r = gaps::fill(&mut self.conn, &coverage, self.clock.unix())
                    .map_err(|e| format!("cannot mark gaps filled in the ledger: {e}"));
                if r.is_ok() {
                    self.recount_open_gaps();
                }
                let _ = reply.send(r);
            }
            #[cfg(any(test, feature = "testing"))]
            Control::SetMaxPageCount { pages, reply } => {
                let r = self
                    .conn
                    .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map(|n| n.max(0) as u64)
                    .map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
        }
    }

    fn finish(&mut self) {
        let left = self.pending.len();
        if left > 0 {
            let memory_only = self.shared.state().memory_only();
            tracing::error!(target: "journal", left, memory_only,
                "journal stopping with uncommitted records; ring records replay at next start");
        }
        self.shared.writer_running.store(false, Ordering::SeqCst);
        for (_, w) in self.flush_waiters.drain(..) {
            let _ = w.send(Err("the journal is shutting down".into()));
        }
        tracing::info!(target: "journal", "journal writer stopped");
    }

    /// The status's gap count is the OPEN gaps (not filled by an import): stored ones from the
    /// table plus entries the ledger has not stored yet. Recounted after a fill and after
    /// retention deleted old gaps; between those, new gaps add one each.
    fn recount_open_gaps(&mut self) {
        match gaps::count_open(&self.conn) {
            Ok(n) => {
                let total = n + self.gaps.unstored();
                self.shared.gaps.store(total, Ordering::SeqCst);
            }
            Err(e) => {
                tracing::warn!(target: "journal", error = %e, "cannot count the open gaps");
            }
        }
    }

    /// Records dropped at the memory bound since the last turn go into the gap ledger.
    fn absorb_drops(&mut self) {
        let drops = std::mem::take(&mut *self.shared.dropped());
        let now = self.clock.now();
        for (pbx, d) in drops {
            if self.gaps.dropped(&pbx, &d, now) {
                self.shared.gaps.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// The record of a pending item: in memory, or read back from the ring.
    fn load(&self, it: &Item) -> Result<Option<CallRecord>, String> {
        if it.record.is_some() {
            return Ok(None);
        }
        let (Some(loc), Some(ring)) = (&it.loc, &self.ring) else {
            return Err(format!(
                "record seq {} is neither in memory nor in the ring",
                it.seq
            ));
        };
        let bytes = ring::read_payload(ring, loc).map_err(|e| e.to_string())?;
        self.shared.counters().ring_reads += 1;
        payload::decode(&bytes)
            .map(Some)
            .map_err(|e| format!("ring entry seq {}: {e}", it.seq))
    }

    fn pending_records(&self) -> Vec<CallRecord> {
        self.pending
            .iter()
            .filter_map(|it| match (&it.record, self.load(it)) {
                (Some(r), _) => Some((**r).clone()),
                (None, Ok(r)) => r,
                (None, Err(_)) => None,
            })
            .collect()
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
        // Only runs with nothing pending (else the commit comes first and this would spin).
        if self.pending.is_empty() {
            consider(self.next_summary);
        }
        if let Some(o) = self.oldest_change() {
            if self.yield_to_ring() {
                consider(now + YIELD_POLL);
            } else if self.group_full() {
                consider(now);
            } else {
                consider(o + self.flush_interval);
            }
        }
        d
    }

    /// The ring thread has a backlog (records handed over and not yet durable) and the ring
    /// has room: commits wait, so the ring thread has the CPU and the device to itself. In a
    /// burst both compete for the same two cores and the same `fsync`s, and the one that makes
    /// records durable must win — SQLite can catch up from the ring afterwards (measured with
    /// `cdrbox-bench proc`: commits running beside the ring thread during a 50,000-CDR blast
    /// took 3.6 s of its 3.7 s; BENCHMARKS.md "RSS in a burst"). Never while memory-only records
    /// wait (only a commit frees those), once the ring is half full, or while commits fail.
    fn yield_to_ring(&self) -> bool {
        let blocks = self.shared.ring_blocks.load(Ordering::SeqCst);
        let used = self.shared.ring_used_blocks.load(Ordering::SeqCst);
        self.failing.is_none()
            && blocks > 0
            && used * 2 < blocks
            && self.shared.held.records() >= YIELD_BACKLOG
            && self.shared.state().memory_only() == 0
    }

    /// Records are pending and either `flush_records` of them, or the ring is half full (so it
    /// never fills while SQLite works, whatever `flush_records` is), or memory-only records
    /// fill half the memory bound.
    fn group_full(&self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let blocks = self.shared.ring_blocks.load(Ordering::SeqCst);
        let used = self.shared.ring_used_blocks.load(Ordering::SeqCst);
        // Memory-only records (ring full, or one bigger than the ring) count against the
        // memory bound until committed: commit them before it refuses new records.
        let held = &self.shared.held;
        let memory_half_full = self.shared.state().memory_only() > 0
            && (held.bytes() * 2 >= held.max_bytes() || held.records() * 2 >= held.max_records());
        self.pending.len() >= self.flush_records
            || (blocks > 0 && used * 2 >= blocks)
            || memory_half_full
    }

    /// Arrival time of the oldest uncommitted change (record or gap).
    fn oldest_change(&self) -> Option<Mono> {
        let rec = self.pending.front().map(|p| p.arrived);
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
        if self.yield_to_ring() {
            return false;
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

    /// One small retention batch; reschedules itself.
    fn retention_step(&mut self) {
        let now_utc = self.clock.unix();
        let rows = self.shared.committed_rows.load(Ordering::SeqCst);
        match retention::step(&self.conn, &self.policy, now_utc, rows) {
            Ok((retention::Step::Deleted(n), copied)) => {
                self.marks.usb_copied_id = self.marks.usb_copied_id.max(copied);
                self.shared
                    .committed_rows
                    .fetch_sub(n as u64, Ordering::SeqCst);
                self.shared.counters().retention_deleted += n as u64;
                self.retention_more = true;
                self.next_retention = self.clock.now();
            }
            Ok((retention::Step::Done, copied)) => {
                self.marks.usb_copied_id = self.marks.usb_copied_id.max(copied);
                // A pass may have deleted old gaps with the old records.
                self.recount_open_gaps();
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
