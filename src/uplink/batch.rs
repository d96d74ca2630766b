//! What one uplink batch sends, and how: the column list of `cdrbox_cdr` with the array type
//! each column travels in, the one multi-row insert built from it, the `cdrbox_boxes` upsert and
//! the schema check inside every batch, and the gap ledger's upsert. [`super::forward`] decides
//! when to send; this file is the SQL and the binding of a batch to it.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::forward::{server, SendError};
use super::schema::SCHEMA_VERSION;
use crate::journal::Gap;
use crate::record::CallRecord;

/// How one `cdrbox_cdr` column is filled from its array in the multi-row insert.
#[derive(Clone, Copy)]
enum Cast {
    /// As sent.
    Plain,
    /// Unix seconds → `timestamptz`.
    Time,
    /// JSON text → `jsonb`.
    Json,
}

/// Every column the box writes, with the array type its values travel in, in the order of
/// [`Columns::params`]. `box_id` is the statement's first parameter, a scalar; the rest come
/// one array per column. The list is explicit (the compatibility rule): columns a newer
/// schema adds get their defaults.
const CDR_COLUMNS: &[(&str, &str, Cast)] = &[
    ("pbx", "text", Cast::Plain),
    ("identity", "bytea", Cast::Plain),
    ("seq", "int8", Cast::Plain),
    ("unique_id", "text", Cast::Plain),
    ("linked_id", "text", Cast::Plain),
    ("sequence", "int8", Cast::Plain),
    ("account_code", "text", Cast::Plain),
    ("source", "text", Cast::Plain),
    ("destination", "text", Cast::Plain),
    ("destination_context", "text", Cast::Plain),
    ("caller_id", "text", Cast::Plain),
    ("channel", "text", Cast::Plain),
    ("destination_channel", "text", Cast::Plain),
    ("last_application", "text", Cast::Plain),
    ("last_data", "text", Cast::Plain),
    ("start_time", "int8", Cast::Time),
    ("answer_time", "int8", Cast::Time),
    ("end_time", "int8", Cast::Time),
    ("start_raw", "text", Cast::Plain),
    ("answer_raw", "text", Cast::Plain),
    ("end_raw", "text", Cast::Plain),
    ("duration", "int8", Cast::Plain),
    ("billable_seconds", "int8", Cast::Plain),
    ("ring_seconds", "int8", Cast::Plain),
    ("disposition", "text", Cast::Plain),
    ("ama_flags", "text", Cast::Plain),
    ("user_field", "text", Cast::Plain),
    ("direction", "text", Cast::Plain),
    ("queue", "text", Cast::Plain),
    ("agent", "text", Cast::Plain),
    ("custom_fields", "text", Cast::Json),
    ("record", "text", Cast::Json),
    ("raw", "bytea", Cast::Plain),
    ("origin", "text", Cast::Plain),
    ("received_at", "int8", Cast::Time),
];

/// `INSERT INTO cdrbox_cdr (box_id, …) SELECT $1, … FROM unnest($2::text[], …) AS u(…)
/// ON CONFLICT (box_id, pbx, identity) DO NOTHING`: a whole batch in one statement, one
/// round trip, whatever its size (a multi-row `VALUES` would hit the 65,535-parameter limit
/// at 1,820 rows; `batch_records` goes to 10,000).
fn insert_cdr_sql() -> String {
    let names: Vec<&str> = CDR_COLUMNS.iter().map(|c| c.0).collect();
    let arrays: Vec<String> = CDR_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 2, c.1))
        .collect();
    let exprs: Vec<String> = CDR_COLUMNS
        .iter()
        .map(|(name, _, cast)| match cast {
            Cast::Plain => format!("u.{name}"),
            Cast::Time => format!("to_timestamp(u.{name})"),
            Cast::Json => format!("u.{name}::jsonb"),
        })
        .collect();
    format!(
        "INSERT INTO cdrbox_cdr (box_id, {}) SELECT $1, {} FROM unnest({}) AS u({}) \
         ON CONFLICT (box_id, pbx, identity) DO NOTHING",
        names.join(", "),
        exprs.join(", "),
        arrays.join(", "),
        names.join(", ")
    )
}

const UPSERT_BOX: &str = "INSERT INTO cdrbox_boxes (box_id, version, schema_version, \
    last_contact, last_seq, records) VALUES ($1, $2, $3, now(), $4, $5) \
    ON CONFLICT (box_id) DO UPDATE SET version = excluded.version, \
    schema_version = excluded.schema_version, last_contact = now(), \
    last_seq = GREATEST(cdrbox_boxes.last_seq, excluded.last_seq), \
    records = cdrbox_boxes.records + excluded.records";

/// Read inside every batch: a DBA who raises `min_writer` stops this box at its next batch,
/// not at its next reconnect.
const MIN_WRITER_SQL: &str = "SELECT min_writer FROM cdrbox_schema WHERE component = 'cdrbox'";

/// The batch statements, prepared once per connection (a batch is then BEGIN, three
/// executes and COMMIT — five round trips whatever its size).
pub(super) struct Statements {
    insert: tokio_postgres::Statement,
    upsert_box: tokio_postgres::Statement,
    min_writer: tokio_postgres::Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Statements, SendError> {
        let what = "cannot prepare the insert (is the central schema current?)";
        Ok(Statements {
            insert: client
                .prepare(&insert_cdr_sql())
                .await
                .map_err(server(what))?,
            upsert_box: client.prepare(UPSERT_BOX).await.map_err(server(what))?,
            min_writer: client.prepare(MIN_WRITER_SQL).await.map_err(server(what))?,
        })
    }
}

/// One batch in one transaction; returns how many rows were new on the server.
pub(super) async fn send_batch(
    client: &mut Client,
    stmts: &Statements,
    box_id: &str,
    batch: &[(i64, CallRecord)],
) -> Result<u64, SendError> {
    let tx = client
        .transaction()
        .await
        .map_err(server("cannot begin a batch"))?;
    let min_writer: Option<i32> = tx
        .query_opt(&stmts.min_writer, &[])
        .await
        .map_err(server("cannot read the schema version"))?
        .map(|r| r.get(0));
    if let Some(min_writer) = min_writer.filter(|m| *m > SCHEMA_VERSION) {
        // Dropping the transaction rolls it back: nothing of this batch is written.
        return Err(SendError::SchemaTooNew { min_writer });
    }
    let cols = Columns::of(batch);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&box_id];
    params.extend(cols.params());
    let added = tx
        .execute(&stmts.insert, &params)
        .await
        .map_err(server("cannot insert the batch"))?;
    let last = batch.last().map_or(0, |(id, _)| *id);
    let version = env!("CARGO_PKG_VERSION");
    let added_i = i64::try_from(added).unwrap_or(i64::MAX);
    tx.execute(
        &stmts.upsert_box,
        &[&box_id, &version, &SCHEMA_VERSION, &last, &added_i],
    )
    .await
    .map_err(server("cannot update cdrbox_boxes"))?;
    tx.commit().await.map_err(server("cannot commit a batch"))?;
    Ok(added)
}

/// A batch as one array per column, in the types the statement binds (`&[u8]` as bytea,
/// `Option` as NULL, text for the jsonb casts).
struct Columns<'a> {
    pbx: Vec<&'a str>,
    identity: Vec<&'a [u8]>,
    seq: Vec<i64>,
    unique_id: Vec<&'a str>,
    linked_id: Vec<Option<&'a str>>,
    sequence: Vec<Option<i64>>,
    account_code: Vec<&'a str>,
    source: Vec<&'a str>,
    destination: Vec<&'a str>,
    destination_context: Vec<&'a str>,
    caller_id: Vec<&'a str>,
    channel: Vec<&'a str>,
    destination_channel: Vec<&'a str>,
    last_application: Vec<&'a str>,
    last_data: Vec<&'a str>,
    start_utc: Vec<Option<i64>>,
    answer_utc: Vec<Option<i64>>,
    end_utc: Vec<Option<i64>>,
    start_raw: Vec<&'a str>,
    answer_raw: Vec<Option<&'a str>>,
    end_raw: Vec<&'a str>,
    duration: Vec<i64>,
    billable_seconds: Vec<i64>,
    ring_seconds: Vec<i64>,
    disposition: Vec<&'a str>,
    ama_flags: Vec<&'a str>,
    user_field: Vec<&'a str>,
    direction: Vec<&'static str>,
    queue: Vec<Option<&'a str>>,
    agent: Vec<Option<&'a str>>,
    custom: Vec<String>,
    record: Vec<String>,
    raw: Vec<&'a [u8]>,
    origin: Vec<&'static str>,
    received_utc: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a [(i64, CallRecord)]) -> Columns<'a> {
        let col = |f: &dyn Fn(&'a CallRecord) -> &'a str| -> Vec<&'a str> {
            batch.iter().map(|(_, r)| f(r)).collect()
        };
        let mut custom = Vec::with_capacity(batch.len());
        let mut record = Vec::with_capacity(batch.len());
        for (_, r) in batch {
            let json = r.to_json();
            custom.push(
                json.get("customFields")
                    .map_or_else(|| "[]".to_string(), |c| c.to_string()),
            );
            record.push(json.to_string());
        }
        Columns {
            pbx: col(&|r| &r.pbx),
            identity: batch.iter().map(|(_, r)| &r.identity[..]).collect(),
            seq: batch.iter().map(|(id, _)| *id).collect(),
            unique_id: col(&|r| &r.unique_id),
            linked_id: batch.iter().map(|(_, r)| r.linked_id.as_deref()).collect(),
            sequence: batch.iter().map(|(_, r)| r.sequence).collect(),
            account_code: col(&|r| &r.account_code),
            source: col(&|r| &r.source),
            destination: col(&|r| &r.destination),
            destination_context: col(&|r| &r.destination_context),
            caller_id: col(&|r| &r.caller_id),
            channel: col(&|r| &r.channel),
            destination_channel: col(&|r| &r.destination_channel),
            last_application: col(&|r| &r.last_application),
            last_data: col(&|r| &r.last_data),
            start_utc: batch.iter().map(|(_, r)| r.start.utc).collect(),
            answer_utc: batch
                .iter()
                .map(|(_, r)| r.answer.as_ref().and_then(|a| a.utc))
                .collect(),
            end_utc: batch.iter().map(|(_, r)| r.end.utc).collect(),
            start_raw: col(&|r| &r.start.raw),
            answer_raw: batch
                .iter()
                .map(|(_, r)| r.answer.as_ref().map(|a| a.raw.as_str()))
                .collect(),
            end_raw: col(&|r| &r.end.raw),
            duration: batch.iter().map(|(_, r)| r.duration).collect(),
            billable_seconds: batch.iter().map(|(_, r)| r.billable_seconds).collect(),
            ring_seconds: batch.iter().map(|(_, r)| r.ring_seconds).collect(),
            disposition: col(&|r| r.disposition.as_str()),
            ama_flags: col(&|r| &r.ama_flags),
            user_field: col(&|r| &r.user_field),
            direction: batch.iter().map(|(_, r)| r.direction.as_str()).collect(),
            queue: batch.iter().map(|(_, r)| r.queue.as_deref()).collect(),
            agent: batch.iter().map(|(_, r)| r.agent.as_deref()).collect(),
            custom,
            record,
            raw: batch.iter().map(|(_, r)| &r.raw[..]).collect(),
            origin: batch.iter().map(|(_, r)| r.origin.as_str()).collect(),
            received_utc: batch.iter().map(|(_, r)| r.received_utc).collect(),
        }
    }

    /// `$2 …`, in the order of [`CDR_COLUMNS`].
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.pbx,
            &self.identity,
            &self.seq,
            &self.unique_id,
            &self.linked_id,
            &self.sequence,
            &self.account_code,
            &self.source,
            &self.destination,
            &self.destination_context,
            &self.caller_id,
            &self.channel,
            &self.destination_channel,
            &self.last_application,
            &self.last_data,
            &self.start_utc,
            &self.answer_utc,
            &self.end_utc,
            &self.start_raw,
            &self.answer_raw,
            &self.end_raw,
            &self.duration,
            &self.billable_seconds,
            &self.ring_seconds,
            &self.disposition,
            &self.ama_flags,
            &self.user_field,
            &self.direction,
            &self.queue,
            &self.agent,
            &self.custom,
            &self.record,
            &self.raw,
            &self.origin,
            &self.received_utc,
        ]
    }
}

/// The whole ledger in one statement, keyed by (box_id, pbx, down_at): a gap that closed or
/// was filled since updates its row (and `updated_at` moves only when something changed); a
/// re-send changes nothing. Two entries of one PBX starting in the same second would be one
/// key: the newer entry is sent (else PostgreSQL refuses to update a row twice).
const UPSERT_GAPS: &str = "INSERT INTO cdrbox_gaps (box_id, pbx, down_at, up_at, reason, lost, \
    filled_from, filled_records, filled_at, box_gap_id, updated_at) \
    SELECT $1, u.pbx, to_timestamp(u.down_utc), to_timestamp(u.up_utc), u.reason, u.lost, \
    u.filled_from, u.filled_records, to_timestamp(u.filled_utc), u.id, now() \
    FROM unnest($2::text[], $3::int8[], $4::int8[], $5::text[], $6::int8[], $7::text[], \
    $8::int8[], $9::int8[], $10::int8[]) \
    AS u(pbx, down_utc, up_utc, reason, lost, filled_from, filled_records, filled_utc, id) \
    ON CONFLICT (box_id, pbx, down_at) DO UPDATE SET up_at = excluded.up_at, \
    reason = excluded.reason, lost = excluded.lost, filled_from = excluded.filled_from, \
    filled_records = excluded.filled_records, filled_at = excluded.filled_at, \
    box_gap_id = excluded.box_gap_id, updated_at = now() \
    WHERE (cdrbox_gaps.up_at, cdrbox_gaps.reason, cdrbox_gaps.lost, cdrbox_gaps.filled_from, \
    cdrbox_gaps.filled_records, cdrbox_gaps.filled_at, cdrbox_gaps.box_gap_id) \
    IS DISTINCT FROM (excluded.up_at, excluded.reason, excluded.lost, excluded.filled_from, \
    excluded.filled_records, excluded.filled_at, excluded.box_gap_id)";

/// Upserts the box's gap ledger (one statement, so all of it or nothing).
pub(super) async fn send_gaps(
    client: &mut Client,
    box_id: &str,
    gaps: &[Gap],
) -> Result<(), SendError> {
    let mut by_key: HashMap<(&str, i64), &Gap> = HashMap::new();
    for g in gaps {
        let newer = by_key
            .get(&(g.pbx.as_str(), g.down_utc))
            .is_none_or(|had| had.id < g.id);
        if newer {
            by_key.insert((g.pbx.as_str(), g.down_utc), g);
        }
    }
    if by_key.is_empty() {
        return Ok(());
    }
    let rows: Vec<&Gap> = by_key.into_values().collect();
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let pbx: Vec<&str> = rows.iter().map(|g| g.pbx.as_str()).collect();
    let down: Vec<i64> = rows.iter().map(|g| g.down_utc).collect();
    let up: Vec<Option<i64>> = rows.iter().map(|g| g.up_utc).collect();
    let reason: Vec<&str> = rows.iter().map(|g| g.reason.as_str()).collect();
    let lost: Vec<i64> = rows.iter().map(|g| int(g.lost)).collect();
    let filled_from: Vec<Option<&str>> = rows.iter().map(|g| g.filled_from.as_deref()).collect();
    let filled_records: Vec<i64> = rows.iter().map(|g| int(g.filled_records)).collect();
    let filled_utc: Vec<Option<i64>> = rows.iter().map(|g| g.filled_utc).collect();
    let id: Vec<i64> = rows.iter().map(|g| g.id).collect();
    client
        .execute(
            UPSERT_GAPS,
            &[
                &box_id,
                &pbx,
                &down,
                &up,
                &reason,
                &lost,
                &filled_from,
                &filled_records,
                &filled_utc,
                &id,
            ],
        )
        .await
        .map_err(server("cannot store the gap ledger in cdrbox_gaps"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_names_every_column_once_and_binds_one_array_per_column() {
        let sql = insert_cdr_sql();
        let cols = Columns::of(&[]);
        // $1 is box_id; one array parameter per remaining column.
        assert_eq!(cols.params().len(), CDR_COLUMNS.len());
        assert!(sql.contains(&format!("${}::int8[]", CDR_COLUMNS.len() + 1)));
        assert!(!sql.contains(&format!("${}", CDR_COLUMNS.len() + 2)));
        let list = sql
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(l, _)| l)
            .unwrap_or_default();
        let names: Vec<&str> = list.split(", ").collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a column twice in {list}");
        for must in ["box_id", "identity", "record", "raw", "received_at"] {
            assert!(names.contains(&must), "{must} missing from {list}");
        }
        assert!(sql.ends_with("ON CONFLICT (box_id, pbx, identity) DO NOTHING"));
    }
}
