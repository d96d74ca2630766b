//! Opening the journal database for writing (PRAGMAs, migrations, the caller's probe), setting
//! a damaged file aside, and the background `quick_check`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::schema::{migrate, MigrateError, SCHEMA_VERSION};
use super::{is_damage, register_functions, sqlite_err, WRITER_BUSY_TIMEOUT};
use crate::journal::JournalError;

/// The writer's connection after open.
pub struct Opened {
    pub conn: Connection,
    /// No journal existed: a new one was made.
    pub created: bool,
    /// `user_version` before migrations, when they ran.
    pub migrated_from: Option<i32>,
    /// Where a damaged file was moved.
    pub set_aside: Option<PathBuf>,
}

/// What `PRAGMA quick_check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Fine,
    /// The problems it listed, joined.
    Damaged(String),
}

/// Runs `PRAGMA quick_check` (reads the whole file: seconds on a big journal, so the journal runs
/// it in the background after recording has started).
pub fn quick_check(conn: &Connection) -> rusqlite::Result<CheckOutcome> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(CheckOutcome::Fine)
    } else {
        Ok(CheckOutcome::Damaged(lines.join("; ")))
    }
}

/// Keeps the `-wal` and `-shm` files when the connection closes instead of deleting them by
/// name. Every journal connection sets it: when a damaged file is renamed aside while
/// connections to it are still open, the last of them to close would otherwise delete the
/// *fresh* journal's `-wal`/`-shm`, which by then have those names (SQLite's "How To Corrupt
/// An SQLite Database File", howtocorrupt.html §2).
pub fn persist_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut on: std::os::raw::c_int = 1;
    // SAFETY: `handle()` is this open connection's sqlite3 pointer, used only for this call on
    // this thread; the schema name is a NUL-terminated literal, and `on` outlives the call,
    // which reads and writes one int through it (SQLITE_FCNTL_PERSIST_WAL's documented argument).
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::os::raw::c_int).cast(),
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rc),
            Some("cannot keep the WAL file on close".into()),
        ))
    }
}

/// Moves a damaged database and its `-wal`/`-shm` to `<db>.damaged-<now_utc>` (kept for
/// inspection or `sqlite3 .recover`), syncing the directory.
pub fn set_aside(db: &Path, now_utc: i64) -> Result<PathBuf, JournalError> {
    let mut target = db.as_os_str().to_owned();
    target.push(format!(".damaged-{now_utc}"));
    let target = PathBuf::from(target);
    let io = |what: &str, source| JournalError::Io {
        what: what.to_string(),
        path: db.to_path_buf(),
        source,
    };
    std::fs::rename(db, &target).map_err(|e| io("cannot move the damaged journal aside", e))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            let mut to = target.as_os_str().to_owned();
            to.push(suffix);
            std::fs::rename(&side, PathBuf::from(to))
                .map_err(|e| io("cannot move the damaged journal's side file aside", e))?;
        }
    }
    let _ = crate::fsio::sync_dir_of(db);
    Ok(target)
}

/// Why [`prepare`] failed.
enum Prep {
    /// The file is damaged (not a database, or corrupt where open reads it).
    Damage(String),
    Failed(JournalError),
}

fn sql<'a>(db: &'a Path, what: &'static str) -> impl Fn(rusqlite::Error) -> Prep + 'a {
    move |e| {
        if is_damage(&e) {
            Prep::Damage(format!("{what}: {e}"))
        } else {
            Prep::Failed(sqlite_err(what, db, e))
        }
    }
}

/// Opens, configures and migrates the writer connection, then runs `probe` (the open's own
/// reads). Reads only what it needs: the whole-file check runs later, in the background.
fn create_private_file(db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn prepare<T>(
    db: &Path,
    probe: &dyn Fn(&Connection) -> rusqlite::Result<T>,
) -> Result<(Connection, Option<i32>, T), Prep> {
    // SQLite would create the file 0644 minus the umask, and gives its -wal/-shm the database's
    // mode: an empty file made 0600 first becomes a fresh database that only we can read.
    create_private_file(db).map_err(|e| {
        Prep::Failed(JournalError::Io {
            what: "cannot create the journal database".into(),
            path: db.to_path_buf(),
            source: e,
        })
    })?;
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(db, "cannot open the journal"))?;
    persist_wal(&conn).map_err(sql(db, "cannot configure the journal"))?;
    // Long enough to ride out another process's short transaction during start-up.
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql(db, "cannot set busy_timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql(db, "cannot switch the journal to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Prep::Failed(JournalError::Sqlite {
            what: format!("the filesystem refused WAL mode (got {mode})"),
            path: db.to_path_buf(),
            source: rusqlite::Error::InvalidQuery,
        }));
    }
    // FULL: a commit is on the device when COMMIT returns. journal_size_limit keeps the WAL at
    // its steady size (a growing WAL costs an ext4 metadata commit per fsync); the default
    // autocheckpoint (1000 pages) stays.
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         PRAGMA journal_size_limit=8388608;
         PRAGMA foreign_keys=OFF;",
    )
    .map_err(sql(db, "cannot set the journal PRAGMAs"))?;
    let migrated_from = migrate(&conn).map_err(|e| match e {
        MigrateError::Sqlite(e) => sql(db, "cannot migrate the journal schema")(e),
        MigrateError::Future(found) => Prep::Failed(JournalError::FutureSchema {
            path: db.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        }),
        MigrateError::Foreign => Prep::Failed(JournalError::ForeignDatabase {
            path: db.to_path_buf(),
        }),
    })?;
    register_functions(&conn).map_err(sql(db, "cannot register functions"))?;
    let probed = probe(&conn).map_err(sql(db, "cannot read where the journal stands"))?;
    conn.busy_timeout(WRITER_BUSY_TIMEOUT)
        .map_err(sql(db, "cannot set busy_timeout"))?;
    Ok((conn, migrated_from, probed))
}

/// Opens (creating if needed) the journal database for writing: PRAGMAs, migrations, then
/// `probe`. A file that turns out damaged on the way (not a database, or corrupt where these
/// reads touch it) is set aside and a fresh one started; damage elsewhere is found later by the
/// background `quick_check`.
pub fn open_writer<T>(
    db: &Path,
    now_utc: i64,
    probe: &dyn Fn(&Connection) -> rusqlite::Result<T>,
) -> Result<(Opened, T), JournalError> {
    let existed = db.metadata().map(|m| m.len() > 0).unwrap_or(false);
    let (conn, migrated_from, probed, set_aside_to) = match prepare(db, probe) {
        Ok((c, m, p)) => (c, m, p, None),
        Err(Prep::Failed(e)) => return Err(e),
        Err(Prep::Damage(why)) => {
            tracing::error!(target: "journal", path = %db.display(), problem = %why,
                "the journal database is damaged; setting it aside and starting a fresh one");
            let aside = set_aside(db, now_utc)?;
            match prepare(db, probe) {
                Ok((c, m, p)) => (c, m, p, Some(aside)),
                Err(Prep::Failed(e)) => return Err(e),
                Err(Prep::Damage(why)) => {
                    return Err(JournalError::Sqlite {
                        what: format!(
                            "a fresh journal is damaged at once ({why}): check the storage device"
                        ),
                        path: db.to_path_buf(),
                        source: rusqlite::Error::InvalidQuery,
                    })
                }
            }
        }
    };
    Ok((
        Opened {
            conn,
            created: !existed || set_aside_to.is_some(),
            migrated_from,
            set_aside: set_aside_to,
        },
        probed,
    ))
}
