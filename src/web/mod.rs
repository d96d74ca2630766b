//! The local web page and HTTP API (README "The web page"): a tiny_http adapter ([`server`])
//! around pure routes ([`routes`]) that talk to the rest of the box only through the [`Backend`]
//! and [`Exporter`] traits defined here.
//!
//! Must not reach into the journal, the AMI links or the export writers directly: the runtime
//! implements [`Backend`] over the journal and the status board, and [`Exporter`] over
//! `crate::export`, then calls [`serve`]. Everything here is testable with an in-memory backend.
//!
//! Layout: `query` (query string → `Filter`/`Sort`/`Page`), `auth` (password file, sessions,
//! CSRF, login rate limit), `stats` (answer rate, hourly, agents, queues), `settings` (config form
//! → TOML with comments kept, atomic save), `http` (the request/response types), `routes`
//! (request → response), `gate` (the one HTTP parser, limits, deadlines), `tls` (HTTPS: the
//! certificate and the TLS side of the gate), `certificate` (`/api/tls`), `server` (threads,
//! streaming, SSE), `json` (the §2 record view until the shared one lands), `assets`.

pub mod assets;
pub mod auth;
pub mod certificate;
pub mod export;
pub mod gate;
pub mod http;
pub mod json;
pub mod query;
pub mod routes;
pub mod server;
pub mod settings;
pub mod setup;
pub mod setup_code;
pub mod stats;
pub mod tls;

use std::io;

use crate::filter::{Filter, Page, Sort};
use crate::record::CallRecord;
use crate::status::StatusView;

pub use export::{CdrExporter, ExportFormat, Exporter, RecordWriter};
pub use server::{serve, serve_listener, HttpsOptions, WebError, WebHandle, WebOptions, WebProbe};

/// Why the backend could not answer. `Invalid` names the field the user must fix.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A value the user gave is wrong (a config key, a filter the journal cannot run).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The journal (or another part) cannot answer right now; worth retrying.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Writing the output failed (the client went away); not the backend's fault.
    #[error("writing the response: {0}")]
    Write(#[from] io::Error),
    /// Anything else, as a sentence.
    #[error("{0}")]
    Internal(String),
}

/// One interval during which a PBX link was down (the gap ledger: where records may be missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub pbx: String,
    /// Link went down (Unix seconds, box clock).
    pub from_utc: i64,
    /// Link came back; `None` while still down.
    pub to_utc: Option<i64>,
    pub reason: String,
    /// Where an import filled it from (`master-csv`, `cdr-db`) and how many records it added
    /// inside; `None` while the gap is open (issue 12).
    pub filled: Option<(String, u64)>,
}

/// What the web layer needs from the rest of the box. Implemented by the runtime over the
/// journal and the status board; by `Vec<CallRecord>` in tests. Calls come from several web
/// worker threads at once.
pub trait Backend: Send + Sync + 'static {
    /// The current status snapshot.
    fn status(&self) -> StatusView;
    /// How many records match `f` (the whole filtered set, for totals).
    fn count(&self, f: &Filter) -> Result<u64, BackendError>;
    /// How many calls the matching records belong to ([`crate::calls::call_key`]). The
    /// default walks the records; the box counts in the journal's SQL.
    fn count_calls(&self, f: &Filter) -> Result<u64, BackendError> {
        let mut keys = std::collections::HashSet::new();
        self.for_each(f, Sort::StartAsc, &mut |r| {
            keys.insert(crate::calls::call_key(r));
            Ok(())
        })?;
        Ok(keys.len() as u64)
    }
    /// One page of matching records in `sort` order.
    fn query(&self, f: &Filter, sort: Sort, page: Page) -> Result<Vec<CallRecord>, BackendError>;
    /// One page of matching records in `sort` order, passed to `each` one at a time, so a page
    /// of huge records never sits in memory whole (the listings use this). An `Err` from `each`
    /// stops the walk and comes back as [`BackendError::Write`]. The default goes through
    /// [`Backend::query`]; the box streams from the journal.
    fn query_each(
        &self,
        f: &Filter,
        sort: Sort,
        page: Page,
        each: &mut dyn FnMut(&CallRecord) -> io::Result<()>,
    ) -> Result<(), BackendError> {
        for r in self.query(f, sort, page)? {
            each(&r)?;
        }
        Ok(())
    }
    /// Every matching record in `sort` order, one at a time (exports and stats: memory must stay
    /// flat). An `Err` from `each` stops the walk and comes back as [`BackendError::Write`].
    fn for_each(
        &self,
        f: &Filter,
        sort: Sort,
        each: &mut dyn FnMut(&CallRecord) -> io::Result<()>,
    ) -> Result<(), BackendError>;
    /// A new receiver of every record from now on (Server-Sent Events), bounded by bytes on the
    /// sender side (a lagging receiver is told what it missed). Dropping it unsubscribes; the
    /// sender side must never block on it. A backend without a journal can hand over a plain
    /// channel: `rx.into()`.
    fn subscribe(&self) -> crate::journal::Subscription;
    /// The configuration file's current text (comments included; secrets are redacted by the
    /// web layer, not here).
    fn config_text(&self) -> String;
    /// Validates `new_text` as a whole config, saves it atomically (see
    /// [`settings::save_atomic`]) and applies it live (a changed PBX address reconnects).
    /// Validation errors come back as [`BackendError::Invalid`] naming the key (`pbx[0].host`).
    fn apply_config(&self, new_text: &str) -> Result<(), BackendError>;
    /// The first admin password was just set through the web page: the setup code is gone
    /// (the display stops showing it).
    fn setup_finished(&self) {}
    /// Saved settings that wait for a restart to take effect, as `(key path, label)`.
    fn pending_restart(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Restarts the logger cleanly (links log off, the journal commits, everything starts again
    /// from the saved file). Returns once the restart is requested; the page goes away soon
    /// after and comes back.
    fn restart(&self) -> Result<(), BackendError> {
        Err(BackendError::Internal(
            "this box cannot restart itself from the page".into(),
        ))
    }
    /// Queues a test alarm on every alarm channel ("send test alarm", admin); its id.
    fn send_test_alarm(&self, who: &str) -> Result<String, BackendError> {
        let _ = who;
        Err(BackendError::Unavailable(
            "no alarm channel is configured: set [alarms] smtp_url or webhook_url".into(),
        ))
    }
    /// The OLED mirror as a PNG, when a display is rendered.
    fn display_png(&self) -> Option<Vec<u8>> {
        None
    }
    /// Gap-ledger intervals overlapping `[from_utc, to_utc)`.
    fn gaps(&self, from_utc: i64, to_utc: i64) -> Vec<Gap>;
    /// Imports an Asterisk Master.csv for the configured PBX `pbx`, each call once beside what
    /// is stored (issue 12). The route has checked the admin role.
    fn import_csv(
        &self,
        pbx: &str,
        csv: &[u8],
        layout: crate::import::master_csv::CsvLayout,
    ) -> Result<crate::import::ImportReport, BackendError> {
        let _ = (pbx, csv, layout);
        Err(BackendError::Unavailable(
            "this box cannot import Master.csv files".into(),
        ))
    }
    /// Who is behind a number right now: `[names]`, then names learned from CallerID
    /// (`crate::names`). None by default.
    fn names(&self) -> crate::names::Names {
        crate::names::Names::default()
    }
    /// The zone user-typed times without offset are read in (the first PBX's).
    fn timezone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::UTC
    }
}
