//! The start-up steps of `run_once`: open the journal, then start the status board, alarms,
//! uplink, display, USB watcher and web page (with HTTPS and the first-setup code). Each returns
//! what `run_once` needs to stop it again; a part that cannot start is logged and left off.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::{ip_target, link_names, local_ip_towards, OnWeb};
use crate::clock::Clock;
use crate::config::Config;
use crate::filter::{Filter, Sort};
use crate::journal::{Journal, JournalError, JournalHandle};
use crate::record::Disposition;
use crate::runtime::board::StatusBoard;
use crate::runtime::{display_zone, start_of_day, usb_source, web_backend};
use crate::usb::UsbWatcher;
use crate::web::WebHandle;

/// Opens (checks, migrates, replays) the journal and starts its writer thread.
pub(super) fn open_journal(cfg: &Config, clock: &Clock) -> Result<JournalHandle> {
    let (journal, report) = Journal::open(&cfg.storage, clock.clone())
        .with_context(|| format!("opening the journal at {}", cfg.storage.path.display()))?;
    tracing::info!(target: "cdrbox::run", ?report, "journal open");
    Ok(journal)
}

/// The status board, with today's calls already in the journal counted.
pub(super) fn start_board(
    cfg: &Config,
    journal: &JournalHandle,
    clock: &Clock,
) -> Arc<StatusBoard> {
    let tz = display_zone(cfg);
    let board = Arc::new(StatusBoard::new(
        &cfg.box_name,
        &link_names(cfg),
        tz.clone(),
        clock.unix(),
    ));
    seed_today(journal, &board, &tz, clock.unix());
    board
}

/// `[names]`, and the CallerID names learned from the newest records in the journal, so a
/// restart does not forget who is behind an extension. The journal is read on a thread of its
/// own: reading and decoding 5,000 records took ~1 s at start-up on a 1,000,000-record journal
/// under load, and the links must not wait for it (issue 10 item 4).
pub(super) fn start_names(cfg: &Config, journal: &JournalHandle) -> Arc<crate::names::Directory> {
    let names = Arc::new(crate::names::Directory::new(
        cfg.names.clone(),
        crate::names::LEARNED_CAP,
    ));
    let (seed, journal) = (names.clone(), journal.clone());
    let spawned = std::thread::Builder::new()
        .name("names-seed".into())
        .spawn(move || {
            if let Err(e) = journal.reader().and_then(|r| r.learn_names(&seed)) {
                tracing::warn!(target: "cdrbox::run", error = %e, "could not read the journal for CallerID names");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(target: "cdrbox::run", error = %e, "cannot start the thread that relearns CallerID names");
    }
    names
}

/// The alarm mailer (`[alarms]`), when a channel is configured. It holds the board weakly, like
/// the display, so the board goes with the run. A channel that cannot be set up (a bad
/// smtp_url) is an alarm on the page and the display, and recording goes on.
pub(super) fn start_alarms(
    cfg: &Config,
    board: &Arc<StatusBoard>,
    clock: &Clock,
) -> Option<crate::alarms::service::AlarmService> {
    use crate::alarms::service::{settings_from_config, AlarmService, StatusFn, ViewFn};
    let settings = match settings_from_config(cfg) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(target: "cdrbox::run", error = %e, "alarm messages are off");
            board.set_alarm_mail_problem(Some(format!(
                "alarm messages are not sent: {e} — fix [alarms] in Settings or the config file"
            )));
            return None;
        }
    };
    let b = Arc::downgrade(board);
    let view: ViewFn = Box::new(move || b.upgrade().map(|b| b.snapshot()).unwrap_or_default());
    let b = Arc::downgrade(board);
    let on_status: StatusFn = Arc::new(move |st| {
        if let Some(b) = b.upgrade() {
            b.set_alarm_channels(st);
        }
    });
    match AlarmService::spawn(settings, view, on_status, clock.clone()) {
        Ok(a) => {
            // The watcher looks at the snapshot when what it reads changes, not on a tick:
            // relay those publishes. Ends with the board's channel or the service.
            let changed = a.status_changed();
            let mut published = board.subscribe();
            tokio::spawn(async move {
                use crate::alarms::thresholds::Watched;
                let mut seen = Watched::of(&published.borrow_and_update());
                while published.changed().await.is_ok() {
                    let now = Watched::of(&published.borrow_and_update());
                    if now != seen {
                        seen = now;
                        if !changed.changed() {
                            break;
                        }
                    }
                }
            });
            Some(a)
        }
        Err(e) => {
            tracing::error!(target: "cdrbox::run", error = %e, "alarm mailer not started");
            board.set_alarm_mail_problem(Some(format!(
                "alarm messages are not sent: cannot use the alarm outbox ({e}) — check [storage] path"
            )));
            None
        }
    }
}

/// The central PostgreSQL uplink (`[uplink] url`), on its own thread. Like the alarm mailer it
/// holds the board weakly. A URL that cannot be used is an alarm, and recording goes on.
pub(super) fn start_uplink(
    cfg: &Config,
    journal: &JournalHandle,
    board: &Arc<StatusBoard>,
    clock: &Clock,
) -> Option<crate::uplink::Uplink> {
    use crate::uplink::{forward::StatusFn, Settings, Uplink};
    let problem = |e: &dyn std::fmt::Display| {
        tracing::error!(target: "cdrbox::run", error = %e, "uplink is off");
        board.set_uplink(crate::status::UplinkStatus {
            state: "off".into(),
            target: crate::uplink::url::redact(&cfg.uplink.url.0),
            last_error: Some(format!("{e} — fix [uplink] in Settings or the config file")),
            ..Default::default()
        });
    };
    let settings = match Settings::from_config(cfg) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            problem(&e);
            return None;
        }
    };
    let b = Arc::downgrade(board);
    let on_status: StatusFn = Arc::new(move |st| {
        if let Some(b) = b.upgrade() {
            b.set_uplink(st);
        }
    });
    match Uplink::spawn(settings, journal.paths().clone(), on_status, clock.clone()) {
        Ok(u) => Some(u),
        Err(e) => {
            problem(&e);
            None
        }
    }
}

/// The OLED thread: it ends when the board's status channel closes. Its health reports hold
/// the board weakly, or the thread would keep the channel open and never end.
pub(super) fn start_display(
    cfg: &Config,
    board: &Arc<StatusBoard>,
    clock: &Clock,
) -> Option<std::thread::JoinHandle<()>> {
    let b = Arc::downgrade(board);
    crate::display::spawn(
        cfg.display.clone(),
        board.subscribe(),
        clock.clone(),
        move |h| {
            let Some(b) = b.upgrade() else { return };
            b.set_display_problem(match &h {
                crate::display::DisplayHealth::Failing { error, attempts, .. } => Some(format!(
                    "the OLED display is not responding ({error}); retrying (attempt {attempts}) — check its wiring and address (board/display.md)"
                )),
                _ => None,
            })
        },
    )
}

/// The USB stick watcher; `None` (logged) when its thread cannot start.
pub(super) fn start_usb(
    cfg: &Config,
    (journal, names): (&JournalHandle, &Arc<crate::names::Directory>),
    board: &Arc<StatusBoard>,
    clock: &Clock,
) -> Option<UsbWatcher> {
    let b = board.clone();
    let mut opts = crate::usb::WatcherOptions::new(&cfg.usb, &cfg.box_name);
    // The excel profile's name columns: the names the page shows, live.
    opts.names = Some(names.clone());
    // The journal's own stick (journal on USB) is never an export target.
    opts.exclude = vec![cfg.storage.path.clone()];
    match UsbWatcher::spawn(
        opts,
        Arc::new(usb_source::JournalUsbSource::with_writer(journal.clone())),
        Arc::new(crate::usb::RealFs),
        clock.clone(),
        Box::new(move |s| b.set_usb(s)),
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(target: "cdrbox::run", error = %e, "USB watcher not started");
            None
        }
    }
}

/// The web page; `None` when it cannot listen (the reason goes on the OLED and the log).
pub(super) fn start_web(
    cfg: &Config,
    // What the page reads: the records, the status, who is behind a number.
    (journal, board, names): (
        &JournalHandle,
        &Arc<StatusBoard>,
        Arc<crate::names::Directory>,
    ),
    clock: &Clock,
    // What the page can ask of the run: a new config, a restart, a test alarm.
    (config_tx, restart_tx, alarm_tester): (
        watch::Sender<Config>,
        watch::Sender<bool>,
        Option<crate::alarms::service::AlarmTester>,
    ),
    config_path: PathBuf,
    on_web: Option<&mut OnWeb>,
) -> Option<WebHandle> {
    let passwd = crate::web::auth::passwd_path_for(&config_path);
    board.set_tls_fingerprint(None);
    let https = cfg
        .web
        .https
        .then(|| start_https(cfg, &config_path, board))
        .flatten();
    let backend = Arc::new(
        web_backend::BoxBackend::new(
            journal.clone(),
            board.clone(),
            config_path,
            config_tx,
            clock.clone(),
        )
        .with_restart(restart_tx)
        .with_alarm_tester(alarm_tester)
        .with_names(names),
    );
    show_setup_code(&passwd, board);
    let mut web_opts = crate::web::WebOptions::new(passwd);
    web_opts.workers = cfg.web.workers;
    web_opts.hosts = crate::web::gate::HostPolicy::for_box(&cfg.web.hostnames);
    web_opts.https = https;
    web_opts.clock = clock.clone();
    match crate::web::serve(
        cfg.web.listen,
        backend,
        Arc::new(crate::web::CdrExporter),
        web_opts,
    ) {
        Ok(h) => {
            tracing::info!(target: "cdrbox::run", addr = %h.local_addr(), https = ?h.https_addr(), "web page listening");
            if let Some(f) = on_web {
                f(h.local_addr());
            }
            Some(h)
        }
        Err(e) => {
            // The logger matters more than its page: keep recording, say why on the OLED.
            tracing::error!(target: "cdrbox::run", error = %e, "web page not started");
            board.set_web_problem(Some(format!(
                "the web page could not start: {e} — change [web] listen (or https_listen)"
            )));
            None
        }
    }
}

/// HTTPS for the web page (`[web] https`): the certificate — loaded, or made self-signed on the
/// first start — with its fingerprint on the OLED and in the log, kept there when an upload
/// replaces it. `None` (HTTP only, the reason on the OLED and the page) when it cannot be had:
/// the owner must still reach the page to fix it.
fn start_https(
    cfg: &Config,
    config_path: &std::path::Path,
    board: &Arc<StatusBoard>,
) -> Option<crate::web::HttpsOptions> {
    use crate::web::tls;
    let ip: Vec<std::net::IpAddr> = local_ip_towards(&ip_target(cfg))
        .and_then(|ip| ip.parse().ok())
        .into_iter()
        .collect();
    let names = tls::names_for(&cfg.web.hostnames, &ip);
    match tls::BoxCertificate::load_or_create(tls::paths_for(config_path), &cfg.box_name, names) {
        Ok(cert) => {
            let fingerprint = cert.fingerprint();
            tracing::info!(target: "cdrbox::run", %fingerprint, listen = %cfg.web.https_listen, "HTTPS on: compare this certificate fingerprint with what the browser shows");
            board.set_tls_fingerprint(Some(fingerprint));
            let b = Arc::downgrade(board);
            cert.on_change(move |id| {
                if let Some(b) = b.upgrade() {
                    b.set_tls_fingerprint(Some(id.fingerprint.clone()));
                }
            });
            Some(crate::web::HttpsOptions {
                listen: cfg.web.https_listen,
                certificate: cert,
            })
        }
        Err(e) => {
            tracing::error!(target: "cdrbox::run", error = %e, "HTTPS not started; the page answers over plain HTTP");
            board.set_web_problem(Some(format!("HTTPS is off: {e}")));
            None
        }
    }
}

/// While no admin password is set: makes the one-time setup code (if nobody has yet), logs it
/// and puts it on the OLED, so the box's owner — who can read the display or this log — is the
/// one who can finish the first visit (issue 11, finding 2).
fn show_setup_code(passwd: &std::path::Path, board: &Arc<StatusBoard>) {
    let set = crate::web::auth::PasswordFile::load(passwd)
        .map(|f| f.hash_of("admin").is_some())
        .unwrap_or(true);
    if set {
        return;
    }
    let path = crate::web::setup_code::path_for(passwd);
    match crate::web::setup_code::ensure(&path, &crate::web::auth::os_random) {
        Ok(code) => {
            tracing::info!(target: "cdrbox::run", %code, "no admin password yet: the first visit to the web page needs this setup code (also on the display and from `cdrbox setup-code`)");
            board.set_setup_code(Some(code));
        }
        Err(e) => {
            tracing::error!(target: "cdrbox::run", path = %path.display(), error = %e, "cannot make the setup code")
        }
    }
}

/// Counts today's calls already in the journal, so a restart does not reset the display.
fn seed_today(journal: &JournalHandle, board: &StatusBoard, tz: &jiff::tz::TimeZone, now: i64) {
    let Some(from) = start_of_day(tz, now) else {
        return;
    };
    let filter = Filter {
        from_utc: Some(from),
        ..Filter::default()
    };
    let mut calls = Vec::new();
    let result = journal.reader().and_then(|r| {
        r.for_each::<JournalError>(&filter, Sort::StartAsc, |rec| {
            let key = crate::calls::call_key(&rec);
            calls.push((key, rec.disposition == Disposition::Answered));
            Ok(())
        })
    });
    if let Err(e) = result {
        tracing::warn!(target: "cdrbox::run", error = %e, "could not count today's calls");
    }
    board.seed_today(calls);
}
