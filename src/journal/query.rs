//! The read side of the journal for the web page, the CLI export and the USB copy: `Filter` →
//! SQL (bound parameters only, never values in the SQL text), counts, pages, and row-by-row
//! streaming that keeps memory flat for millions of rows.
//!
//! Uses its own connection: WAL lets it read beside the writer thread. Must not write to the
//! journal (only TEMP tables, for ring records when the writer is not running).
//!
//! Map: this file (filters → SQL, the reader, counts of records, pages, streams); `calls` (the
//! calls count, from the calls summary).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags};

use crate::filter::{fold_case, Filter, Page, Sort};
use crate::record::{CallRecord, Disposition};

use super::store::{self, COLUMNS, CONTAINS_FN};
use super::{payload, ring, Gap, JournalError, JournalPaths};

mod calls;

/// Totals of a filtered set (for the calls page header and simple stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub count: u64,
    pub answered: u64,
    /// Sum of `duration`.
    pub duration: i64,
    pub billable_seconds: i64,
    pub ring_seconds: i64,
}

/// `WHERE` text and its bound values for a filter. Every value is a parameter.
pub fn where_clause(f: &Filter) -> (String, Vec<Value>) {
    let mut parts: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(from) = f.from_utc {
        parts.push("start_utc >= ?".into());
        values.push(Value::Integer(from));
    }
    if let Some(to) = f.to_utc {
        parts.push("start_utc < ?".into());
        values.push(Value::Integer(to));
    }
    let mut one_of = |column: &str, items: Vec<Value>| {
        if !items.is_empty() {
            let marks = vec!["?"; items.len()].join(", ");
            parts.push(format!("{column} IN ({marks})"));
            values.extend(items);
        }
    };
    one_of(
        "disposition",
        f.dispositions
            .iter()
            .map(|d: &Disposition| Value::Text(store::disposition_to_db(d)))
            .collect(),
    );
    one_of(
        "direction",
        f.directions
            .iter()
            .map(|d| Value::Text(store::direction_to_db(*d).into()))
            .collect(),
    );
    one_of(
        "pbx",
        f.pbx.iter().map(|p| Value::Text(p.clone())).collect(),
    );
    // Numbers named like the text (`Filter::source_numbers`) match it too.
    let or_in = |column: &str, numbers: &[String], values: &mut Vec<Value>| -> String {
        if numbers.is_empty() {
            return String::new();
        }
        values.extend(numbers.iter().map(|n| Value::Text(n.clone())));
        format!(" OR {column} IN ({})", vec!["?"; numbers.len()].join(", "))
    };
    if let Some(needle) = &f.source_contains {
        let folded = fold_case(needle);
        values.push(Value::Text(folded.clone()));
        values.push(Value::Text(folded));
        let named = or_in("source", &f.source_numbers, &mut values);
        parts.push(format!(
            "({CONTAINS_FN}(source, ?) OR {CONTAINS_FN}(caller_id, ?){named})"
        ));
    }
    if let Some(needle) = &f.destination_contains {
        values.push(Value::Text(fold_case(needle)));
        let named = or_in("destination", &f.destination_numbers, &mut values);
        parts.push(format!("({CONTAINS_FN}(destination, ?){named})"));
    }
    let mut equal = |column: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{column} = ?"));
            values.push(Value::Text(v.clone()));
        }
    };
    equal("account_code", &f.account_code);
    equal("queue", &f.queue);
    equal("agent", &f.agent);
    if let Some(min) = f.min_duration {
        parts.push("duration >= ?".into());
        values.push(Value::Integer(min));
    }
    if let Some(max) = f.max_duration {
        parts.push("duration <= ?".into());
        values.push(Value::Integer(max));
    }
    if parts.is_empty() {
        ("1".into(), values)
    } else {
        (parts.join(" AND "), values)
    }
}

/// True when the day summary (`store::days`) can count `f`: only the start range and the
/// criteria it is kept by (disposition, direction, PBX) — a number search, an account code, a
/// queue, an agent or a duration bound need the rows themselves.
pub fn by_day_summary(f: &Filter) -> bool {
    f.source_contains.is_none()
        && f.destination_contains.is_none()
        && f.account_code.is_none()
        && f.queue.is_none()
        && f.agent.is_none()
        && f.min_duration.is_none()
        && f.max_duration.is_none()
}

/// `ORDER BY` text for a sort; the row id breaks ties so pages are stable.
pub fn order_by(sort: Sort) -> &'static str {
    match sort {
        Sort::StartDesc => "start_utc DESC, id DESC",
        Sort::StartAsc => "start_utc ASC, id ASC",
        Sort::DurationDesc => "duration DESC, id DESC",
        Sort::DurationAsc => "duration ASC, id ASC",
    }
}

/// A read connection on the journal.
pub struct JournalReader {
    conn: Connection,
    db: PathBuf,
    /// The database file this connection reads (device, inode): a damaged file set aside while
    /// the writer runs is replaced by a new one under the same name.
    file_id: Option<(u64, u64)>,
    /// `main.cdr`, or a TEMP view adding ring records (see [`JournalReader::open_with_ring`]).
    source: &'static str,
    ring_records: usize,
}

fn sql(db: &std::path::Path, what: &str) -> impl FnOnce(rusqlite::Error) -> JournalError {
    let db = db.to_path_buf();
    let what = what.to_string();
    move |source| JournalError::Sqlite {
        what,
        path: db,
        source,
    }
}

impl JournalReader {
    /// Opens the journal database for reading (it must exist and have the current schema).
    pub fn open(paths: &JournalPaths) -> Result<JournalReader, JournalError> {
        let db = &paths.db;
        if !db.exists() {
            return Err(JournalError::NotFound { path: db.clone() });
        }
        // Read-write (no create) so SQLite can make the -shm file when the writer is not
        // running; fall back to read-only on a read-only filesystem.
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_else(|_| {
            Connection::open_with_flags(
                db,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        })
        .map_err(sql(db, "cannot open the journal for reading"))?;
        // Never delete the -wal/-shm by name on close (see store::persist_wal).
        store::persist_wal(&conn).map_err(sql(db, "cannot configure the read connection"))?;
        conn.busy_timeout(Duration::from_secs(2))
            .map_err(sql(db, "cannot set busy_timeout"))?;
        let version: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(db, "cannot read the journal's schema version"))?;
        if version == 0 {
            return Err(JournalError::NotFound { path: db.clone() });
        }
        if version < store::SCHEMA_VERSION {
            return Err(JournalError::OldSchema {
                path: db.clone(),
                found: version,
                supported: store::SCHEMA_VERSION,
            });
        }
        if version > store::SCHEMA_VERSION {
            return Err(JournalError::FutureSchema {
                path: db.clone(),
                found: version,
                supported: store::SCHEMA_VERSION,
            });
        }
        store::register_functions(&conn).map_err(sql(db, "cannot register functions"))?;
        Ok(JournalReader {
            conn,
            file_id: file_id(db),
            db: db.clone(),
            source: "main.cdr",
            ring_records: 0,
        })
    }

    /// Like [`open`](Self::open), and also includes records that are in the ring file but not
    /// yet committed (for `cdrbox export` after a crash, when no writer replays them). Ring
    /// records are deduplicated by identity against the database and each other; they get ids
    /// after the database's highest. Use only while the writer is not running.
    pub fn open_with_ring(paths: &JournalPaths) -> Result<JournalReader, JournalError> {
        // Order matters when a writer IS running (`cdrbox export` beside `cdrbox run`): the ring
        // is read first, then one read transaction pins the database snapshot for the reader's
        // whole life. A record uncommitted when the ring was read is then either in that
        // snapshot (skipped below by seq and identity) or taken from the ring — never both,
        // never neither; records arriving after the ring was read may be missing, which is
        // what a snapshot taken "now" means.
        let ring_err = |e| JournalError::Io {
            what: "cannot read the ring file".into(),
            path: paths.ring.clone(),
            source: e,
        };
        let ring_file = match std::fs::File::open(&paths.ring) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ring_err(e)),
        };
        let scan = match &ring_file {
            Some(f) => ring::scan(f).map_err(ring_err)?,
            None => ring::RingScan::default(),
        };
        let mut reader = JournalReader::open(paths)?;
        let db = reader.db.clone();
        reader
            .conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(sql(&db, "cannot start a read transaction"))?;
        let committed = store::meta_get(&reader.conn, store::META_COMMITTED_SEQ)
            .map_err(sql(&db, "cannot read meta"))?
            .unwrap_or(0)
            .max(0) as u64;
        let mut extra: Vec<(u64, CallRecord)> = Vec::new();
        let mut seen = HashSet::new();
        for e in scan.entries.iter().filter(|e| e.seq > committed) {
            let bytes = ring_file
                .as_ref()
                .and_then(|f| ring::read_payload(f, e).ok());
            let Some(Ok(record)) = bytes.map(|b| payload::decode(&b)) else {
                continue;
            };
            if !seen.insert(record.identity) {
                continue;
            }
            let stored = store::identity_exists(&reader.conn, &record.identity)
                .map_err(sql(&db, "cannot look up a ring record"))?;
            if !stored {
                extra.push((e.seq, record));
            }
        }
        if extra.is_empty() {
            return Ok(reader);
        }
        let conn = &reader.conn;
        conn.execute_batch(
            "CREATE TEMP TABLE ring_cdr AS SELECT * FROM main.cdr WHERE 0;
             CREATE TEMP VIEW all_cdr AS SELECT * FROM main.cdr UNION ALL SELECT * FROM temp.ring_cdr;",
        )
        .map_err(sql(&db, "cannot create the TEMP table for ring records"))?;
        let mut id = reader.max_id()?;
        for (seq, r) in &extra {
            id += 1;
            store::insert_record_with_id(conn, "temp.ring_cdr", id, *seq, r)
                .map_err(sql(&db, "cannot stage a ring record"))?;
        }
        reader.source = "temp.all_cdr";
        reader.ring_records = extra.len();
        Ok(reader)
    }

    /// True when the database file has been replaced since this reader opened (a damaged file
    /// set aside): open a new reader to see the current journal.
    pub fn is_stale(&self) -> bool {
        file_id(&self.db) != self.file_id
    }

    /// Ring records included by [`open_with_ring`](Self::open_with_ring).
    pub fn ring_records(&self) -> usize {
        self.ring_records
    }

    /// How many records match: from the day summary for the whole summarised days of the
    /// range when the filter is one it can answer ([`by_day_summary`]), the rest (and any
    /// other filter) counted from the table.
    pub fn count(&self, f: &Filter) -> Result<u64, JournalError> {
        if self.source != "main.cdr" || !by_day_summary(f) {
            return self.count_scan(f);
        }
        let upto = store::summary_upto(&self.conn).map_err(sql(&self.db, "cannot read meta"))?;
        let split = store::split_days(f.from_utc, f.to_utc, upto);
        let mut n = 0;
        if let Some((lo, hi)) = split.days {
            let (w, mut values) = where_clause(&Filter {
                from_utc: None,
                to_utc: None,
                ..f.clone()
            });
            values.insert(0, Value::Integer(lo / store::DAY));
            values.insert(1, Value::Integer(hi / store::DAY));
            let days: i64 = self
                .conn
                .prepare_cached(&format!(
                    "SELECT coalesce(sum(records), 0) FROM main.cdr_day \
                     WHERE day >= ? AND day < ? AND {w}"
                ))
                .and_then(|mut s| s.query_row(params_from_iter(values), |r| r.get(0)))
                .map_err(sql(&self.db, "cannot read the day summary"))?;
            n += days.max(0) as u64;
        }
        for (from_utc, to_utc) in split.edges {
            n += self.count_scan(&Filter {
                from_utc,
                to_utc,
                ..f.clone()
            })?;
        }
        if split.no_start {
            let (w, values) = where_clause(f);
            let none: i64 = self
                .conn
                .prepare_cached(&format!(
                    "SELECT count(*) FROM main.cdr WHERE start_utc IS NULL AND {w}"
                ))
                .and_then(|mut s| s.query_row(params_from_iter(values), |r| r.get(0)))
                .map_err(sql(&self.db, "cannot count records"))?;
            n += none.max(0) as u64;
        }
        Ok(n)
    }

    /// [`count`](Self::count) from the table alone (the summary's differential tests compare
    /// the two).
    pub fn count_scan(&self, f: &Filter) -> Result<u64, JournalError> {
        let (w, values) = where_clause(f);
        let n: i64 = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM {} WHERE {w}", self.source))
            .and_then(|mut s| s.query_row(params_from_iter(values), |r| r.get(0)))
            .map_err(sql(&self.db, "cannot count records"))?;
        Ok(n.max(0) as u64)
    }

    /// Totals of the matching records.
    pub fn totals(&self, f: &Filter) -> Result<Totals, JournalError> {
        let (w, values) = where_clause(f);
        let q = format!(
            "SELECT count(*), coalesce(sum(disposition = 'ANSWERED'), 0), \
             coalesce(sum(duration), 0), coalesce(sum(billable_seconds), 0), \
             coalesce(sum(ring_seconds), 0) FROM {} WHERE {w}",
            self.source
        );
        self.conn
            .prepare_cached(&q)
            .and_then(|mut s| {
                s.query_row(params_from_iter(values), |r| {
                    Ok(Totals {
                        count: r.get::<_, i64>(0)?.max(0) as u64,
                        answered: r.get::<_, i64>(1)?.max(0) as u64,
                        duration: r.get(2)?,
                        billable_seconds: r.get(3)?,
                        ring_seconds: r.get(4)?,
                    })
                })
            })
            .map_err(sql(&self.db, "cannot total records"))
    }

    /// One page of matching records.
    pub fn query(
        &self,
        f: &Filter,
        sort: Sort,
        page: Page,
    ) -> Result<Vec<CallRecord>, JournalError> {
        let mut out = Vec::with_capacity(page.limit.min(1000) as usize);
        self.query_each(f, sort, page, |r| {
            out.push(r);
            Ok::<_, JournalError>(())
        })?;
        Ok(out)
    }

    /// One page of matching records, like [`JournalReader::query`], passed to `each` one row at
    /// a time: memory holds one record whatever their size (a hostile PBX sends megabyte
    /// records; the web page's listings read through this). Returns how many were passed.
    pub fn query_each<E: From<JournalError>>(
        &self,
        f: &Filter,
        sort: Sort,
        page: Page,
        mut each: impl FnMut(CallRecord) -> Result<(), E>,
    ) -> Result<u64, E> {
        let (w, mut values) = where_clause(f);
        values.push(Value::Integer(i64::from(page.limit)));
        values.push(Value::Integer(page.offset.min(i64::MAX as u64) as i64));
        let q = format!(
            "SELECT {COLUMNS} FROM {} WHERE {w} ORDER BY {} LIMIT ? OFFSET ?",
            self.source,
            order_by(sort)
        );
        self.stream(&q, values, |_, r| each(r))
    }

    /// Calls `each` for every matching record in order, one row at a time (memory stays flat).
    /// Stops at the first error from `each`. Returns how many records were passed.
    pub fn for_each<E: From<JournalError>>(
        &self,
        f: &Filter,
        sort: Sort,
        mut each: impl FnMut(CallRecord) -> Result<(), E>,
    ) -> Result<u64, E> {
        let (w, values) = where_clause(f);
        let q = format!(
            "SELECT {COLUMNS} FROM {} WHERE {w} ORDER BY {}",
            self.source,
            order_by(sort)
        );
        self.stream(&q, values, |_, r| each(r))
    }

    /// Calls `each` with (id, record) for every matching record with `id > after_id`, in id
    /// order (the USB "new since watermark" copy). Returns how many were passed.
    pub fn for_each_after_id<E: From<JournalError>>(
        &self,
        after_id: i64,
        f: &Filter,
        each: impl FnMut(i64, CallRecord) -> Result<(), E>,
    ) -> Result<u64, E> {
        let (w, mut values) = where_clause(f);
        values.insert(0, Value::Integer(after_id));
        let q = format!(
            "SELECT {COLUMNS} FROM {} WHERE id > ? AND ({w}) ORDER BY id",
            self.source
        );
        self.stream(&q, values, each)
    }

    /// Up to `limit` records with `id > after_id`, in id order, with their ids.
    pub fn records_after_id(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, CallRecord)>, JournalError> {
        let mut out = Vec::new();
        let q = format!(
            "SELECT {COLUMNS} FROM {} WHERE id > ? ORDER BY id LIMIT ?",
            self.source
        );
        self.stream::<JournalError>(
            &q,
            vec![Value::Integer(after_id), Value::Integer(limit as i64)],
            |id, r| {
                out.push((id, r));
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn stream<E: From<JournalError>>(
        &self,
        q: &str,
        values: Vec<Value>,
        mut each: impl FnMut(i64, CallRecord) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut stmt = self
            .conn
            .prepare(q)
            .map_err(sql(&self.db, "cannot query records"))?;
        let mut rows = stmt
            .query(params_from_iter(values))
            .map_err(sql(&self.db, "cannot query records"))?;
        let mut n = 0;
        while let Some(row) = rows
            .next()
            .map_err(sql(&self.db, "cannot read a record row"))?
        {
            let (id, record) =
                store::row_to_record(row).map_err(sql(&self.db, "cannot decode a record row"))?;
            each(id, record)?;
            n += 1;
        }
        Ok(n)
    }

    /// Records stored (the count the writer keeps in meta; a full count on files without it),
    /// ring records of [`open_with_ring`](Self::open_with_ring) included.
    pub fn rows(&self) -> Result<u64, JournalError> {
        let stored = match store::meta_get(&self.conn, store::META_ROWS)
            .map_err(sql(&self.db, "cannot read meta"))?
        {
            Some(n) => n.max(0) as u64,
            None => store::count_records(&self.conn).map_err(sql(&self.db, "cannot count"))?,
        };
        Ok(stored + self.ring_records as u64)
    }

    /// Highest row id (0 when empty). Ids only grow and are never reused, but they are not
    /// dense (a record's id is normally its seq): this is not a count.
    pub fn max_id(&self) -> Result<i64, JournalError> {
        self.conn
            .query_row(
                &format!("SELECT coalesce(max(id), 0) FROM {}", self.source),
                [],
                |r| r.get(0),
            )
            .map_err(sql(&self.db, "cannot read max(id)"))
    }

    /// Stores the USB copy watermark directly, for `cdrbox usb-export` while `cdrbox run`
    /// holds the writer: the same statement the writer uses (`store::advance_copy_watermark`),
    /// one small transaction SQLite serialises with the writer's. It only ever moves forward.
    pub fn set_copy_watermark(&self, id: i64) -> Result<(), JournalError> {
        store::advance_copy_watermark(&self.conn, id)
            .map_err(sql(&self.db, "cannot store the USB copy watermark"))
    }

    /// The USB copy watermark (0 when nothing was copied yet).
    pub fn copy_watermark(&self) -> Result<i64, JournalError> {
        Ok(store::meta_get(&self.conn, store::META_USB_COPIED_ID)
            .map_err(sql(&self.db, "cannot read meta"))?
            .unwrap_or(0))
    }

    /// Stores the uplink watermark after the central server committed every row up to `id`
    /// (`crate::uplink`); like the USB one it only ever moves forward.
    pub fn set_uplink_watermark(&self, id: i64) -> Result<(), JournalError> {
        store::advance_uplink_watermark(&self.conn, id)
            .map_err(sql(&self.db, "cannot store the uplink watermark"))
    }

    /// The uplink watermark (0 when nothing was forwarded yet).
    pub fn uplink_watermark(&self) -> Result<i64, JournalError> {
        Ok(store::meta_get(&self.conn, store::META_UPLINK_SENT_ID)
            .map_err(sql(&self.db, "cannot read meta"))?
            .unwrap_or(0))
    }

    /// How many stored records have `id > after_id` (the uplink's lag in records).
    pub fn count_after_id(&self, after_id: i64) -> Result<u64, JournalError> {
        let n: i64 = self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM {} WHERE id > ?1", self.source),
                [after_id],
                |r| r.get(0),
            )
            .map_err(sql(&self.db, "cannot count unsent records"))?;
        Ok(n.max(0) as u64)
    }

    /// How many stored records of `pbx` have this cross-source match key (`record::match_key`;
    /// rows stored before schema v2 have none). Uses the match_key index.
    pub fn count_match_key(&self, pbx: &str, key: &[u8; 16]) -> Result<u64, JournalError> {
        let n: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM {} WHERE match_key = ?1 AND pbx = ?2",
                self.source
            ))
            .and_then(|mut s| s.query_row(rusqlite::params![&key[..], pbx], |r| r.get(0)))
            .map_err(sql(&self.db, "cannot count records by match key"))?;
        Ok(n.max(0) as u64)
    }

    /// Gaps overlapping `[from_utc, to_utc)` (either bound optional), oldest first; a gap still
    /// open has `up_utc: None`.
    pub fn gaps(
        &self,
        from_utc: Option<i64>,
        to_utc: Option<i64>,
    ) -> Result<Vec<Gap>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, pbx, down_utc, up_utc, reason, lost, filled_from, filled_records,
                        filled_utc FROM gaps
                 WHERE (?1 IS NULL OR up_utc IS NULL OR up_utc > ?1)
                   AND (?2 IS NULL OR down_utc < ?2)
                 ORDER BY down_utc, id",
            )
            .map_err(sql(&self.db, "cannot query gaps"))?;
        let rows = stmt
            .query_map(rusqlite::params![from_utc, to_utc], |r| {
                Ok(Gap {
                    id: r.get(0)?,
                    pbx: r.get(1)?,
                    down_utc: r.get(2)?,
                    up_utc: r.get(3)?,
                    reason: r.get(4)?,
                    lost: r.get::<_, i64>(5)?.max(0) as u64,
                    filled_from: r.get(6)?,
                    filled_records: r.get::<_, i64>(7)?.max(0) as u64,
                    filled_utc: r.get(8)?,
                })
            })
            .map_err(sql(&self.db, "cannot query gaps"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql(&self.db, "cannot read a gap row"))
    }
}

fn file_id(db: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(db).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parameters_never_sql_text() {
        let f = Filter {
            source_contains: Some("'; DROP TABLE cdr; --".into()),
            pbx: vec!["a'b".into()],
            ..Filter::default()
        };
        let (w, values) = where_clause(&f);
        assert!(!w.contains("DROP"));
        assert!(!w.contains("a'b"));
        assert_eq!(w.matches('?').count(), values.len());
    }

    /// Issue 13 item 2: the numbers named like the search text widen it, as parameters.
    #[test]
    fn named_numbers_widen_the_text_search() {
        let f = Filter {
            source_contains: Some("Петрова".into()),
            source_numbers: vec!["101".into(), "1'02".into()],
            destination_contains: Some("петрова".into()),
            destination_numbers: vec!["101".into()],
            ..Filter::default()
        };
        let (w, values) = where_clause(&f);
        assert!(w.contains("OR source IN (?, ?))"), "{w}");
        assert!(w.contains("OR destination IN (?))"), "{w}");
        assert!(!w.contains("1'02"));
        assert_eq!(w.matches('?').count(), values.len());
        assert_eq!(values[0], Value::Text("петрова".into()));
        assert_eq!(values[2], Value::Text("101".into()));
    }

    /// Issue 14 item 3: the day summary and the scan give the same counts, whatever was
    /// inserted before and after the summary moved, deleted by retention or updated.
    mod summary_matches_the_scan {
        use super::super::*;
        use crate::journal::store::{self, DAY};
        use crate::journal::testdata::sample_record;
        use crate::record::Direction;
        use proptest::prelude::*;

        const PBX: [&str; 3] = ["main", "branch", "x'y"];
        const DISPOSITIONS: [Disposition; 3] = [
            Disposition::Answered,
            Disposition::NoAnswer,
            Disposition::Busy,
        ];
        const DIRECTIONS: [Direction; 2] = [Direction::Inbound, Direction::Internal];

        /// (day 0..40 or none, second of the day, pbx, disposition, direction).
        fn rows() -> impl Strategy<Value = Vec<(Option<i64>, i64, usize, usize, usize)>> {
            prop::collection::vec(
                (
                    prop::option::weighted(0.95, -2i64..40),
                    0i64..DAY,
                    0..PBX.len(),
                    0..DISPOSITIONS.len(),
                    0..DIRECTIONS.len(),
                ),
                1..120,
            )
        }

        /// Rows `first..`; with `calls` > 0 record n belongs to call `n % calls` (its records
        /// then fall on several days and groups), else each record is a call of its own.
        fn insert(
            conn: &Connection,
            first: u64,
            rows: &[(Option<i64>, i64, usize, usize, usize)],
            calls: u64,
        ) {
            for (i, &(day, second, p, d, dir)) in rows.iter().enumerate() {
                let n = first + i as u64;
                let mut r = sample_record(n);
                if calls > 0 {
                    r.linked_id = Some(format!("call-{}", n % calls));
                }
                r.start.utc = day.map(|d| 1_000 * DAY + d * DAY + second);
                r.pbx = PBX[p].into();
                r.disposition = DISPOSITIONS[d].clone();
                r.direction = DIRECTIONS[dir];
                assert!(store::insert_record(conn, n as i64, n, &r).unwrap());
            }
        }

        fn summarise(conn: &Connection, day: i64) {
            while store::summarise_step(conn, 1_000 * DAY + day * DAY).unwrap() {}
            while store::summarise_calls_step(conn, 1_000 * DAY + day * DAY).unwrap() {}
        }

        /// 30 records over days 0–9 (of `calls` calls, see [`insert`]), both summaries moved
        /// to day 8: the directory, the writer's connection and a reader.
        fn thirty_records_summarised_to_day_8(
            calls: u64,
        ) -> (tempfile::TempDir, Connection, JournalReader) {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("journal.sqlite");
            let (opened, ()) = store::open_writer(&db, 0, &|_| Ok(())).unwrap();
            let rows: Vec<_> = (0..30).map(|i| (Some(i % 10), i * 997, 0, 0, 0)).collect();
            insert(&opened.conn, 1, &rows, calls);
            summarise(&opened.conn, 8);
            let reader =
                JournalReader::open(&crate::journal::JournalPaths::from_path(&db)).unwrap();
            (dir, opened.conn, reader)
        }

        /// The property above would also hold if `count` never read the summary: a summary
        /// made wrong on purpose shows that it does, and only for the days it covers.
        #[test]
        fn counts_read_the_summary_for_whole_days() {
            let (_dir, conn, reader) = thirty_records_summarised_to_day_8(0);
            assert_eq!(store::summary_upto(&conn).unwrap(), 1_008 * DAY);
            conn.execute(
                "UPDATE cdr_day SET records = records + 100 WHERE day = 1003",
                [],
            )
            .unwrap();
            let all = Filter::default();
            assert_eq!(reader.count_scan(&all).unwrap(), 30);
            assert_eq!(reader.count(&all).unwrap(), 130);
            let day = |d: i64| Some(1_000 * DAY + d * DAY);
            let not_day_3 = Filter {
                from_utc: day(4),
                to_utc: day(10),
                ..Filter::default()
            };
            assert_eq!(reader.count(&not_day_3).unwrap(), 18);
            let searched = Filter {
                source_contains: Some("10".into()),
                ..Filter::default()
            };
            assert_eq!(
                reader.count(&searched).unwrap(),
                reader.count_scan(&searched).unwrap(),
                "a number search is never answered by the summary"
            );
        }

        /// The same for calls: a calls summary made wrong on purpose shows that `count_calls`
        /// reads it for whole days, that a day marked changed is scanned instead, and that a
        /// call over midnight counts once.
        #[test]
        fn calls_counts_read_the_calls_summary_for_whole_days() {
            // 30 records of 7 calls, each call's records on several days.
            let (_dir, conn, reader) = thirty_records_summarised_to_day_8(7);
            assert_eq!(store::call_summary_upto(&conn).unwrap(), 1_008 * DAY);
            let all = Filter::default();
            assert_eq!(reader.count_calls_scan(&all).unwrap(), 7);
            assert_eq!(reader.count_calls(&all).unwrap(), 7);
            conn.execute(
                "UPDATE cdr_call_day SET calls = calls + 100 WHERE day = 1003",
                [],
            )
            .unwrap();
            assert_eq!(reader.count_calls(&all).unwrap(), 107);
            conn.execute("INSERT INTO cdr_call_dirty (day) VALUES (1003)", [])
                .unwrap();
            assert_eq!(
                reader.count_calls(&all).unwrap(),
                7,
                "a changed day is scanned"
            );
            let day = |d: i64| Some(1_000 * DAY + d * DAY);
            let two_days = Filter {
                from_utc: day(4),
                to_utc: day(6),
                ..Filter::default()
            };
            assert_eq!(
                reader.count_calls(&two_days).unwrap(),
                reader.count_calls_scan(&two_days).unwrap()
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            #[test]
            fn for_every_filter_it_can_answer(
                before in rows(),
                after in rows(),
                first_upto in prop_oneof![Just(0i64), 1i64..30],
                second_upto in prop_oneof![Just(0i64), 1i64..42],
                cutoff in 0i64..10,
                moved in 0i64..40,
                ranges in prop::collection::vec(
                    (prop::option::of(-3i64..45 * 4), prop::option::of(-3i64..45 * 4)), 6),
                pick in prop::collection::vec((0u8..8, 0u8..4, 0u8..8), 6),
                calls in prop_oneof![Just(0u64), 1u64..80],
            ) {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("journal.sqlite");
                let (opened, ()) = store::open_writer(&db, 0, &|_| Ok(())).unwrap();
                let conn = opened.conn;
                insert(&conn, 1, &before, calls);
                // Sometimes nothing is summarised yet (a journal just migrated).
                if first_upto > 0 {
                    summarise(&conn, first_upto);
                }
                // Old days (triggers) and new ones, then retention and an edit.
                insert(&conn, 1_000, &after, calls);
                store::delete_older_than(&conn, 1_000 * DAY + cutoff * DAY, None).unwrap();
                conn.execute(
                    "UPDATE cdr SET start_utc = start_utc + ?1, disposition = 'BUSY' \
                     WHERE id % 7 = 0",
                    [moved * DAY / 3],
                )
                .unwrap();
                if second_upto > 0 {
                    summarise(&conn, second_upto);
                }
                let reader = JournalReader::open(&crate::journal::JournalPaths::from_path(&db))
                    .unwrap();
                for (&(from, to), &(d, dir, p)) in ranges.iter().zip(&pick) {
                    // Quarter days, so ranges are aligned to days and not.
                    let at = |q: i64| 1_000 * DAY + q * DAY / 4;
                    let f = Filter {
                        from_utc: from.map(at),
                        to_utc: to.map(at),
                        dispositions: (0..3)
                            .filter(|i| d & (1 << i) != 0)
                            .map(|i| DISPOSITIONS[i].clone())
                            .collect(),
                        directions: (0..2).filter(|i| dir & (1 << i) != 0).map(|i| DIRECTIONS[i]).collect(),
                        pbx: (0..3).filter(|i| p & (1 << i) != 0).map(|i| PBX[i].to_string()).collect(),
                        ..Filter::default()
                    };
                    prop_assert_eq!(reader.count(&f).unwrap(), reader.count_scan(&f).unwrap(), "{:?}", f);
                    prop_assert_eq!(reader.count_calls(&f).unwrap(), reader.count_calls_scan(&f).unwrap(), "calls {:?}", f);
                }
                let nothing = Filter::default();
                prop_assert_eq!(reader.count(&nothing).unwrap(), reader.count_scan(&nothing).unwrap());
                prop_assert_eq!(reader.count_calls(&nothing).unwrap(), reader.count_calls_scan(&nothing).unwrap());
            }
        }
    }

    #[test]
    fn empty_filter_is_true() {
        let (w, v) = where_clause(&Filter::default());
        assert_eq!(w, "1");
        assert!(v.is_empty());
    }
}
