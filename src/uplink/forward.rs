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

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::batch::{send_batch, send_gaps, Statements};
use super::schema::{self, Month, ADVISORY_LOCK, MIGRATIONS, MIN_WRITER, SCHEMA_VERSION};
use super::tls::{self, TlsError};
use super::url::{UplinkUrl, UrlError};
use crate::clock::Clock;
use crate::config::Config;
use crate::journal::{Gap, JournalError, JournalPaths, JournalReader};
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
pub(super) enum SendError {
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
pub(super) fn server(what: &str) -> impl Fn(tokio_postgres::Error) -> SendError + '_ {
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
