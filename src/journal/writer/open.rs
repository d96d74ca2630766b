//! Opening the journal: lock it against a second writer, open and migrate SQLite, read where it
//! stands (O(1) reads only: meta rows, the last row by rowid), replay ring entries SQLite does
//! not hold yet, (re)create the ring file, and start the ring and commit threads.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::clock::Clock;
use crate::config::StorageConfig;
use crate::record::CallRecord;

use super::super::ring::{self, EntryLoc, Ring, RingScan};
use super::super::state::{Durability, Place};
use super::super::{
    payload, store, JournalCounters, JournalError, JournalHandle, JournalPaths, OpenReport,
    Problems, Shared,
};
use super::gaps::{self, GapLedger};
use super::intake::Intake;
use super::retention::Policy;
use super::{io_err, sql_err, Item, ToCommit, Writer};

/// The lock file beside the database (`journal.sqlite.lock`).
pub(crate) fn lock_path(paths: &JournalPaths) -> std::path::PathBuf {
    let name = paths
        .db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal".into());
    paths.dir.join(format!("{name}.lock"))
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

/// Where SQLite stands at open.
struct DbState {
    /// Every seq ≤ this is committed (meta).
    committed_seq: u64,
    /// The highest seq of any row.
    last_row_seq: u64,
    rows: u64,
    gap_rows: u64,
    last_alive: Option<i64>,
    usb_copied_id: i64,
}

fn read_db_state(conn: &Connection, db: &std::path::Path) -> Result<DbState, JournalError> {
    let meta = |key| {
        store::meta_get(conn, key)
            .map_err(|e| sql_err("cannot read the journal's meta table", db, e))
    };
    let committed_seq = meta(store::META_COMMITTED_SEQ)?.unwrap_or(0).max(0) as u64;
    let last_alive = meta(store::META_LAST_ALIVE)?;
    let usb_copied_id = meta(store::META_USB_COPIED_ID)?.unwrap_or(0);
    // The newest row by rowid (no index on seq: rows are inserted in seq order).
    let last_row_seq: i64 = conn
        .query_row("SELECT seq FROM cdr ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| sql_err("cannot read the newest row", db, e))?
        .unwrap_or(0);
    let rows = match meta(store::META_ROWS)? {
        Some(n) => n.max(0) as u64,
        None => store::count_records(conn).map_err(|e| sql_err("cannot count records", db, e))?,
    };
    let gap_rows: i64 = conn
        .query_row("SELECT count(*) FROM gaps", [], |r| r.get(0))
        .map_err(|e| sql_err("cannot count gaps", db, e))?;
    Ok(DbState {
        committed_seq,
        last_row_seq: last_row_seq.max(0) as u64,
        rows,
        gap_rows: gap_rows.max(0) as u64,
        last_alive,
        usb_copied_id,
    })
}

/// Ring entries SQLite does not hold, decoded.
struct Replay {
    /// Entries above the committed point, as found.
    found: Vec<EntryLoc>,
    records: Vec<(u64, CallRecord)>,
    /// Entries with a valid CRC whose payload does not decode.
    undecodable: usize,
}

fn read_replay(file: Option<&File>, scan: &RingScan, committed_seq: u64) -> Replay {
    let found: Vec<EntryLoc> = scan
        .entries
        .iter()
        .copied()
        .filter(|e| e.seq > committed_seq)
        .collect();
    let mut records = Vec::new();
    let mut undecodable = 0;
    for e in &found {
        let decoded = file
            .ok_or_else(|| "the ring file cannot be read".to_string())
            .and_then(|f| ring::read_payload(f, e).map_err(|e| e.to_string()))
            .and_then(|bytes| payload::decode(&bytes).map_err(|e| e.to_string()));
        match decoded {
            Ok(r) => records.push((e.seq, r)),
            Err(err) => {
                undecodable += 1;
                tracing::warn!(target: "journal", seq = e.seq, error = %err,
                    "ring entry with a valid CRC does not decode; skipped");
            }
        }
    }
    Replay {
        found,
        records,
        undecodable,
    }
}

/// Inserts replayed ring records and moves `committed_seq` to `top` in one transaction.
fn commit_replay(
    conn: &Connection,
    records: &[(u64, CallRecord)],
    top: u64,
    rows_before: u64,
    now_utc: i64,
) -> rusqlite::Result<usize> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut inserted = 0;
    for (seq, r) in records {
        if store::insert_record(&tx, *seq, r)? {
            inserted += 1;
        }
    }
    store::meta_set(
        &tx,
        store::META_ROWS,
        (rows_before + inserted as u64) as i64,
    )?;
    store::meta_set(&tx, store::META_COMMITTED_SEQ, top as i64)?;
    store::meta_set(&tx, store::META_LAST_ALIVE, now_utc)?;
    tx.commit()?;
    Ok(inserted)
}

/// The ring to write to: the existing file when it still protects deferred entries or already
/// has the configured size, else a fresh one. `None` (with the reason) when it cannot be used.
fn open_ring(
    cfg: &StorageConfig,
    paths: &JournalPaths,
    scan: &RingScan,
    protect: &[EntryLoc],
    report: &mut OpenReport,
) -> (Option<Ring>, Option<std::io::Error>) {
    let want = ring::ring_bytes_for_kb(cfg.ring_kb);
    let existing = std::fs::metadata(&paths.ring).map(|m| m.len()).ok();
    let usable = existing.is_some_and(ring::usable_size);
    let recreate = (protect.is_empty() && existing != Some(want)) || !usable;
    if recreate {
        if let Err(e) = ring::create_file(&paths.ring, want) {
            return (None, Some(e));
        }
        report.ring_created = true;
    }
    let opened = ring::open_file(&paths.ring).and_then(|f| {
        if report.ring_created {
            Ring::open(f, &[], None)
        } else {
            Ring::open(f, protect, scan.newest())
        }
    });
    match opened {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    }
}

/// See `Journal::open`.
pub(crate) fn open(
    cfg: &StorageConfig,
    clock: Clock,
) -> Result<(JournalHandle, OpenReport), JournalError> {
    let paths = JournalPaths::from_config(cfg);
    std::fs::create_dir_all(&paths.dir)
        .map_err(|e| io_err("cannot create the journal directory", &paths.dir, e))?;
    let lock = lock_journal(&paths)?;
    let now_utc = clock.unix();
    let ring_file = match File::open(&paths.ring) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("cannot read the ring file", &paths.ring, e)),
    };
    let scan = match &ring_file {
        Some(f) => {
            ring::scan(f).map_err(|e| io_err("cannot read the ring file", &paths.ring, e))?
        }
        None => RingScan::default(),
    };
    let opened = store::open_writer(&paths.db, now_utc)?;
    let conn = opened.conn;
    let db_state = read_db_state(&conn, &paths.db)?;

    let replay = read_replay(ring_file.as_ref(), &scan, db_state.committed_seq);
    drop(ring_file);
    let mut report = OpenReport {
        paths: paths.clone(),
        created: opened.created,
        migrated_from: opened.migrated_from,
        damaged_set_aside: opened.set_aside.clone(),
        ring_created: false,
        ring_entries: scan.entries.len(),
        ring_corrupt: scan.corrupt + replay.undecodable,
        replay_found: replay.found.len(),
        replayed: 0,
        replay_duplicates: 0,
        replay_deferred: 0,
        committed: 0,
    };
    let mut committed_seq = db_state.committed_seq;
    let mut deferred: Vec<(u64, CallRecord)> = Vec::new();
    if let Some(top) = replay.found.last().map(|e| e.seq) {
        match commit_replay(&conn, &replay.records, top, db_state.rows, now_utc) {
            Ok(inserted) => {
                report.replayed = inserted;
                report.replay_duplicates = replay.records.len() - inserted;
                committed_seq = top;
            }
            Err(e) => {
                tracing::error!(target: "journal", error = %e,
                    "cannot commit the ring replay now; the writer will retry");
                report.replay_deferred = replay.records.len();
                deferred = replay.records;
            }
        }
    }

    // Deferred entries stay protected in the existing ring until the writer commits them.
    let protect: Vec<EntryLoc> = replay
        .found
        .iter()
        .copied()
        .filter(|e| deferred.iter().any(|d| d.0 == e.seq))
        .collect();
    let (ring, ring_problem) = open_ring(cfg, &paths, &scan, &protect, &mut report);
    if let Some(e) = &ring_problem {
        tracing::error!(target: "journal", path = %paths.ring.display(), error = %e,
            "ring file unusable: records are held in memory until committed");
    }
    let rows = db_state.rows + report.replayed as u64;
    report.committed = rows;
    let open_gaps =
        gaps::open_gaps(&conn).map_err(|e| sql_err("cannot read gaps", &paths.db, e))?;
    // On an empty journal the indexes cost nothing: build them now. On a big one the writer
    // builds them after start, so the links never wait for a table scan.
    let indexes_built = rows == 0
        && store::create_background_indexes(&conn)
            .map_err(|e| sql_err("cannot create the journal's indexes", &paths.db, e))
            .is_ok();

    // Seqs continue above everything SQLite or the ring has seen.
    let highest = committed_seq
        .max(db_state.last_row_seq)
        .max(scan.newest().map_or(0, |e| e.seq));
    let mut state = Durability::new(committed_seq, highest);
    let in_ring = !report.ring_created && ring.is_some();
    let now = clock.now();
    let mut held = 0;
    let mut cached = 0;
    let mut pending = Vec::new();
    for (seq, record) in deferred {
        // Deferred entries are in the ring (durable) unless the ring had to be replaced.
        let loc = if in_ring {
            protect.iter().copied().find(|e| e.seq == seq)
        } else {
            None
        };
        let place = if loc.is_some() {
            cached += 1;
            Place::Ring
        } else {
            held += 1;
            Place::Memory
        };
        state.replayed(seq, place);
        pending.push(Item {
            seq,
            loc,
            record: Some(Box::new(record)),
            ack: None,
            arrived: now,
        });
    }

    let shared = Arc::new(Shared {
        paths: paths.clone(),
        clock: clock.clone(),
        memory_queue_records: cfg.memory_queue_records.max(1) as u64,
        max_size_mb: cfg.max_size_mb,
        held: AtomicU64::new(held),
        cached: AtomicU64::new(cached),
        ring_used_blocks: AtomicU64::new(0),
        ring_blocks: AtomicU64::new(0),
        state: Mutex::new(state),
        committed: std::sync::Condvar::new(),
        committed_rows: AtomicU64::new(rows),
        gaps: AtomicU64::new(db_state.gap_rows),
        lost: AtomicU64::new(0),
        dropped: Mutex::new(HashMap::new()),
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

    let (tx, rx) = mpsc::channel();
    let (to_commit, commit_rx) = mpsc::channel();
    // A manual clock (tests) wakes the commit thread when it moves; the real clock never does.
    let waker = {
        let to_commit = to_commit.clone();
        clock.on_advance(move || {
            let _ = to_commit.send(ToCommit::Wake);
        })
    };
    let intake = Intake::new(shared.clone(), ring, rx, to_commit);
    let writer = Writer::new(
        shared.clone(),
        conn,
        commit_rx,
        pending,
        cfg,
        Policy {
            retention_days: cfg.retention_days,
            max_size_mb: cfg.max_size_mb,
            keep_uncopied: cfg.keep_uncopied,
        },
        db_state.usb_copied_id,
        GapLedger::new(open_gaps, db_state.last_alive),
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
    Ok((
        JournalHandle::new(tx, shared, vec![ring_thread, commit_thread]),
        report,
    ))
}
