//! The tiny_http adapter: owns the listening socket and the threads, enforces the limits, turns
//! tiny_http requests into [`routes::Request`]s and streams [`routes::Response`]s back.
//!
//! Threads: the [`super::gate`] accept thread and two relay threads per open connection
//! (capped); tiny_http on a private loopback socket with its own accept and per-connection
//! threads; one dispatcher that hands requests to a fixed pool of `workers` through a bounded
//! queue and answers 503 at once when the queue is full; one SSE hub that holds every
//! live-feed client, so a browser tab watching calls never holds a worker.
//!
//! Limits: the gate enforces head size, header count, URL length, body size, head deadline,
//! socket time-outs and the connection cap before tiny_http sees a byte; the same header/URL/body
//! checks are repeated here in case tiny_http is ever exposed directly.

use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::export::Exporter;
use super::gate;
use super::json::record_json;
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
    /// Threads answering requests (`[web] workers`).
    pub workers: usize,
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
    /// Client connections open at once; more get 503.
    pub max_connections: usize,
    /// Live-feed (SSE) clients at once; more get 503.
    pub max_event_clients: usize,
    /// A comment line is sent this often on an idle live feed, so proxies and phones keep it.
    pub event_keepalive: Duration,
    /// The box clock (Unix seconds).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Random bytes for salts and tokens.
    pub random: Random,
}

impl WebOptions {
    pub fn new(passwd_path: PathBuf) -> Self {
        Self {
            workers: 4,
            queue: 32,
            passwd_path,
            max_body: 64 * 1024,
            max_import_body: 32 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_url: 8 * 1024,
            io_timeout: Duration::from_secs(20),
            head_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_event_clients: 32,
            event_keepalive: Duration::from_secs(15),
            clock: Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            }),
            random: Arc::new(super::auth::os_random),
        }
    }
}

/// The running server. Dropping it does not stop it; call [`WebHandle::shutdown`].
pub struct WebHandle {
    addr: SocketAddr,
    wake: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl WebHandle {
    /// The address actually bound (the port when `:0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets workers finish their current request, and joins the threads.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        // The gate blocks in accept: one connection wakes it to see `stop`.
        let _ = std::net::TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
        for t in self.threads {
            let _ = t.join();
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
pub fn serve_listener(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    exporter: Arc<dyn Exporter>,
    opts: WebOptions,
) -> Result<WebHandle, WebError> {
    let addr = listener
        .local_addr()
        .map_err(|e| WebError::Setup(format!("reading the bound address: {e}")))?;
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
    let app = Arc::new(App::new(
        backend.clone(),
        exporter,
        opts.passwd_path.clone(),
        opts.random.clone(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = Arc::new(opts);
    let mut threads = Vec::new();
    {
        let limits = Arc::new(gate::Limits {
            max_head: opts.max_header_bytes,
            max_headers: opts.max_headers,
            max_url: opts.max_url,
            max_body: opts.max_body,
            max_import_body: opts.max_import_body,
            head_timeout: opts.head_timeout,
            io_timeout: opts.io_timeout,
            max_connections: opts.max_connections,
        });
        let (stop, token) = (stop.clone(), token.clone());
        threads.push(spawn("cdrbox-web-gate", move || {
            gate::run(listener, inner_addr, limits, token, stop)
        })?);
    }

    let (hub_tx, hub_rx) = mpsc::sync_channel::<Box<dyn Write + Send>>(opts.max_event_clients);
    let hub_clients = Arc::new(AtomicUsize::new(0));
    {
        let stop = stop.clone();
        let records = backend.subscribe();
        let clients = hub_clients.clone();
        let keepalive = opts.event_keepalive;
        threads.push(spawn("cdrbox-web-sse", move || {
            event_hub(records, hub_rx, clients, keepalive, stop)
        })?);
    }

    let (tx, rx) = mpsc::sync_channel::<tiny_http::Request>(opts.queue.max(1));
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..opts.workers.max(1) {
        let rx = rx.clone();
        let app = app.clone();
        let opts = opts.clone();
        let token = token.clone();
        let hub = Hub {
            tx: hub_tx.clone(),
            clients: hub_clients.clone(),
        };
        threads.push(spawn(&format!("cdrbox-web-{i}"), move || loop {
            let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
            match next {
                Ok(rq) => handle(rq, &app, &opts, &hub, &token),
                Err(_) => break,
            }
        })?);
    }
    {
        let stop = stop.clone();
        let idle = opts.io_timeout;
        threads.push(spawn("cdrbox-web-accept", move || {
            dispatch(inner, server, tx, &stop, idle)
        })?);
    }
    tracing::info!(target: "cdrbox::web", %addr, "web page listening");
    let wake = match addr.ip() {
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
        wake,
        stop,
        threads,
    })
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, WebError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| WebError::Setup(format!("starting thread {name}: {e}")))
}

fn new_server(listener: &TcpListener) -> io::Result<tiny_http::Server> {
    let clone = listener.try_clone()?;
    tiny_http::Server::from_listener(clone, None).map_err(|e| io::Error::other(e.to_string()))
}

/// Hands requests to the pool; answers 503 itself when the queue is full.
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
    stop: &AtomicBool,
    idle: Duration,
) {
    let mut current = first;
    let mut old: Vec<(tiny_http::Server, Instant)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
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
            match tx.try_send(rq) {
                Ok(()) => {}
                Err(TrySendError::Full(rq)) => {
                    tracing::warn!(target: "cdrbox::web", "all workers busy: 503");
                    let body = br#"{"error":"busy: all web workers are in use, retry shortly"}"#;
                    let resp = tiny_http::Response::from_data(&body[..])
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

struct Hub {
    tx: SyncSender<Box<dyn Write + Send>>,
    clients: Arc<AtomicUsize>,
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
        peer: peer_of(&rq, token),
    };
    let started = Instant::now();
    let mut resp = app.handle(&req, (opts.clock)());
    if req.method == "HEAD" && matches!(resp.body, Body::Export { .. } | Body::Events) {
        resp.body = Body::Empty;
    }
    let status = resp.status;
    match resp.body {
        Body::Export {
            format,
            ref profile,
            ref filter,
            sort,
        } => {
            let http10 = rq.http_version() == &tiny_http::HTTPVersion(1, 0);
            let mut out = rq.into_writer();
            let result = (|| -> io::Result<u64> {
                write_head(&mut out, status, &resp.headers, !http10)?;
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
                        .writer(format, profile, sink)
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
            if hub.clients.load(Ordering::SeqCst) >= opts.max_event_clients {
                return quick(rq, 503, "too many live-feed clients");
            }
            let mut out = rq.into_writer();
            let mut headers = resp.headers.clone();
            headers.push(("Connection".into(), "close".into()));
            if write_head(&mut out, status, &headers, false)
                .and_then(|_| out.write_all(b"retry: 3000\n\n"))
                .and_then(|_| out.flush())
                .is_ok()
            {
                hub.clients.fetch_add(1, Ordering::SeqCst);
                if hub.tx.try_send(out).is_err() {
                    hub.clients.fetch_sub(1, Ordering::SeqCst);
                }
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

/// The client's address as the gate vouched for it (token match), else the socket's.
fn peer_of(rq: &tiny_http::Request, token: &str) -> std::net::IpAddr {
    let vouched = rq
        .headers()
        .iter()
        .find(|h| h.field.equiv(gate::PEER_HEADER))
        .and_then(|h| {
            let (t, ip) = h.value.as_str().split_once(' ')?;
            super::auth::constant_time_eq(t.as_bytes(), token.as_bytes())
                .then(|| ip.parse().ok())
                .flatten()
        });
    vouched.unwrap_or_else(|| {
        rq.remote_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes a status line and headers by hand (streamed answers bypass tiny_http's buffering).
fn write_head(
    out: &mut dyn Write,
    status: u16,
    headers: &[(String, String)],
    chunked: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
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

/// The live feed: every new record goes to every client as one `record` event; a client whose
/// socket fails (gone, or stalled past the write time-out) is dropped.
fn event_hub(
    records: Receiver<CallRecord>,
    new_clients: Receiver<Box<dyn Write + Send>>,
    count: Arc<AtomicUsize>,
    keepalive: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut clients: Vec<Box<dyn Write + Send>> = Vec::new();
    let mut last_write = Instant::now();
    let tick = keepalive.min(Duration::from_millis(500));
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        while let Ok(c) = new_clients.try_recv() {
            clients.push(c);
        }
        let msg = match records.recv_timeout(tick) {
            Ok(r) => Some(format!("event: record\ndata: {}\n\n", record_json(&r))),
            Err(RecvTimeoutError::Timeout) => {
                if last_write.elapsed() >= keepalive {
                    Some(": keep-alive\n\n".to_string())
                } else {
                    None
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                // No more records will come; keep the clients' connections honest by closing.
                std::thread::sleep(tick);
                None
            }
        };
        if let Some(msg) = msg {
            // Clients that connected while we waited must get this record too.
            while let Ok(c) = new_clients.try_recv() {
                clients.push(c);
            }
            last_write = Instant::now();
            let before = clients.len();
            clients.retain_mut(|c| c.write_all(msg.as_bytes()).and_then(|_| c.flush()).is_ok());
            count.fetch_sub(before - clients.len(), Ordering::SeqCst);
        }
    }
}
