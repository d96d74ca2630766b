//! The schema of the journal database: its version, the migrations that bring an older file
//! forward one `user_version` at a time, and the indexes built in the background after start.

use rusqlite::Connection;

/// The schema this code writes. Older files are migrated forward; newer ones are refused.
pub const SCHEMA_VERSION: i32 = 4;

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
    // 2 → 3: the day summary (`days.rs`): records per (UTC day of the start, PBX, direction,
    // disposition), kept by triggers for starts inside `[0, meta.day_summary_upto)`. Creating
    // it scans nothing: the span is absent, so the triggers do nothing and readers count from
    // `cdr` until the writer has summarised the old days after start, a few at a time.
    "CREATE TABLE cdr_day (
        day INTEGER NOT NULL,
        pbx TEXT NOT NULL,
        direction TEXT NOT NULL,
        disposition TEXT NOT NULL,
        records INTEGER NOT NULL,
        PRIMARY KEY (day, pbx, direction, disposition)
    ) WITHOUT ROWID;
    CREATE TRIGGER cdr_day_insert AFTER INSERT ON cdr
    WHEN NEW.start_utc >= 0 AND NEW.start_utc <
        coalesce((SELECT value FROM meta WHERE key = 'day_summary_upto'), 0)
    BEGIN
        INSERT INTO cdr_day (day, pbx, direction, disposition, records)
        VALUES (NEW.start_utc / 86400, NEW.pbx, NEW.direction, NEW.disposition, 1)
        ON CONFLICT DO UPDATE SET records = records + 1;
    END;
    CREATE TRIGGER cdr_day_delete AFTER DELETE ON cdr
    WHEN OLD.start_utc >= 0 AND OLD.start_utc <
        coalesce((SELECT value FROM meta WHERE key = 'day_summary_upto'), 0)
    BEGIN
        UPDATE cdr_day SET records = records - 1
        WHERE day = OLD.start_utc / 86400 AND pbx = OLD.pbx AND direction = OLD.direction
          AND disposition = OLD.disposition;
    END;
    CREATE TRIGGER cdr_day_update AFTER UPDATE OF start_utc, pbx, direction, disposition ON cdr
    BEGIN
        UPDATE cdr_day SET records = records - 1
        WHERE OLD.start_utc >= 0 AND OLD.start_utc <
              coalesce((SELECT value FROM meta WHERE key = 'day_summary_upto'), 0)
          AND day = OLD.start_utc / 86400 AND pbx = OLD.pbx AND direction = OLD.direction
          AND disposition = OLD.disposition;
        INSERT INTO cdr_day (day, pbx, direction, disposition, records)
        SELECT NEW.start_utc / 86400, NEW.pbx, NEW.direction, NEW.disposition, 1
        WHERE NEW.start_utc >= 0 AND NEW.start_utc <
              coalesce((SELECT value FROM meta WHERE key = 'day_summary_upto'), 0)
        ON CONFLICT DO UPDATE SET records = records + 1;
    END;",
    // 3 → 4: the calls summary (`calls.rs`): which calls had records on each summarised UTC
    // day (`cdr_call`, the call key and the (direction × disposition) groups of its records
    // that day), how many calls per (day, PBX, groups) (`cdr_call_day`), and the summarised
    // days an import, a retention delete or an edit changed since (`cdr_call_dirty`, marked by
    // the triggers in the same transaction; read by scanning until the writer redoes them).
    // Like v3, creating it scans nothing: the span in meta is absent until the writer's steps.
    "CREATE TABLE cdr_call (
        day INTEGER NOT NULL,
        key BLOB NOT NULL,
        pbx TEXT NOT NULL,
        mask INTEGER NOT NULL,
        multi INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, key)
    ) WITHOUT ROWID;
    CREATE INDEX cdr_call_by_key ON cdr_call(key);
    CREATE INDEX cdr_call_multi ON cdr_call(day) WHERE multi;
    CREATE TABLE cdr_call_day (
        day INTEGER NOT NULL,
        pbx TEXT NOT NULL,
        mask INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        PRIMARY KEY (day, pbx, mask)
    ) WITHOUT ROWID;
    CREATE TABLE cdr_call_dirty (day INTEGER PRIMARY KEY);
    CREATE TRIGGER cdr_call_insert AFTER INSERT ON cdr
    WHEN NEW.start_utc >= 0 AND NEW.start_utc <
        coalesce((SELECT value FROM meta WHERE key = 'call_summary_upto'), 0)
    BEGIN
        INSERT OR IGNORE INTO cdr_call_dirty (day) VALUES (NEW.start_utc / 86400);
    END;
    CREATE TRIGGER cdr_call_delete AFTER DELETE ON cdr
    WHEN OLD.start_utc >= 0 AND OLD.start_utc <
        coalesce((SELECT value FROM meta WHERE key = 'call_summary_upto'), 0)
    BEGIN
        INSERT OR IGNORE INTO cdr_call_dirty (day) VALUES (OLD.start_utc / 86400);
    END;
    CREATE TRIGGER cdr_call_update AFTER UPDATE OF start_utc, pbx, direction, disposition,
        linked_id, unique_id, channel ON cdr
    BEGIN
        INSERT OR IGNORE INTO cdr_call_dirty (day)
        SELECT OLD.start_utc / 86400 WHERE OLD.start_utc >= 0 AND OLD.start_utc <
            coalesce((SELECT value FROM meta WHERE key = 'call_summary_upto'), 0);
        INSERT OR IGNORE INTO cdr_call_dirty (day)
        SELECT NEW.start_utc / 86400 WHERE NEW.start_utc >= 0 AND NEW.start_utc <
            coalesce((SELECT value FROM meta WHERE key = 'call_summary_upto'), 0);
    END;",
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

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params_from_iter;

    use crate::journal::store::rows::{record_values, INSERT_COLUMNS};
    use crate::journal::store::{meta_get, open_writer, META_ROWS};
    use crate::journal::testdata::sample_record;
    use crate::journal::JournalError;

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

    /// A file at schema `version` holding 50 records a day apart, opened for writing (which
    /// migrates it): the writer's connection.
    fn old_file_with_50_records(db: &std::path::Path, version: usize) -> Connection {
        let c = Connection::open(db).unwrap();
        c.execute_batch(&format!(
            "{}; PRAGMA user_version = {version};",
            MIGRATIONS[..version].join("; ")
        ))
        .unwrap();
        for n in 0..50u64 {
            crate::journal::store::insert_record(&c, n as i64 + 1, n + 1, &sample_record(n * 997))
                .unwrap();
        }
        drop(c);
        let (opened, ()) = open_writer(db, 0, &|_| Ok(())).unwrap();
        assert_eq!(opened.migrated_from, Some(version as i32));
        opened.conn
    }

    /// Issue 14 item 3: a v2 journal gains the day summary without a scan at start (nothing
    /// summarised, so counts still scan), and the writer's steps then fill it in.
    #[test]
    fn version_2_files_migrate_to_an_empty_day_summary_filled_in_later() {
        let dir = tempfile::tempdir().unwrap();
        let conn = old_file_with_50_records(&dir.path().join("v2.sqlite"), 2);
        let summarised = |conn: &Connection| -> i64 {
            conn.query_row("SELECT coalesce(sum(records), 0) FROM cdr_day", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(summarised(&conn), 0);
        assert_eq!(crate::journal::store::summary_upto(&conn).unwrap(), 0);
        let later = crate::journal::testdata::BASE_UTC + 400 * 86_400;
        let mut steps = 0;
        while crate::journal::store::summarise_step(&conn, later).unwrap() {
            steps += 1;
        }
        assert!(steps >= 1, "the old days take several steps");
        assert_eq!(summarised(&conn), 50);
        // From now on a record for a summarised day is counted by the trigger.
        crate::journal::store::insert_record(&conn, 100, 100, &sample_record(3)).unwrap();
        assert_eq!(summarised(&conn), 51);
    }

    /// Issue 14 item 3: a v3 journal gains the calls summary without a scan at start (counts
    /// of calls scan until then), and the writer's steps fill it in; an import into a
    /// summarised day marks the day for the next step instead of touching the summary.
    #[test]
    fn version_3_files_migrate_to_an_empty_calls_summary_filled_in_later() {
        let dir = tempfile::tempdir().unwrap();
        let conn = old_file_with_50_records(&dir.path().join("v3.sqlite"), 3);
        let calls = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT coalesce(sum(calls), 0) FROM cdr_call_day",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(calls(&conn), 0);
        assert_eq!(crate::journal::store::call_summary_upto(&conn).unwrap(), 0);
        let later = crate::journal::testdata::BASE_UTC + 400 * 86_400;
        while crate::journal::store::summarise_calls_step(&conn, later).unwrap() {}
        // sample_record gives every record a call of its own.
        assert_eq!(calls(&conn), 50);
        assert!(!crate::journal::store::summarise_calls_step(&conn, later).unwrap());
        crate::journal::store::insert_record(&conn, 100, 100, &sample_record(3)).unwrap();
        assert_eq!(
            calls(&conn),
            50,
            "the trigger marks the day, the summary waits"
        );
        assert_eq!(
            crate::journal::store::dirty_call_days(&conn).unwrap().len(),
            1
        );
        while crate::journal::store::summarise_calls_step(&conn, later).unwrap() {}
        assert_eq!(calls(&conn), 51);
        assert!(crate::journal::store::dirty_call_days(&conn)
            .unwrap()
            .is_empty());
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
