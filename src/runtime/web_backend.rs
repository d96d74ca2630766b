//! The web page's view of the running box ([`crate::web::Backend`]): journal reads on pooled
//! read-only connections, the status board's snapshot, and config changes that are validated,
//! saved atomically (comments kept by the web layer) and applied live through a `watch` channel.
//!
//! Consistency choice: records wait in the ring for up to `[storage] flush_interval_ms` before
//! SQLite. So that a person searching calls sees the call that just ended, a read first asks the
//! writer to commit what is waiting — at most once every [`FLUSH_EVERY`], so a script polling
//! the API cannot turn the box's wear-friendly group commits back into one commit per call.
//! The live feed (`/api/events`) shows records the moment they are durable either way.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, Mono};
use crate::config::{Config, ConfigError};
use crate::filter::{Filter, Page, Sort};
use crate::journal::{JournalError, JournalHandle, JournalReader};
use crate::record::CallRecord;
use crate::status::StatusView;
use crate::web::{Backend, BackendError, Gap};

use super::board::StatusBoard;

/// Minimum time between commits requested by page reads.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// The running box, as the web layer sees it.
pub struct BoxBackend {
    journal: JournalHandle,
    board: Arc<StatusBoard>,
    config_path: PathBuf,
    config_tx: tokio::sync::watch::Sender<Config>,
    tz: Mutex<jiff::tz::TimeZone>,
    readers: Mutex<Vec<JournalReader>>,
    last_flush: Mutex<Option<Mono>>,
    page_interval: u64,
    clock: Clock,
    /// What this run started with (normalised), to tell which saved keys wait for a restart.
    started: toml::Table,
    /// Asks the runtime to restart; `None` where nothing listens (tests).
    restart_tx: Option<tokio::sync::watch::Sender<bool>>,
    /// Queues "send test alarm"; `None` when no alarm channel is configured.
    alarm_tester: Option<crate::alarms::service::AlarmTester>,
    /// `[names]` and the names learned from CallerID (fed by the run's record sink).
    names: Arc<crate::names::Directory>,
}

impl BoxBackend {
    pub fn new(
        journal: JournalHandle,
        board: Arc<StatusBoard>,
        config_path: PathBuf,
        config_tx: tokio::sync::watch::Sender<Config>,
        clock: Clock,
    ) -> Self {
        let cfg = config_tx.borrow().clone();
        let started = crate::config::parse::normalize(&read_config(&config_path)).root;
        BoxBackend {
            journal,
            board,
            config_path,
            tz: Mutex::new(super::display_zone(&cfg)),
            page_interval: cfg.display.page_interval.as_secs().max(1),
            config_tx,
            readers: Mutex::new(Vec::new()),
            last_flush: Mutex::new(None),
            clock,
            started,
            restart_tx: None,
            alarm_tester: None,
            names: Arc::new(crate::names::Directory::new(
                cfg.names.clone(),
                crate::names::LEARNED_CAP,
            )),
        }
    }

    /// Shares the run's name directory (the record sink teaches it what CallerID says).
    pub fn with_names(mut self, names: Arc<crate::names::Directory>) -> Self {
        self.names = names;
        self
    }

    /// Lets the settings page restart the box through `tx` (the runtime ends the run and
    /// starts again when it turns `true`).
    pub fn with_restart(mut self, tx: tokio::sync::watch::Sender<bool>) -> Self {
        self.restart_tx = Some(tx);
        self
    }

    /// Lets the page's "send test alarm" queue a test message on the running alarm channels.
    pub fn with_alarm_tester(mut self, t: Option<crate::alarms::service::AlarmTester>) -> Self {
        self.alarm_tester = t;
        self
    }

    fn flush_if_due(&self) {
        let mut last = self.last_flush.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        if last.is_some_and(|t| now - t < FLUSH_EVERY) {
            return;
        }
        *last = Some(now);
        drop(last);
        if let Err(e) = self.journal.flush_timeout(Duration::from_secs(2)) {
            // Disk full or a stalled journal: show what is committed; the alarm says why.
            tracing::debug!(target: "cdrbox::web", error = %e, "read without commit");
        }
    }

    /// Runs `f` on a pooled reader (a new one when the pool is empty).
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&JournalReader) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.flush_if_due();
        // A reader of a damaged file the journal has set aside is dropped, not reused.
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .filter(|r| !r.is_stale());
        let reader = match pooled {
            Some(r) => r,
            None => self.journal.reader().map_err(unavailable)?,
        };
        let out = f(&reader);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(reader);
        }
        out
    }
}

/// The config file's text; the built-in default when there is none yet.
fn read_config(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| crate::config::DEFAULT_TOML.to_string())
}

fn unavailable(e: JournalError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

/// Why a streamed read stopped.
enum Stop {
    Journal(JournalError),
    Write(io::Error),
}

impl From<JournalError> for Stop {
    fn from(e: JournalError) -> Self {
        Stop::Journal(e)
    }
}

fn config_error(e: ConfigError) -> BackendError {
    match e {
        ConfigError::Invalid { problems, .. } => match problems.into_iter().next() {
            // `detail` leaves the key out: the page and the API name it once.
            Some(p) => BackendError::Invalid {
                field: p.path,
                message: p.detail,
            },
            None => BackendError::Internal("invalid configuration".into()),
        },
        other => BackendError::Invalid {
            field: "config".into(),
            message: other.to_string(),
        },
    }
}

impl Backend for BoxBackend {
    fn status(&self) -> StatusView {
        // Uptime and "N s ago" at the moment of the answer: the snapshot is published only
        // when something changes.
        self.board.view_at(self.clock.unix())
    }

    fn count(&self, f: &Filter) -> Result<u64, BackendError> {
        self.with_reader(|r| r.count(f).map_err(unavailable))
    }

    fn count_calls(&self, f: &Filter) -> Result<u64, BackendError> {
        self.with_reader(|r| r.count_calls(f).map_err(unavailable))
    }

    fn query(&self, f: &Filter, sort: Sort, page: Page) -> Result<Vec<CallRecord>, BackendError> {
        self.with_reader(|r| r.query(f, sort, page).map_err(unavailable))
    }

    fn query_each(
        &self,
        f: &Filter,
        sort: Sort,
        page: Page,
        each: &mut dyn FnMut(&CallRecord) -> io::Result<()>,
    ) -> Result<(), BackendError> {
        self.with_reader(|r| {
            match r.query_each(f, sort, page, |rec| each(&rec).map_err(Stop::Write)) {
                Ok(_) => Ok(()),
                Err(Stop::Write(e)) => Err(BackendError::Write(e)),
                Err(Stop::Journal(e)) => Err(unavailable(e)),
            }
        })
    }

    fn for_each(
        &self,
        f: &Filter,
        sort: Sort,
        each: &mut dyn FnMut(&CallRecord) -> io::Result<()>,
    ) -> Result<(), BackendError> {
        // A dedicated reader: a long export must not hold one of the pooled ones.
        self.flush_if_due();
        let reader = self.journal.reader().map_err(unavailable)?;
        match reader.for_each(f, sort, |rec| each(&rec).map_err(Stop::Write)) {
            Ok(_) => Ok(()),
            Err(Stop::Write(e)) => Err(BackendError::Write(e)),
            Err(Stop::Journal(e)) => Err(unavailable(e)),
        }
    }

    fn subscribe(&self) -> crate::journal::Subscription {
        self.journal.subscribe()
    }

    fn config_text(&self) -> String {
        read_config(&self.config_path)
    }

    fn pending_restart(&self) -> Vec<(String, String)> {
        let saved = crate::config::parse::normalize(&self.config_text()).root;
        crate::config::restart_pending(&self.started, &saved)
            .into_iter()
            .map(|(path, key)| (path, key.label.to_owned()))
            .collect()
    }

    fn send_test_alarm(&self, who: &str) -> Result<String, BackendError> {
        match &self.alarm_tester {
            Some(t) => t
                .send_test(who)
                .map_err(|e| BackendError::Internal(format!("cannot queue the test alarm: {e}"))),
            None => Err(BackendError::Unavailable(
                "no alarm channel is configured: set [alarms] smtp_url or webhook_url".into(),
            )),
        }
    }

    fn restart(&self) -> Result<(), BackendError> {
        match &self.restart_tx {
            Some(tx) => {
                tx.send_replace(true);
                Ok(())
            }
            None => Err(BackendError::Internal(
                "this box cannot restart itself from the page".into(),
            )),
        }
    }

    fn apply_config(&self, new_text: &str) -> Result<(), BackendError> {
        let origin = self.config_path.display().to_string();
        let cfg = Config::parse(new_text, &origin).map_err(config_error)?;
        crate::web::settings::save_atomic(&self.config_path, new_text).map_err(|e| {
            BackendError::Internal(format!("cannot save {}: {e}", self.config_path.display()))
        })?;
        *self.tz.lock().unwrap_or_else(|e| e.into_inner()) = super::display_zone(&cfg);
        // [names] is live: the next answer already shows and searches the saved names.
        self.names.set_configured(cfg.names.clone());
        // The runtime reconciles links (a changed address reconnects) and the box name.
        self.config_tx.send_replace(cfg);
        Ok(())
    }

    fn setup_finished(&self) {
        self.board.set_setup_code(None);
    }

    fn display_png(&self) -> Option<Vec<u8>> {
        let view = self.status();
        let page = crate::display::page_for_time(&view, view.now_utc, self.page_interval);
        Some(crate::display::render_view_png(&view, page, 3))
    }

    fn gaps(&self, from_utc: i64, to_utc: i64) -> Vec<Gap> {
        self.with_reader(|r| r.gaps(Some(from_utc), Some(to_utc)).map_err(unavailable))
            .unwrap_or_default()
            .into_iter()
            .map(|g| Gap {
                filled: g.fill(),
                pbx: g.pbx,
                from_utc: g.down_utc,
                to_utc: g.up_utc,
                reason: g.reason,
            })
            .collect()
    }

    fn names(&self) -> crate::names::Names {
        self.names.snapshot()
    }

    fn timezone(&self) -> jiff::tz::TimeZone {
        self.tz.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn import_csv(
        &self,
        pbx: &str,
        csv: &[u8],
        layout: crate::import::master_csv::CsvLayout,
    ) -> Result<crate::import::ImportReport, BackendError> {
        let cfg = self.config_tx.borrow().clone();
        let ctx = super::pbx_context(&cfg, pbx).map_err(|e| BackendError::Invalid {
            field: "pbx".into(),
            message: e.to_string(),
        })?;
        let mut store =
            crate::import::store::Store::new(&self.journal, pbx).map_err(unavailable)?;
        super::import_csv(&mut &csv[..], ctx, layout, &mut store, self.clock.unix())
            .map_err(|e| BackendError::Unavailable(format!("{e:#}")))?;
        Ok(store.report.clone())
    }
}
