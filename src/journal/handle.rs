//! [`JournalHandle`]: what producers (the AMI links, imports) and consumers (web, USB, CLI) use.
//!
//! `record` never blocks and never grows memory without bound: when
//! `[storage] memory_queue_records` records or `memory_queue_kb` of their bytes are already held
//! only in memory (the ring is full or failing and SQLite cannot take them, or the ring thread
//! is stuck in a slow `fdatasync`), the new record is dropped, counted, alarmed and entered in
//! the gap ledger with its count.
//! The waiting calls (`record_durable`, `record_batch`, `flush`) apply back-pressure instead:
//! their caller can wait, so nothing of theirs is dropped.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
// Instant, not the box Clock: the caller's wait for the writer's acks is a guard against a
// writer that never answers, so it must end in real time even on a paused test clock.
use std::time::{Duration, Instant};

use crate::record::CallRecord;
use crate::sink::{LinkEvent, RecordSink};

use super::{
    budget, Ack, AckTo, Control, Coverage, Dropped, FilledGap, Integrity, JournalCounters,
    JournalError, JournalPaths, JournalReader, Msg, RingReport, Shared,
};

/// How long [`JournalHandle::flush`] waits by default.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// [`JournalHandle::record_batch`] hands records over this many at a time and waits for each
/// slice to be durable before the next, so an import of millions holds only a slice in memory.
pub const BATCH_SLICE: usize = 500;

struct Inner {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    /// The ring thread, the commit thread and the check thread (joined in that order).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    fn stop(&self, msg: Msg) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        if threads.is_empty() {
            return;
        }
        // A quick_check still running would keep the check thread (and a read of the whole
        // file) going for seconds after the stop.
        {
            let mut check = self.shared.check_stop();
            check.stopped = true;
            if let Some(i) = &check.interrupt {
                i.interrupt();
            }
        }
        let _ = self.tx.send(msg);
        for t in threads {
            if t.join().is_err() {
                tracing::error!(target: "journal", "a journal thread panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop(Msg::Shutdown);
    }
}

/// A cheap, cloneable handle to the journal. Dropping the last clone commits what is pending
/// and stops the threads.
#[derive(Clone)]
pub struct JournalHandle {
    inner: Arc<Inner>,
}

fn wait_reply<T>(
    rx: &mpsc::Receiver<Result<T, String>>,
    timeout: Duration,
    what: &'static str,
) -> Result<T, JournalError> {
    match rx.recv_timeout(timeout) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(msg)) => Err(JournalError::Commit(msg)),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(JournalError::Timeout(timeout, what)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(JournalError::Stopped),
    }
}

impl JournalHandle {
    pub(crate) fn new(
        tx: mpsc::Sender<Msg>,
        shared: Arc<Shared>,
        threads: Vec<JoinHandle<()>>,
    ) -> JournalHandle {
        JournalHandle {
            inner: Arc::new(Inner {
                tx,
                shared,
                threads: Mutex::new(threads),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn send(&self, msg: Msg) -> Result<(), JournalError> {
        self.inner.tx.send(msg).map_err(|_| JournalError::Stopped)
    }

    /// Hands records to the ring thread with acknowledgements to `tx` (indexes from 0). Counted
    /// as held in memory, never dropped: the caller waits.
    fn submit(
        &self,
        records: Vec<CallRecord>,
        tx: &mpsc::Sender<(usize, Ack)>,
    ) -> Result<(), JournalError> {
        let held = &self.shared().held;
        for (index, record) in records.into_iter().enumerate() {
            let bytes = budget::record_bytes(&record);
            held.add(bytes);
            let ack = Some(AckTo {
                tx: tx.clone(),
                index,
            });
            self.send(Msg::Record {
                record: Box::new(record),
                ack,
                bytes,
            })
            .inspect_err(|_| held.release(bytes))?;
        }
        Ok(())
    }

    /// Submits a record and waits until it is durable (ring synced or committed) or known to be
    /// a duplicate. For tests and tools; the AMI path uses the non-blocking `record`.
    pub fn record_durable(
        &self,
        record: CallRecord,
        timeout: Duration,
    ) -> Result<Ack, JournalError> {
        let (tx, rx) = mpsc::channel();
        self.submit(vec![record], &tx)?;
        rx.recv_timeout(timeout)
            .map(|(_, a)| a)
            .map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => JournalError::Timeout(timeout, "record durable"),
                mpsc::RecvTimeoutError::Disconnected => JournalError::Stopped,
            })
    }

    /// Submits many records (an import) and returns, in order, whether each is now durable or
    /// was a duplicate. Records go in slices of [`BATCH_SLICE`], each made durable (ring, or a
    /// commit when the ring is full) before the next is handed over, so memory stays flat and
    /// they ride the normal batched ring writes and group commits. Waits at most `timeout` per
    /// slice; on a time-out the records handed over so far are still stored later (a repeated
    /// import finds them as duplicates).
    pub fn record_batch(
        &self,
        records: Vec<CallRecord>,
        timeout: Duration,
    ) -> Result<Vec<Ack>, JournalError> {
        let mut out = Vec::with_capacity(records.len());
        let mut rest = records.into_iter().peekable();
        while rest.peek().is_some() {
            let slice: Vec<CallRecord> = rest.by_ref().take(BATCH_SLICE).collect();
            let n = slice.len();
            let (tx, rx) = mpsc::channel();
            self.submit(slice, &tx)?;
            drop(tx);
            let mut acks: Vec<Option<Ack>> = vec![None; n];
            let deadline = Instant::now() + timeout;
            for _ in 0..n {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok((i, a)) => {
                        if let Some(slot) = acks.get_mut(i) {
                            *slot = Some(a);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        return Err(JournalError::Timeout(timeout, "record batch"))
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Err(JournalError::Stopped),
                }
            }
            out.extend(acks.into_iter().flatten());
        }
        Ok(out)
    }

    /// Commits everything received so far and waits (at most [`FLUSH_TIMEOUT`]). Used before
    /// exports, USB copies and shutdown. Fails when SQLite refuses the commit (disk full,
    /// locked): the records then stay in the ring/memory and are retried.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.flush_timeout(FLUSH_TIMEOUT)
    }

    /// [`flush`](Self::flush) with a chosen time-out.
    pub fn flush_timeout(&self, timeout: Duration) -> Result<(), JournalError> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Flush(tx))?;
        wait_reply(&rx, timeout, "flush")
    }

    /// Moves the USB copy watermark forward to `id` (the highest `cdr.id` copied and
    /// verified; never back). Retention with `keep_uncopied` never deletes rows above it.
    pub fn set_copy_watermark(&self, id: i64) -> Result<(), JournalError> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Control(Control::SetCopyWatermark { id, reply: tx }))?;
        wait_reply(&rx, FLUSH_TIMEOUT, "copy watermark")
    }

    /// Marks the closed gaps of `coverage.pbx` that lie inside the covered interval as filled
    /// (from `coverage.origin`, with the records stored inside each) and returns them. Call
    /// it after the import's records are flushed. A gap filled before stays filled; its count
    /// grows by what this import added.
    pub fn fill_gaps(&self, coverage: Coverage) -> Result<Vec<FilledGap>, JournalError> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Control(Control::FillGaps {
            coverage,
            reply: tx,
        }))?;
        wait_reply(&rx, FLUSH_TIMEOUT, "gap fill")
    }

    /// Sets SQLite's `max_page_count` on the writer connection and returns the value in force:
    /// a real SQLITE_FULL on demand, for disk-full tests (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn set_max_page_count(&self, pages: u64) -> Result<u64, JournalError> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Control(Control::SetMaxPageCount { pages, reply: tx }))?;
        wait_reply(&rx, FLUSH_TIMEOUT, "max_page_count")
    }

    /// Stops both threads WITHOUT committing, as if the process died: what is in the ring stays
    /// there for the next open to replay (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn crash(&self) {
        self.inner.stop(Msg::Crash);
    }

    /// Commits what is pending and stops the threads (waits for them). Other clones stop
    /// working afterwards.
    pub fn shutdown(self) {
        self.inner.stop(Msg::Shutdown);
    }

    /// Receives every new record as it arrives (for the web's Server-Sent Events). Repeats
    /// recognised on arrival are not sent. A subscriber that has [`super::FEED_BYTES`] of
    /// copies waiting misses the next ones and is told how many
    /// ([`super::Subscription::take_skipped`]): a slow reader must not hold a burst in memory.
    /// Drop it to unsubscribe.
    pub fn subscribe(&self) -> super::Subscription {
        let (tx, rx) = super::feed::subscription();
        self.shared().subscribers().push(tx);
        rx
    }

    /// Records received but not yet committed to SQLite, oldest first (read back from the ring
    /// where they are not in memory). Empty when the journal does not answer in time.
    pub fn pending_records(&self) -> Vec<CallRecord> {
        let (tx, rx) = mpsc::channel();
        if self
            .send(Msg::Control(Control::PendingRecords(tx)))
            .is_err()
        {
            return Vec::new();
        }
        rx.recv_timeout(FLUSH_TIMEOUT).unwrap_or_default()
    }

    /// What the ring thread found at start, waiting at most `timeout` for its scan (`None`
    /// when it is not done by then).
    pub fn ring_report(&self, timeout: Duration) -> Option<RingReport> {
        self.shared().wait_ring_report(timeout)
    }

    /// Where the background integrity check stands.
    pub fn integrity(&self) -> Integrity {
        self.shared().integrity().clone()
    }

    /// Highest seq such that every record up to it is durable (ring or SQLite).
    pub fn durable_seq(&self) -> u64 {
        self.shared().state().durable()
    }

    /// Highest seq such that every record up to it is committed to SQLite.
    pub fn committed_seq(&self) -> u64 {
        self.shared().state().committed()
    }

    pub fn counters(&self) -> JournalCounters {
        *self.shared().counters()
    }

    pub fn paths(&self) -> &JournalPaths {
        &self.shared().paths
    }

    /// Opens a read connection on this journal.
    pub fn reader(&self) -> Result<JournalReader, JournalError> {
        JournalReader::open(&self.shared().paths)
    }

    /// The memory queue is three quarters full while waiting would help: the ring works and
    /// either has room (the ring thread is behind a burst and will catch up, whatever SQLite
    /// does) or SQLite commits (and frees ring blocks as it goes). With the ring failing, or
    /// full while SQLite refuses commits, nothing frees memory soon, so this is false and the
    /// records beyond the bound are dropped and ledgered rather than pushed back on the PBX.
    /// The AMI link asks this through [`RecordSink::behind`] and stops reading for at most a
    /// second ([`crate::ami::pause`]); producers that may wait longer, such as the wear
    /// benchmark, can.
    pub fn behind(&self) -> bool {
        let s = self.shared();
        if !s.held.nearly_full() {
            return false;
        }
        let used = s.ring_used_blocks.load(Ordering::Relaxed);
        let blocks = s.ring_blocks.load(Ordering::Relaxed);
        let ring_has_room = blocks > 0 && used.saturating_mul(8) < blocks.saturating_mul(7);
        let p = s.problems();
        p.ring.is_none() && (ring_has_room || p.commit.is_none())
    }

    /// The memory bound was reached: count the record and note it for the gap ledger.
    fn drop_at_bound(&self, record: &CallRecord) {
        let s = self.shared();
        let now = s.clock.unix();
        s.counters().dropped += 1;
        let mut dropped = s.dropped();
        match dropped.get_mut(&record.pbx) {
            Some(d) => {
                d.last_utc = d.last_utc.max(now);
                d.count += 1;
            }
            None => {
                tracing::error!(target: "journal", pbx = %record.pbx,
                    held_records = s.held.records(), held_bytes = s.held.bytes(),
                    bound_records = s.held.max_records(), bound_bytes = s.held.max_bytes(),
                    "journal memory bound reached: dropping new records (counted in the gap ledger)");
                dropped.insert(
                    record.pbx.clone(),
                    Dropped {
                        first_utc: now,
                        last_utc: now,
                        count: 1,
                    },
                );
            }
        }
    }
}

impl RecordSink for JournalHandle {
    fn record(&self, record: CallRecord) {
        let s = self.shared();
        let bytes = budget::record_bytes(&record);
        if !s.held.admit(bytes) {
            self.drop_at_bound(&record);
            return;
        }
        let sent = self.inner.tx.send(Msg::Record {
            record: Box::new(record),
            ack: None,
            bytes,
        });
        if sent.is_err() {
            s.held.release(bytes);
            s.lost.fetch_add(1, Ordering::SeqCst);
            tracing::error!(target: "journal", "record arrived after the journal stopped");
        }
    }

    fn link_event(&self, pbx: &str, at_utc: i64, event: LinkEvent) {
        let _ = self.inner.tx.send(Msg::Link {
            pbx: pbx.to_string(),
            at_utc,
            event,
        });
    }

    fn behind(&self) -> bool {
        JournalHandle::behind(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_a_shareable_sink() {
        fn sink<T: RecordSink + Clone + Send + Sync>() {}
        sink::<JournalHandle>();
        fn send<T: Send>() {}
        send::<JournalReader>();
    }
}
