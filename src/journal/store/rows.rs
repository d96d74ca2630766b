//! The row layout of a `CallRecord` in `cdr`: the column lists, the stored text of
//! dispositions and directions, inserts, reading a row back, and the counts and deletes that
//! retention runs.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::record::{CallRecord, CdrTime, Direction, Disposition, Origin};

/// Every column of `cdr`, in the order [`row_to_record`] reads them.
pub const COLUMNS: &str = "id, seq, identity, pbx, unique_id, account_code, source, destination, \
    destination_context, caller_id, channel, destination_channel, last_application, last_data, \
    start_raw, start_utc, start_offset, answer_raw, answer_utc, answer_offset, end_raw, end_utc, \
    end_offset, duration, billable_seconds, disposition, ama_flags, user_field, direction, \
    ring_seconds, queue, agent, linked_id, sequence, custom_fields, raw, received_utc, origin";

/// Columns written by an insert (every column but `id`), in [`record_values`] order.
pub(super) const INSERT_COLUMNS: &str = "seq, identity, pbx, unique_id, account_code, source, \
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

/// The bound values of one insert, in `INSERT_COLUMNS` order.
pub(super) fn record_values(seq: u64, r: &CallRecord) -> Vec<Value> {
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
    use crate::journal::store::open_writer;
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
}
