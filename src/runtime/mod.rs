//! Wiring of the running box: journal, AMI links, status board, and (as they land) display, web
//! and USB; plus the one-shot commands (`export`, `check-config`, `sim-pbx`, `demo`).
//!
//! The only place that starts threads and tasks. Everything it wires is tested on its own; what
//! is tested here is that the pieces are connected (`tests/cli_*.rs` run the real binary).

pub mod board;
pub mod usb_source;
pub mod web_backend;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::ami::client::{run_link, LinkConfig, ToRecord};
use crate::clock::Clock;
use crate::config::Config;
use crate::export::{ExportWriter, Format};
use crate::filter::{Filter, Sort};
use crate::journal::{Journal, JournalError, JournalHandle, JournalPaths, JournalReader};
use crate::record::{CallRecord, Direction, Disposition, PbxContext};
use crate::sink::{LinkEvent, RecordSink};
use crate::timearg::{parse_time, Bound};
use board::StatusBoard;

/// The journal's and the AMI links' clock type until they take [`Clock`] itself.
fn unix_fn(clock: &Clock) -> crate::journal::Clock {
    let clock = clock.clone();
    Arc::new(move || clock.unix())
}

/// Filter options as typed on the command line (or in a query string).
#[derive(Debug, Clone, Default)]
pub struct FilterArgs {
    pub from: Option<String>,
    pub to: Option<String>,
    pub dispositions: Vec<String>,
    pub directions: Vec<String>,
    pub pbx: Vec<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub account_code: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub min_duration: Option<i64>,
    pub max_duration: Option<i64>,
}

impl FilterArgs {
    /// Validates into a [`Filter`]; naive times are read in `tz`. Errors name the option.
    pub fn to_filter(&self, tz: &jiff::tz::TimeZone) -> Result<Filter> {
        let from_utc = self
            .from
            .as_deref()
            .map(|t| parse_time(t, tz, Bound::Lower))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
        let to_utc = self
            .to
            .as_deref()
            .map(|t| parse_time(t, tz, Bound::Upper))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
        let dispositions = self
            .dispositions
            .iter()
            .map(|d| Disposition::parse(d))
            .collect();
        let directions = self
            .directions
            .iter()
            .map(|d| {
                d.parse::<Direction>().map_err(|_| {
                    anyhow::anyhow!(
                        "--direction: {d:?} is not a direction (inbound, outbound, internal, unknown)"
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Filter {
            from_utc,
            to_utc,
            dispositions,
            directions,
            pbx: self.pbx.clone(),
            source_contains: self.source.clone(),
            destination_contains: self.destination.clone(),
            account_code: self.account_code.clone(),
            queue: self.queue.clone(),
            agent: self.agent.clone(),
            min_duration: self.min_duration,
            max_duration: self.max_duration,
        })
    }
}

/// `cdrbox export`.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    pub config: PathBuf,
    pub format: String,
    pub profile: Option<String>,
    pub output: Option<PathBuf>,
    pub filter: FilterArgs,
}

/// `cdrbox sim-pbx`.
#[derive(Debug, Clone)]
pub struct SimArgs {
    pub listen: String,
    pub username: String,
    pub secret: String,
    pub rate: f64,
    pub calls: Option<u64>,
    pub seed: u64,
    pub timezone: String,
    pub mappings: bool,
}

/// `cdrbox demo`.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    pub listen: String,
    pub rate: f64,
    pub data: Option<PathBuf>,
    pub calls: Option<u64>,
    pub seconds: u64,
}

fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).with_context(|| format!("reading configuration {}", path.display()))
}

/// The zone user-typed times are read in: the first PBX's, else UTC.
fn display_zone(cfg: &Config) -> jiff::tz::TimeZone {
    cfg.pbx
        .first()
        .and_then(|p| jiff::tz::TimeZone::get(&p.timezone).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests calling twice) is harmless; ignore its error.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `cdrbox check-config`: prints the problems, or a summary and warnings.
pub fn check_config(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    println!(
        "{}: OK — {} PBX link(s), journal at {}, web on {}",
        path.display(),
        cfg.pbx.len(),
        cfg.storage.path.display(),
        cfg.web.listen
    );
    for w in cfg.warnings() {
        println!("warning: {w}");
    }
    Ok(())
}

/// `cdrbox export`: every matching record (committed, and any still only in the ring after a
/// crash), streamed; written to a temporary file and renamed so a partial file never looks done.
pub fn export(args: ExportArgs) -> Result<()> {
    let cfg = load_config(&args.config)?;
    let format = Format::parse(&args.format, args.profile.as_deref())?;
    let filter = args.filter.to_filter(&display_zone(&cfg))?;
    let reader = JournalReader::open_with_ring(&JournalPaths::from_config(&cfg.storage))
        .with_context(|| format!("opening the journal at {}", cfg.storage.path.display()))?;
    match &args.output {
        None => {
            let stdout = std::io::stdout().lock();
            let out = std::io::BufWriter::with_capacity(64 * 1024, stdout);
            write_export(&reader, &filter, format, out)?.flush()?;
        }
        Some(path) => {
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let out = std::io::BufWriter::with_capacity(64 * 1024, file);
            let file = write_export(&reader, &filter, format, out)?
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", tmp.display()))?;
            file.sync_all()
                .with_context(|| format!("syncing {}", tmp.display()))?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        }
    }
    Ok(())
}

fn write_export<W: Write>(
    reader: &JournalReader,
    filter: &Filter,
    format: Format,
    out: W,
) -> Result<W> {
    let mut writer = ExportWriter::new(format, out)?;
    // Export errors are either the journal's or the output's; keep both as the error chain.
    enum Failure {
        Journal(JournalError),
        Output(std::io::Error),
    }
    impl From<JournalError> for Failure {
        fn from(e: JournalError) -> Self {
            Failure::Journal(e)
        }
    }
    reader
        .for_each(filter, Sort::StartAsc, |rec| {
            writer.write(&rec).map_err(Failure::Output)
        })
        .map_err(|f| match f {
            Failure::Journal(e) => anyhow::Error::new(e).context("reading the journal"),
            Failure::Output(e) => anyhow::Error::new(e).context("writing the export"),
        })?;
    Ok(writer.finish()?)
}

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

    fn backlog_full(&self) -> bool {
        self.journal.backlog_full()
    }
}

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
    pub on_web: Option<Box<dyn FnOnce(std::net::SocketAddr) + Send>>,
    /// The clock everything runs on (the system clock by default).
    pub clock: Clock,
}

/// `cdrbox run`.
pub fn run_from_file(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    init_logging(&cfg.log.level);
    run(
        cfg,
        RunOptions {
            config_path: path.to_path_buf(),
            ..RunOptions::default()
        },
    )
}

/// Runs the box until SIGINT/SIGTERM (or `stop_after`), then commits and exits.
pub fn run(cfg: Config, opts: RunOptions) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cdrbox-io")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(cfg, opts))
}

/// One running AMI link and the settings it was started with.
struct Link {
    pbx: crate::config::PbxConfig,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts, stops and restarts links so they match `cfg` (a changed address, user, secret or
/// zone reconnects that link alone; the others keep their sessions).
fn reconcile_links(
    links: &mut Vec<Link>,
    cfg: &Config,
    sink: &Arc<dyn RecordSink>,
    clock: &crate::journal::Clock,
) {
    let wanted: Vec<&crate::config::PbxConfig> = cfg.pbx.iter().filter(|p| p.enabled).collect();
    links.retain_mut(|l| {
        let keep = wanted.iter().any(|p| **p == l.pbx);
        if !keep {
            let _ = l.stop.send(true);
        }
        keep
    });
    for pbx in wanted {
        if links.iter().any(|l| l.pbx == *pbx) {
            continue;
        }
        let ctx = match PbxContext::from_config(pbx) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                // Config validation already checks these; keep the other links running.
                tracing::error!(target: "cdrbox::run", pbx = %pbx.name, error = %e, "link not started");
                continue;
            }
        };
        let to_record: ToRecord =
            Arc::new(move |msg, received| CallRecord::from_event(msg, &ctx, received));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_link(
            LinkConfig::from_pbx(pbx),
            sink.clone(),
            to_record,
            clock.clone(),
            stop_rx,
        ));
        links.push(Link {
            pbx: pbx.clone(),
            stop,
            task,
        });
    }
    // Tasks of removed links finish on their own after logging off.
}

fn link_names(cfg: &Config) -> Vec<(String, String)> {
    cfg.pbx
        .iter()
        .filter(|p| p.enabled)
        .map(|p| (p.name.clone(), format!("{}:{}", p.host, p.port)))
        .collect()
}

async fn run_async(cfg: Config, opts: RunOptions) -> Result<()> {
    // Before the journal open, which runs `quick_check` and takes seconds on a big journal: a
    // SIGTERM during start-up must end in the clean stop, not the default kill (found by the
    // 500-kill crash campaign; regression test `tests/startup_sigterm.rs`).
    let stop_signals = StopSignals::install();
    let clock = opts.clock.clone();
    let unix_clock = unix_fn(&clock);
    let (journal, report) = Journal::open(&cfg.storage, unix_clock.clone())
        .with_context(|| format!("opening the journal at {}", cfg.storage.path.display()))?;
    tracing::info!(target: "cdrbox::run", ?report, "journal open");

    let tz = display_zone(&cfg);
    let board = Arc::new(StatusBoard::new(
        &cfg.box_name,
        &link_names(&cfg),
        tz.clone(),
        clock.unix(),
    ));
    let echo: Option<Echo> = if opts.echo {
        Some(Box::new(|r: &CallRecord| println!("{}", one_line(r))))
    } else {
        None
    };
    let sink: Arc<dyn RecordSink> = Arc::new(LoggerSink {
        journal: journal.clone(),
        board: board.clone(),
        echo,
    });
    seed_today(&journal, &board, &tz, clock.unix());
    {
        let b = board.clone();
        let _display = crate::display::spawn(
            cfg.display.clone(),
            board.subscribe(),
            clock.clone(),
            move |h| {
                b.set_display_problem(match &h {
                crate::display::DisplayHealth::Failing { error, attempts, .. } => Some(format!(
                    "the OLED display is not responding ({error}); retrying (attempt {attempts}) — check its wiring and address (board/display.md)"
                )),
                _ => None,
            })
            },
        );
    }
    let usb = {
        let b = board.clone();
        let mut opts = crate::usb::WatcherOptions::new(&cfg.usb, &cfg.box_name);
        // The journal's own stick (journal on USB) is never an export target.
        opts.exclude = vec![cfg.storage.path.clone()];
        match crate::usb::UsbWatcher::spawn(
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
    };

    // Live configuration: the web page publishes validated, saved configs here.
    let (config_tx, mut config_rx) = tokio::sync::watch::channel(cfg.clone());
    let web = {
        let backend = Arc::new(web_backend::BoxBackend::new(
            journal.clone(),
            board.clone(),
            opts.config_path.clone(),
            config_tx,
            clock.clone(),
        ));
        let mut web_opts =
            crate::web::WebOptions::new(crate::web::auth::passwd_path_for(&opts.config_path));
        web_opts.workers = cfg.web.workers;
        match crate::web::serve(
            cfg.web.listen,
            backend,
            Arc::new(crate::web::CdrExporter),
            web_opts,
        ) {
            Ok(h) => {
                tracing::info!(target: "cdrbox::run", addr = %h.local_addr(), "web page listening");
                if let Some(f) = opts.on_web {
                    f(h.local_addr());
                }
                Some(h)
            }
            Err(e) => {
                // The logger matters more than its page: keep recording, say why on the OLED.
                tracing::error!(target: "cdrbox::run", error = %e, "web page not started");
                board.set_web_problem(Some(format!(
                    "the web page could not listen on {}: {e} — change [web] listen",
                    cfg.web.listen
                )));
                None
            }
        }
    };

    let mut links: Vec<Link> = Vec::new();
    reconcile_links(&mut links, &cfg, &sink, &unix_clock);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    // Status: refresh the journal's part and publish once a second.
    {
        let board = board.clone();
        let journal = journal.clone();
        let mut stop = stop_rx.clone();
        let mut ip_target = cfg
            .pbx
            .iter()
            .find(|p| p.enabled)
            .map(|p| format!("{}:{}", p.host, p.port));
        let mut cfg_watch = config_rx.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut ip_refresh: Option<crate::clock::Mono> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                if cfg_watch.has_changed().unwrap_or(false) {
                    let c = cfg_watch.borrow_and_update().clone();
                    ip_target = c
                        .pbx
                        .iter()
                        .find(|p| p.enabled)
                        .map(|p| format!("{}:{}", p.host, p.port));
                    ip_refresh = None;
                }
                board.set_storage(journal.status(), journal.alarms());
                let now = clock.now();
                if ip_refresh.is_none_or(|t| now - t >= Duration::from_secs(60)) {
                    board.set_ip(local_ip_towards(&ip_target));
                    ip_refresh = Some(now);
                }
                board.publish(clock.unix());
            }
        });
    }

    // systemd: ready once the journal is open and the links are started; the watchdog is fed
    // only while the journal writer is alive and no link task has died.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let (health_tx, health_rx) = tokio::sync::watch::channel(true);
    if let Some(period) = sd_notify::watchdog_enabled() {
        let journal = journal.clone();
        let mut health_rx = health_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 2);
            loop {
                tick.tick().await;
                let journal_ok = !journal.alarms().iter().any(|a| a.code == "JOURNAL STOPPED");
                let links_ok = *health_rx.borrow_and_update();
                if journal_ok && links_ok {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    tracing::error!(target: "cdrbox::run", journal_ok, links_ok, "unhealthy: not feeding the watchdog");
                }
            }
        });
    }

    let stop = stop_signals.wait(opts.stop_after);
    tokio::pin!(stop);
    let mut health = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            changed = config_rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                let new = config_rx.borrow_and_update().clone();
                board.set_box_name(&new.box_name);
                board.set_links(&link_names(&new), clock.unix());
                reconcile_links(&mut links, &new, &sink, &unix_clock);
                tracing::info!(target: "cdrbox::run", links = links.len(), "configuration applied");
            }
            _ = health.tick() => {
                // A link task only ends when told to; one that ended by itself has panicked.
                let _ = health_tx.send(links.iter().all(|l| !l.task.is_finished()));
            }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!(target: "cdrbox::run", "stopping: logging off and committing");
    let _ = stop_tx.send(true);
    for l in &links {
        let _ = l.stop.send(true);
    }
    for l in links {
        let _ = tokio::time::timeout(Duration::from_secs(3), l.task).await;
    }
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

/// The address this box uses to reach the PBX (what a person types into a browser). A UDP
/// `connect` only asks the kernel for a route; no packet is sent.
fn local_ip_towards(target: &Option<String>) -> Option<String> {
    let target = target.as_deref()?;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

/// Midnight of `now`'s day in `tz`, as Unix seconds ("today" on the page and the OLED).
fn start_of_day(tz: &jiff::tz::TimeZone, now: i64) -> Option<i64> {
    let date = jiff::Timestamp::from_second(now)
        .ok()?
        .to_zoned(tz.clone())
        .date();
    let midnight = tz
        .to_zoned(date.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    Some(midnight.timestamp().as_second())
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
            let key = format!(
                "{}\u{0}{}",
                rec.pbx,
                rec.linked_id.as_deref().unwrap_or(&rec.unique_id)
            );
            calls.push((key, rec.disposition == Disposition::Answered));
            Ok(())
        })
    });
    if let Err(e) = result {
        tracing::warn!(target: "cdrbox::run", error = %e, "could not count today's calls");
    }
    board.seed_today(calls);
}

/// SIGINT/SIGTERM listeners. Installing them replaces the default action (die at once), and a
/// signal that arrives before [`StopSignals::wait`] runs is kept until then.
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        StopSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn wait(mut self, stop_after: Option<Duration>) {
        let sleep = async {
            match stop_after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => {}
            _ = recv(&mut self.term) => {}
            _ = sleep => {}
        }
    }
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

/// `cdrbox usb-export --to DIR`: the USB copy, by hand, into any directory.
pub fn usb_export(config: &Path, to: &Path) -> Result<()> {
    let cfg = load_config(config)?;
    let paths = JournalPaths::from_config(&cfg.storage);
    let clock = Clock::system();
    let run = |source: &dyn crate::usb::UsbSource| {
        crate::usb::export_to_dir(source, to, &cfg.usb, &cfg.box_name, clock.unix())
            .with_context(|| format!("copying records to {}", to.display()))
    };
    let report = if crate::journal::writer_running(&paths) {
        // `cdrbox run` owns the writer: copy what it has committed (records still waiting in
        // its ring are committed within [storage] flush_interval_ms and go next time).
        run(&usb_source::JournalUsbSource::read_only(paths))?
    } else {
        // No writer: open it, which replays the ring, so nothing that arrived is left out.
        let (journal, _) = Journal::open(&cfg.storage, unix_fn(&clock))
            .with_context(|| format!("opening the journal at {}", cfg.storage.path.display()))?;
        let report = run(&usb_source::JournalUsbSource::with_writer(journal.clone()));
        journal.shutdown();
        report?
    };
    match &report.folder {
        None => println!("nothing new to copy (mode {:?})", cfg.usb.mode),
        Some(folder) => println!(
            "copied {} records to {} (verified: {})",
            report.records,
            folder.display(),
            report
                .files
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(())
}

/// `cdrbox display --png OUT`: the OLED's first page for the journal's current state, as PNG.
pub fn display_png(config: &Path, out: &Path, scale: u32) -> Result<()> {
    let cfg = load_config(config)?;
    let view = offline_status(&cfg, Clock::system().unix())?;
    let png = crate::display::render_view_png(&view, 0, scale);
    std::fs::write(out, png).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} ({} page(s); links are shown as not connected: this command does not connect)",
        out.display(),
        crate::display::pages(&view)
    );
    Ok(())
}

/// The status a box would show from its journal alone (no live links).
fn offline_status(cfg: &Config, now: i64) -> Result<crate::status::StatusView> {
    let links: Vec<(String, String)> = cfg
        .pbx
        .iter()
        .filter(|p| p.enabled)
        .map(|p| (p.name.clone(), format!("{}:{}", p.host, p.port)))
        .collect();
    let tz = display_zone(cfg);
    let board = StatusBoard::new(&cfg.box_name, &links, tz.clone(), now);
    let paths = JournalPaths::from_config(&cfg.storage);
    if let Ok(reader) = JournalReader::open_with_ring(&paths) {
        let filter = Filter {
            from_utc: start_of_day(&tz, now),
            ..Filter::default()
        };
        reader.for_each::<JournalError>(&filter, Sort::StartAsc, |r| {
            board.on_record(&r);
            Ok(())
        })?;
        let storage = crate::status::StorageStatus {
            path: cfg.storage.path.display().to_string(),
            committed: reader.max_id().unwrap_or(0).max(0) as u64,
            ..Default::default()
        };
        board.set_storage(storage, Vec::new());
    }
    for (pbx, _) in &links {
        board.on_link_event(
            pbx,
            now,
            &LinkEvent::Down {
                reason: "not connected (offline rendering)".into(),
                kind: crate::sink::DownKind::Transient,
            },
        );
    }
    board.publish(now);
    Ok(board.snapshot())
}

/// `cdrbox passwd --config F [--user admin|viewer]`: sets a web password (first line of stdin
/// when it is not a terminal, else asked twice without echo).
pub fn passwd(config: &Path, user: &str) -> Result<()> {
    // Validate the config first so a typo in the path is not silently a new password file.
    load_config(config)?;
    let path = crate::web::auth::passwd_path_for(config);
    crate::web::auth::run_passwd(&path, user)
        .with_context(|| format!("setting the {user} password in {}", path.display()))?;
    println!("password for {user} saved in {}", path.display());
    Ok(())
}

/// `cdrbox sim-pbx`.
pub fn sim_pbx(args: SimArgs) -> Result<()> {
    init_logging("info");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let opts = sim_options(&args)?;
        let handle = crate::sim::start(listener, opts).await?;
        println!(
            "sim-pbx: AMI on {} (user {:?})",
            handle.local_addr(),
            args.username
        );
        StopSignals::install().wait(None).await;
        handle.stop().await;
        Ok(())
    })
}

fn sim_options(args: &SimArgs) -> Result<crate::sim::SimOptions> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!(
            "--rate: {} is not a number of calls per second ≥ 0",
            args.rate
        );
    }
    let timezone = jiff::tz::TimeZone::get(&args.timezone).map_err(|_| {
        anyhow::anyhow!(
            "--timezone: {:?} is not an IANA time zone (e.g. Europe/Moscow)",
            args.timezone
        )
    })?;
    Ok(crate::sim::SimOptions {
        username: args.username.clone(),
        secret: args.secret.clone(),
        rate_per_sec: args.rate,
        calls: args.calls,
        // A long-running simulator must not keep every event it ever sent.
        record_events: false,
        generator: crate::sim::GeneratorOptions {
            seed: args.seed,
            timezone,
            map_linkedid_sequence: args.mappings,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// `cdrbox demo`: the simulated PBX and the logger on loopback.
pub fn demo(args: DemoArgs) -> Result<()> {
    init_logging("warn");
    let data = match &args.data {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("cdrbox-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let sim_listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("binding the simulated PBX to 127.0.0.1")?;
    let sim_args = SimArgs {
        listen: String::new(),
        username: "cdrbox".into(),
        secret: "demo-secret".into(),
        rate: args.rate,
        calls: args.calls,
        seed: Clock::system().unix() as u64,
        timezone: "Europe/Moscow".into(),
        mappings: true,
    };
    let sim = rt.block_on(crate::sim::start(sim_listener, sim_options(&sim_args)?))?;
    let addr = sim.local_addr();
    let toml = format!(
        r#"
[box]
name = "cdrbox-demo"

[[pbx]]
name = "demo-pbx"
host = "{host}"
port = {port}
username = "cdrbox"
secret = "demo-secret"
auth = "md5"
timezone = "Europe/Moscow"

[storage]
path = "{data}"
flush_interval_ms = 5000

[web]
listen = "{listen}"

[display]
driver = "none"
"#,
        host = addr.ip(),
        port = addr.port(),
        data = data
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\""),
        listen = args.listen,
    );
    let cfg = Config::parse(&toml, "demo").context("building the demo configuration")?;
    let config_path = data.join("demo.toml");
    std::fs::write(&config_path, &toml)
        .with_context(|| format!("writing {}", config_path.display()))?;
    println!("cdrbox demo");
    println!("  simulated PBX (AMI):  {addr}");
    println!("  journal:              {}", data.display());
    println!("  config:               {}", config_path.display());
    println!(
        "  export afterwards:    cargo run --release -- export --config {} --format csv",
        config_path.display()
    );
    println!("  stop with Ctrl-C");
    let stop_after = (args.seconds > 0).then(|| Duration::from_secs(args.seconds));
    let result = run(
        cfg,
        RunOptions {
            config_path,
            echo: true,
            stop_after,
            on_web: Some(Box::new(|addr| {
                println!("  web page:             http://{addr}/   (the first visit sets the admin password)\n");
            })),
            clock: Clock::system(),
        },
    );
    rt.block_on(sim.stop());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_of_day_is_local_midnight() {
        let moscow = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        // 2026-11-22T07:07:37Z is 10:07:37 in Moscow; its midnight is 21:00 UTC the day before.
        assert_eq!(start_of_day(&moscow, 1_795_331_257), Some(1_795_294_800));
        assert_eq!(
            start_of_day(&jiff::tz::TimeZone::UTC, 1_795_331_257),
            Some(1_795_305_600)
        );
    }

    #[test]
    fn filter_args_name_the_bad_option() {
        let tz = jiff::tz::TimeZone::UTC;
        let bad = FilterArgs {
            from: Some("yesterday".into()),
            ..FilterArgs::default()
        };
        assert!(bad
            .to_filter(&tz)
            .unwrap_err()
            .to_string()
            .starts_with("--from:"));
        let bad = FilterArgs {
            directions: vec!["sideways".into()],
            ..FilterArgs::default()
        };
        assert!(bad
            .to_filter(&tz)
            .unwrap_err()
            .to_string()
            .starts_with("--direction:"));
        let ok = FilterArgs {
            from: Some("2026-11-22".into()),
            to: Some("2026-11-22".into()),
            dispositions: vec!["NO ANSWER".into()],
            ..FilterArgs::default()
        };
        let f = ok.to_filter(&tz).unwrap();
        assert_eq!(
            (f.from_utc, f.to_utc),
            (Some(1_795_305_600), Some(1_795_392_000))
        );
        assert_eq!(f.dispositions, vec![Disposition::NoAnswer]);
    }
}
