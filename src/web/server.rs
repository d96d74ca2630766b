//! The tiny_http adapter: owns the listening socket and the threads, turns tiny_http requests
//! into [`routes::Request`]s and streams [`routes::Response`]s back.
//!
//! Threads: the [`super::gate`] accept thread and one thread per open connection (capped in
//! total and per address); tiny_http on a private loopback socket with its own accept and
//! per-connection threads; one dispatcher that hands requests to two fixed pools through bounded
//! queues — `workers` for pages, the API and logins, and `stream_workers` (small) for downloads
//! and the live feed, so a few slow downloads can never take the status page or the login with
//! them — and answers 503 at once when a queue is full; one SSE hub that holds every live-feed
//! client (so a browser tab watching calls holds no worker), fed by one drain thread that turns
//! each new record into its bounded listing form (memory per record is capped in bytes whatever
//! a PBX sends).
//!
//! Limits: the gate parses and checks every head (one parser: `httparse`), reads the whole body
//! itself and enforces the deadlines before tiny_http sees a byte; tiny_http only ever gets a
//! head the gate rebuilt. The header/URL/body checks are repeated here in case tiny_http is
//! ever reached directly.
//!
//! Health ([`WebHandle::health`], fed to the systemd watchdog): the accept loop, the dispatcher
//! and the hub tick a heartbeat; a page worker busy far past every deadline counts as wedged.

use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::export::Exporter;
use super::gate;
use super::json::listing_json;
use super::routes::{self, App, Body, Random};
use super::Backend;
use crate::record::CallRecord;

/// Why the web server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("web: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("web: {0}")]
    Setup(String),
}

/// How the server runs. [`WebOptions::new`] gives the defaults.
#[derive(Clone)]
pub struct WebOptions {
    /// Threads answering pages, the API and logins (`[web] workers`).
    pub workers: usize,
    /// Threads streaming downloads (and handing live feeds to the hub); kept apart so slow
    /// downloads never starve the pages.
    pub stream_workers: usize,
    /// Requests that may wait for a free worker; more get 503 at once.
    pub queue: usize,
    /// The password file (see [`super::auth::passwd_path_for`]).
    pub passwd_path: PathBuf,
    /// Largest request body (settings, login); larger → 413.
    pub max_body: usize,
    /// Largest body of `POST /api/import` (a Master.csv; ~250 bytes per call); larger → 413.
    pub max_import_body: usize,
    /// Largest total size of the request's header lines; larger → 431.
    pub max_header_bytes: usize,
    /// Most header lines; more → 431.
    pub max_headers: usize,
    /// Longest request target (path + query); longer → 414.
    pub max_url: usize,
    /// Socket read/write time-out per operation: an idle or stalled client is dropped after it.
    pub io_timeout: Duration,
    /// A request head must arrive completely within this (slow-loris clients are dropped).
    pub head_timeout: Duration,
    /// A request body must arrive completely within this, after the head.
    pub body_timeout: Duration,
    /// An ordinary answer must be complete within this (downloads and the feed excepted).
    pub response_timeout: Duration,
    /// Client connections open at once; more get 503.
    pub max_connections: usize,
    /// Client connections open at once from one address (IPv6: one /64); more get 503.
    pub max_per_address: usize,
    /// Live-feed (SSE) clients at once; more get 503.
    pub max_event_clients: usize,
    /// A comment line is sent this often on an idle live feed, so proxies and phones keep it.
    pub event_keepalive: Duration,
    /// Accepted `Host` header values (DNS rebinding).
    pub hosts: gate::HostPolicy,
    /// The box clock (Unix seconds).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Random bytes for salts and tokens.
    pub random: Random,
    /// HTTPS (`[web] https`): its own listener; the plain one then only redirects to it.
    pub https: Option<HttpsOptions>,
}

/// The HTTPS side of the web page.
#[derive(Clone)]
pub struct HttpsOptions {
    /// Where HTTPS listens (`[web] https_listen`; tests use `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// The live certificate (uploads replace it without a restart).
    pub certificate: Arc<super::tls::BoxCertificate>,
}

impl WebOptions {
    pub fn new(passwd_path: PathBuf) -> Self {
        Self {
            workers: 4,
            stream_workers: 2,
            queue: 32,
            passwd_path,
            max_body: 64 * 1024,
            max_import_body: 32 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_url: 8 * 1024,
            io_timeout: Duration::from_secs(20),
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            response_timeout: Duration::from_secs(60),
            max_connections: 64,
            max_per_address: 16,
            max_event_clients: 32,
            event_keepalive: Duration::from_secs(15),
            hosts: gate::HostPolicy::for_box(&[]),
            clock: Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            }),
            random: Arc::new(super::auth::os_random),
            https: None,
        }
    }
}

/// How long [`WebHandle::shutdown`] waits for threads before leaving them to the process exit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Liveness of the server's threads, for the watchdog.
struct Health {
    /// Unix milliseconds of the last dispatcher / hub loop.
    dispatcher: AtomicI64,
    hub: AtomicI64,
    /// Per page worker: Unix milliseconds since it is busy with one request, 0 when idle.
    busy_since: Vec<AtomicI64>,
    /// Longest a page worker may legitimately be busy.
    stuck_after: Duration,
    /// Longest the hub may legitimately go without a loop.
    hub_late: Duration,
    /// Threads started and still running; a thread that ends (or panics) before `stop` is a
    /// dead server.
    started: AtomicUsize,
    running: AtomicUsize,
    stopping: AtomicBool,
}

/// Counts a server thread as running until it ends, however it ends.
struct Running(Arc<Health>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A cheap, clonable view of the server's health for the watchdog (see [`WebHandle::probe`]).
#[derive(Clone)]
pub struct WebProbe(Arc<Health>);

impl WebProbe {
    /// `Ok` while the server answers: its threads run and at least one page worker is not
    /// wedged. `Err` says what is wrong (the watchdog logs it and stops feeding systemd, which
    /// then restarts the service).
    pub fn check(&self) -> Result<(), String> {
        let h = &self.0;
        if h.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (started, running) = (
            h.started.load(Ordering::SeqCst),
            h.running.load(Ordering::SeqCst),
        );
        if running < started {
            return Err(format!("{} web thread(s) ended", started - running));
        }
        let now = now_ms();
        let late = |at: &AtomicI64, ms: i64| now - at.load(Ordering::SeqCst) > ms;
        if late(&h.dispatcher, 10_000) {
            return Err("the web dispatcher is stuck".into());
        }
        // The hub may wait on one stalled client until the gate drops it.
        if late(&h.hub, h.hub_late.as_millis() as i64) {
            return Err("the live-feed hub is stuck".into());
        }
        let stuck = h.stuck_after.as_millis() as i64;
        let wedged = h.busy_since.iter().all(|b| {
            let since = b.load(Ordering::SeqCst);
            since != 0 && now - since > stuck
        });
        if wedged {
            return Err(format!(
                "every web page worker has been busy for over {} s",
                stuck / 1000
            ));
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The running server. Dropping it does not stop it; call [`WebHandle::shutdown`].
pub struct WebHandle {
    addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    /// One address per listener: a connection to it wakes its gate from `accept`.
    wake: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    health: Arc<Health>,
    connections: Arc<gate::ConnCount>,
}

impl WebHandle {
    /// The address actually bound (the port when `:0` was asked). With HTTPS on, this one
    /// only redirects to [`WebHandle::https_addr`].
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTPS address actually bound, when HTTPS is on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// See [`WebProbe::check`].
    pub fn health(&self) -> Result<(), String> {
        self.probe().check()
    }

    /// A handle the watchdog keeps to check the server's health.
    pub fn probe(&self) -> WebProbe {
        WebProbe(self.health.clone())
    }

    /// Stops accepting and waits up to [`SHUTDOWN_GRACE`] for the threads; any still busy (a
    /// download to a stalled client) is left to end with the process, so a stop never hangs.
    pub fn shutdown(self) {
        self.health.stopping.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        // Each gate blocks in accept: one connection wakes it to see `stop`.
        for wake in &self.wake {
            let _ = std::net::TcpStream::connect_timeout(wake, Duration::from_secs(1));
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline && !self.threads.iter().all(|t| t.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut left = 0;
        for t in self.threads {
            if t.is_finished() {
                let _ = t.join();
            } else {
                left += 1;
            }
        }
        if left > 0 {
            tracing::warn!(target: "cdrbox::web", threads = left, "web threads still busy at shutdown; not waiting for them");
        }
    }
}

/// Binds `listen` and starts serving. What `cdrbox run` and `cdrbox demo` call.
pub fn serve(
    listen: SocketAddr,
    backend: Arc<dyn Backend>,
    exporter: Arc<dyn Exporter>,
    opts: WebOptions,
) -> Result<WebHandle, WebError> {
    let listener = TcpListener::bind(listen).map_err(|source| WebError::Bind {
        addr: listen,
        source,
    })?;
    serve_listener(listener, backend, exporter, opts)
}

/// Serves on an already bound listener (tests bind `127.0.0.1:0`; systemd may pass a socket).
/// With [`WebOptions::https`], HTTPS listens on its own address and this listener redirects.
pub fn serve_listener(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    exporter: Arc<dyn Exporter>,
    opts: WebOptions,
) -> Result<WebHandle, WebError> {
    let addr = listener
        .local_addr()
        .map_err(|e| WebError::Setup(format!("reading the bound address: {e}")))?;
    // HTTPS: its listener and the TLS wrapper; the gate terminates TLS before it parses, so
    // every limit of the plain gate applies over TLS unchanged.
    let https = match &opts.https {
        None => None,
        Some(h) => {
            let l = TcpListener::bind(h.listen).map_err(|source| WebError::Bind {
                addr: h.listen,
                source,
            })?;
            let a = l
                .local_addr()
                .map_err(|e| WebError::Setup(format!("reading the HTTPS address: {e}")))?;
            let config = h
                .certificate
                .server_config()
                .map_err(|e| WebError::Setup(format!("HTTPS: {e}")))?;
            Some((l, a, gate::tls(super::tls::TlsAcceptor::new(config))))
        }
    };
    let https_addr = https.as_ref().map(|(_, a, _)| *a);
    let https = https.map(|(l, _, w)| (l, w));
    // tiny_http listens only on loopback; the gate relays admitted requests to it.
    let inner = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| WebError::Setup(format!("binding the private loopback socket: {e}")))?;
    let inner_addr = inner
        .local_addr()
        .map_err(|e| WebError::Setup(format!("reading the loopback address: {e}")))?;
    let server = new_server(&inner)
        .map_err(|e| WebError::Setup(format!("starting tiny_http on {inner_addr}: {e}")))?;
    let token: Arc<str> = super::auth::new_token(&|b: &mut [u8]| (opts.random)(b))
        .map_err(|e| WebError::Setup(format!("no random numbers for the gate token: {e}")))?
        .into();
    let mut app = App::new(
        backend.clone(),
        exporter,
        opts.passwd_path.clone(),
        opts.random.clone(),
    );
    if let Some(h) = &opts.https {
        app = app.with_certificate(h.certificate.clone());
    }
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let opts = Arc::new(opts);
    let workers = opts.workers.max(1);
    let health = Arc::new(Health {
        dispatcher: AtomicI64::new(now_ms()),
        hub: AtomicI64::new(now_ms()),
        busy_since: (0..workers).map(|_| AtomicI64::new(0)).collect(),
        stuck_after: opts.response_timeout * 3 + opts.io_timeout,
        hub_late: opts.io_timeout * 3 + Duration::from_secs(10),
        started: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
    });
    let connections = Arc::new(gate::ConnCount::default());
    let mut threads = Vec::new();
    {
        let limits = Arc::new(gate::Limits {
            max_head: opts.max_header_bytes,
            max_headers: opts.max_headers,
            max_url: opts.max_url,
            max_body: opts.max_body,
            max_import_body: opts.max_import_body,
            head_timeout: opts.head_timeout,
            body_timeout: opts.body_timeout,
            io_timeout: opts.io_timeout,
            response_timeout: opts.response_timeout,
            stream_idle_timeout: (opts.event_keepalive * 4).max(opts.io_timeout * 3),
            max_connections: opts.max_connections,
            max_per_address: opts.max_per_address,
            max_event_clients: opts.max_event_clients,
            hosts: opts.hosts.clone(),
            redirect_https: None,
        });
        // Both gates share one connection count: the per-address cap covers HTTP and HTTPS.
        let plain_limits = match https_addr {
            Some(a) => Arc::new(gate::Limits {
                redirect_https: Some(a.port()),
                ..(*limits).clone()
            }),
            None => limits.clone(),
        };
        let (stop2, token2, count) = (stop.clone(), token.clone(), connections.clone());
        threads.push(spawn("cdrbox-web-gate", &health, move || {
            gate::run(
                listener,
                inner_addr,
                plain_limits,
                token2,
                gate::plain(),
                stop2,
                count,
            )
        })?);
        if let Some((l, wrap)) = https {
            let (stop, token, count) = (stop.clone(), token.clone(), connections.clone());
            threads.push(spawn("cdrbox-web-tls", &health, move || {
                gate::run(l, inner_addr, limits, token, wrap, stop, count)
            })?);
        }
    }

    let hub = Hub {
        feed: Arc::new(Feed::default()),
        new_clients: Arc::new(Mutex::new(Vec::new())),
        clients: Arc::new(AtomicUsize::new(0)),
    };
    {
        let stop = stop.clone();
        let records = backend.subscribe();
        let feed = hub.feed.clone();
        threads.push(spawn("cdrbox-web-feed", &health, move || {
            drain(records, &feed, &stop)
        })?);
    }
    {
        let stop = stop.clone();
        let hub = hub.clone();
        let keepalive = opts.event_keepalive;
        let h = health.clone();
        threads.push(spawn("cdrbox-web-sse", &health, move || {
            event_hub(&hub, keepalive, &stop, &h)
        })?);
    }

    let (tx, rx) = mpsc::sync_channel::<tiny_http::Request>(opts.queue.max(1));
    let (stream_tx, stream_rx) = mpsc::sync_channel::<tiny_http::Request>(opts.queue.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let stream_rx = Arc::new(Mutex::new(stream_rx));
    let pools = (0..workers)
        .map(|i| (format!("cdrbox-web-{i}"), rx.clone(), Some(i)))
        .chain(
            (0..opts.stream_workers.max(1))
                .map(|i| (format!("cdrbox-web-dl-{i}"), stream_rx.clone(), None)),
        );
    for (name, rx, slot) in pools {
        let app = app.clone();
        let opts = opts.clone();
        let token = token.clone();
        let hub = hub.clone();
        let h = health.clone();
        threads.push(spawn(&name, &health, move || loop {
            let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(rq) = next else { break };
            if let Some(i) = slot {
                h.busy_since[i].store(now_ms(), Ordering::SeqCst);
            }
            handle(rq, &app, &opts, &hub, &token);
            if let Some(i) = slot {
                h.busy_since[i].store(0, Ordering::SeqCst);
            }
        })?);
    }
    {
        let stop = stop.clone();
        let idle = opts.io_timeout;
        let h = health.clone();
        threads.push(spawn("cdrbox-web-accept", &health, move || {
            dispatch(inner, server, tx, stream_tx, &stop, idle, &h)
        })?);
    }
    tracing::info!(target: "cdrbox::web", %addr, https = ?https_addr, "web page listening");
    let wake_of = |addr: SocketAddr| match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    Ok(WebHandle {
        addr,
        https_addr,
        wake: std::iter::once(addr)
            .chain(https_addr)
            .map(wake_of)
            .collect(),
        stop,
        threads,
        health,
        connections,
    })
}

fn spawn(
    name: &str,
    health: &Arc<Health>,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, WebError> {
    health.started.fetch_add(1, Ordering::SeqCst);
    health.running.fetch_add(1, Ordering::SeqCst);
    let running = Running(health.clone());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _running = running;
            f()
        })
        .map_err(|e| WebError::Setup(format!("starting thread {name}: {e}")))
}

fn new_server(listener: &TcpListener) -> io::Result<tiny_http::Server> {
    let clone = listener.try_clone()?;
    tiny_http::Server::from_listener(clone, None).map_err(|e| io::Error::other(e.to_string()))
}

/// Hands requests to the pools; answers 503 itself when a queue is full.
///
/// tiny_http's accept thread ends on the first accept error (EMFILE, or `accept` timing out if
/// the listener ever carries a read time-out) and the server then hears nothing more. So when
/// the current tiny_http server reports an error, a fresh one is started on the same listener;
/// the old one is still polled for requests on its open connections until it has been silent
/// for longer than any connection can stay idle.
fn dispatch(
    listener: TcpListener,
    first: tiny_http::Server,
    tx: SyncSender<tiny_http::Request>,
    stream_tx: SyncSender<tiny_http::Request>,
    stop: &AtomicBool,
    idle: Duration,
    health: &Health,
) {
    let mut current = first;
    let mut old: Vec<(tiny_http::Server, Instant)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        health.dispatcher.store(now_ms(), Ordering::SeqCst);
        let mut got = Vec::new();
        match current.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(rq)) => got.push(rq),
            Ok(None) => {}
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::TimedOut {
                    tracing::warn!(target: "cdrbox::web", error = %e, "accept failed; restarting");
                    std::thread::sleep(Duration::from_millis(200));
                }
                match new_server(&listener) {
                    Ok(fresh) => old.push((std::mem::replace(&mut current, fresh), Instant::now())),
                    Err(e) => {
                        tracing::error!(target: "cdrbox::web", error = %e, "cannot restart accepting");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        }
        for (server, last) in old.iter_mut() {
            while let Ok(Some(rq)) = server.try_recv() {
                *last = Instant::now();
                got.push(rq);
            }
        }
        old.retain(|(_, last)| last.elapsed() < idle * 2 + Duration::from_secs(1));
        for rq in got {
            let (queue, what) = if gate::is_stream_target(rq.url()) {
                (&stream_tx, "downloads and live feeds")
            } else {
                (&tx, "web workers")
            };
            match queue.try_send(rq) {
                Ok(()) => {}
                Err(TrySendError::Full(rq)) => {
                    tracing::warn!(target: "cdrbox::web", what, "all busy: 503");
                    let body = serde_json::json!({
                        "error": format!("busy: all {what} are in use, retry shortly")
                    })
                    .to_string();
                    let resp = tiny_http::Response::from_data(body.into_bytes())
                        .with_status_code(503)
                        .with_header(header("Content-Type", "application/json"))
                        .with_header(header("Retry-After", "1"));
                    let _ = rq.respond(resp);
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|_| {
        tiny_http::Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).expect("static header")
    })
}

/// The live-feed side shared by the workers (which add clients) and the hub.
#[derive(Clone)]
struct Hub {
    feed: Arc<Feed>,
    new_clients: Arc<Mutex<Vec<Box<dyn Write + Send>>>>,
    /// Clients held (or being admitted); reserved before the answer starts, so the cap is exact.
    clients: Arc<AtomicUsize>,
}

impl Hub {
    /// Reserves a live-feed place, or `false` when all `max` are taken.
    fn reserve(&self, max: usize) -> bool {
        self.clients
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.clients.fetch_sub(n, Ordering::SeqCst);
    }
}

/// Most bytes of formatted events waiting for the hub; beyond it the oldest are dropped and the
/// clients told (`event: lagged`), so a flood of huge records cannot grow memory.
pub const FEED_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Formatted events between the drain thread and the hub, bounded in bytes.
#[derive(Default)]
struct Feed {
    queue: Mutex<FeedQueue>,
    ready: Condvar,
}

#[derive(Default)]
struct FeedQueue {
    events: std::collections::VecDeque<String>,
    bytes: usize,
    dropped: u64,
}

impl Feed {
    fn push(&self, event: String) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.bytes += event.len();
        q.events.push_back(event);
        while q.bytes > FEED_MAX_BYTES {
            match q.events.pop_front() {
                Some(old) => {
                    q.bytes -= old.len();
                    q.dropped += 1;
                }
                None => break,
            }
        }
        self.ready.notify_one();
    }

    /// The next event (or a `lagged` notice after drops), waiting up to `wait`.
    fn pop(&self, wait: Duration) -> Option<String> {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, wait, |q| q.events.is_empty() && q.dropped == 0)
            .unwrap_or_else(|p| p.into_inner());
        if q.dropped > 0 {
            let n = std::mem::take(&mut q.dropped);
            return Some(format!("event: lagged\ndata: {{\"dropped\":{n}}}\n\n"));
        }
        let e = q.events.pop_front()?;
        q.bytes -= e.len();
        Some(e)
    }
}

/// Turns each new record into its event at once (the listing form, bounded in bytes), so the
/// full record is freed immediately whatever the hub is doing.
fn drain(records: Receiver<CallRecord>, feed: &Feed, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match records.recv_timeout(Duration::from_millis(500)) {
            Ok(r) => feed.push(format!("event: record\ndata: {}\n\n", listing_json(&r))),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // No more records will come; wait for the stop like the others.
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

fn quick(rq: tiny_http::Request, status: u16, message: &str) {
    let body = serde_json::json!({ "error": message }).to_string();
    let resp = tiny_http::Response::from_data(body.into_bytes())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Connection", "close"));
    let _ = rq.respond(resp);
}

/// Checks limits, reads the body, routes, and writes the answer.
fn handle(mut rq: tiny_http::Request, app: &App, opts: &WebOptions, hub: &Hub, token: &str) {
    let header_bytes: usize = rq
        .headers()
        .iter()
        .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
        .sum();
    // Slack for the two headers the gate adds (`Connection`, the peer address).
    if rq.headers().len() > opts.max_headers + 2 || header_bytes > opts.max_header_bytes + 256 {
        return quick(rq, 431, "request headers too large");
    }
    if rq.url().len() > opts.max_url {
        return quick(rq, 414, "request URL too long");
    }
    // A Master.csv upload may be large; everything else stays small.
    let max_body = if rq.url().split('?').next() == Some("/api/import") {
        opts.max_import_body
    } else {
        opts.max_body
    };
    if rq.body_length().is_some_and(|n| n > max_body) {
        return quick(
            rq,
            413,
            &format!("request body larger than {max_body} bytes"),
        );
    }
    let mut body = Vec::new();
    if let Err(e) = rq
        .as_reader()
        .take(max_body as u64 + 1)
        .read_to_end(&mut body)
    {
        tracing::debug!(target: "cdrbox::web", error = %e, "reading a request body");
        return quick(rq, 400, "could not read the request body");
    }
    if body.len() > max_body {
        return quick(
            rq,
            413,
            &format!("request body larger than {max_body} bytes"),
        );
    }
    let (path, query) = rq.url().split_once('?').unwrap_or((rq.url(), ""));
    let (peer, tls) = peer_of(&rq, token);
    let req = routes::Request {
        method: rq.method().as_str().to_ascii_uppercase(),
        path: path.to_string(),
        query: query.to_string(),
        headers: rq
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_string(),
                )
            })
            .collect(),
        body,
        peer,
        tls,
    };
    let started = Instant::now();
    let mut resp = app.handle(&req, (opts.clock)());
    if req.method == "HEAD" && matches!(resp.body, Body::Export { .. } | Body::Events) {
        resp.body = Body::Empty;
    }
    let status = resp.status;
    let http10 = rq.http_version() == &tiny_http::HTTPVersion(1, 0);
    match resp.body {
        Body::Export {
            format,
            ref profile,
            ref filter,
            sort,
            formula_guard,
            separator,
        } => {
            let mut out = rq.into_writer();
            let result = (|| -> io::Result<u64> {
                write_head(&mut out, http10, status, &resp.headers, !http10)?;
                let mut rows = 0u64;
                {
                    let sink: Box<dyn Write> = if http10 {
                        Box::new(BufWriter::with_capacity(64 * 1024, &mut out))
                    } else {
                        Box::new(BufWriter::with_capacity(
                            64 * 1024,
                            Chunked { inner: &mut out },
                        ))
                    };
                    let mut w = app
                        .exporter()
                        .writer(format, profile, formula_guard, separator, sink)
                        .map_err(io::Error::other)?;
                    app.backend()
                        .for_each(filter, sort, &mut |r| {
                            rows += 1;
                            w.write(r)
                        })
                        .map_err(io::Error::other)?;
                    w.finish()?;
                }
                if !http10 {
                    out.write_all(b"0\r\n\r\n")?;
                }
                out.flush()?;
                Ok(rows)
            })();
            match result {
                Ok(rows) => {
                    tracing::info!(target: "cdrbox::web", rows, ms = started.elapsed().as_millis() as u64, "export sent")
                }
                // The status line is gone: stopping without the last chunk tells the client
                // the download is incomplete.
                Err(e) => tracing::warn!(target: "cdrbox::web", error = %e, "export stopped"),
            }
        }
        Body::Events => {
            // The gate holds the exact cap (it sees a client leave at once); this one only
            // backs it up for clients the hub has not yet noticed are gone.
            if !hub.reserve(opts.max_event_clients * 2) {
                return quick(rq, 503, "too many live-feed clients");
            }
            let mut out = rq.into_writer();
            let mut headers = resp.headers.clone();
            headers.push(("Connection".into(), "close".into()));
            let started = write_head(&mut out, http10, status, &headers, false)
                .and_then(|_| out.write_all(b"retry: 3000\n\n"))
                .and_then(|_| out.flush());
            match started {
                Ok(()) => hub
                    .new_clients
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(out),
                Err(_) => hub.release(1),
            }
        }
        Body::Empty | Body::Bytes(_) | Body::Static(_) => {
            let bytes = match resp.body {
                Body::Bytes(b) => b,
                Body::Static(b) => b.to_vec(),
                _ => Vec::new(),
            };
            let mut r = tiny_http::Response::from_data(bytes).with_status_code(status);
            for (k, v) in &resp.headers {
                if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                    r.add_header(h);
                }
            }
            if let Err(e) = rq.respond(r) {
                tracing::debug!(target: "cdrbox::web", error = %e, "writing a response");
            }
        }
    }
}

/// The client's address and whether it came over TLS, as the gate vouched for them (token
/// match); else the socket's address, plain.
fn peer_of(rq: &tiny_http::Request, token: &str) -> (std::net::IpAddr, bool) {
    let vouched = rq
        .headers()
        .iter()
        .find(|h| h.field.equiv(gate::PEER_HEADER))
        .and_then(|h| {
            let mut parts = h.value.as_str().split(' ');
            let (t, ip, scheme) = (parts.next()?, parts.next()?, parts.next()?);
            super::auth::constant_time_eq(t.as_bytes(), token.as_bytes())
                .then(|| Some((ip.parse().ok()?, scheme == "https")))
                .flatten()
        });
    vouched.unwrap_or_else(|| {
        (
            rq.remote_addr()
                .map(|a| a.ip())
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
            false,
        )
    })
}

/// Writes a status line (in the request's HTTP version) and headers by hand (streamed answers
/// bypass tiny_http's buffering).
fn write_head(
    out: &mut dyn Write,
    http10: bool,
    status: u16,
    headers: &[(String, String)],
    chunked: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.{} {status} {}\r\n",
        if http10 { 0 } else { 1 },
        gate::reason_phrase(status)
    );
    for (k, v) in headers {
        if v.contains(['\r', '\n']) {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    // The gate relays one request per connection.
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()
}

/// HTTP/1.1 chunked framing: every `write` is one chunk (the `BufWriter` above it makes them
/// 64 KiB), so memory stays flat however many rows follow.
struct Chunked<'a> {
    inner: &'a mut Box<dyn Write + Send + 'static>,
}

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.inner, "{:x}\r\n", buf.len())?;
        self.inner.write_all(buf)?;
        self.inner.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The live feed: every event goes to every client; a client whose socket fails (gone, or
/// stalled until the gate dropped it) is dropped and its place freed.
fn event_hub(hub: &Hub, keepalive: Duration, stop: &AtomicBool, health: &Health) {
    let mut clients: Vec<Box<dyn Write + Send>> = Vec::new();
    let mut last_write = Instant::now();
    let tick = keepalive.min(Duration::from_millis(500));
    while !stop.load(Ordering::SeqCst) {
        health.hub.store(now_ms(), Ordering::SeqCst);
        clients.append(&mut hub.new_clients.lock().unwrap_or_else(|p| p.into_inner()));
        let msg = match hub.feed.pop(tick) {
            Some(m) => Some(m),
            None if last_write.elapsed() >= keepalive => Some(": keep-alive\n\n".to_string()),
            None => None,
        };
        if let Some(msg) = msg {
            // Clients that connected while we waited must get this record too.
            clients.append(&mut hub.new_clients.lock().unwrap_or_else(|p| p.into_inner()));
            last_write = Instant::now();
            let before = clients.len();
            clients.retain_mut(|c| c.write_all(msg.as_bytes()).and_then(|_| c.flush()).is_ok());
            hub.release(before - clients.len());
        }
    }
}
