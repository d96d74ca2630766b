//! The SQLite side of the journal: opening (PRAGMAs, setting a damaged file aside), the
//! `quick_check` the journal runs in the background, schema migrations by `user_version`, the
//! row layout of a `CallRecord`, inserts (ids: [`next_id`]), the `meta` and `gaps` tables, and
//! retention. Blocking SQLite calls only — the writer thread and
//! `JournalReader` decide when to call them.
//!
//! The hot table `cdr` keeps its rowid (arrival order), the identity UNIQUE key (exactly-once)
//! and ONE index on `start_utc`: each index roughly doubles the bytes written per commit
//! (research/embedded.md §1.2).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{
    params, params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension, Row,
};

use crate::record::{CallRecord, CdrTime, Direction, Disposition, Origin};

use super::JournalError;

/// The schema this code writes. Older files are migrated forward; newer ones are refused.
pub const SCHEMA_VERSION: i32 = 2;

/// Migration `i` brings a file from `user_version` i to i + 1.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the first schema.
    "CREATE TABLE cdr (
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        identity BLOB NOT NULL UNIQUE,
        pbx TEXT NOT NULL,
        unique_id TEXT NOT NULL,
        account_code TEXT NOT NULL,
        source TEXT NOT NULL,
        destination TEXT NOT NULL,
        destination_context TEXT NOT NULL,
        caller_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        destination_channel TEXT NOT NULL,
        last_application TEXT NOT NULL,
        last_data TEXT NOT NULL,
        start_raw TEXT NOT NULL,
        start_utc INTEGER,
        start_offset INTEGER NOT NULL,
        answer_raw TEXT,
        answer_utc INTEGER,
        answer_offset INTEGER,
        end_raw TEXT NOT NULL,
        end_utc INTEGER,
        end_offset INTEGER NOT NULL,
        duration INTEGER NOT NULL,
        billable_seconds INTEGER NOT NULL,
        disposition TEXT NOT NULL,
        ama_flags TEXT NOT NULL,
        user_field TEXT NOT NULL,
        direction TEXT NOT NULL,
        ring_seconds INTEGER NOT NULL,
        queue TEXT,
        agent TEXT,
        linked_id TEXT,
        sequence INTEGER,
        custom_fields TEXT NOT NULL,
        raw BLOB NOT NULL,
        received_utc INTEGER NOT NULL
    );
    CREATE INDEX cdr_start_utc ON cdr(start_utc);
    CREATE TABLE gaps (
        id INTEGER PRIMARY KEY,
        pbx TEXT NOT NULL,
        down_utc INTEGER NOT NULL,
        up_utc INTEGER,
        reason TEXT NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;",
    // 1 → 2: where a record came from (AMI, or an import: 'master-csv', 'cdr-db') and its
    // cross-source match key (`record::match_key`; NULL for rows stored before v2, which the
    // importer matches by start time instead); the count of records a gap is known to have lost
    // (drops at the memory bound) and how an import filled it; the row count kept in meta so
    // start-up never counts a big table. ADD COLUMN with a constant default rewrites nothing;
    // the count runs once. The match_key index is built by the writer after start
    // ([`BACKGROUND_INDEXES`]): on a big old journal it scans the whole table.
    "ALTER TABLE cdr ADD COLUMN origin TEXT NOT NULL DEFAULT 'ami';
    ALTER TABLE cdr ADD COLUMN match_key BLOB;
    ALTER TABLE gaps ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE gaps ADD COLUMN filled_from TEXT;
    ALTER TABLE gaps ADD COLUMN filled_records INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE gaps ADD COLUMN filled_utc INTEGER;
    INSERT OR REPLACE INTO meta (key, value) SELECT 'rows', count(*) FROM cdr;",
];

/// Indexes the writer creates after start, when it first has nothing to commit (at once for a
/// new, empty journal): building one on a big old journal scans the whole table, which must not
/// delay the links at start-up. Partial, so rows without a match key cost nothing.
pub const BACKGROUND_INDEXES: &[&str] = &["CREATE INDEX IF NOT EXISTS cdr_match_key \
     ON cdr(match_key) WHERE match_key IS NOT NULL"];

/// Creates the [`BACKGROUND_INDEXES`] that do not exist yet.
pub fn create_background_indexes(conn: &Connection) -> rusqlite::Result<()> {
    for sql in BACKGROUND_INDEXES {
        conn.execute_batch(sql)?;
    }
    Ok(())
}

/// Every column of `cdr`, in the order [`row_to_record`] reads them.
pub const COLUMNS: &str = "id, seq, identity, pbx, unique_id, account_code, source, destination, \
    destination_context, caller_id, channel, destination_channel, last_application, last_data, \
    start_raw, start_utc, start_offset, answer_raw, answer_utc, answer_offset, end_raw, end_utc, \
    end_offset, duration, billable_seconds, disposition, ama_flags, user_field, direction, \
    ring_seconds, queue, agent, linked_id, sequence, custom_fields, raw, received_utc, origin";

/// Columns written by an insert (every column but `id`), in [`record_values`] order.
const INSERT_COLUMNS: &str = "seq, identity, pbx, unique_id, account_code, source, \
    destination, destination_context, caller_id, channel, destination_channel, last_application, \
    last_data, start_raw, start_utc, start_offset, answer_raw, answer_utc, answer_offset, end_raw, \
    end_utc, end_offset, duration, billable_seconds, disposition, ama_flags, user_field, \
    direction, ring_seconds, queue, agent, linked_id, sequence, custom_fields, raw, received_utc, \
    origin, match_key";
const INSERT_VALUES: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
    ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, \
    ?35, ?36, ?37, ?38";
/// Placeholder of the explicit `id` (after [`INSERT_VALUES`]).
const ID_VALUE: &str = "?39";

/// Where a record came from, as stored in `cdr.origin`: `ami`, `master-csv` or `cdr-db`
/// (the record's own [`crate::record::Origin`]; [`row_to_record`] reads it back).
pub fn origin_of(r: &CallRecord) -> &'static str {
    r.origin.as_str()
}

/// The cross-source match key stored in `cdr.match_key` (issue 12, `record::match_key`).
pub fn match_key_of(r: &CallRecord) -> Option<Vec<u8>> {
    Some(crate::record::match_key(r).to_vec())
}

/// `meta` keys.
pub const META_COMMITTED_SEQ: &str = "committed_seq";
pub const META_LAST_ALIVE: &str = "last_alive_utc";
/// The USB copy watermark: every row with `id` ≤ it is on a stick (see [`next_id`]: ids are
/// never reused, so a row arriving later always has a higher id). Written only through
/// [`advance_copy_watermark`].
pub const META_USB_COPIED_ID: &str = "usb_copied_id";

/// The uplink watermark: every row with `id` ≤ it is committed on the central PostgreSQL
/// (`crate::uplink`). Moved only by [`advance_uplink_watermark`], after the server's COMMIT.
pub const META_UPLINK_SENT_ID: &str = "uplink_sent_id";
/// The highest `cdr.id` ever given, kept so ids are never reused even after retention deleted
/// the newest rows (what AUTOINCREMENT does, without rewriting the table to add it).
pub const META_ID_HIGH: &str = "id_high";
/// Rows in `cdr`, updated in the same transaction as every insert and delete.
pub const META_ROWS: &str = "rows";

/// Name of the SQL function used for case-insensitive substring filters (see `filter.rs`).
pub const CONTAINS_FN: &str = "cdrbox_contains";
/// SQL name of [`crate::calls::call_key_of`]: the journal counts calls with the same rule the
/// page, the stats and the status board group them by.
pub const CALL_KEY_FN: &str = "cdrbox_call_key";

/// How the writer connection waits for a lock held by another process before giving up (the
/// commit is then retried later while ring writes continue).
pub const WRITER_BUSY_TIMEOUT: Duration = Duration::from_millis(50);

/// The stored text of a disposition. Unknown values get a prefix so they never collide with
/// the known ones.
pub fn disposition_to_db(d: &Disposition) -> String {
    match d {
        // `OTHER:` keeps a value the PBX invented from ever reading back as a known one
        // (`Other("NO ANSWER")`).
        Disposition::Other(s) => format!("OTHER:{s}"),
        known => known.as_str().to_owned(),
    }
}

/// The inverse of [`disposition_to_db`]: the record's own parser for the wire names.
pub fn disposition_from_db(s: &str) -> Disposition {
    match s.strip_prefix("OTHER:") {
        Some(other) => Disposition::Other(other.to_owned()),
        None => Disposition::parse(s),
    }
}

pub fn direction_to_db(d: Direction) -> &'static str {
    d.as_str()
}

/// Anything unexpected reads back as `Unknown` (the column only ever holds `as_str` values).
pub fn direction_from_db(s: &str) -> Direction {
    s.parse().unwrap_or(Direction::Unknown)
}

fn sqlite_err(what: impl Into<String>, path: &Path, source: rusqlite::Error) -> JournalError {
    JournalError::Sqlite {
        what: what.into(),
        path: path.to_path_buf(),
        source,
    }
}

/// True for errors that mean the file itself is damaged (not locked, not full).
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase)
    )
}

/// True for SQLITE_FULL (the disk or `max_page_count` is full).
pub fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DiskFull))
}

/// True when another connection holds the lock.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked)
    )
}

/// Registers [`CONTAINS_FN`]: `cdrbox_contains(haystack, folded_needle)`, and
/// [`CALL_KEY_FN`]: `cdrbox_call_key(pbx, linked_id, unique_id, channel)`.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        CONTAINS_FN,
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let hay = ctx.get_raw(0).as_str().unwrap_or("");
            let needle = ctx.get_raw(1).as_str().unwrap_or("");
            Ok(crate::filter::contains_folded(hay, needle))
        },
    )?;
    conn.create_scalar_function(
        CALL_KEY_FN,
        4,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text = |i| ctx.get_raw(i).as_str().unwrap_or("");
            let linked = ctx.get_raw(1).as_str().ok();
            Ok(crate::calls::call_key_of(text(0), linked, text(2), text(3)))
        },
    )
}

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
/// *fresh* journal's `-wal`/`-shm`, which by then have those names (howtocorrupt.html §2).
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
    if let Some(dir) = db.parent() {
        let _ = super::ring::sync_dir(dir);
    }
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

pub enum MigrateError {
    Sqlite(rusqlite::Error),
    Future(i32),
    Foreign,
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per step. Returns the version it
/// started from when anything ran.
pub fn migrate(conn: &Connection) -> Result<Option<i32>, MigrateError> {
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(MigrateError::Future(version));
    }
    if version == SCHEMA_VERSION {
        return Ok(None);
    }
    if version == 0 {
        // Version 0 is an empty file; a file with tables but no version is someone else's.
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 {
            return Err(MigrateError::Foreign);
        }
    }
    for v in version..SCHEMA_VERSION {
        let step = MIGRATIONS[v as usize];
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {step}; PRAGMA user_version = {}; COMMIT;",
            v + 1
        ))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
    }
    Ok(Some(version))
}

/// Reads an integer from `meta`.
pub fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// Writes an integer to `meta`.
pub fn meta_set(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// The `cdr.id` of a record with this `seq` when the highest id ever given is `id_high`:
/// normally the seq itself (monotonic, never handed out twice, across restarts too), and in any
/// case above every id before it. So ids only grow and are never reused: SQLite's own rowid
/// choice (max + 1) would reuse the id of a deleted newest row, below the USB watermark, and
/// that record would never reach a stick (issue 10 item 6).
pub fn next_id(seq: u64, id_high: i64) -> i64 {
    (seq.min(i64::MAX as u64) as i64).max(id_high.saturating_add(1))
}

/// Moves the USB copy watermark forward to `id` (never back: a slower copy finishing late
/// cannot undo a newer one). The one way it is written — by the journal writer for the box's
/// own copies and by `cdrbox usb-export` beside a running box — as one statement, which SQLite
/// serialises with the writer's transactions.
pub fn advance_copy_watermark(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    advance_watermark(conn, META_USB_COPIED_ID, id)
}

/// Moves the uplink watermark forward to `id` (never back), by the uplink's own connection —
/// the same single statement as the USB one, so SQLite serialises it with the writer.
pub fn advance_uplink_watermark(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    advance_watermark(conn, META_UPLINK_SENT_ID, id)
}

fn advance_watermark(conn: &Connection, key: &str, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute(params![key, id])?;
    Ok(())
}

/// The bound values of one insert, in `INSERT_COLUMNS` order.
fn record_values(seq: u64, r: &CallRecord) -> Vec<Value> {
    let text = |s: &str| Value::Text(s.to_string());
    let opt_text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_string()));
    let opt_int = |i: Option<i64>| i.map_or(Value::Null, Value::Integer);
    let custom = serde_json::to_string(&r.custom_fields).unwrap_or_else(|_| "[]".into());
    vec![
        Value::Integer(seq as i64),
        Value::Blob(r.identity.to_vec()),
        text(&r.pbx),
        text(&r.unique_id),
        text(&r.account_code),
        text(&r.source),
        text(&r.destination),
        text(&r.destination_context),
        text(&r.caller_id),
        text(&r.channel),
        text(&r.destination_channel),
        text(&r.last_application),
        text(&r.last_data),
        text(&r.start.raw),
        opt_int(r.start.utc),
        Value::Integer(i64::from(r.start.offset_seconds)),
        opt_text(r.answer.as_ref().map(|a| a.raw.as_str())),
        opt_int(r.answer.as_ref().and_then(|a| a.utc)),
        opt_int(r.answer.as_ref().map(|a| i64::from(a.offset_seconds))),
        text(&r.end.raw),
        opt_int(r.end.utc),
        Value::Integer(i64::from(r.end.offset_seconds)),
        Value::Integer(r.duration),
        Value::Integer(r.billable_seconds),
        Value::Text(disposition_to_db(&r.disposition)),
        text(&r.ama_flags),
        text(&r.user_field),
        text(direction_to_db(r.direction)),
        Value::Integer(r.ring_seconds),
        opt_text(r.queue.as_deref()),
        opt_text(r.agent.as_deref()),
        opt_text(r.linked_id.as_deref()),
        opt_int(r.sequence),
        Value::Text(custom),
        Value::Blob(r.raw.clone()),
        Value::Integer(r.received_utc),
        Value::Text(origin_of(r).to_string()),
        match_key_of(r).map_or(Value::Null, Value::Blob),
    ]
}

/// Inserts a record into `cdr`; returns false when a record with the same identity is already
/// stored (exactly-once by the UNIQUE identity key).
pub fn insert_record(
    conn: &Connection,
    id: i64,
    seq: u64,
    r: &CallRecord,
) -> rusqlite::Result<bool> {
    // The conflict clause names the identity only: an id collision would be a bug in
    // `next_id`'s callers and must fail the commit loudly, never drop a record quietly.
    let sql = format!(
        "INSERT INTO main.cdr (id, {INSERT_COLUMNS}) VALUES ({ID_VALUE}, {INSERT_VALUES}) \
         ON CONFLICT(identity) DO NOTHING"
    );
    let mut values = record_values(seq, r);
    values.push(Value::Integer(id));
    let n = conn
        .prepare_cached(&sql)?
        .execute(params_from_iter(values))?;
    Ok(n == 1)
}

/// Inserts a record with a chosen id into `table` (no conflict handling): used by the reader
/// for ring records in a TEMP table.
pub fn insert_record_with_id(
    conn: &Connection,
    table: &str,
    id: i64,
    seq: u64,
    r: &CallRecord,
) -> rusqlite::Result<()> {
    let sql =
        format!("INSERT INTO {table} (id, {INSERT_COLUMNS}) VALUES ({ID_VALUE}, {INSERT_VALUES})");
    let mut values = record_values(seq, r);
    values.push(Value::Integer(id));
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(values))?;
    Ok(())
}

/// True when a record with this identity is stored.
pub fn identity_exists(conn: &Connection, identity: &[u8; 16]) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM cdr WHERE identity = ?1")?
        .query_row([&identity[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

fn conversion(idx: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Blob,
        what.to_string().into(),
    )
}

/// Rebuilds a record from a row selected with [`COLUMNS`]; returns it with its row id.
pub fn row_to_record(row: &Row<'_>) -> rusqlite::Result<(i64, CallRecord)> {
    let id: i64 = row.get(0)?;
    let identity_bytes: Vec<u8> = row.get(2)?;
    let identity: [u8; 16] = identity_bytes
        .as_slice()
        .try_into()
        .map_err(|_| conversion(2, "identity is not 16 bytes"))?;
    let answer = match row.get::<_, Option<String>>(17)? {
        Some(raw) => Some(CdrTime {
            raw,
            utc: row.get(18)?,
            offset_seconds: row.get::<_, Option<i32>>(19)?.unwrap_or(0),
        }),
        None => None,
    };
    let custom: String = row.get(34)?;
    let custom_fields: Vec<(String, String)> =
        serde_json::from_str(&custom).map_err(|_| conversion(34, "custom_fields is not JSON"))?;
    let disposition: String = row.get(25)?;
    let direction: String = row.get(28)?;
    Ok((
        id,
        CallRecord {
            pbx: row.get(3)?,
            unique_id: row.get(4)?,
            account_code: row.get(5)?,
            source: row.get(6)?,
            destination: row.get(7)?,
            destination_context: row.get(8)?,
            caller_id: row.get(9)?,
            channel: row.get(10)?,
            destination_channel: row.get(11)?,
            last_application: row.get(12)?,
            last_data: row.get(13)?,
            start: CdrTime {
                raw: row.get(14)?,
                utc: row.get(15)?,
                offset_seconds: row.get(16)?,
            },
            answer,
            end: CdrTime {
                raw: row.get(20)?,
                utc: row.get(21)?,
                offset_seconds: row.get(22)?,
            },
            duration: row.get(23)?,
            billable_seconds: row.get(24)?,
            disposition: disposition_from_db(&disposition),
            ama_flags: row.get(26)?,
            user_field: row.get(27)?,
            direction: direction_from_db(&direction),
            ring_seconds: row.get(29)?,
            queue: row.get(30)?,
            agent: row.get(31)?,
            linked_id: row.get(32)?,
            sequence: row.get(33)?,
            custom_fields,
            raw: row.get(35)?,
            received_utc: row.get(36)?,
            identity,
            origin: Origin::parse(&row.get::<_, String>(37)?),
        },
    ))
}

/// Counts rows in `cdr`.
pub fn count_records(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT count(*) FROM cdr", [], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

/// Bytes of live pages (the file never shrinks without VACUUM; freed pages are reused).
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// One retention batch size: small, so the writer thread stays responsive.
pub const RETENTION_BATCH: i64 = 500;

/// Deletes up to one batch of records that started before `cutoff_utc` (and, when `max_id` is
/// given, only up to that id). Returns how many went.
pub fn delete_older_than(
    conn: &Connection,
    cutoff_utc: i64,
    max_id: Option<i64>,
) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM cdr WHERE id IN (SELECT id FROM cdr WHERE start_utc < ?1 AND id <= ?2
         LIMIT ?3)",
        params![cutoff_utc, max_id.unwrap_or(i64::MAX), RETENTION_BATCH],
    )
}

/// Deletes up to one batch of the oldest records (by arrival), only up to `max_id` when given.
pub fn delete_oldest(conn: &Connection, max_id: Option<i64>) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM cdr WHERE id IN (SELECT id FROM cdr WHERE id <= ?1 ORDER BY id LIMIT ?2)",
        params![max_id.unwrap_or(i64::MAX), RETENTION_BATCH],
    )
}

/// Deletes closed gaps that ended before `cutoff_utc`.
pub fn delete_gaps_before(conn: &Connection, cutoff_utc: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM gaps WHERE up_utc IS NOT NULL AND up_utc < ?1",
        [cutoff_utc],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::testdata::sample_record;

    #[test]
    fn record_round_trips_through_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.sqlite");
        let (mut opened, ()) = open_writer(&db, 0, &|_| Ok(())).unwrap();
        assert!(opened.created);
        assert_eq!(opened.migrated_from, Some(0));
        let mut recs: Vec<CallRecord> = (0..12).map(sample_record).collect();
        recs[1].answer = None;
        recs[2].start.utc = None;
        recs[3].disposition = Disposition::Other("ANSWERED".into());
        recs[4].origin = Origin::MasterCsv;
        recs[5].origin = Origin::CdrDb;
        let tx = opened.conn.transaction().unwrap();
        for (i, r) in recs.iter().enumerate() {
            assert!(insert_record(&tx, i as i64 + 1, i as u64, r).unwrap());
        }
        assert!(
            !insert_record(&tx, 99, 99, &recs[0]).unwrap(),
            "same identity"
        );
        assert!(
            insert_record(&tx, 1, 100, &sample_record(100)).is_err(),
            "an id collision fails loudly"
        );
        tx.commit().unwrap();
        let mut stmt = opened
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM cdr ORDER BY id"))
            .unwrap();
        let back: Vec<CallRecord> = stmt
            .query_map([], |r| row_to_record(r).map(|x| x.1))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(back, recs);
        let origins: Vec<String> = opened
            .conn
            .prepare("SELECT origin FROM cdr ORDER BY id LIMIT 6")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            origins,
            ["ami", "ami", "ami", "ami", "master-csv", "cdr-db"],
            "the column holds the record's origin"
        );
    }

    #[test]
    fn ids_follow_seqs_and_never_go_back() {
        assert_eq!(next_id(1, 0), 1);
        assert_eq!(next_id(40, 12), 40, "normally the seq itself");
        assert_eq!(next_id(5, 12), 13, "never at or below an id already given");
        assert_eq!(next_id(u64::MAX, 0), i64::MAX);
    }

    #[test]
    fn disposition_text_round_trips_and_never_collides() {
        for d in [
            Disposition::Answered,
            Disposition::NoAnswer,
            Disposition::Cancel,
            Disposition::Unknown,
            Disposition::Other("NO ANSWER".into()),
            Disposition::Other("".into()),
        ] {
            assert_eq!(disposition_from_db(&disposition_to_db(&d)), d);
        }
        for d in Direction::ALL {
            assert_eq!(direction_from_db(direction_to_db(d)), d);
        }
        assert_eq!(direction_from_db("sideways"), Direction::Unknown);
    }

    #[test]
    fn version_1_files_migrate_keeping_rows_and_counting_them_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v1.sqlite");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(&format!("{}; PRAGMA user_version = 1;", MIGRATIONS[0]))
            .unwrap();
        let v1_columns = INSERT_COLUMNS.replace(", origin, match_key", "");
        for n in 0..3u64 {
            let mut values = record_values(n + 1, &sample_record(n));
            values.truncate(values.len() - 2);
            let marks = (1..=values.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>();
            c.execute(
                &format!(
                    "INSERT INTO cdr ({v1_columns}) VALUES ({})",
                    marks.join(", ")
                ),
                params_from_iter(values),
            )
            .unwrap();
        }
        drop(c);
        let (opened, ()) = open_writer(&db, 0, &|_| Ok(())).unwrap();
        assert_eq!(opened.migrated_from, Some(1));
        let conn = opened.conn;
        assert_eq!(meta_get(&conn, META_ROWS).unwrap(), Some(3));
        let origins: Vec<String> = conn
            .prepare("SELECT origin FROM cdr")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(origins, vec!["ami"; 3]);
        let lost: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('gaps') WHERE name = 'lost'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(lost, 1);
    }

    #[test]
    fn foreign_and_future_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("f.sqlite");
        let c = Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE t(x)").unwrap();
        drop(c);
        assert!(matches!(
            open_writer(&db, 0, &|_| Ok(())).map(|_| ()),
            Err(JournalError::ForeignDatabase { .. })
        ));
        let db2 = dir.path().join("g.sqlite");
        let c = Connection::open(&db2).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(c);
        assert!(matches!(
            open_writer(&db2, 0, &|_| Ok(())).map(|_| ()),
            Err(JournalError::FutureSchema { found: 99, .. })
        ));
    }
}
