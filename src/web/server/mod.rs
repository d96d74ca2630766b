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
//! Health ([`WebHandle::health`], fed to the systemd watchdog): the dispatcher and the hub mark
//! when they start a piece of work and that they are waiting (then nothing can be stuck), so
//! neither needs a tick; a page worker busy far past every deadline counts as wedged.
//!
//! Idle, no thread here wakes on a timer (issue 14 item 4: it was ~600 wake-ups a minute from
//! the dispatcher's 100 ms poll alone): the dispatcher blocks in tiny_http's `recv` and a stop
//! `unblock`s it, the drain blocks on the journal's feed and the hub on its queue, both woken
//! by a stop; the hub arms a timer only for the keep-alive of a connected client.
//!
//! Files: `answer.rs` (one request: limits, body, route, answer), `feed.rs` (the live feed's
//! queue, drain and hub), `health.rs` (the watchdog's heartbeat); this file holds the options
//! and starts and stops the threads.

mod answer;
mod feed;
mod health;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
// Instant, not the box Clock: the replaced accept loops drain real sockets and the shutdown
// grace waits on real OS threads; the watchdog heartbeat (health.rs) is on the Clock.
use std::time::{Duration, Instant};

use super::export::Exporter;
use super::gate;
use super::routes::{App, Random};
use super::Backend;
use crate::clock::Clock;

use answer::{handle, header};
pub use feed::FEED_MAX_BYTES;
use feed::{drain, event_hub, Feed, Hub};
pub use health::WebProbe;
use health::{Health, Running, WAITING};

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
    /// The box clock: wall time for the pages (Unix seconds), monotonic time for the workers'
    /// heartbeats.
    pub clock: Clock,
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
            clock: Clock::system(),
            random: Arc::new(super::auth::os_random),
            https: None,
        }
    }
}

/// How long [`WebHandle::shutdown`] waits for threads before leaving them to the process exit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The running server. Dropping it does not stop it; call [`WebHandle::shutdown`].
pub struct WebHandle {
    addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    /// One address per listener: a connection to it wakes its gate from `accept`.
    wake: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    /// The tiny_http server the dispatcher is blocked on (replaced when it restarts one): a
    /// stop `unblock`s it.
    accepting: Accepting,
    /// The live feed's queue and the drain's journal feed: a stop wakes both.
    feed: Arc<Feed>,
    feed_waker: Option<crate::journal::FeedWaker>,
    threads: Vec<JoinHandle<()>>,
    health: Arc<Health>,
    connections: Arc<gate::ConnCount>,
}

/// The dispatcher's current tiny_http server, shared with [`WebHandle::shutdown`].
type Accepting = Arc<Mutex<Arc<tiny_http::Server>>>;

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
        // The dispatcher blocks in `recv` with no time-out: wake it to see `stop` (after the
        // store above, so a `recv` that starts later returns at once too).
        self.accepting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unblock();
        // The drain and the hub wait with no time-out too.
        self.feed.stop();
        if let Some(w) = &self.feed_waker {
            w.wake();
        }
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
    let accepting: Accepting = Arc::new(Mutex::new(server.clone()));
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
        clock: opts.clock.clone(),
        dispatcher: AtomicI64::new(0),
        hub: AtomicI64::new(0),
        busy_since: (0..workers).map(|_| AtomicI64::new(0)).collect(),
        stuck_after: opts.response_timeout * 3 + opts.io_timeout,
        hub_late: opts.io_timeout * 3 + Duration::from_secs(10),
        started: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
    });
    // Both loops count as having just looped: the watchdog may ask before they start.
    health.dispatcher.store(health.now_ms(), Ordering::SeqCst);
    health.hub.store(health.now_ms(), Ordering::SeqCst);
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

    let hub = Hub::new();
    let records = backend.subscribe();
    let feed_waker = records.waker();
    {
        let stop = stop.clone();
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
                h.busy_since[i].store(h.now_ms(), Ordering::SeqCst);
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
        let accepting = accepting.clone();
        threads.push(spawn("cdrbox-web-accept", &health, move || {
            dispatch(inner, &accepting, tx, stream_tx, &stop, idle, &h)
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
        accepting,
        feed: hub.feed.clone(),
        feed_waker,
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

fn new_server(listener: &TcpListener) -> io::Result<Arc<tiny_http::Server>> {
    let clone = listener.try_clone()?;
    tiny_http::Server::from_listener(clone, None)
        .map(Arc::new)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Hands requests to the pools; answers 503 itself when a queue is full.
///
/// tiny_http's accept thread ends on the first accept error (EMFILE, or `accept` timing out if
/// the listener ever carries a read time-out) and the server then hears nothing more. So when
/// the current tiny_http server reports an error, a fresh one is started on the same listener;
/// the old one is still polled for requests on its open connections until it has been silent
/// for longer than any connection can stay idle.
///
/// With no old server left (always, unless tiny_http failed), it blocks in `recv` with no
/// time-out: [`WebHandle::shutdown`] unblocks it. The heartbeat says "waiting" meanwhile, and
/// the time it started on a request otherwise.
fn dispatch(
    listener: TcpListener,
    accepting: &Mutex<Arc<tiny_http::Server>>,
    tx: SyncSender<tiny_http::Request>,
    stream_tx: SyncSender<tiny_http::Request>,
    stop: &AtomicBool,
    idle: Duration,
    health: &Health,
) {
    let mut current = accepting.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut old: Vec<(Arc<tiny_http::Server>, Instant)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let mut got = Vec::new();
        let next = if old.is_empty() {
            health.dispatcher.store(WAITING, Ordering::SeqCst);
            current.recv().map(Some)
        } else {
            health.dispatcher.store(health.now_ms(), Ordering::SeqCst);
            current.recv_timeout(Duration::from_millis(100))
        };
        health.dispatcher.store(health.now_ms(), Ordering::SeqCst);
        match next {
            Ok(Some(rq)) => got.push(rq),
            Ok(None) => {}
            // Unblocked by the stop: not an accept error.
            Err(_) if stop.load(Ordering::SeqCst) => break,
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::TimedOut {
                    tracing::warn!(target: "cdrbox::web", error = %e, "accept failed; restarting");
                    std::thread::sleep(Duration::from_millis(200));
                }
                match new_server(&listener) {
                    Ok(fresh) => {
                        // Swapped under the lock a stop takes to unblock: a stop either finds
                        // the new server or is seen at the top of the loop.
                        *accepting.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                        old.push((std::mem::replace(&mut current, fresh), Instant::now()));
                    }
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
