//! `cdrbox run`: the running box. [`run`] opens the journal, starts the status board, display,
//! USB watcher, web page and AMI links, publishes the status every second, applies saved configs
//! live, feeds the systemd watchdog, and on SIGINT/SIGTERM logs off and commits — each a named
//! step of `run_once` below.
//!
//! Restart (the settings page's button, `POST /api/restart`) happens inside the process: the
//! run ends as on SIGTERM (links log off, the journal commits and closes, the web page and the
//! display stop), then starts again from the saved file. Same PID, so it behaves alike under
//! systemd (no unit restart, watchdog and notify socket keep working), for `cdrbox run` in a
//! terminal and for `cdrbox demo`, whose simulated PBX keeps running across it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::board::StatusBoard;
use super::io_runtime;
use super::links::Links;
use super::live::{pbx_off_alarms, removed_after, set_log_level, Outcome};
use super::pullers::Pullers;
use super::signals::StopSignals;
use super::{display_zone, init_logging, load_config, start_of_day, usb_source, web_backend};
use crate::clock::{Clock, Mono};
use crate::config::Config;
use crate::filter::{Filter, Sort};
use crate::journal::{Journal, JournalError, JournalHandle};
use crate::record::{CallRecord, Disposition};
use crate::sink::{LinkEvent, RecordSink};
use crate::usb::UsbWatcher;
use crate::web::WebHandle;

/// Prints a record (the demo's terminal output).
type Echo = Box<dyn Fn(&CallRecord) + Send + Sync>;

/// Sink that feeds the status board and the journal (and, in the demo, a printer).
struct LoggerSink {
    journal: JournalHandle,
    board: Arc<StatusBoard>,
    echo: Option<Echo>,
}

impl RecordSink for LoggerSink {
    fn record(&self, record: CallRecord) {
        self.board.on_record(&record);
        if let Some(echo) = &self.echo {
            echo(&record);
        }
        self.journal.record(record);
    }

    fn link_event(&self, pbx: &str, at_utc: i64, event: LinkEvent) {
        if let Some(_echo) = &self.echo {
            match &event {
                LinkEvent::Up { banner, .. } => println!(
                    "link {pbx}: up ({})",
                    banner.as_deref().unwrap_or("no banner")
                ),
                LinkEvent::Down { reason, .. } => println!("link {pbx}: down — {reason}"),
                _ => {}
            }
        }
        self.board.on_link_event(pbx, at_utc, &event);
        self.journal.link_event(pbx, at_utc, event);
    }

    fn behind(&self) -> bool {
        self.journal.behind()
    }
}

/// Told the web page's address each time it starts listening (again after a restart).
pub type OnWeb = Box<dyn FnMut(std::net::SocketAddr) + Send>;

/// Options for [`run`] beyond the config file.
#[derive(Default)]
pub struct RunOptions {
    /// The config file: the web page's settings are saved there, the password file beside it.
    pub config_path: PathBuf,
    /// Print each record and link change (the demo).
    pub echo: bool,
    /// Stop after this long (scripted runs); `None` runs until SIGINT/SIGTERM.
    pub stop_after: Option<Duration>,
    /// Called with the web page's address once it listens (the demo prints it).
    pub on_web: Option<OnWeb>,
    /// The clock everything runs on (the system clock by default).
    pub clock: Clock,
}

/// `cdrbox run`.
pub fn run_from_file(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    init_logging(&cfg.log.level);
    for w in super::config_mode_warnings(path) {
        tracing::warn!(target: "cdrbox::run", "{w}");
    }
    run(
        cfg,
        RunOptions {
            config_path: path.to_path_buf(),
            ..RunOptions::default()
        },
    )
}

/// Runs the box until SIGINT/SIGTERM (or `stop_after`), then commits and exits; a restart
/// from the settings page runs it again from the saved file, in the same process.
pub fn run(cfg: Config, opts: RunOptions) -> Result<()> {
    let rt = io_runtime("cdrbox-io")?;
    rt.block_on(run_until_stopped(cfg, opts))
}

async fn run_until_stopped(mut cfg: Config, mut opts: RunOptions) -> Result<()> {
    // Before the journal open: a SIGTERM during start-up must end in the clean stop, not the
    // default kill (found by the 500-kill crash campaign when open still ran `quick_check`;
    // regression test `tests/startup_sigterm.rs`, which now stops it during the background check).
    let mut signals = StopSignals::install();
    let deadline = opts.stop_after.map(|d| opts.clock.now() + d);
    let mut problem = None;
    loop {
        let stop_after = deadline.map(|d| d - opts.clock.now());
        if run_once(
            cfg.clone(),
            &mut opts,
            &mut signals,
            stop_after,
            problem.take(),
        )
        .await?
            == Outcome::Stopped
        {
            return Ok(());
        }
        match load_config(&opts.config_path) {
            Ok(saved) => cfg = saved,
            // Edited by hand into something invalid since the page saved it: keep recording
            // with what ran, and say why on the page and the display.
            Err(e) => {
                tracing::error!(target: "cdrbox::run", error = %format!("{e:#}"), "restart: the saved configuration is invalid; running the previous one");
                problem = Some(format!(
                    "the restart used the previous settings: {e:#} — fix the file (cdrbox check-config) and restart again"
                ));
            }
        }
        set_log_level(&cfg.log.level);
        tracing::warn!(target: "cdrbox::run", "restarting with the saved configuration");
    }
}

/// One run of the box, from opening the journal to the clean stop.
async fn run_once(
    cfg: Config,
    opts: &mut RunOptions,
    signals: &mut StopSignals,
    stop_after: Option<Duration>,
    config_problem: Option<String>,
) -> Result<Outcome> {
    let clock = opts.clock.clone();
    let journal = open_journal(&cfg, &clock)?;
    journal.set_storage_alarm_percents(
        cfg.alarms.storage_warning_percent,
        cfg.alarms.storage_critical_percent,
    );
    let board = start_board(&cfg, &journal, &clock);
    let mut alarms = pbx_off_alarms(&cfg, &[]);
    alarms.extend(config_problem.map(|message| crate::status::Alarm::new("CONFIG", message)));
    board.set_config_alarms(alarms);
    let alarm_service = start_alarms(&cfg, &board, &clock);
    let uplink = start_uplink(&cfg, &journal, &board, &clock);
    let sink: Arc<dyn RecordSink> = Arc::new(LoggerSink {
        journal: journal.clone(),
        board: board.clone(),
        echo: opts
            .echo
            .then(|| -> Echo { Box::new(|r| println!("{}", one_line(r))) }),
    });
    let display = start_display(&cfg, &board, &clock);
    let usb = start_usb(&cfg, &journal, &board, &clock);
    // Live configuration: the web page publishes validated, saved configs here, and asks for a
    // restart on the other channel.
    let (config_tx, config_rx) = watch::channel(cfg.clone());
    let (restart_tx, restart_rx) = watch::channel(false);
    let web = start_web(
        &cfg,
        &journal,
        &board,
        &clock,
        (
            config_tx,
            restart_tx,
            alarm_service.as_ref().map(|a| a.tester()),
        ),
        opts.config_path.clone(),
        opts.on_web.as_mut(),
    );
    let mut links = Links::new(sink, clock.clone());
    links.reconcile(&cfg);
    let pullers = Pullers::start(&cfg, &journal, &clock);
    let (stop_tx, stop_rx) = watch::channel(false);
    spawn_status_publisher(
        &cfg,
        crate::web::setup_code::path_for(&crate::web::auth::passwd_path_for(&opts.config_path)),
        (&board, pullers.status_handles()),
        &journal,
        &clock,
        config_rx.clone(),
        stop_rx.clone(),
    );
    let health_tx =
        notify_ready_and_feed_watchdog(&journal, web.as_ref().map(|w| w.probe()), stop_rx);
    let outcome = serve_until_stopped(
        signals.wait(stop_after),
        (config_rx, restart_rx),
        &board,
        &mut links,
        &clock,
        health_tx,
    )
    .await;
    if let Some(a) = alarm_service {
        // Whatever is not delivered within the grace stays in the outbox for the next start.
        let _ = tokio::task::spawn_blocking(move || a.stop(Duration::from_secs(3))).await;
    }
    pullers.stop();
    if let Some(u) = uplink {
        // A batch not yet committed on the server is dropped here and re-sent next start.
        let _ = tokio::task::spawn_blocking(move || u.stop()).await;
    }
    shut_down(stop_tx, links, web, usb, journal).await?;
    // The display thread ends once the board's status channel closes (the last reference to
    // the board goes with the run): wait for it, so a restart does not open the panel twice.
    drop(board);
    if let Some(d) = display {
        let finished = tokio::task::spawn_blocking(move || {
            let until = std::time::Instant::now() + Duration::from_secs(3);
            while !d.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            d.is_finished()
        });
        if !finished.await.unwrap_or(false) {
            tracing::warn!(target: "cdrbox::run", "the display thread did not stop within 3 s");
        }
    }
    Ok(outcome)
}

/// Opens (checks, migrates, replays) the journal and starts its writer thread.
fn open_journal(cfg: &Config, clock: &Clock) -> Result<JournalHandle> {
    let (journal, report) = Journal::open(&cfg.storage, clock.clone())
        .with_context(|| format!("opening the journal at {}", cfg.storage.path.display()))?;
    tracing::info!(target: "cdrbox::run", ?report, "journal open");
    Ok(journal)
}

/// The status board, with today's calls already in the journal counted.
fn start_board(cfg: &Config, journal: &JournalHandle, clock: &Clock) -> Arc<StatusBoard> {
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

/// The alarm mailer (`[alarms]`), when a channel is configured. It holds the board weakly, like
/// the display, so the board goes with the run. A channel that cannot be set up (a bad
/// smtp_url) is an alarm on the page and the display, and recording goes on.
fn start_alarms(
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
        Ok(a) => Some(a),
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
fn start_uplink(
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
fn start_display(
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
fn start_usb(
    cfg: &Config,
    journal: &JournalHandle,
    board: &Arc<StatusBoard>,
    clock: &Clock,
) -> Option<UsbWatcher> {
    let b = board.clone();
    let mut opts = crate::usb::WatcherOptions::new(&cfg.usb, &cfg.box_name);
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
fn start_web(
    cfg: &Config,
    journal: &JournalHandle,
    board: &Arc<StatusBoard>,
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
        .with_alarm_tester(alarm_tester),
    );
    show_setup_code(&passwd, board);
    let mut web_opts = crate::web::WebOptions::new(passwd);
    web_opts.workers = cfg.web.workers;
    web_opts.hosts = crate::web::gate::HostPolicy::for_box(&cfg.web.hostnames);
    web_opts.https = https;
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

/// Refreshes the journal's part of the status and publishes it once a second, until `stop`.
fn spawn_status_publisher(
    cfg: &Config,
    setup_path: PathBuf,
    (board, cdr_db): (
        &Arc<StatusBoard>,
        Vec<Arc<std::sync::Mutex<crate::status::CdrDbStatus>>>,
    ),
    journal: &JournalHandle,
    clock: &Clock,
    mut cfg_watch: watch::Receiver<Config>,
    mut stop: watch::Receiver<bool>,
) {
    let board = board.clone();
    let journal = journal.clone();
    let clock = clock.clone();
    let mut target = ip_target(cfg);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ip_refresh: Option<Mono> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if cfg_watch.has_changed().unwrap_or(false) {
                target = ip_target(&cfg_watch.borrow_and_update());
                ip_refresh = None;
            }
            board.set_storage(journal.status(), journal.alarms());
            if !cdr_db.is_empty() {
                board.set_cdr_db(
                    cdr_db
                        .iter()
                        .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone())
                        .collect(),
                );
            }
            // The setup code disappears once the admin password is set (web page or
            // `cdrbox passwd`); the file is read only while a code is shown.
            if let Some(path) = board.setup_code_shown().then(|| setup_path.clone()) {
                board.set_setup_code(crate::web::setup_code::current(&path));
            }
            let now = clock.now();
            if ip_refresh.is_none_or(|t| now - t >= Duration::from_secs(60)) {
                board.set_ip(local_ip_towards(&target));
                ip_refresh = Some(now);
            }
            board.publish(clock.unix());
        }
    });
}

/// The address whose route names this box's IP on the page: the first enabled PBX.
pub(super) fn ip_target(cfg: &Config) -> Option<String> {
    cfg.pbx
        .iter()
        .find(|p| p.enabled)
        .map(|p| format!("{}:{}", p.host, p.port))
}

/// systemd: ready once the journal is open and the links are started; the watchdog is fed only
/// while the journal writer is alive, no link task has died (reported on the returned channel
/// by [`serve_until_stopped`]) and the web server answers (its threads run, not every page
/// worker is wedged: [`crate::web::WebProbe::check`]), until `stop` (the next run feeds it
/// after a restart).
fn notify_ready_and_feed_watchdog(
    journal: &JournalHandle,
    web: Option<crate::web::WebProbe>,
    mut stop: watch::Receiver<bool>,
) -> watch::Sender<bool> {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let (health_tx, health_rx) = watch::channel(true);
    if let Some(period) = sd_notify::watchdog_enabled() {
        let journal = journal.clone();
        let mut health_rx = health_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 2);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                let journal_ok = !journal.alarms().iter().any(|a| a.code == "JOURNAL STOPPED");
                let links_ok = *health_rx.borrow_and_update();
                let web = web.as_ref().map_or(Ok(()), |w| w.check());
                let web_ok = web.is_ok();
                if journal_ok && links_ok && web_ok {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    let web_problem = web.err().unwrap_or_default();
                    tracing::error!(target: "cdrbox::run", journal_ok, links_ok, web_ok, web_problem, "unhealthy: not feeding the watchdog");
                }
            }
        });
    }
    health_tx
}

/// The box's main loop: applies saved configs (links, box name, log level, the "logging is
/// off" alarms) and checks link health until `stop` (a signal or `stop_after`) completes or a
/// restart is asked for.
async fn serve_until_stopped(
    stop: impl std::future::Future<Output = ()>,
    (mut config_rx, mut restart_rx): (watch::Receiver<Config>, watch::Receiver<bool>),
    board: &StatusBoard,
    links: &mut Links,
    clock: &Clock,
    health_tx: watch::Sender<bool>,
) -> Outcome {
    tokio::pin!(stop);
    let mut died = links.died();
    let mut reported = false;
    let mut current = config_rx.borrow().clone();
    let mut removed = Vec::new();
    loop {
        tokio::select! {
            _ = &mut stop => return Outcome::Stopped,
            changed = restart_rx.changed() => {
                if changed.is_ok() && *restart_rx.borrow_and_update() {
                    tracing::warn!(target: "cdrbox::run", "restart requested: stopping to start again");
                    return Outcome::Restart;
                }
            }
            changed = config_rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                let new = config_rx.borrow_and_update().clone();
                board.set_box_name(&new.box_name);
                board.set_links(&link_names(&new), clock.unix());
                removed_after(&current, &new, &mut removed);
                board.set_config_alarms(pbx_off_alarms(&new, &removed));
                set_log_level(&new.log.level);
                links.reconcile(&new);
                tracing::info!(target: "cdrbox::run", links = links.len(), "configuration applied");
                current = new;
            }
            // No polling: a link task that dies says so (issue 14: idle wake-ups).
            _ = died.wait_for(|n| *n > 0), if !reported => {
                tracing::error!(target: "cdrbox::run", "a link task ended by itself");
                let _ = health_tx.send(false);
                reported = true;
            }
        }
    }
}

/// Logs off every link (Cdrs already on their way still arrive), stops the web page and the USB
/// watcher, then commits and closes the journal.
async fn shut_down(
    stop_tx: watch::Sender<bool>,
    links: Links,
    web: Option<WebHandle>,
    usb: Option<UsbWatcher>,
    journal: JournalHandle,
) -> Result<()> {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!(target: "cdrbox::run", "stopping: logging off and committing");
    let _ = stop_tx.send(true);
    links.stop(Duration::from_secs(3)).await;
    if let Some(w) = web {
        tokio::task::spawn_blocking(move || w.shutdown()).await.ok();
    }
    if let Some(u) = usb {
        tokio::task::spawn_blocking(move || u.stop()).await.ok();
    }
    tokio::task::spawn_blocking(move || journal.shutdown())
        .await
        .context("joining the journal writer")?;
    Ok(())
}

/// `(name, host:port)` of the enabled links, for the status board.
pub(super) fn link_names(cfg: &Config) -> Vec<(String, String)> {
    cfg.pbx
        .iter()
        .filter(|p| p.enabled)
        .map(|p| (p.name.clone(), format!("{}:{}", p.host, p.port)))
        .collect()
}

/// The address this box uses to reach the PBX (what a person types into a browser). A UDP
/// `connect` only asks the kernel for a route; no packet is sent.
pub(super) fn local_ip_towards(target: &Option<String>) -> Option<String> {
    let target = target.as_deref()?;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
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

/// One human line per record, for the demo's terminal.
pub fn one_line(r: &CallRecord) -> String {
    let when = r.start.raw.get(11..).unwrap_or(&r.start.raw);
    let mut line = format!(
        "{when}  {:<8} {:>14} → {:<10} {:<10} {:>4}s talk {:>3}s ring  {}",
        r.pbx,
        if r.source.is_empty() {
            "(anonymous)"
        } else {
            &r.source
        },
        r.destination,
        r.disposition.as_str(),
        r.billable_seconds,
        r.ring_seconds,
        r.direction.as_str(),
    );
    if let Some(q) = &r.queue {
        line.push_str(&format!("  queue {q}"));
    }
    line
}
