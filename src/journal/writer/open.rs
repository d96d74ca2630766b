//! Opening the journal: lock it against a second writer, open and migrate SQLite, read where it
//! stands (O(1) reads only), and start the threads. Nothing here reads the whole database or the
//! whole ring: a box with years of calls starts as fast as an empty one (issue 10 item 4).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{Connection, OptionalExtension};

use crate::clock::Clock;
use crate::config::StorageConfig;

use super::super::state::Durability;
use super::super::{budget, ring};
use super::super::{
    store, Integrity, JournalCounters, JournalError, JournalHandle, JournalPaths, OpenReport,
    Problems, Shared,
};
use super::check;
use super::gaps::{self, GapLedger};
use super::intake::{Intake, RingSetup};
use super::retention::Policy;
use super::{io_err, Marks, ToCommit, Writer};

/// The lock file beside the database (`journal.sqlite.lock`).
pub(crate) fn lock_path(paths: &JournalPaths) -> std::path::PathBuf {
    let name = paths
        .db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal".into());
    paths.dir.join(format!("{name}.lock"))
}

/// The journal holds every caller's number: its directory is made 0750 whatever the umask
/// (issue 11, finding 4); parents made on the way get the same mode.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)?;
    // DirBuilder's mode is still masked by the umask, which may take away our own bits; set it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
}

/// A journal left open to others (made by an older version, copied in, or chmod-ed by hand) is
/// closed again at start: the directory to at most 0750, the database, its WAL/SHM, the ring
/// and the lock to at most 0640. Returns one warning per path it had to change, naming the
/// old and new modes, so the owner learns the files were readable.
pub(crate) fn tighten_modes(paths: &JournalPaths) -> Vec<String> {
    let mut changed = Vec::new();
    let wal = sibling(&paths.db, "-wal");
    let shm = sibling(&paths.db, "-shm");
    let lock = lock_path(paths);
    let targets: [(&Path, u32); 6] = [
        (&paths.dir, 0o750),
        (&paths.db, 0o640),
        (&wal, 0o640),
        (&shm, 0o640),
        (&paths.ring, 0o640),
        (&lock, 0o640),
    ];
    for (path, allowed) in targets {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & !allowed == 0 {
            continue;
        }
        let new = mode & allowed;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(new)) {
            Ok(()) => changed.push(format!(
                "{} was open to others (mode {mode:04o}); now {new:04o}",
                path.display()
            )),
            Err(e) => changed.push(format!(
                "{} is open to others (mode {mode:04o}) and could not be closed: {e}; \
                 run chmod {new:o} on it",
                path.display()
            )),
        }
    }
    changed
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes an exclusive lock on the lock file, so a second `cdrbox run` (or a test) on the same
/// data cannot write the ring at the same time — two writers would overwrite each other's
/// uncommitted ring entries. The kernel drops the lock when the process dies, so a SIGKILL
/// never leaves a stale lock behind.
fn lock_journal(paths: &JournalPaths) -> Result<File, JournalError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = lock_path(paths);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_err("cannot create the journal lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io_err(
            "another cdrbox process is already writing this journal (stop it first, or point \
             [storage] path elsewhere)",
            &path,
            std::io::Error::from(std::io::ErrorKind::WouldBlock),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err("cannot lock the journal", &path, e)),
    }
}

/// Where SQLite stands at open: O(1) reads only (meta, the newest row by rowid, the small
/// gaps table), so a journal of millions of records opens as fast as an empty one.
pub(crate) struct DbState {
    /// Every seq ≤ this is committed (meta).
    pub committed_seq: u64,
    /// The seq of the newest row.
    pub last_row_seq: u64,
    /// The highest id ever given (meta, or the newest row's when higher): new ids go above.
    pub id_high: i64,
    pub rows: u64,
    pub gap_rows: u64,
    pub last_alive: Option<i64>,
    pub usb_copied_id: i64,
    pub open_gaps: HashMap<String, gaps::OpenGap>,
}

pub(crate) fn read_db_state(conn: &Connection) -> rusqlite::Result<DbState> {
    let meta = |key| store::meta_get(conn, key);
    // The newest row by rowid (no index on seq: ids grow with seq, see store::next_id).
    let (last_id, last_row_seq): (i64, i64) = conn
        .query_row(
            "SELECT id, seq FROM cdr ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, 0));
    let rows = match meta(store::META_ROWS)? {
        Some(n) => n.max(0) as u64,
        None => store::count_records(conn)?,
    };
    // The status counts open gaps only: filled ones are history (issue 12).
    let gap_rows = gaps::count_open(conn)? as i64;
    Ok(DbState {
        committed_seq: meta(store::META_COMMITTED_SEQ)?.unwrap_or(0).max(0) as u64,
        last_row_seq: last_row_seq.max(0) as u64,
        id_high: meta(store::META_ID_HIGH)?.unwrap_or(0).max(last_id),
        rows,
        gap_rows: gap_rows.max(0) as u64,
        last_alive: meta(store::META_LAST_ALIVE)?,
        usb_copied_id: meta(store::META_USB_COPIED_ID)?.unwrap_or(0),
        open_gaps: gaps::open_gaps(conn)?,
    })
}

/// See `Journal::open`. Everything slow happens on the journal's own threads after this
/// returns: the ring scan, its replay and (re)creation on the ring thread, `quick_check` on the
/// check thread, big index builds on the commit thread.
pub(crate) fn open(
    cfg: &StorageConfig,
    clock: Clock,
) -> Result<(JournalHandle, OpenReport), JournalError> {
    let paths = JournalPaths::from_config(cfg);
    create_private_dir(&paths.dir)
        .map_err(|e| io_err("cannot create the journal directory", &paths.dir, e))?;
    for warning in tighten_modes(&paths) {
        tracing::warn!(target: "journal", "{warning}");
    }
    let lock = lock_journal(&paths)?;
    let now_utc = clock.unix();
    let (opened, db) = store::open_writer(&paths.db, now_utc, &read_db_state)?;
    let conn = opened.conn;
    let report = OpenReport {
        paths: paths.clone(),
        created: opened.created,
        migrated_from: opened.migrated_from,
        damaged_set_aside: opened.set_aside.clone(),
        committed: db.rows,
    };
    // On an empty journal the indexes cost nothing: build them now. On a big one the writer
    // builds them after start, so the links never wait for a table scan.
    let indexes_built = db.rows == 0 && store::create_background_indexes(&conn).is_ok();

    // Seqs continue above everything SQLite has seen; the ring thread raises this further
    // from the ring's own entries before it hands out any.
    let mut state = Durability::new(db.committed_seq, db.committed_seq.max(db.last_row_seq));
    // Until quick_check has passed, records committed from now on stay in the ring too: if the
    // file turns out damaged they are replayed into a fresh one. A new file needs no check.
    let check = !opened.created;
    if check {
        state.hold_ring_above(db.committed_seq);
    }
    let shared = Arc::new(Shared {
        paths: paths.clone(),
        clock: clock.clone(),
        storage_percents: std::sync::atomic::AtomicU16::new(crate::journal::health::percents(
            80, 95,
        )),
        max_size_mb: cfg.max_size_mb,
        held: budget::Held::new(
            cfg.memory_queue_records as u64,
            u64::from(cfg.memory_queue_kb) * 1024,
        ),
        cache: budget::Cache::new(budget::CACHE_BYTES),
        ring_used_blocks: AtomicU64::new(0),
        ring_blocks: AtomicU64::new(0),
        state: Mutex::new(state),
        committed: std::sync::Condvar::new(),
        committed_rows: AtomicU64::new(db.rows),
        gaps: AtomicU64::new(db.gap_rows),
        lost: AtomicU64::new(0),
        dropped: Mutex::new(HashMap::new()),
        writer_running: AtomicBool::new(true),
        started_utc: now_utc,
        counters: Mutex::new(JournalCounters::default()),
        problems: Mutex::new(Problems {
            damaged: opened.set_aside.clone(),
            ..Problems::default()
        }),
        subscribers: Mutex::new(Vec::new()),
        ring_report: Mutex::new(None),
        ring_ready: std::sync::Condvar::new(),
        integrity: Mutex::new(if check {
            Integrity::Checking
        } else {
            Integrity::Fine
        }),
        check_stop: Mutex::new(Default::default()),
    });

    let (tx, rx) = mpsc::channel();
    let (to_commit, commit_rx) = mpsc::channel();
    // A manual clock (tests) wakes the commit thread when it moves; the real clock never does.
    let waker = {
        let to_commit = to_commit.clone();
        clock.on_advance(move || {
            let _ = to_commit.send(ToCommit::Wake);
        })
    };
    let intake = Intake::new(
        shared.clone(),
        RingSetup {
            want_bytes: ring::ring_bytes_for_kb(cfg.ring_kb),
            committed_seq: db.committed_seq,
        },
        rx,
        to_commit.clone(),
    );
    let writer = Writer::new(
        shared.clone(),
        conn,
        commit_rx,
        cfg,
        Policy {
            retention_days: cfg.retention_days,
            max_size_mb: cfg.max_size_mb,
            keep_uncopied: cfg.keep_uncopied,
            keep_unsent: cfg.keep_unsent,
        },
        Marks {
            usb_copied_id: db.usb_copied_id,
            id_high: db.id_high,
        },
        GapLedger::new(db.open_gaps, db.last_alive),
        indexes_built,
    );
    // Marks the journal stopped however a thread ends, panics included, so the status page
    // shows JOURNAL STOPPED instead of a silently dead journal.
    struct Stopped(Arc<Shared>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            self.0.writer_running.store(false, Ordering::SeqCst);
        }
    }
    let commit_thread = {
        let guard = Stopped(shared.clone());
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                let _guard = guard;
                // Held (and so the lock kept) for as long as the journal writes.
                let _lock = lock;
                let _waker = waker;
                writer.run()
            })
            .map_err(|e| io_err("cannot start the journal commit thread", &paths.db, e))?
    };
    let ring_thread = std::thread::Builder::new()
        .name("journal-ring".into())
        .spawn(move || intake.run())
        .map_err(|e| io_err("cannot start the journal ring thread", &paths.ring, e))?;
    let mut threads = vec![ring_thread, commit_thread];
    if check {
        threads.push(
            check::spawn(shared.clone(), to_commit)
                .map_err(|e| io_err("cannot start the journal check thread", &paths.db, e))?,
        );
    }
    Ok((JournalHandle::new(tx, shared, threads), report))
}
