//! The uplink thread: reads the journal in id order after the uplink watermark, sends each
//! batch to the central PostgreSQL in ONE transaction holding ONE multi-row insert (the
//! batch's columns as arrays, `INSERT … SELECT … FROM unnest(…) ON CONFLICT (box_id, pbx,
//! identity) DO NOTHING`, explicit column list), and moves the watermark only after the
//! server's COMMIT returned. So a cut, a crash or a restart of either side at any moment
//! re-sends at most the unconfirmed batch, and the server keeps each record once.
//!
//! The gap ledger travels beside the records: whenever the box's ledger differs from what
//! this connection last sent, its rows are upserted into `cdrbox_gaps` keyed by (box_id, pbx,
//! down_at), so a gap that closes (or is filled by an import) later updates its row and a
//! re-send changes nothing.
//!
//! It must not block the links or the journal writer: it runs on its own thread with its own
//! single-threaded tokio runtime and its own read connection to the journal (the watermark is
//! one `meta` statement SQLite serialises with the writer's transactions).
//!
//! Known limits (README: Central PostgreSQL): a replaced journal file starts its watermark at 0
//! (the re-send is harmless: the server ignores rows it has); two ledger entries of one PBX
//! that start in the same second share one central row (the newer wins).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::{self, Month, ADVISORY_LOCK, MIGRATIONS, MIN_WRITER, SCHEMA_VERSION};
use super::tls::{self, TlsError};
use super::url::{UplinkUrl, UrlError};
use crate::clock::Clock;
use crate::config::Config;
use crate::journal::{Gap, JournalError, JournalPaths, JournalReader};
use crate::record::CallRecord;
use crate::status::UplinkStatus;

/// Longest wait between retries after errors (the first retry waits `interval`).
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How often the lag on the status is recounted while waiting to retry.
const LAG_REFRESH: Duration = Duration::from_secs(1);
/// `[uplink]`, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: UplinkUrl,
    pub box_id: String,
    pub batch_records: usize,
    pub interval: Duration,
    /// A batch (or the connect + schema check) that takes longer is given up and retried
    /// (`[uplink] batch_timeout_ms`): a link cut without a reset would otherwise hang the
    /// uplink until TCP gives up (minutes).
    pub batch_timeout: Duration,
    pub ca_file: Option<PathBuf>,
}

impl Settings {
    /// `None` when `[uplink] url` is empty (the uplink is off).
    pub fn from_config(cfg: &Config) -> Result<Option<Settings>, UplinkError> {
        let u = &cfg.uplink;
        if u.url.0.trim().is_empty() {
            return Ok(None);
        }
        let mut url = UplinkUrl::parse(&u.url.0)?;
        url.config.connect_timeout(Duration::from_secs(10));
        let box_id = if u.box_id.trim().is_empty() {
            cfg.box_name.clone()
        } else {
            u.box_id.trim().to_string()
        };
        Ok(Some(Settings {
            ca_file: u.ca_file.clone().or_else(|| url.root_cert.clone()),
            url,
            box_id,
            batch_records: u.batch_records.max(1) as usize,
            interval: Duration::from_millis(u64::from(u.interval_ms.max(1))),
            batch_timeout: Duration::from_millis(u64::from(u.batch_timeout_ms.max(1))),
        }))
    }
}

/// Why the uplink could not start (a config problem: the message names the key).
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot start the uplink thread: {0}")]
    Thread(std::io::Error),
}

/// Why one attempt failed (shown as the uplink's last error; the attempt is retried).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Server(String),
    #[error("box journal: {0}")]
    Journal(#[from] JournalError),
    #[error(
        "the central schema needs boxes of schema version {min_writer} or later (this box \
         writes version {SCHEMA_VERSION}): update this box; its records are kept meanwhile"
    )]
    SchemaTooNew { min_writer: i32 },
    #[error("no answer from the server within {0:?} ([uplink] batch_timeout_ms); retrying")]
    Timeout(Duration),
}

/// The server's own words when it sent some (SQLSTATE + message), else the client's chain —
/// tokio-postgres' top-level text alone is just "db error". Neither holds the password.
fn server(what: &str) -> impl Fn(tokio_postgres::Error) -> SendError + '_ {
    move |e| {
        let text = match e.as_db_error() {
            // The server's words are for a DBA; say first what it means for the office.
            Some(db) if *db.code() == SqlState::DISK_FULL => format!(
                "the central server's disk is full — its DBA must free space or grow the \
                 volume; this box keeps every record and sends them once there is room \
                 (server: {}, SQLSTATE {})",
                db.message(),
                db.code().code()
            ),
            Some(db) if *db.code() == SqlState::TOO_MANY_CONNECTIONS => format!(
                "the central server has no free connection (max_connections) — its DBA must \
                 raise the limit; this box keeps every record (server: {}, SQLSTATE {})",
                db.message(),
                db.code().code()
            ),
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => {
                let mut t = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    t.push_str(": ");
                    t.push_str(&s.to_string());
                    src = s.source();
                }
                t
            }
        };
        SendError::Server(format!("{what}: {text}"))
    }
}

/// Called with every new uplink state.
pub type StatusFn = Arc<dyn Fn(UplinkStatus) + Send + Sync>;

/// The running uplink; dropping it stops the thread (an unconfirmed batch is simply re-sent
/// by the next start).
pub struct Uplink {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Uplink {
    pub fn spawn(
        settings: Settings,
        paths: JournalPaths,
        on_status: StatusFn,
        clock: Clock,
    ) -> Result<Uplink, UplinkError> {
        let tls = tls::client_config(settings.url.sslmode, settings.ca_file.as_deref())?;
        let connector = MakeRustlsConnect::new(tls);
        let (stop, stop_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("uplink".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(target: "cdrbox::uplink", error = %e, "no runtime");
                        return;
                    }
                };
                rt.block_on(run(settings, paths, connector, on_status, clock, stop_rx));
            })
            .map_err(UplinkError::Thread)?;
        Ok(Uplink {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and joins the thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        self.shut_down();
    }
}

async fn run(
    s: Settings,
    paths: JournalPaths,
    connector: MakeRustlsConnect,
    on_status: StatusFn,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    let mut st = UplinkStatus {
        state: "connecting".into(),
        target: s.url.redacted().to_string(),
        ..UplinkStatus::default()
    };
    on_status(st.clone());
    let mut delay = s.interval;
    loop {
        if *stop.borrow() {
            return;
        }
        let attempt = session(
            &s, &paths, &connector, &mut st, &on_status, &clock, &mut delay,
        );
        let err = tokio::select! {
            r = attempt => match r {
                Ok(never) => match never {},
                Err(e) => e,
            },
            _ = stop.changed() => return,
        };
        // `session` only returns with an error: report it, keep every record, retry.
        tracing::warn!(target: "cdrbox::uplink", target_url = %st.target, error = %err, "uplink attempt failed");
        st.state = "retrying".into();
        st.last_error = Some(err.to_string());
        // While waiting (up to 30 s), the lag on the page keeps counting what queues up.
        let reader = JournalReader::open(&paths).ok();
        let retry_at = tokio::time::Instant::now() + delay;
        loop {
            if let Some(reader) = &reader {
                let _ = refresh_lag(reader, &mut st, &clock);
            }
            on_status(st.clone());
            let now = tokio::time::Instant::now();
            if now >= retry_at {
                break;
            }
            let tick = (retry_at - now).min(LAG_REFRESH.max(s.interval));
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
        }
        delay = (delay * 2).min(MAX_RETRY.max(s.interval));
    }
}

/// `session` only ever ends with an error (a stop drops its future instead).
enum Never {}

/// One connection's life: schema check, then batches until something fails.
async fn session(
    s: &Settings,
    paths: &JournalPaths,
    connector: &MakeRustlsConnect,
    st: &mut UplinkStatus,
    on_status: &StatusFn,
    clock: &Clock,
    delay: &mut Duration,
) -> Result<Never, SendError> {
    let connect = async {
        let (mut client, conn) = s
            .url
            .config
            .connect(connector.clone())
            .await
            .map_err(server("cannot connect"))?;
        // The connection future does the socket I/O; it ends when the client is dropped.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "cdrbox::uplink", error = %e, "connection ended");
            }
        });
        ensure_schema(&mut client, clock.unix()).await?;
        let stmts = Statements::prepare(&client).await?;
        Ok::<_, SendError>((client, stmts))
    };
    let limit = s.batch_timeout;
    let (mut client, stmts) = tokio::time::timeout(limit, connect)
        .await
        .map_err(|_| SendError::Timeout(limit))??;
    let reader = JournalReader::open(paths)?;
    // The ledger as this connection last had it committed; a new connection sends it all once.
    let mut gaps_sent: Option<Vec<Gap>> = None;
    loop {
        let gaps = reader.gaps(None, None)?;
        if gaps_sent.as_ref() != Some(&gaps) {
            tokio::time::timeout(limit, send_gaps(&mut client, &s.box_id, &gaps))
                .await
                .map_err(|_| SendError::Timeout(limit))??;
            gaps_sent = Some(gaps);
        }
        let wm = reader.uplink_watermark()?;
        let batch = reader.records_after_id(wm, s.batch_records)?;
        let Some(&(last, _)) = batch.last() else {
            // Connected, schema accepted, nothing waiting: an earlier error is over.
            st.state = "up to date".into();
            st.lag_records = 0;
            st.lag_seconds = None;
            st.last_error = None;
            *delay = s.interval;
            on_status(st.clone());
            tokio::time::sleep(s.interval).await;
            continue;
        };
        st.state = "sending".into();
        tokio::time::timeout(limit, send_batch(&mut client, &stmts, &s.box_id, &batch))
            .await
            .map_err(|_| SendError::Timeout(limit))??;
        // Only now is the batch the server's: the watermark may pass it.
        reader.set_uplink_watermark(last)?;
        st.sent_records += batch.len() as u64;
        st.last_ok_utc = Some(clock.unix());
        st.last_error = None;
        refresh_lag(&reader, st, clock)?;
        on_status(st.clone());
        *delay = s.interval;
    }
}

/// Records after the watermark, and the age of the oldest of them.
fn refresh_lag(
    reader: &JournalReader,
    st: &mut UplinkStatus,
    clock: &Clock,
) -> Result<(), JournalError> {
    let wm = reader.uplink_watermark()?;
    st.lag_records = reader.count_after_id(wm)?;
    st.lag_seconds = reader
        .records_after_id(wm, 1)?
        .first()
        .map(|(_, r)| (clock.unix() - r.received_utc).max(0));
    Ok(())
}

/// Creates or migrates the central schema (under an advisory lock, so boxes starting together
/// take turns), refuses a schema too new for this box, and adds the monthly partitions around
/// today. A DBA may have run `cdrbox uplink-schema` instead: then nothing is changed.
async fn ensure_schema(client: &mut Client, now_utc: i64) -> Result<(), SendError> {
    let tx = client.transaction().await.map_err(server("cannot begin"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADVISORY_LOCK])
        .await
        .map_err(server("cannot take the schema lock"))?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('cdrbox_schema') IS NOT NULL", &[])
        .await
        .map_err(server("cannot read the schema version"))?
        .get(0);
    let (version, min_writer) = if exists {
        let row = tx
            .query_opt(
                "SELECT version, min_writer FROM cdrbox_schema WHERE component = 'cdrbox'",
                &[],
            )
            .await
            .map_err(server("cannot read the schema version"))?;
        row.map_or((0, 0), |r| (r.get::<_, i32>(0), r.get::<_, i32>(1)))
    } else {
        (0, 0)
    };
    if min_writer > SCHEMA_VERSION {
        return Err(SendError::SchemaTooNew { min_writer });
    }
    let from = usize::try_from(version.max(0)).unwrap_or(0);
    if from < MIGRATIONS.len() {
        for m in &MIGRATIONS[from..] {
            tx.batch_execute(m)
                .await
                .map_err(server("cannot create the central schema (may this user CREATE? README: Central PostgreSQL)"))?;
        }
        tx.execute(schema::set_version_sql(), &[&SCHEMA_VERSION, &MIN_WRITER])
            .await
            .map_err(server("cannot record the schema version"))?;
    }
    tx.commit()
        .await
        .map_err(server("cannot commit the central schema"))?;
    // Partitions one by one: a month whose rows already sit in the default partition cannot
    // get its own (PostgreSQL refuses); that is harmless, its rows stay where they are.
    let now = Month::of_unix(now_utc);
    let mut m = now.plus(-1);
    while m <= now.plus(2) {
        if m.partitionable() {
            let sql = format!(
                "BEGIN; SELECT pg_advisory_xact_lock({ADVISORY_LOCK}); {}; COMMIT",
                m.create_sql()
            );
            if let Err(e) = client.batch_execute(&sql).await {
                tracing::info!(target: "cdrbox::uplink", month = %m.table(), error = %server("partition")(e), "partition not created");
                client
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(server("cannot roll back"))?;
            }
        }
        m = m.plus(1);
    }
    Ok(())
}

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
struct Statements {
    insert: tokio_postgres::Statement,
    upsert_box: tokio_postgres::Statement,
    min_writer: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, SendError> {
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
async fn send_batch(
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
async fn send_gaps(client: &mut Client, box_id: &str, gaps: &[Gap]) -> Result<(), SendError> {
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
