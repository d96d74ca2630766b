//! The CDR-database pullers of `cdrbox run` (issue 12): one [`Puller`] task per enabled
//! `[[pbx]]` that has `cdr_db` set. Each runs on its own tokio task beside the AMI links — a
//! database that is slow, down or refuses the login only changes its status line and alarm,
//! never a link. Started with the run and stopped with it (the keys take effect on restart).

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::links::context_of;
use crate::clock::Clock;
use crate::config::{Config, PbxConfig};
use crate::import::cdr_db::CdrDb;
use crate::import::pull::PullSettings;
use crate::import::puller::Puller;
use crate::journal::JournalHandle;
use crate::status::CdrDbStatus;

/// The running pullers and their shared states.
pub(super) struct Pullers {
    statuses: Vec<Arc<Mutex<CdrDbStatus>>>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// The pull settings of one `[[pbx]]`.
pub fn pull_settings(p: &PbxConfig) -> PullSettings {
    PullSettings {
        lookback: p.cdr_db_lookback,
        reconcile_every: p.cdr_db_reconcile_every,
        reconcile_window: p.cdr_db_reconcile_window,
        settle: p.cdr_db_settle,
    }
}

impl Pullers {
    /// Starts a puller for every enabled PBX with a `cdr_db`. One whose URL or table the
    /// adapter refuses gets a failing status (`DB CONFIG`) instead: the alarm says what to fix.
    pub fn start(cfg: &Config, journal: &JournalHandle, clock: &Clock) -> Pullers {
        let (stop, stop_rx) = watch::channel(false);
        let mut out = Pullers {
            statuses: Vec::new(),
            tasks: Vec::new(),
            stop,
        };
        for p in cfg.pbx.iter().filter(|p| p.enabled) {
            let Some(url) = &p.cdr_db else { continue };
            let started = context_of(p)
                .map_err(|e| ("DB CONFIG", e.to_string()))
                .and_then(|ctx| {
                    CdrDb::new(&url.0, &p.cdr_db_table)
                        .map(|db| (ctx, db))
                        .map_err(|e| (e.code(), e.to_string()))
                });
            match started {
                Ok((ctx, db)) => {
                    let puller =
                        Puller::new(ctx, db, pull_settings(p), journal.clone(), clock.clone());
                    out.statuses.push(puller.status());
                    out.tasks.push(tokio::spawn(puller.run(stop_rx.clone())));
                    tracing::info!(target: "cdrbox::run", pbx = %p.name, "CDR database pulls on");
                }
                Err((code, message)) => {
                    tracing::error!(target: "cdrbox::run", pbx = %p.name, %message,
                        "CDR database not used");
                    out.statuses.push(Arc::new(Mutex::new(CdrDbStatus {
                        pbx: p.name.clone(),
                        state: "failing".into(),
                        code: Some(code.to_owned()),
                        message: Some(format!("{message} — fix [[pbx]] cdr_db / cdr_db_table")),
                        ..CdrDbStatus::default()
                    })));
                }
            }
        }
        out
    }

    /// The shared states (the status publisher reads them every second).
    pub fn status_handles(&self) -> Vec<Arc<Mutex<CdrDbStatus>>> {
        self.statuses.clone()
    }

    /// Stops the pullers: a pull in progress is abandoned (what it stored stays; the next run
    /// reconciles the rest), so a stop never waits for a slow database.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
        }
    }
}
