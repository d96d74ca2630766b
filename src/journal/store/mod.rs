//! The SQLite side of the journal: opening (PRAGMAs, setting a damaged file aside), the
//! `quick_check` the journal runs in the background, schema migrations by `user_version`, the
//! row layout of a `CallRecord`, inserts (ids: [`next_id`]), the `meta` and `gaps` tables, and
//! retention. Blocking SQLite calls only — the writer thread and
//! `JournalReader` decide when to call them.
//!
//! The hot table `cdr` keeps its rowid (arrival order), the identity UNIQUE key (exactly-once)
//! and ONE index on `start_utc`: each index roughly doubles the bytes written per commit
//! (measured on ext4 at the device: WAL, one commit per row, 22.7 KB per row with an index on
//! `start_utc`, 11.7 KB with none).
//!
//! Map: `schema` (version, migrations, background indexes), `days` (the day summary `cdr_day`
//! that counts read instead of scanning), `calls` (the calls summary for calls counts), `open` (open for writing, set a
//! damaged file aside, `quick_check`), `rows` (row layout, inserts, reads, retention deletes);
//! this file: `meta` keys and watermarks, ids, SQL functions, error kinds.

use std::path::Path;
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use super::JournalError;

mod calls;
mod days;
mod open;
mod rows;
mod schema;

// Every item keeps its `store::` path.
pub use calls::*;
pub use days::*;
pub use open::*;
pub use rows::*;
pub use schema::*;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_seqs_and_never_go_back() {
        assert_eq!(next_id(1, 0), 1);
        assert_eq!(next_id(40, 12), 40, "normally the seq itself");
        assert_eq!(next_id(5, 12), 13, "never at or below an id already given");
        assert_eq!(next_id(u64::MAX, 0), i64::MAX);
    }
}
