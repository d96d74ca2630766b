//! The journal: every `CallRecord` durable on arrival, stored exactly once in SQLite, with a gap
//! ledger, retention and disk-full handling (PRODUCT.md §4, research/embedded.md §1).
//!
//! Shape: [`Journal::open`] checks and migrates the database, replays the ring file, and starts
//! ONE writer thread that owns the SQLite write connection and the ring. Producers talk to it
//! through a [`JournalHandle`] over an unbounded channel, so they never wait on the disk (the
//! AMI socket reader must not stall). Each record is made durable by one `pwrite`+`fdatasync`
//! into the pre-zeroed ring ([`ring`]) and moved into SQLite in group commits. Readers (web,
//! CLI, USB) use their own connection through [`JournalReader`]; WAL lets them run beside the
//! writer.
//!
//! This module must not parse AMI, render anything or know about HTTP.

pub mod measure;
mod payload;
pub mod query;
pub mod ring;
mod state;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testdata;
mod writer;

#[cfg(test)]
mod model_test;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, Mono};
use crate::config::StorageConfig;
use crate::record::CallRecord;
use crate::sink::{LinkEvent, RecordSink};
use crate::status::{Alarm, StorageStatus};

pub use query::{JournalReader, Totals};

/// True when a `cdrbox run` (any process) holds the journal at `paths` open for writing.
pub fn writer_running(paths: &JournalPaths) -> bool {
    let Ok(file) = std::fs::File::open(writer::open::lock_path(paths)) else {
        return false;
    };
    // The writer holds an exclusive lock; a shared one is refused while it runs. The lock is
    // released when `file` closes.
    matches!(
        file.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    )
}

/// Where the journal's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalPaths {
    /// The directory holding both files (created if missing).
    pub dir: PathBuf,
    /// The SQLite database.
    pub db: PathBuf,
    /// The ring file.
    pub ring: PathBuf,
}

impl JournalPaths {
    /// `[storage] path`: a directory gets `journal.sqlite` + `journal.ring`; a path ending in
    /// `.db`, `.sqlite` or `.sqlite3` is the database itself and the ring is `<file>.ring`.
    pub fn from_path(path: &Path) -> JournalPaths {
        let is_db = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "db" | "sqlite" | "sqlite3"));
        if is_db {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut ring = path.as_os_str().to_owned();
            ring.push(".ring");
            JournalPaths {
                dir,
                db: path.to_path_buf(),
                ring: PathBuf::from(ring),
            }
        } else {
            JournalPaths {
                dir: path.to_path_buf(),
                db: path.join("journal.sqlite"),
                ring: path.join("journal.ring"),
            }
        }
    }

    pub fn from_config(cfg: &StorageConfig) -> JournalPaths {
        JournalPaths::from_path(&cfg.path)
    }
}

/// What went wrong in the journal, and where.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{what}: {}: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {}: {source}", path.display())]
    Sqlite {
        what: String,
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("journal {} has schema version {found}, newer than this cdrbox supports ({supported}); \
             upgrade cdrbox or point [storage] path elsewhere", path.display())]
    FutureSchema {
        path: PathBuf,
        found: i32,
        supported: i32,
    },
    #[error("{} is an SQLite file that is not a cdrbox journal; point [storage] path elsewhere",
            path.display())]
    ForeignDatabase { path: PathBuf },
    #[error("no journal at {}: nothing has been recorded there yet", path.display())]
    NotFound { path: PathBuf },
    #[error("the journal writer thread is not running")]
    Stopped,
    #[error("the journal did not answer within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("{0}")]
    Commit(String),
}

/// One interval during which a PBX link was down (data may be missing there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub pbx: String,
    /// Start, Unix seconds (box clock).
    pub down_utc: i64,
    /// End, or `None` while the link is still down.
    pub up_utc: Option<i64>,
    /// Why: the link's down reason, or "cdrbox was not running".
    pub reason: String,
}

/// What [`Journal::open`] found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub paths: JournalPaths,
    /// A new database was created (first start, or after setting a damaged one aside).
    pub created: bool,
    /// Schema version before migrations ran (`Some(0)` for a new file).
    pub migrated_from: Option<i32>,
    /// Where a damaged database file was moved.
    pub damaged_set_aside: Option<PathBuf>,
    /// The ring file was (re)created.
    pub ring_created: bool,
    /// Valid entries found in the ring.
    pub ring_entries: usize,
    /// Torn or damaged ring entries skipped.
    pub ring_corrupt: usize,
    /// Ring entries newer than the database's committed point.
    pub replay_found: usize,
    /// Of those, records now inserted into SQLite.
    pub replayed: usize,
    /// Of those, records SQLite already held (same identity).
    pub replay_duplicates: usize,
    /// Of those, records left for the writer to commit (SQLite refused at open: locked/full).
    pub replay_deferred: usize,
    /// Rows in the journal after open.
    pub committed: u64,
}

/// The answer to [`JournalHandle::record_durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The record is on the device (ring synced, or committed) with this seq.
    Durable { seq: u64 },
    /// A record with the same identity was already stored or pending: not stored again.
    Duplicate,
}

/// Activity counters since open, for the write-cost benchmark ([`measure`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JournalCounters {
    /// Records accepted (not duplicates).
    pub records: u64,
    /// Of those, records that could not go into the ring (full or failing) and waited in
    /// memory only until committed.
    pub memory_only_records: u64,
    pub duplicates: u64,
    /// Ring batches written (each one pwrite + one fdatasync).
    pub ring_writes: u64,
    pub ring_bytes: u64,
    /// Successful SQLite commits of records/gaps/meta.
    pub commits: u64,
    pub commit_failures: u64,
    /// Records inserted into SQLite.
    pub inserted: u64,
    /// Records deleted by retention.
    pub retention_deleted: u64,
}

/// Messages to the writer thread.
pub(crate) enum Msg {
    Record {
        record: Box<CallRecord>,
        ack: Option<mpsc::Sender<Ack>>,
    },
    Link {
        pbx: String,
        at_utc: i64,
        event: LinkEvent,
    },
    Flush(mpsc::Sender<Result<(), String>>),
    SetCopyWatermark {
        id: i64,
        reply: mpsc::Sender<Result<(), String>>,
    },
    #[cfg(any(test, feature = "testing"))]
    SetMaxPageCount {
        pages: u64,
        reply: mpsc::Sender<Result<u64, String>>,
    },
    Shutdown,
    #[cfg(any(test, feature = "testing"))]
    Crash,
    /// The injected clock moved (a test's manual clock): re-check deadlines.
    Wake,
}

/// A record received but not yet committed.
pub(crate) struct Pending {
    pub seq: u64,
    pub record: Arc<CallRecord>,
    pub arrived: Mono,
    pub place: state::Place,
    pub ack: Option<mpsc::Sender<Ack>>,
}

/// Why commits are failing, for alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailKind {
    DiskFull,
    Locked,
    Other,
}

#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub commit: Option<(FailKind, String)>,
    pub ring: Option<String>,
    pub damaged: Option<PathBuf>,
}

/// State shared by the writer thread and every handle.
pub(crate) struct Shared {
    pub paths: JournalPaths,
    pub clock: Clock,
    pub memory_queue_records: usize,
    pub max_size_mb: u64,
    /// Records sent to the writer but not yet taken off the channel.
    pub queued: AtomicU64,
    /// Seq, durable and committed points (the rules are in [`state`]).
    pub state: Mutex<state::Durability>,
    pub pending: Mutex<VecDeque<Pending>>,
    pub committed_rows: AtomicU64,
    pub gaps: AtomicU64,
    pub lost: AtomicU64,
    pub writer_running: AtomicBool,
    pub started_utc: i64,
    pub counters: Mutex<JournalCounters>,
    pub problems: Mutex<Problems>,
    pub subscribers: Mutex<Vec<mpsc::Sender<CallRecord>>>,
}

impl Shared {
    pub(crate) fn counters(&self) -> std::sync::MutexGuard<'_, JournalCounters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn problems(&self) -> std::sync::MutexGuard<'_, Problems> {
        self.problems.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, state::Durability> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn stop(&self, msg: Msg) {
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = self.tx.send(msg);
            if h.join().is_err() {
                tracing::error!(target: "journal", "journal writer thread panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop(Msg::Shutdown);
    }
}

/// Entry point.
pub struct Journal;

/// How long [`JournalHandle::flush`] waits by default.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

impl Journal {
    /// Opens the journal at `cfg.path`: checks/migrates SQLite (a damaged file is set aside),
    /// replays ring records newer than the database, and starts the writer thread. `clock`
    /// stamps commits (wall time) and drives the group-commit, retry and retention timers
    /// (monotonic time).
    pub fn open(
        cfg: &StorageConfig,
        clock: Clock,
    ) -> Result<(JournalHandle, OpenReport), JournalError> {
        writer::open::open(cfg, clock)
    }
}

/// A cheap, cloneable handle to the journal writer. Dropping the last clone commits what is
/// pending and stops the thread.
#[derive(Clone)]
pub struct JournalHandle {
    inner: Arc<Inner>,
}

impl JournalHandle {
    pub(crate) fn new(
        tx: mpsc::Sender<Msg>,
        shared: Arc<Shared>,
        thread: JoinHandle<()>,
    ) -> JournalHandle {
        JournalHandle {
            inner: Arc::new(Inner {
                tx,
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn send(&self, msg: Msg) -> Result<(), JournalError> {
        self.inner.tx.send(msg).map_err(|_| JournalError::Stopped)
    }

    /// Sends a record to the writer with a channel for its [`Ack`].
    fn submit_with_ack(&self, record: CallRecord) -> Result<mpsc::Receiver<Ack>, JournalError> {
        let (tx, rx) = mpsc::channel();
        self.shared().queued.fetch_add(1, Ordering::SeqCst);
        self.send(Msg::Record {
            record: Box::new(record),
            ack: Some(tx),
        })
        .inspect_err(|_| {
            self.shared().queued.fetch_sub(1, Ordering::SeqCst);
        })?;
        Ok(rx)
    }

    /// Submits a record and waits until it is durable (ring synced or committed) or known to be
    /// a duplicate. For tests and tools; the AMI path uses the non-blocking `record`.
    pub fn record_durable(
        &self,
        record: CallRecord,
        timeout: Duration,
    ) -> Result<Ack, JournalError> {
        let rx = self.submit_with_ack(record)?;
        rx.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => JournalError::Timeout(timeout, "record durable"),
            mpsc::RecvTimeoutError::Disconnected => JournalError::Stopped,
        })
    }

    /// Submits records in order and waits until each is durable or known to be a duplicate,
    /// one answer per record in the same order. All are sent before the first wait, so a
    /// batch rides one ring write and group commit instead of one fsync per record (imports).
    pub fn record_batch(
        &self,
        records: Vec<CallRecord>,
        timeout: Duration,
    ) -> Result<Vec<Ack>, JournalError> {
        let mut waits = Vec::with_capacity(records.len());
        for record in records {
            waits.push(self.submit_with_ack(record)?);
        }
        let deadline = std::time::Instant::now() + timeout;
        waits
            .into_iter()
            .map(|rx| {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                rx.recv_timeout(left).map_err(|e| match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        JournalError::Timeout(timeout, "record batch")
                    }
                    mpsc::RecvTimeoutError::Disconnected => JournalError::Stopped,
                })
            })
            .collect()
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
        match rx.recv_timeout(timeout) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(JournalError::Commit(msg)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(JournalError::Timeout(timeout, "flush")),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(JournalError::Stopped),
        }
    }

    /// Stores the USB copy watermark (the highest `cdr.id` copied and verified). Retention
    /// with `keep_uncopied` never deletes rows above it.
    pub fn set_copy_watermark(&self, id: i64) -> Result<(), JournalError> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::SetCopyWatermark { id, reply: tx })?;
        match rx.recv_timeout(FLUSH_TIMEOUT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(JournalError::Commit(msg)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(JournalError::Timeout(FLUSH_TIMEOUT, "copy watermark"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(JournalError::Stopped),
        }
    }

    /// Sets SQLite's `max_page_count` on the writer connection and returns the value in force:
    /// a real SQLITE_FULL on demand, for disk-full tests (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn set_max_page_count(&self, pages: u64) -> Result<u64, JournalError> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::SetMaxPageCount { pages, reply: tx })?;
        match rx.recv_timeout(FLUSH_TIMEOUT) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(msg)) => Err(JournalError::Commit(msg)),
            Err(_) => Err(JournalError::Stopped),
        }
    }

    /// Stops the writer WITHOUT committing, as if the process died: what is in the ring stays
    /// there for the next open to replay (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn crash(&self) {
        self.inner.stop(Msg::Crash);
    }

    /// Commits what is pending and stops the writer thread (waits for it). Other clones stop
    /// working afterwards.
    pub fn shutdown(self) {
        self.inner.stop(Msg::Shutdown);
    }

    /// Receives every new record once it is durable (for the web's Server-Sent Events).
    /// Duplicates are not sent. Drop the receiver to unsubscribe.
    pub fn subscribe(&self) -> mpsc::Receiver<CallRecord> {
        let (tx, rx) = mpsc::channel();
        self.shared()
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    /// Records received but not yet committed to SQLite, oldest first (shown live on the page).
    pub fn pending_records(&self) -> Vec<CallRecord> {
        self.shared()
            .pending()
            .iter()
            .map(|p| (*p.record).clone())
            .collect()
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

    /// The storage part of the status snapshot.
    pub fn status(&self) -> StorageStatus {
        let s = self.shared();
        let file_len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = s.paths.db.as_os_str().to_owned();
        wal.push("-wal");
        let db_bytes = file_len(&s.paths.db) + file_len(Path::new(&wal));
        let (free_bytes, total_bytes) = fs_space(&s.paths.dir).unwrap_or((0, 0));
        let committed = s.committed_rows.load(Ordering::SeqCst);
        let (pending, memory_only) = {
            let st = s.state();
            (st.pending() as u64, st.memory_only() as u64)
        };
        let inserted = s.counters().inserted;
        let days_until_full = forecast_days(&Forecast {
            elapsed_seconds: s.clock.unix() - s.started_utc,
            inserted_since_start: inserted,
            rows: committed,
            db_bytes,
            free_bytes,
            max_size_bytes: s.max_size_mb.saturating_mul(1024 * 1024),
        });
        StorageStatus {
            path: s.paths.db.display().to_string(),
            committed,
            pending: pending.saturating_sub(memory_only),
            memory_only,
            db_bytes,
            free_bytes,
            total_bytes,
            days_until_full,
            gaps: s.gaps.load(Ordering::SeqCst),
        }
    }

    /// Active journal alarms, each with a short code and a sentence naming what to do.
    pub fn alarms(&self) -> Vec<Alarm> {
        let s = self.shared();
        let mut out = Vec::new();
        let (waiting, memory_only) = {
            let st = s.state();
            (st.pending(), st.memory_only())
        };
        let problems = s.problems();
        if !s.writer_running.load(Ordering::SeqCst) {
            out.push(Alarm {
                code: "JOURNAL STOPPED".into(),
                message: "The journal writer has stopped; new calls are not being recorded. \
                          Restart cdrbox."
                    .into(),
            });
        }
        if let Some((kind, msg)) = &problems.commit {
            let code = match kind {
                FailKind::DiskFull => "DISK FULL",
                FailKind::Locked => "JOURNAL STALL",
                FailKind::Other => "JOURNAL ERROR",
            };
            out.push(Alarm {
                code: code.into(),
                message: format!(
                    "{msg} {waiting} records are waiting; they are written \
                                  automatically when this is fixed."
                ),
            });
        }
        if let Some(msg) = &problems.ring {
            out.push(Alarm {
                code: "RING ERROR".into(),
                message: msg.clone(),
            });
        }
        if memory_only > 0 {
            out.push(Alarm {
                code: "RING FULL".into(),
                message: format!(
                    "{memory_only} records are held only in memory because the ring file is \
                     full or unwritable; they would be lost on a power cut."
                ),
            });
        }
        if self.backlog_full() {
            out.push(Alarm {
                code: "BACKLOG FULL".into(),
                message: format!(
                    "The journal backlog reached its limit ({} records, [storage] \
                     memory_queue_records); PBX links are paused until it drains.",
                    s.memory_queue_records
                ),
            });
        }
        if let Some(p) = &problems.damaged {
            out.push(Alarm {
                code: "DB REPLACED".into(),
                message: format!(
                    "The journal database was damaged and was moved to {}; a new one was \
                     started and refilled from the ring file. Older records are in the moved \
                     file.",
                    p.display()
                ),
            });
        }
        if let Some((free, total)) = fs_space(&s.paths.dir) {
            if total > 0 && (total - free.min(total)) * 100 / total >= 80 {
                out.push(Alarm {
                    code: "STORAGE 80%".into(),
                    message: format!(
                        "The storage holding {} is {} % full; free space or lower \
                         [storage] retention_days / max_size_mb.",
                        s.paths.dir.display(),
                        (total - free.min(total)) * 100 / total
                    ),
                });
            }
        }
        if s.lost.load(Ordering::SeqCst) > 0 {
            out.push(Alarm {
                code: "RECORDS LOST".into(),
                message: format!(
                    "{} records arrived after the journal writer stopped and were not stored.",
                    s.lost.load(Ordering::SeqCst)
                ),
            });
        }
        out
    }
}

impl RecordSink for JournalHandle {
    fn record(&self, record: CallRecord) {
        let s = self.shared();
        s.queued.fetch_add(1, Ordering::SeqCst);
        let sent = self.inner.tx.send(Msg::Record {
            record: Box::new(record),
            ack: None,
        });
        if sent.is_err() {
            s.queued.fetch_sub(1, Ordering::SeqCst);
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

    fn backlog_full(&self) -> bool {
        let s = self.shared();
        let waiting = s.queued.load(Ordering::SeqCst) + s.state().pending() as u64;
        waiting >= s.memory_queue_records as u64
    }
}

/// Free and total bytes of the filesystem holding `dir`.
pub fn fs_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_bavail as u64 * frsize, st.f_blocks as u64 * frsize))
}

/// Inputs of the days-until-full forecast.
#[derive(Debug, Clone, Copy)]
pub struct Forecast {
    pub elapsed_seconds: i64,
    pub inserted_since_start: u64,
    pub rows: u64,
    pub db_bytes: u64,
    pub free_bytes: u64,
    /// `max_size_mb` in bytes, 0 for no limit (at the limit retention starts deleting).
    pub max_size_bytes: u64,
}

/// Days until the disk (or `max_size_mb`) is full at the growth rate seen since start: rows
/// inserted per second × bytes per row. `None` before an hour of history or without growth.
pub fn forecast_days(f: &Forecast) -> Option<u32> {
    if f.elapsed_seconds < 3600 || f.inserted_since_start == 0 || f.rows == 0 {
        return None;
    }
    let bytes_per_row = f.db_bytes as f64 / f.rows as f64;
    let rate = f.inserted_since_start as f64 * bytes_per_row / f.elapsed_seconds as f64;
    if rate <= 0.0 {
        return None;
    }
    let mut room = f.free_bytes as f64;
    if f.max_size_bytes > 0 {
        room = room.min(f.max_size_bytes.saturating_sub(f.db_bytes) as f64);
    }
    let days = room / rate / 86_400.0;
    Some(days.clamp(0.0, 99_999.0) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_dir_and_file() {
        let p = JournalPaths::from_path(Path::new("/var/lib/cdrbox"));
        assert_eq!(p.db, Path::new("/var/lib/cdrbox/journal.sqlite"));
        assert_eq!(p.ring, Path::new("/var/lib/cdrbox/journal.ring"));
        let p = JournalPaths::from_path(Path::new("/media/usb/calls.sqlite3"));
        assert_eq!(p.dir, Path::new("/media/usb"));
        assert_eq!(p.db, Path::new("/media/usb/calls.sqlite3"));
        assert_eq!(p.ring, Path::new("/media/usb/calls.sqlite3.ring"));
        let p = JournalPaths::from_path(Path::new("j.db"));
        assert_eq!(p.dir, Path::new("."));
    }

    #[test]
    fn forecast_needs_history_and_uses_the_tighter_limit() {
        let base = Forecast {
            elapsed_seconds: 86_400,
            inserted_since_start: 1000,
            rows: 1000,
            db_bytes: 1_000_000,
            free_bytes: 100_000_000,
            max_size_bytes: 0,
        };
        // 1 MB/day growth, 100 MB free → 100 days.
        assert_eq!(forecast_days(&base), Some(100));
        assert_eq!(
            forecast_days(&Forecast {
                elapsed_seconds: 60,
                ..base
            }),
            None
        );
        assert_eq!(
            forecast_days(&Forecast {
                max_size_bytes: 11_000_000,
                ..base
            }),
            Some(10)
        );
    }
}

#[cfg(test)]
mod handle_tests {
    use super::*;

    #[test]
    fn handle_is_a_shareable_sink() {
        fn sink<T: RecordSink + Clone + Send + Sync>() {}
        sink::<JournalHandle>();
        fn send<T: Send>() {}
        send::<JournalReader>();
    }
}
