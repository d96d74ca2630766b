//! `cdrbox run`: the running box. [`run`] opens the journal, starts the status board, display,
//! USB watcher, web page and AMI links, publishes the status when it changes, applies saved configs
//! live, feeds the systemd watchdog, and on SIGINT/SIGTERM logs off and commits — each a named
//! step of `run_once` below (the start-up steps are in `start`).
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
use super::{init_logging, load_config};
use crate::clock::{Clock, Mono};
use crate::config::Config;
use crate::journal::JournalHandle;
use crate::record::CallRecord;
use crate::sink::{LinkEvent, RecordSink};
use crate::usb::UsbWatcher;
use crate::web::WebHandle;

mod start;

use start::{
    open_journal, start_alarms, start_board, start_display, start_names, start_uplink, start_usb,
    start_web,
};

/// Prints a record (the demo's terminal output).
type Echo = Box<dyn Fn(&CallRecord) + Send + Sync>;

/// Sink that feeds the status board, the names learned from CallerID and the journal (and, in
/// the demo, a printer).
struct LoggerSink {
    journal: JournalHandle,
    board: Arc<StatusBoard>,
    names: Arc<crate::names::Directory>,
    echo: Option<Echo>,
}

impl RecordSink for LoggerSink {
    fn record(&self, record: CallRecord) {
        self.board.on_record(&record);
        self.names.learn_from(&record);
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
        // The clock reading is for the board only: the gap ledger has no use for it, and
        // sending it would wake the journal's threads at every ping.
        if !matches!(event, LinkEvent::PbxClock { .. }) {
            self.journal.link_event(pbx, at_utc, event);
        }
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
    let names = start_names(&cfg, &journal);
    let sink: Arc<dyn RecordSink> = Arc::new(LoggerSink {
        journal: journal.clone(),
        board: board.clone(),
        names: names.clone(),
        echo: opts
            .echo
            .then(|| -> Echo { Box::new(|r| println!("{}", one_line(r))) }),
    });
    let display = start_display(&cfg, &board, &clock);
    let usb = start_usb(&cfg, (&journal, &names), &board, &clock);
    // Live configuration: the web page publishes validated, saved configs here, and asks for a
    // restart on the other channel.
    let (config_tx, config_rx) = watch::channel(cfg.clone());
    let (restart_tx, restart_rx) = watch::channel(false);
    let web = start_web(
        &cfg,
        (&journal, &board, names),
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
            // Instant, not the Clock: this waits on a real OS thread (the panel's), which a
            // paused test clock would never let finish.
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

/// Refreshes the journal's part of the status and publishes it, until `stop`.
///
/// When (issue 14 item 4: an idle box must not wake every second): at once for anything
/// reported to the board ([`StatusBoard::reported`]: a record, a link event, USB, the uplink,
/// the display, a saved config); then every second, refreshing the journal's part, only while
/// records or link events reached the journal within `[storage] flush_interval_ms` + 2 s
/// (that part changes with their commit, which nobody reports: [`StatusBoard::journal_news`]);
/// otherwise at the next real deadline — the next wall-clock minute (the OLED's HH:MM, the
/// day's roll-over, the health sample, the IP, the CDR databases' pulls and the journal's
/// storage figures), a down link's alarm a minute after it fell
/// ([`StatusBoard::next_link_alarm`]), and every 10 s while the setup code is shown (`cdrbox
/// passwd` in another process clears it; the web page's setup reports at once), every 5 s
/// while a CDR database is configured (its pulls report nothing). What is pure
/// time — uptime, "N s ago" — the web page computes when it answers ([`StatusBoard::view_at`]).
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
    let mut flush = cfg.storage.flush_interval;
    tokio::spawn(async move {
        let mut minute_refresh: Option<i64> = None;
        let health_paths = crate::health::HealthPaths::default();
        let started_utc = *process_started_utc(&clock);
        let mut journal_news = board.journal_news();
        let mut busy_until: Option<Mono> = None;
        let mut cfg_new = false;
        loop {
            if std::mem::take(&mut cfg_new) || cfg_watch.has_changed().unwrap_or(false) {
                let cfg = cfg_watch.borrow_and_update();
                target = ip_target(&cfg);
                flush = cfg.storage.flush_interval;
                minute_refresh = None;
            }
            if journal_news != board.journal_news() {
                journal_news = board.journal_news();
                busy_until = Some(clock.now() + flush + Duration::from_secs(2));
            }
            let busy = busy_until.is_some_and(|t| clock.now() < t);
            let unix = clock.unix();
            let minute = unix.div_euclid(60);
            let new_minute = minute_refresh != Some(minute);
            // Pulls from the CDR databases report nothing either: their status, and the journal
            // they fill, are looked at on each wake while any is configured.
            if busy || new_minute || !cdr_db.is_empty() {
                board.set_storage(journal.status(), journal.alarms());
                if !cdr_db.is_empty() {
                    board.set_cdr_db(
                        cdr_db
                            .iter()
                            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone())
                            .collect(),
                    );
                }
            }
            // The setup code disappears once the admin password is set (web page or
            // `cdrbox passwd`); the file is read only while a code is shown.
            if let Some(path) = board.setup_code_shown().then(|| setup_path.clone()) {
                board.set_setup_code(crate::web::setup_code::current(&path));
            }
            // Once a minute: a few small procfs/sysfs reads and one syscall (health), one
            // routing look-up (IP). Sampled more often, the OLED would redraw for every RSS
            // change; the page's uptime does not wait for it (`view_at`).
            if new_minute {
                board.set_ip(local_ip_towards(&target));
                let clock_sync = crate::health::read_clock_sync();
                board.set_health(crate::health::sample(
                    &health_paths,
                    started_utc,
                    unix,
                    clock_sync,
                ));
                minute_refresh = Some(minute);
            }
            board.publish(unix);

            let now = clock.now();
            let busy = busy_until.is_some_and(|t| now < t);
            let next_minute = (minute + 1) * 60;
            let mut wake_unix = next_minute;
            if let Some(at) = board.next_link_alarm(unix) {
                wake_unix = wake_unix.min(at);
            }
            if board.setup_code_shown() {
                wake_unix = wake_unix.min(unix + 10);
            }
            if !cdr_db.is_empty() {
                wake_unix = wake_unix.min(unix + 5);
            }
            // Wall-clock seconds from now, rounded up so a wake never comes before its second.
            let wall_ms = crate::clock::unix_millis(clock.wall());
            let left_ms = (wake_unix * 1000 - wall_ms).max(0);
            let mut wait = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
            if busy {
                wait = wait.min(Duration::from_secs(1));
            }
            tokio::select! {
                _ = clock.sleep_until(now + wait) => {}
                _ = board.reported() => {}
                // `changed` marks it seen: apply it at the top through `cfg_new`. A closed
                // config channel (the run is ending) must not spin this loop.
                _ = async {
                    if cfg_watch.changed().await.is_err() {
                        std::future::pending::<()>().await
                    }
                } => cfg_new = true,
                _ = stop.changed() => break,
            }
        }
    });
}

/// When this process's first run started: the box's uptime survives a restart for a saved
/// configuration, which only starts a new run.
fn process_started_utc(clock: &Clock) -> &'static i64 {
    static STARTED: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    STARTED.get_or_init(|| clock.unix())
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
