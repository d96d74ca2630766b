//! The journal writer thread: the one owner of the SQLite write connection and the ring file.
//!
//! Loop: wait for messages (or the next deadline), take everything available, write all new
//! records to the ring in ONE batch (one pwrite + one fdatasync), acknowledge them, then group
//! commit into SQLite when `flush_interval` has passed since the oldest pending record, when
//! `flush_records` are pending, or when asked (flush, USB watermark, shutdown). A failed commit
//! (disk full, locked, I/O error) rolls back and is retried with backoff while ring writes go
//! on; the records stay pending. Retention runs here too, in small batches.
//!
//! Must not block producers: they only ever `send` on an unbounded channel.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use crate::config::StorageConfig;
use crate::record::CallRecord;
use crate::sink::LinkEvent;

use super::ring::{self, Ring, RingEntry};
use super::store;
use super::{
    payload, Ack, Clock, FailKind, JournalCounters, JournalError, JournalHandle, JournalPaths, Msg,
    OpenReport, Pending, Problems, Shared,
};

/// Records per SQLite transaction when a backlog drains (keeps the WAL near its steady size).
const COMMIT_CHUNK: usize = 1000;
/// Messages taken off the channel per loop turn.
const MAX_DRAIN: usize = 512;
/// Without calls, `last_alive_utc` is still refreshed this often (it dates "box was off" gaps).
const HEARTBEAT: Duration = Duration::from_secs(15 * 60);
/// Retention runs at start and then at most this often.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Reason written for the interval the box itself was not running.
pub const BOX_OFF_REASON: &str = "cdrbox was not running";

fn io_err(what: &str, path: &std::path::Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

fn sql_err(what: &str, path: &std::path::Path, source: rusqlite::Error) -> JournalError {
    JournalError::Sqlite {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

/// Opens everything and starts the thread (see `Journal::open`).
/// Takes an exclusive `flock` on `journal.lock` beside the journal, so a second `cdrbox run` (or
/// a test) on the same data cannot write the ring at the same time — two writers would
/// overwrite each other's uncommitted ring entries. The kernel drops the lock when the process
/// dies, so a SIGKILL never leaves a stale lock behind.
fn lock_journal(paths: &JournalPaths) -> Result<std::fs::File, JournalError> {
    use std::os::fd::AsRawFd;
    let path = paths.dir.join(format!(
        "{}.lock",
        paths
            .db
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "journal".into())
    ));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err("cannot create the journal lock file", &path, e))?;
    // SAFETY: flock(2) on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        let what = if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            "another cdrbox process is already writing this journal (stop it first, or point [storage] path elsewhere)"
        } else {
            "cannot lock the journal"
        };
        return Err(io_err(what, &path, err));
    }
    Ok(file)
}

pub(crate) fn open(
    cfg: &StorageConfig,
    clock: Clock,
) -> Result<(JournalHandle, OpenReport), JournalError> {
    let paths = JournalPaths::from_config(cfg);
    std::fs::create_dir_all(&paths.dir)
        .map_err(|e| io_err("cannot create the journal directory", &paths.dir, e))?;
    let lock = lock_journal(&paths)?;
    let now_utc = clock();
    let scan = ring::scan_file(&paths.ring)
        .map_err(|e| io_err("cannot read the ring file", &paths.ring, e))?;
    let opened = store::open_writer(&paths.db, now_utc)?;
    let conn = opened.conn;
    let db = paths.db.clone();
    let committed_seq = store::meta_get(&conn, store::META_COMMITTED_SEQ)
        .map_err(|e| sql_err("cannot read meta", &db, e))?
        .unwrap_or(0)
        .max(0) as u64;
    let max_db_seq: i64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM cdr", [], |r| r.get(0))
        .map_err(|e| sql_err("cannot read max(seq)", &db, e))?;
    let max_ring_seq = scan.entries.last().map_or(0, |e| e.seq);
    let mut next_seq = committed_seq
        .max(max_db_seq.max(0) as u64)
        .max(max_ring_seq)
        + 1;

    // Replay ring entries SQLite does not have yet.
    let uncommitted: Vec<RingEntry> = scan
        .entries
        .iter()
        .filter(|e| e.seq > committed_seq)
        .cloned()
        .collect();
    let mut corrupt = scan.corrupt;
    let mut decoded: Vec<(u64, CallRecord)> = Vec::new();
    for e in &uncommitted {
        match payload::decode(&e.payload) {
            Ok(r) => decoded.push((e.seq, r)),
            Err(err) => {
                corrupt += 1;
                tracing::warn!(target: "journal", seq = e.seq, error = %err,
                    "ring entry with a valid CRC does not decode; skipped");
            }
        }
    }
    let mut report = OpenReport {
        paths: paths.clone(),
        created: opened.created,
        migrated_from: opened.migrated_from,
        damaged_set_aside: opened.set_aside.clone(),
        ring_created: false,
        ring_entries: scan.entries.len(),
        ring_corrupt: corrupt,
        replay_found: uncommitted.len(),
        replayed: 0,
        replay_duplicates: 0,
        replay_deferred: 0,
        committed: 0,
    };
    let mut replay_committed_to = committed_seq;
    let mut deferred: Vec<(u64, CallRecord)> = Vec::new();
    if !uncommitted.is_empty() {
        let top = uncommitted
            .iter()
            .map(|e| e.seq)
            .max()
            .unwrap_or(committed_seq);
        match replay(&conn, &decoded, top, now_utc) {
            Ok(inserted) => {
                report.replayed = inserted;
                report.replay_duplicates = decoded.len() - inserted;
                replay_committed_to = top;
            }
            Err(e) => {
                tracing::error!(target: "journal", error = %e,
                    "cannot commit the ring replay now; the writer will retry");
                report.replay_deferred = decoded.len();
                deferred = decoded;
            }
        }
    }

    // The ring file itself.
    let want = ring::ring_bytes_for_kb(cfg.ring_kb);
    let existing = std::fs::metadata(&paths.ring).map(|m| m.len()).ok();
    let clean = deferred.is_empty();
    let usable = existing.is_some_and(ring::usable_size);
    let mut ring_problem = None;
    if (clean && existing != Some(want)) || !usable {
        match ring::create_file(&paths.ring, want) {
            Ok(()) => report.ring_created = true,
            Err(e) => ring_problem = Some(e),
        }
    }
    // With a fresh file nothing is protected; with the old one, the deferred entries are.
    let protected: Vec<RingEntry> = if report.ring_created || clean {
        Vec::new()
    } else {
        uncommitted
            .iter()
            .filter(|e| deferred.iter().any(|d| d.0 == e.seq))
            .cloned()
            .collect()
    };
    let ring = match ring_problem.take() {
        Some(e) => Err(e),
        None => Ring::open(&paths.ring, &protected),
    };
    let ring = match ring {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(target: "journal", path = %paths.ring.display(), error = %e,
                "ring file unusable: records are held in memory until committed");
            ring_problem = Some(e);
            None
        }
    };

    let in_ring = !report.ring_created && ring.is_some();
    let committed_rows =
        store::count_records(&conn).map_err(|e| sql_err("cannot count records", &db, e))?;
    report.committed = committed_rows;
    let gap_rows: i64 = conn
        .query_row("SELECT count(*) FROM gaps", [], |r| r.get(0))
        .map_err(|e| sql_err("cannot count gaps", &db, e))?;
    let last_alive = store::meta_get(&conn, store::META_LAST_ALIVE)
        .map_err(|e| sql_err("cannot read meta", &db, e))?;
    let usb_copied_id = store::meta_get(&conn, store::META_USB_COPIED_ID)
        .map_err(|e| sql_err("cannot read meta", &db, e))?
        .unwrap_or(0);
    let mut open_gaps = HashMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT id, pbx, down_utc, reason FROM gaps WHERE up_utc IS NULL ORDER BY id")
            .map_err(|e| sql_err("cannot read gaps", &db, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            })
            .map_err(|e| sql_err("cannot read gaps", &db, e))?;
        for row in rows {
            let (id, pbx, down_utc, reason) = row.map_err(|e| sql_err("bad gap row", &db, e))?;
            open_gaps.entry(pbx).or_insert(OpenGap {
                rowid: Some(id),
                down_utc,
                reason,
            });
        }
    }

    let shared = Arc::new(Shared {
        paths: paths.clone(),
        clock: clock.clone(),
        memory_queue_records: cfg.memory_queue_records.max(1),
        max_size_mb: cfg.max_size_mb,
        queued: AtomicU64::new(0),
        pending: Mutex::new(Default::default()),
        pending_count: AtomicU64::new(0),
        memory_only: AtomicU64::new(0),
        committed_rows: AtomicU64::new(committed_rows),
        committed_seq: AtomicU64::new(replay_committed_to),
        durable_seq: AtomicU64::new(next_seq - 1),
        gaps: AtomicU64::new(gap_rows.max(0) as u64),
        lost: AtomicU64::new(0),
        writer_running: AtomicBool::new(true),
        started_utc: now_utc,
        counters: Mutex::new(JournalCounters {
            inserted: report.replayed as u64,
            ..JournalCounters::default()
        }),
        problems: Mutex::new(Problems {
            commit: None,
            ring: ring_problem.map(|e| {
                format!(
                    "The ring file {} cannot be used ({e}); records are durable only once \
                     committed. Check the storage device.",
                    paths.ring.display()
                )
            }),
            damaged: opened.set_aside.clone(),
        }),
        subscribers: Mutex::new(Vec::new()),
    });

    let now = Instant::now();
    let mut pending_ids = HashSet::new();
    {
        let mut pending = shared.pending();
        for (seq, record) in deferred {
            pending_ids.insert(record.identity);
            pending.push_back(Pending {
                seq,
                record: Arc::new(record),
                arrived: now,
                in_ring,
                ack: None,
            });
        }
        shared
            .pending_count
            .store(pending.len() as u64, Ordering::SeqCst);
        let mem = if in_ring { 0 } else { pending.len() as u64 };
        shared.memory_only.store(mem, Ordering::SeqCst);
    }
    next_seq = next_seq.max(1);

    let (tx, rx) = mpsc::channel();
    let writer = Writer {
        shared: shared.clone(),
        conn,
        ring,
        rx,
        next_seq,
        last_accepted_seq: next_seq - 1,
        committed_seq: replay_committed_to,
        pending_ids,
        flush_interval: cfg.flush_interval,
        flush_records: cfg.flush_records.max(1),
        retention_days: cfg.retention_days,
        max_size_mb: cfg.max_size_mb,
        keep_uncopied: cfg.keep_uncopied,
        usb_copied_id,
        failing: None,
        flush_waiters: Vec::new(),
        gaps: GapLedger {
            open: open_gaps,
            closed: Vec::new(),
            seen: HashSet::new(),
            last_alive,
            dirty_since: None,
        },
        last_commit: now,
        next_retention: now,
        retention_more: false,
    };
    let thread = std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || {
            // Marks the writer stopped however `run` ends, panics included, so the status
            // page shows JOURNAL STOPPED instead of a silently dead journal.
            struct Stopped(Arc<Shared>);
            impl Drop for Stopped {
                fn drop(&mut self) {
                    self.0.writer_running.store(false, Ordering::SeqCst);
                }
            }
            let _guard = Stopped(writer.shared.clone());
            // Held (and so the flock kept) for as long as this thread writes.
            let _lock = lock;
            writer.run()
        })
        .map_err(|e| io_err("cannot start the journal writer thread", &paths.db, e))?;
    Ok((JournalHandle::new(tx, shared, thread), report))
}

/// Inserts replayed ring records and moves `committed_seq` to `top` in one transaction.
fn replay(
    conn: &Connection,
    records: &[(u64, CallRecord)],
    top: u64,
    now_utc: i64,
) -> rusqlite::Result<usize> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut inserted = 0;
    for (seq, r) in records {
        if store::insert_record(&tx, *seq, r)? {
            inserted += 1;
        }
    }
    store::meta_set(&tx, store::META_COMMITTED_SEQ, top as i64)?;
    store::meta_set(&tx, store::META_LAST_ALIVE, now_utc)?;
    tx.commit()?;
    Ok(inserted)
}

/// A link-down interval not yet closed.
#[derive(Debug, Clone)]
struct OpenGap {
    /// Row id once stored (with `up_utc` NULL).
    rowid: Option<i64>,
    down_utc: i64,
    reason: String,
}

/// A closed interval waiting for the next commit.
#[derive(Debug, Clone)]
struct ClosedGap {
    rowid: Option<i64>,
    pbx: String,
    down_utc: i64,
    up_utc: i64,
    reason: String,
}

/// The gap ledger's in-memory side: open gaps per PBX and closed ones not yet stored.
struct GapLedger {
    open: HashMap<String, OpenGap>,
    closed: Vec<ClosedGap>,
    /// PBXs that reported a link event since start.
    seen: HashSet<String>,
    /// From meta at start: when the previous run was last known alive.
    last_alive: Option<i64>,
    /// Set when there is something to store.
    dirty_since: Option<Instant>,
}

impl GapLedger {
    /// Applies a link event; returns true when a new gap opened.
    fn event(&mut self, pbx: &str, at_utc: i64, event: &LinkEvent) -> bool {
        let mut opened = false;
        if self.seen.insert(pbx.to_string()) && !self.open.contains_key(pbx) {
            // First word from this PBX in this run: the time the box was off is a gap too.
            if let Some(t) = self.last_alive.filter(|t| *t < at_utc) {
                self.open.insert(
                    pbx.to_string(),
                    OpenGap {
                        rowid: None,
                        down_utc: t,
                        reason: BOX_OFF_REASON.into(),
                    },
                );
                opened = true;
                self.dirty_since.get_or_insert_with(Instant::now);
            }
        }
        match event {
            LinkEvent::Down { reason, .. } => {
                if !self.open.contains_key(pbx) {
                    self.open.insert(
                        pbx.to_string(),
                        OpenGap {
                            rowid: None,
                            down_utc: at_utc,
                            reason: reason.clone(),
                        },
                    );
                    opened = true;
                    self.dirty_since.get_or_insert_with(Instant::now);
                }
            }
            LinkEvent::Up { .. } => {
                if let Some(g) = self.open.remove(pbx) {
                    self.closed.push(ClosedGap {
                        rowid: g.rowid,
                        pbx: pbx.to_string(),
                        down_utc: g.down_utc,
                        up_utc: at_utc.max(g.down_utc),
                        reason: g.reason,
                    });
                    self.dirty_since.get_or_insert_with(Instant::now);
                }
            }
            LinkEvent::Connecting { .. } | LinkEvent::Discarded { .. } => {}
        }
        opened
    }

    /// Writes pending gap changes in `tx`; returns the row ids of newly stored open gaps, to be
    /// applied by [`GapLedger::stored`] once the transaction commits.
    fn store(&self, tx: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
        for c in &self.closed {
            match c.rowid {
                Some(id) => {
                    tx.prepare_cached("UPDATE gaps SET up_utc = ?1 WHERE id = ?2")?
                        .execute(rusqlite::params![c.up_utc, id])?;
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO gaps (pbx, down_utc, up_utc, reason) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(rusqlite::params![c.pbx, c.down_utc, c.up_utc, c.reason])?;
                }
            }
        }
        let mut ids = Vec::new();
        for (pbx, g) in &self.open {
            if g.rowid.is_none() {
                tx.prepare_cached(
                    "INSERT INTO gaps (pbx, down_utc, up_utc, reason) VALUES (?1, ?2, NULL, ?3)",
                )?
                .execute(rusqlite::params![pbx, g.down_utc, g.reason])?;
                ids.push((pbx.clone(), tx.last_insert_rowid()));
            }
        }
        Ok(ids)
    }

    fn stored(&mut self, ids: Vec<(String, i64)>) {
        self.closed.clear();
        for (pbx, id) in ids {
            if let Some(g) = self.open.get_mut(&pbx) {
                g.rowid = Some(id);
            }
        }
        self.dirty_since = None;
    }
}

struct Failing {
    next_retry: Instant,
    backoff: Duration,
}

struct Writer {
    shared: Arc<Shared>,
    conn: Connection,
    ring: Option<Ring>,
    rx: mpsc::Receiver<Msg>,
    next_seq: u64,
    /// Highest seq handed to `accept` (durable or memory-only).
    last_accepted_seq: u64,
    committed_seq: u64,
    pending_ids: HashSet<[u8; 16]>,
    flush_interval: Duration,
    flush_records: usize,
    retention_days: u32,
    max_size_mb: u64,
    keep_uncopied: bool,
    usb_copied_id: i64,
    failing: Option<Failing>,
    /// Flush requests: reply once everything up to the seq is committed.
    flush_waiters: Vec<(u64, mpsc::Sender<Result<(), String>>)>,
    gaps: GapLedger,
    last_commit: Instant,
    next_retention: Instant,
    retention_more: bool,
}

/// A record taken off the channel this turn.
struct Arrival {
    seq: u64,
    record: CallRecord,
    payload: Vec<u8>,
    ack: Option<mpsc::Sender<Ack>>,
}

impl Writer {
    fn run(mut self) {
        tracing::info!(target: "journal", db = %self.shared.paths.db.display(), "journal writer started");
        let mut shutdown = false;
        while !shutdown {
            let now = Instant::now();
            let mut msgs = Vec::new();
            let first = match self.next_deadline(now) {
                Some(d) => self
                    .rx
                    .recv_timeout(d.saturating_duration_since(now))
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
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        let payload = payload::encode(&record);
                        arrivals.push(Arrival {
                            seq,
                            record: *record,
                            payload,
                            ack,
                        });
                    }
                    Msg::Link { pbx, at_utc, event } => {
                        if self.gaps.event(&pbx, at_utc, &event) {
                            self.shared.gaps.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Msg::Flush(reply) => {
                        self.flush_waiters.push((self.next_seq - 1, reply));
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
                    self.accept(std::mem::take(&mut slice));
                    slice_bytes = 0;
                    if self.commit_due(Instant::now()) {
                        self.commit(false);
                    }
                }
                slice_bytes += size;
                slice.push(a);
            }
            if !slice.is_empty() {
                self.accept(slice);
            }
            if shutdown {
                force = true;
            }
            if force || self.commit_due(Instant::now()) {
                self.commit(force);
            }
            if !shutdown && !self.failing_now() && Instant::now() >= self.next_retention {
                self.retention_step();
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        let left = self.shared.pending_count.load(Ordering::SeqCst);
        let memory_only = self.shared.memory_only.load(Ordering::SeqCst);
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

    fn failing_now(&self) -> bool {
        self.failing.is_some()
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
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        // While commits fail, only the retry timer matters (retention and heartbeat wait for
        // a working database; waking for them would spin).
        if let Some(f) = &self.failing {
            return Some(f.next_retry);
        }
        let mut d: Option<Instant> = None;
        let mut consider = |t: Instant| d = Some(d.map_or(t, |x: Instant| x.min(t)));
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
        self.shared.pending_count.load(Ordering::SeqCst) >= self.flush_records as u64
            || self
                .ring
                .as_ref()
                .is_some_and(|r| r.used_blocks() * 2 >= r.blocks())
    }

    /// Arrival time of the oldest uncommitted change (record or gap).
    fn oldest_change(&self) -> Option<Instant> {
        let rec = self.shared.pending().front().map(|p| p.arrived);
        match (rec, self.gaps.dirty_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn commit_due(&self, now: Instant) -> bool {
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

    /// Writes new records to the ring (one batch), queues them for SQLite, acknowledges.
    fn accept(&mut self, arrivals: Vec<Arrival>) {
        let payloads: Vec<&[u8]> = arrivals.iter().map(|a| a.payload.as_slice()).collect();
        let mut in_ring = vec![false; arrivals.len()];
        if let Some(ring) = &mut self.ring {
            let max = ring.max_payload();
            let mut todo: Vec<usize> = (0..arrivals.len())
                .filter(|&i| payloads[i].len() <= max)
                .collect();
            while !todo.is_empty() {
                let entries: Vec<(u64, &[u8])> = todo
                    .iter()
                    .map(|&i| (arrivals[i].seq, payloads[i]))
                    .collect();
                match ring.append(&entries) {
                    Ok(0) => break,
                    Ok(n) => {
                        for &i in &todo[..n] {
                            in_ring[i] = true;
                        }
                        todo.drain(..n);
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
        let now = Instant::now();
        let mut memory_only = 0u64;
        self.shared.counters().records += arrivals.len() as u64;
        if let Some(last) = arrivals.last() {
            self.last_accepted_seq = last.seq;
        }
        // Acks go out after durable_seq is published, so an acknowledged record is always
        // covered by durable_seq.
        let mut acks = Vec::new();
        {
            let mut pending = self.shared.pending();
            for (a, durable) in arrivals.into_iter().zip(in_ring) {
                let record = Arc::new(a.record);
                let mut ack = a.ack;
                if durable {
                    if let Some(tx) = ack.take() {
                        acks.push((tx, a.seq));
                    }
                } else {
                    memory_only += 1;
                }
                self.notify(&record);
                pending.push_back(Pending {
                    seq: a.seq,
                    record,
                    arrived: now,
                    in_ring: durable,
                    ack,
                });
            }
            self.shared
                .pending_count
                .store(pending.len() as u64, Ordering::SeqCst);
            self.publish_durable(&pending);
        }
        for (tx, seq) in acks {
            let _ = tx.send(Ack::Durable { seq });
        }
        if memory_only > 0 {
            self.shared.counters().memory_only_records += memory_only;
            self.shared
                .memory_only
                .fetch_add(memory_only, Ordering::SeqCst);
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

    /// durable_seq = everything below the oldest memory-only record (or all assigned seqs).
    fn publish_durable(&self, pending: &std::collections::VecDeque<Pending>) {
        let durable = pending
            .iter()
            .find(|p| !p.in_ring)
            .map_or(self.last_accepted_seq, |p| p.seq - 1);
        self.shared.durable_seq.store(durable, Ordering::SeqCst);
    }

    /// Commits pending changes: one chunk when merely due, everything when forced.
    fn commit(&mut self, force: bool) {
        if let Some(f) = &self.failing {
            if !force && Instant::now() < f.next_retry {
                return;
            }
        }
        loop {
            match self.commit_chunk() {
                Ok(more) => {
                    self.last_commit = Instant::now();
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
        let committed = self.committed_seq;
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
            next_retry: Instant::now() + backoff,
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
        let new_committed = batch
            .last()
            .map_or(self.committed_seq, |b| b.0)
            .max(self.committed_seq);
        let now_utc = (self.shared.clock)();
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
        self.committed_seq = new_committed;
        let mut freed_memory_only = 0u64;
        let mut acks = Vec::new();
        let remaining = {
            let mut pending = self.shared.pending();
            for _ in 0..batch.len() {
                if let Some(p) = pending.pop_front() {
                    self.pending_ids.remove(&p.record.identity);
                    if !p.in_ring {
                        freed_memory_only += 1;
                        if let Some(a) = p.ack {
                            acks.push((a, p.seq));
                        }
                    }
                }
            }
            self.shared
                .pending_count
                .store(pending.len() as u64, Ordering::SeqCst);
            self.publish_durable(&pending);
            pending.len()
        };
        if freed_memory_only > 0 {
            self.shared
                .memory_only
                .fetch_sub(freed_memory_only, Ordering::SeqCst);
        }
        if let Some(ring) = &mut self.ring {
            ring.release(new_committed);
        }
        self.shared
            .committed_seq
            .store(new_committed, Ordering::SeqCst);
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

    /// One small retention batch; reschedules itself.
    fn retention_step(&mut self) {
        let now_utc = (self.shared.clock)();
        let max_id = self.keep_uncopied.then_some(self.usb_copied_id);
        let result = (|| -> rusqlite::Result<usize> {
            if self.retention_days > 0 {
                let cutoff = now_utc - i64::from(self.retention_days) * 86_400;
                let n = store::delete_older_than(&self.conn, cutoff, max_id)?;
                if n > 0 {
                    return Ok(n);
                }
                store::delete_gaps_before(&self.conn, cutoff)?;
            }
            if self.max_size_mb > 0 {
                let limit = self.max_size_mb.saturating_mul(1024 * 1024);
                if store::used_bytes(&self.conn)? > limit {
                    return store::delete_oldest(&self.conn, max_id);
                }
            }
            Ok(0)
        })();
        match result {
            Ok(n) if n > 0 => {
                self.shared
                    .committed_rows
                    .fetch_sub(n as u64, Ordering::SeqCst);
                self.shared.counters().retention_deleted += n as u64;
                self.retention_more = true;
            }
            Ok(_) => {
                self.retention_more = false;
                self.next_retention = Instant::now() + RETENTION_EVERY;
            }
            Err(e) => {
                tracing::warn!(target: "journal", error = %e, "retention failed; retrying later");
                self.retention_more = false;
                self.next_retention = Instant::now() + RETRY_MAX;
            }
        }
        if self.retention_more {
            self.next_retention = Instant::now();
        }
    }
}
