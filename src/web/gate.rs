//! The front gate: accepts browser and script connections, parses each request head once (with
//! `httparse`), enforces the limits, reads the whole (small) body itself, and relays a
//! canonical, validated request to tiny_http on a private loopback socket.
//!
//! Why it exists: tiny_http 0.12 reads a head without a size cap, keeps a thread per connection
//! with no deadlines, takes the *first* of two `Content-Length`s, closes the connection without
//! a reply on a non-ASCII byte, and drains an unread body on drop by allocating its declared
//! length in one piece. A second parser that disagrees with the first is how one unauthenticated
//! request used to wedge a worker forever (issue 11). So the gate decides everything about the
//! request's framing and tiny_http only ever sees a head the gate rebuilt from what it parsed:
//! one request line, the kept headers, `Content-Length` only when there is a body, and the body
//! already complete. Refused (status, before anything is relayed):
//! - a malformed head, a non-ASCII byte in the target or a header, a target not starting with
//!   `/` (400); duplicate `Content-Length`, `Content-Length` beside `Transfer-Encoding`, several
//!   `Transfer-Encoding` or `Host` headers, no `Host` on HTTP/1.1 (400); a chunked body (411);
//! - a `Host` that is not an IP literal, `localhost`, the box's hostname or a configured name
//!   (421: DNS rebinding, see [`HostPolicy`]);
//! - a head over `max_head` bytes or `max_headers` lines (431), a target over `max_url` (414),
//!   a body over `max_body` (413), an `Expect` other than `100-continue` (417);
//! - a head not complete within `head_timeout`, a body not complete within `body_timeout` (408);
//! - more than `max_connections` connections, or more than `max_per_address` from one address
//!   (one IPv6 /64), at once (503).
//!
//! Answers flow back with a write deadline per 16 KiB piece (`io_timeout`: a client reading
//! slower than that is dropped) and, for ordinary requests, a total `response_timeout`; long
//! downloads and the live feed have no total deadline, only progress ones. A refusal carries the
//! request's own HTTP version in its status line. One request per connection.
//!
//! [`check_head`] is pure and unit-tested (and fuzzed against tiny_http's own parser in
//! `tests/fuzz`); the rest is thin socket plumbing.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The header carrying the real client address to tiny_http: `<token> <ip> <http|https>`.
pub const PEER_HEADER: &str = "x-cdrbox-peer";

/// Headers the gate drops: hop-by-hop ones (the gate owns the connection) and the peer header
/// (only the gate may set it).
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    PEER_HEADER,
];

/// Which `Host` values are this box (DNS rebinding: a page on `evil.example` that re-points its
/// name at the box's address sends `Host: evil.example`, which is refused).
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Accepted names besides IP literals and `localhost`: the box's hostname (and
    /// `<hostname>.local`, its mDNS name) and `[web] hostnames`, lower case, no trailing dot.
    pub names: Vec<String>,
    /// Accept any `Host` (only for embedding the server in tests of other things).
    pub any: bool,
}

impl HostPolicy {
    /// The box's hostname (from the kernel) plus `extra` names.
    pub fn for_box(extra: &[String]) -> Self {
        let mut names: Vec<String> = extra.iter().map(|n| normalise_name(n)).collect();
        if let Some(h) = system_hostname() {
            names.push(format!("{h}.local"));
            names.push(h);
        }
        names.retain(|n| !n.is_empty());
        Self { names, any: false }
    }

    /// True when `host` (a `Host` header value, port included or not) names this box.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let host = host.trim();
        // `[v6]` or `[v6]:port`.
        if let Some(rest) = host.strip_prefix('[') {
            let Some((ip, tail)) = rest.split_once(']') else {
                return false;
            };
            return ip.parse::<std::net::Ipv6Addr>().is_ok() && valid_port_suffix(tail);
        }
        let (name, tail) = match host.rsplit_once(':') {
            Some((n, p)) => (n, format!(":{p}")),
            None => (host, String::new()),
        };
        if !valid_port_suffix(&tail) || name.is_empty() {
            return false;
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return true;
        }
        let name = normalise_name(name);
        name == "localhost" || self.names.contains(&name)
    }
}

fn valid_port_suffix(tail: &str) -> bool {
    match tail.strip_prefix(':') {
        None => tail.is_empty(),
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn normalise_name(n: &str) -> String {
    n.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The kernel's hostname (`uname -n`), lower case.
pub fn system_hostname() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = normalise_name(&text);
    (!name.is_empty()).then_some(name)
}

/// Limits applied before a request reaches tiny_http.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_head: usize,
    pub max_headers: usize,
    pub max_url: usize,
    pub max_body: usize,
    /// `max_body` for `POST /api/import` (a Master.csv upload). Bodies over `max_body` are
    /// read one at a time (a second gets 503), so memory stays bounded before anyone has
    /// logged in, and get `body_timeout` × [`UPLOAD_DEADLINE_FACTOR`].
    pub max_import_body: usize,
    /// The whole head must arrive within this.
    pub head_timeout: Duration,
    /// The whole body must arrive within this (after the head).
    pub body_timeout: Duration,
    /// Each socket read/write must make progress within this; each 16 KiB of an answer must be
    /// taken by the client within this.
    pub io_timeout: Duration,
    /// An ordinary answer (not a download or live feed) must be complete within this.
    pub response_timeout: Duration,
    /// A download or live feed may be silent upstream for this long (the feed sends a
    /// keep-alive comment far more often).
    pub stream_idle_timeout: Duration,
    /// Connections open at once; more get 503.
    pub max_connections: usize,
    /// Connections open at once from one address (IPv6: one /64); more get 503.
    pub max_per_address: usize,
    /// Live-feed (`/api/events`) connections at once; more get 503. Counted here, where a
    /// client that leaves is noticed at once.
    pub max_event_clients: usize,
    /// Accepted `Host` values.
    pub hosts: HostPolicy,
    /// HTTPS is on and this is the plain-HTTP listener: every admitted request is answered
    /// with a redirect (308, method and body kept) to this HTTPS port.
    pub redirect_https: Option<u16>,
}

/// A head that passed the checks.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    pub method: String,
    /// The request target (path and query), ASCII.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The kept headers, as received (name as sent, value trimmed).
    pub headers: Vec<(String, String)>,
    /// Declared body length (0 when none).
    pub content_length: usize,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Length of the head in the input (where the body starts).
    pub head_len: usize,
}

impl Admitted {
    /// A download or the live feed: served by the small pool for long answers, without a total
    /// deadline.
    pub fn is_stream(&self) -> bool {
        is_stream_target(&self.target)
    }

    /// The head to send upstream: the request line and kept headers rebuilt from what was
    /// parsed, `Content-Length` only with a body, `Connection: close` and the peer header.
    pub fn upstream_head(&self, peer: IpAddr, token: &str, tls: bool) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.{}\r\n",
            self.method, self.target, self.minor_version
        );
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case("content-length") {
                continue;
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.content_length > 0 {
            head.push_str(&format!("Content-Length: {}\r\n", self.content_length));
        }
        let scheme = if tls { "https" } else { "http" };
        head.push_str(&format!(
            "Connection: close\r\n{PEER_HEADER}: {token} {peer} {scheme}\r\n\r\n"
        ));
        head.into_bytes()
    }
}

/// A large upload's body may take this many times `body_timeout`.
pub const UPLOAD_DEADLINE_FACTOR: u32 = 6;

/// True for the one target that takes a large body (`/api/import`, a Master.csv upload).
pub fn is_upload_target(target: &str) -> bool {
    target.split('?').next() == Some("/api/import")
}

/// True for `/export.*` and `/api/events` (with or without a query).
pub fn is_stream_target(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    path.starts_with("/export.") || path == "/api/events"
}

/// A refusal: status, a short reason, and the HTTP minor version to answer in (1 when the
/// request line could not be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub minor_version: u8,
}

fn refusal(status: u16, reason: &'static str) -> Refusal {
    Refusal {
        status,
        reason,
        minor_version: 1,
    }
}

/// Parses `buf` (the bytes received so far): `Ok(None)` while the head is incomplete,
/// `Ok(Some)` once it is complete and passed every check, `Err` with the answer to give.
pub fn check_head(buf: &[u8], limits: &Limits) -> Result<Option<Admitted>, Refusal> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers.clamp(1, 1024)];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head {
                return Err(refusal(431, "request headers too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refusal(431, "too many request headers"))
        }
        Err(httparse::Error::Version) => {
            return Err(refusal(
                400,
                "malformed request line: HTTP/1.0 or HTTP/1.1 only",
            ))
        }
        Err(httparse::Error::Token) => {
            return Err(refusal(
                400,
                "malformed request line (a non-ASCII byte in the target? percent-encode it)",
            ))
        }
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => {
            return Err(refusal(400, "malformed header line"))
        }
        Err(_) => return Err(refusal(400, "malformed request head")),
    };
    let minor_version = req.version.unwrap_or(1);
    let fail = |status, reason| Refusal {
        status,
        reason,
        minor_version,
    };
    if head_len > limits.max_head {
        return Err(fail(431, "request headers too large"));
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(fail(400, "malformed request line"));
    }
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(fail(
            400,
            "the request target must be ASCII: percent-encode other characters",
        ));
    }
    if target.len() > limits.max_url {
        return Err(fail(414, "request URL too long"));
    }
    if !target.starts_with('/') {
        return Err(fail(
            400,
            "the request target must be a path starting with /",
        ));
    }
    let mut headers = Vec::with_capacity(req.headers.len());
    let (mut content_length, mut lengths, mut encodings, mut hosts) = (0usize, 0, 0, 0);
    let mut host = None;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Err(fail(400, "a header value is not ASCII"));
        };
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(fail(400, "a header value is not ASCII"));
        }
        let value = value.trim_matches([' ', '\t']);
        let lname = h.name.to_ascii_lowercase();
        match lname.as_str() {
            "content-length" => {
                lengths += 1;
                if lengths > 1 {
                    return Err(fail(400, "duplicate Content-Length"));
                }
                if value.is_empty()
                    || value.len() > 19
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(fail(400, "bad Content-Length"));
                }
                let n: u64 = value.parse().map_err(|_| fail(400, "bad Content-Length"))?;
                let max = if is_upload_target(target) {
                    limits.max_import_body.max(limits.max_body)
                } else {
                    limits.max_body
                };
                if n > max as u64 {
                    return Err(fail(413, "request body too large"));
                }
                content_length = n as usize;
            }
            "transfer-encoding" => encodings += 1,
            "host" => {
                hosts += 1;
                host = Some(value.to_string());
            }
            "expect" => {
                if value.eq_ignore_ascii_case("100-continue") {
                    expect_continue = true;
                } else {
                    return Err(fail(417, "only Expect: 100-continue is understood"));
                }
            }
            _ => {}
        }
        if DROPPED.contains(&lname.as_str()) {
            continue;
        }
        headers.push((h.name.to_string(), value.to_string()));
    }
    if encodings > 0 && lengths > 0 {
        return Err(fail(400, "both Content-Length and Transfer-Encoding"));
    }
    if encodings > 1 {
        return Err(fail(400, "duplicate Transfer-Encoding"));
    }
    if encodings == 1 {
        return Err(fail(
            411,
            "send a Content-Length; chunked request bodies are not accepted",
        ));
    }
    if hosts > 1 {
        return Err(fail(400, "duplicate Host"));
    }
    match &host {
        None if minor_version >= 1 => return Err(fail(400, "Host header required")),
        Some(h) if !limits.hosts.allows(h) => {
            return Err(fail(
                421,
                "unknown Host: use the box's IP address or a name in [web] hostnames",
            ))
        }
        _ => {}
    }
    Ok(Some(Admitted {
        method: method.to_string(),
        target: target.to_string(),
        minor_version,
        headers,
        content_length,
        expect_continue,
        head_len,
    }))
}

/// A client connection as the gate reads and writes it: plain TCP or TLS over TCP.
pub trait ClientStream: Read + Write + Send {
    /// The TCP socket underneath (for time-outs and shutdown).
    fn tcp(&self) -> &TcpStream;
    /// True when the connection is TLS.
    fn is_tls(&self) -> bool;
    /// Ends the conversation politely before the socket closes (TLS: a `close_notify`, without
    /// which a strict client reports a truncated answer).
    fn close(&mut self) {}
}

impl ClientStream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
    fn is_tls(&self) -> bool {
        false
    }
}

/// Turns an accepted socket into a [`ClientStream`] (the TLS handshake, for HTTPS), on the
/// connection's own thread, by the deadline given (the head's: a handshake is part of the
/// head arriving), each socket read at most the `Duration`. `Err` closes the connection.
pub type Wrap =
    Arc<dyn Fn(TcpStream, Instant, Duration) -> io::Result<Box<dyn ClientStream>> + Send + Sync>;

/// Plain HTTP.
pub fn plain() -> Wrap {
    Arc::new(|s, _, _| Ok(Box::new(s) as Box<dyn ClientStream>))
}

/// HTTPS: the TLS handshake first, then the same gate.
pub fn tls(acceptor: super::tls::TlsAcceptor) -> Wrap {
    Arc::new(move |s, deadline, io_timeout| {
        Ok(Box::new(acceptor.accept(s, deadline, io_timeout)?) as Box<dyn ClientStream>)
    })
}

/// Where a plain-HTTP request goes once HTTPS is on: the same host (as the client named it,
/// already checked by [`HostPolicy`]; else the address it connected to) and target, on the
/// HTTPS port.
pub fn https_location(host: Option<&str>, local: IpAddr, https_port: u16, target: &str) -> String {
    let name = match host.map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) if h.starts_with('[') => h.split_inclusive(']').next().unwrap_or(h).to_string(),
        Some(h) => h.rsplit_once(':').map_or(h, |(n, _)| n).to_string(),
        None => match local {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    if https_port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{https_port}{target}")
    }
}

/// Counts open connections, in total and per address (IPv6 grouped by /64, since one LAN host
/// may hold a whole /64), and remembers which are still sending their head.
///
/// When every place is taken, a new connection evicts the one that has been sending its head
/// the longest (a slow-loris client; a real browser sends its head at once), so clients spread
/// over many addresses still cannot fill the server with connections that never finish a
/// request. The per-address cap never evicts: that address gets 503.
#[derive(Debug, Default)]
pub struct ConnCount {
    total: AtomicUsize,
    by_addr: Mutex<HashMap<IpAddr, usize>>,
    heads: Mutex<Vec<(u64, Instant, TcpStream)>>,
    next_id: std::sync::atomic::AtomicU64,
    events: AtomicUsize,
    /// A body larger than `max_body` is being read (one at a time).
    upload: AtomicBool,
}

/// A head must have been dawdling this long before its connection may be evicted.
const EVICT_AFTER: Duration = Duration::from_millis(500);

impl ConnCount {
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
                }
            },
            v4 => v4,
        }
    }

    /// Takes a place for `ip` (evicting the slowest head when all are taken), or says which
    /// limit is reached.
    fn acquire(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Slot, &'static str> {
        let key = Self::key(ip);
        let mut map = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).copied().unwrap_or(0) >= limits.max_per_address {
            return Err("too many connections from your address");
        }
        if self.total.load(Ordering::SeqCst) >= limits.max_connections && !self.evict_slowest() {
            return Err("too many connections");
        }
        *map.entry(key).or_insert(0) += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            count: self.clone(),
            key,
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
        })
    }

    /// Closes the connection that has been sending its head the longest (its thread then
    /// ends and frees the place). False when none qualifies.
    fn evict_slowest(&self) -> bool {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = heads
            .iter()
            .enumerate()
            .filter(|(_, (_, t, _))| t.elapsed() >= EVICT_AFTER)
            .min_by_key(|(_, (_, t, _))| *t)
            .map(|(i, _)| i)
        else {
            return false;
        };
        let (_, _, sock) = heads.swap_remove(i);
        let _ = sock.shutdown(Shutdown::Both);
        tracing::debug!(target: "cdrbox::web", "all connections taken: evicted the slowest head");
        true
    }

    fn head_started(&self, slot: &Slot, sock: &TcpStream) {
        if let Ok(clone) = sock.try_clone() {
            let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
            heads.push((slot.id, Instant::now(), clone));
        }
    }

    fn head_done(&self, slot: &Slot) {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        heads.retain(|(id, _, _)| *id != slot.id);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Takes the place for a large body, if free.
    fn reserve_upload(&self) -> Option<UploadPlace<'_>> {
        self.upload
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| UploadPlace(self))
    }

    /// Takes a live-feed place (exactly `max` exist), released when the guard drops.
    fn reserve_event(&self, max: usize) -> Option<EventPlace<'_>> {
        self.events
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| EventPlace(self))
    }
}

/// The one place for a large body; released on drop.
struct UploadPlace<'a>(&'a ConnCount);

impl Drop for UploadPlace<'_> {
    fn drop(&mut self) {
        self.0.upload.store(false, Ordering::SeqCst);
    }
}

/// A live-feed place; released on drop.
struct EventPlace<'a>(&'a ConnCount);

impl Drop for EventPlace<'_> {
    fn drop(&mut self) {
        self.0.events.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One open connection; released on drop.
struct Slot {
    count: Arc<ConnCount>,
    key: IpAddr,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.head_done(self);
        let mut map = self.count.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
        self.count.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts on `public` until `stop`, relaying admitted requests to `upstream`.
pub fn run(
    public: TcpListener,
    upstream: SocketAddr,
    limits: Arc<Limits>,
    token: Arc<str>,
    wrap: Wrap,
    stop: Arc<AtomicBool>,
    count: Arc<ConnCount>,
) {
    let refuser = spawn_refuser(wrap.clone());
    for conn in public.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let client = match conn {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(target: "cdrbox::web", error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let Ok(peer) = client.peer_addr().map(|a| a.ip()) else {
            continue;
        };
        let slot = match count.acquire(peer, &limits) {
            Ok(s) => s,
            Err(why) => {
                // Over HTTPS the 503 needs a handshake first, which must not hold up the accept
                // loop: one thread does them in turn; beyond its small queue a socket is closed.
                if let Some(tx) = &refuser {
                    let _ = tx.try_send((client, why));
                }
                continue;
            }
        };
        let (limits, token, wrap) = (limits.clone(), token.clone(), wrap.clone());
        let spawned = std::thread::Builder::new()
            .name("cdrbox-web-conn".into())
            .stack_size(512 * 1024)
            .spawn(move || {
                if let Err(e) = connection(client, peer, upstream, &limits, &token, &wrap, &slot) {
                    tracing::debug!(target: "cdrbox::web", error = %e, "connection ended");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(target: "cdrbox::web", error = %e, "cannot start a connection thread");
        }
    }
}

/// Connections refused for a limit, waiting for their 503.
const REFUSALS_QUEUED: usize = 8;
/// How long one refusal may take, handshake included: the refuser serves one at a time.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(2);

/// The thread that answers connections over a limit with a 503 in their own protocol (a TLS
/// client would read a plain-text answer as a broken handshake). `None` when no thread could
/// be started: such connections are then closed unanswered.
fn spawn_refuser(wrap: Wrap) -> Option<std::sync::mpsc::SyncSender<(TcpStream, &'static str)>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(TcpStream, &'static str)>(REFUSALS_QUEUED);
    let spawned = std::thread::Builder::new()
        .name("cdrbox-web-refuse".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            for (tcp, why) in rx {
                let _ = tcp.set_write_timeout(Some(Duration::from_millis(500)));
                let deadline = Instant::now() + REFUSAL_DEADLINE;
                if let Ok(mut client) = wrap(tcp, deadline, Duration::from_millis(500)) {
                    refuse(&mut *client, refusal(503, why));
                }
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(target: "cdrbox::web", error = %e, "cannot start the refusal thread");
            None
        }
    }
}

/// Writes a small JSON refusal and closes the sending side.
fn refuse(client: &mut dyn ClientStream, r: Refusal) {
    let body = serde_json::json!({ "error": r.reason }).to_string();
    let _ = write!(
        client,
        "HTTP/1.{} {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n{body}",
        r.minor_version,
        r.status,
        reason_phrase(r.status),
        body.len()
    );
    let _ = client.flush();
    client.close();
    let _ = client.tcp().shutdown(Shutdown::Write);
}

/// Sends the redirect to HTTPS for a plain-HTTP request, reads what is left of its body
/// (`unread` bytes) and closes the sending side. Closing with a body still arriving would make
/// the kernel reset the connection, and the client could lose the redirect before reading it.
fn redirect(
    client: &mut dyn ClientStream,
    a: &Admitted,
    location: &str,
    unread: usize,
    limits: &Limits,
) {
    let body = serde_json::json!({
        "error": "this box answers over HTTPS",
        "location": location,
    })
    .to_string();
    let _ = write!(
        client,
        "HTTP/1.{} 308 Permanent Redirect\r\nLocation: {location}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        a.minor_version,
        body.len()
    );
    let _ = client.flush();
    // A client that sent `Expect: 100-continue` sends no body after a final answer.
    if !a.expect_continue {
        let deadline = Instant::now() + limits.body_timeout;
        let mut left = unread;
        let mut chunk = [0u8; 4096];
        while left > 0 {
            let want = left.min(chunk.len());
            match read_until(client, &mut chunk[..want], deadline, limits.io_timeout) {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n,
            }
        }
    }
    let _ = client.tcp().shutdown(Shutdown::Write);
}

/// The standard phrase for the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        303 => "See Other",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads into `buf` with the read time-out set to what is left until `deadline` (at most
/// `io_timeout`). `Ok(0)` is end of stream; a time-out is `ErrorKind::TimedOut`.
fn read_until(
    client: &mut dyn ClientStream,
    buf: &mut [u8],
    deadline: Instant,
    io_timeout: Duration,
) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    client
        .tcp()
        .set_read_timeout(Some(left.min(io_timeout).max(Duration::from_millis(1))))?;
    client.read(buf)
}

/// `write_all` that fails when the client has not taken `buf` within `limit` (a client reading
/// a trickle would otherwise hold the connection, and a worker behind it, for ever).
fn write_all_within(
    client: &mut dyn ClientStream,
    mut buf: &[u8],
    limit: Duration,
) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    while !buf.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        client.tcp().set_write_timeout(Some(left))?;
        match client.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    client.flush()
}

/// One connection: TLS handshake if any, read and check the head, read the body, relay, and
/// copy the answer down.
fn connection(
    tcp: TcpStream,
    peer: IpAddr,
    upstream: SocketAddr,
    limits: &Limits,
    token: &str,
    wrap: &Wrap,
    slot: &Slot,
) -> io::Result<()> {
    let _ = tcp.set_nodelay(true);
    slot.count.head_started(slot, &tcp);
    tcp.set_read_timeout(Some(limits.io_timeout.min(limits.head_timeout)))?;
    tcp.set_write_timeout(Some(limits.io_timeout))?;
    let started = Instant::now();
    let head_deadline = started + limits.head_timeout;
    let local = tcp.local_addr().map(|a| a.ip());
    let mut client = wrap(tcp, head_deadline, limits.io_timeout)?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let admitted = loop {
        match check_head(&buf, limits) {
            Ok(Some(a)) => break a,
            Ok(None) => {}
            Err(r) => {
                refuse(&mut *client, r);
                return Ok(());
            }
        }
        match read_until(&mut *client, &mut chunk, head_deadline, limits.io_timeout) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if timed_out(&e) => {
                if !buf.is_empty() {
                    refuse(&mut *client, refusal(408, "request head took too long"));
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    };
    slot.count.head_done(slot);
    if let Some(port) = limits.redirect_https {
        let host = admitted
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.as_str());
        let local = local.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let unread = admitted
            .content_length
            .saturating_sub(buf.len().saturating_sub(admitted.head_len));
        redirect(
            &mut *client,
            &admitted,
            &https_location(host, local, port, &admitted.target),
            unread,
            limits,
        );
        return Ok(());
    }
    let v = admitted.minor_version;
    let late = |status, reason| Refusal {
        status,
        reason,
        minor_version: v,
    };
    // The body, whole, before anything goes upstream: a worker never waits on a client.
    let large = admitted.content_length > limits.max_body;
    let _upload = if large {
        match slot.count.reserve_upload() {
            Some(p) => Some(p),
            None => {
                refuse(
                    &mut *client,
                    late(503, "another upload is being received; retry shortly"),
                );
                return Ok(());
            }
        }
    } else {
        None
    };
    let mut body = buf.split_off(admitted.head_len);
    body.truncate(admitted.content_length);
    if body.len() < admitted.content_length {
        if admitted.expect_continue && v >= 1 {
            write_all_within(
                &mut *client,
                b"HTTP/1.1 100 Continue\r\n\r\n",
                limits.io_timeout,
            )?;
        }
        let allowed = if large {
            limits.body_timeout * UPLOAD_DEADLINE_FACTOR
        } else {
            limits.body_timeout
        };
        let body_deadline = Instant::now() + allowed;
        while body.len() < admitted.content_length {
            let want = (admitted.content_length - body.len()).min(chunk.len());
            match read_until(
                &mut *client,
                &mut chunk[..want],
                body_deadline,
                limits.io_timeout,
            ) {
                Ok(0) => return Ok(()),
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if timed_out(&e) => {
                    refuse(&mut *client, late(408, "request body took too long"));
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }
    let stream = admitted.is_stream();
    let _place = if admitted.target.split('?').next() == Some("/api/events") {
        match slot.count.reserve_event(limits.max_event_clients) {
            Some(p) => Some(p),
            None => {
                refuse(&mut *client, late(503, "too many live-feed clients"));
                return Ok(());
            }
        }
    } else {
        None
    };
    let mut up = match TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) {
        Ok(u) => u,
        Err(e) => {
            refuse(
                &mut *client,
                late(503, "the web server is restarting; retry shortly"),
            );
            return Err(e);
        }
    };
    let _ = up.set_nodelay(true);
    up.set_write_timeout(Some(limits.io_timeout))?;
    up.write_all(&admitted.upstream_head(peer, token, client.is_tls()))?;
    up.write_all(&body)?;
    drop(body);
    // Nothing more will be read from the client; its late bytes are ignored.
    let response_deadline = (!stream).then(|| Instant::now() + limits.response_timeout);
    let mut sent_any = false;
    let mut piece = vec![0u8; 16 * 1024];
    loop {
        let wait = match response_deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => limits.stream_idle_timeout,
        };
        if wait.is_zero() {
            break;
        }
        if stream && !client_waits(&mut *client, &up, wait)? {
            // The client left: free its place (and the worker streaming to it) now.
            break;
        }
        up.set_read_timeout(Some(wait))?;
        let n = match up.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if timed_out(&e) => {
                if !sent_any {
                    refuse(&mut *client, late(504, "the box took too long to answer"));
                }
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        sent_any = true;
        if let Err(e) = write_all_within(&mut *client, &piece[..n], limits.io_timeout) {
            tracing::debug!(target: "cdrbox::web", %peer, error = %e, "client too slow; dropped");
            break;
        }
    }
    // Closing upstream tells a worker still writing (a stalled download) to stop.
    let _ = up.shutdown(Shutdown::Both);
    let _ = client.flush();
    client.close();
    let _ = client.tcp().shutdown(Shutdown::Both);
    Ok(())
}

/// For a long answer: waits up to `wait` until `up` has something to send, watching the client
/// meanwhile. `Ok(false)` when the client closed its side (nothing more to send it).
fn client_waits(client: &mut dyn ClientStream, up: &TcpStream, wait: Duration) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut fds = [
        libc::pollfd {
            fd: up.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: client.tcp().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: poll(2) on two descriptors owned by live sockets, with their count.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(true)
        } else {
            Err(e)
        };
    }
    if fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
        // Anything the client sends after its request is ignored; end of stream means it left.
        client
            .tcp()
            .set_read_timeout(Some(Duration::from_millis(10)))?;
        let mut scratch = [0u8; 512];
        match client.read(&mut scratch) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if timed_out(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_head: 1024,
            max_headers: 5,
            max_url: 64,
            max_body: 100,
            max_import_body: 1000,
            head_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            stream_idle_timeout: Duration::from_secs(1),
            max_connections: 4,
            max_per_address: 2,
            max_event_clients: 2,
            hosts: HostPolicy {
                names: vec!["cdrbox".into(), "calls.office.lan".into()],
                any: false,
            },
            redirect_https: None,
        }
    }

    fn check(raw: &str) -> Result<Admitted, Refusal> {
        match check_head(raw.as_bytes(), &limits()) {
            Ok(Some(a)) => Ok(a),
            Ok(None) => panic!("incomplete: {raw:?}"),
            Err(r) => Err(r),
        }
    }

    #[test]
    fn admits_and_rewrites() {
        let a = check("PUT /api/config HTTP/1.1\r\nHost: 10.0.0.5\r\nConnection: keep-alive\r\nX-Cdrbox-Peer: tok 6.6.6.6 https\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(a.content_length, 12);
        let head =
            String::from_utf8(a.upstream_head("10.0.0.9".parse().unwrap(), "tok", false)).unwrap();
        assert_eq!(
            head,
            "PUT /api/config HTTP/1.1\r\nHost: 10.0.0.5\r\nContent-Length: 12\r\nConnection: close\r\nx-cdrbox-peer: tok 10.0.0.9 http\r\n\r\n"
        );
        assert!(!a.is_stream());
        // A Master.csv upload may be larger than other bodies.
        let a = check(
            "POST /api/import?pbx=a HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: 1000\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.content_length, 1000);
        assert!(
            check("GET /export.csv?x=1 HTTP/1.1\r\nHost: cdrbox\r\n\r\n")
                .unwrap()
                .is_stream()
        );
    }

    #[test]
    fn incomplete_heads_wait() {
        assert_eq!(
            check_head(b"GET / HTTP/1.1\r\nHost: x", &limits()),
            Ok(None)
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
        assert_eq!(
            check_head(big.as_bytes(), &limits()).unwrap_err().status,
            431
        );
    }

    #[test]
    fn refusals() {
        let cases = [
            ("GET / HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: 100000000000000\r\n\r\n", 413),
            ("POST /api/login HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: 500\r\n\r\n", 413),
            ("POST /api/import?pbx=a HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: 1001\r\n\r\n", 413),
            ("GET / HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: -1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: +1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: 1,1\r\n\r\n", 400),
            // Issue 11, finding 1: the gate took the last, tiny_http the first.
            ("POST /api/setup HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: 20\r\nContent-Length: 0\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: 1.2.3.4\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
            ("POST / HTTP/1.1\r\nHost: 1.2.3.4\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: 1.2.3.4\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: 1.2.3.4\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\n\r\n", 431),
            ("GARBAGE\r\n\r\n", 400),
            ("get / HTTP/1.1\r\nHost: 1.2.3.4\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: 1.2.3.4\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            ("GET http://evil/ HTTP/1.1\r\nHost: 1.2.3.4\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: 1.2.3.4\r\nHost: 1.2.3.4\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", 421),
            ("GET / HTTP/1.1\r\nHost: cdrbox.evil.example\r\n\r\n", 421),
            ("GET / HTTP/1.1\r\nHost: 1.2.3.4:99999999\r\n\r\n", 421),
            ("POST / HTTP/1.1\r\nHost: 1.2.3.4\r\nExpect: magic\r\n\r\n", 417),
        ];
        for (raw, status) in cases {
            assert_eq!(check(raw).unwrap_err().status, status, "{raw:?}");
        }
        // Non-ASCII target and header value (finding 8): a 400, not a closed connection.
        for raw in [
            "GET /звонки HTTP/1.1\r\nHost: 1.2.3.4\r\n\r\n".as_bytes(),
            "GET / HTTP/1.1\r\nHost: 1.2.3.4\r\nX-Name: Пётр\r\n\r\n".as_bytes(),
            b"GET / HTTP/1.1\r\nHost: 1.2.3.4\r\nX-Name: \xff\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\nHost: 1.2.3.4\r\n\r\n",
        ] {
            let r = check_head(raw, &limits()).unwrap_err();
            assert_eq!(r.status, 400, "{raw:?}");
        }
    }

    #[test]
    fn refusals_answer_in_the_request_version() {
        let r = check("GET /api/x HTTP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
            .unwrap_err();
        assert_eq!((r.status, r.minor_version), (400, 0));
        // HTTP/1.0 may omit Host (no browser does, so no rebinding either).
        assert!(check("GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    #[test]
    fn host_policy() {
        let p = limits().hosts;
        for ok in [
            "10.0.0.5",
            "10.0.0.5:8080",
            "[::1]",
            "[fe80::1]:80",
            "localhost",
            "LOCALHOST:80",
            "cdrbox",
            "CDRBOX.",
            "calls.office.lan:443",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "",
            ":80",
            "[::1",
            "[::1]x",
            "localhost.evil.example",
            "10.0.0.5:",
            "10.0.0.5:http",
            "1.2.3.4.5",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn per_address_and_total_limits() {
        let l = limits();
        let c = Arc::new(ConnCount::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        let b2: IpAddr = "2001:db8:1:2::6".parse().unwrap();
        let s1 = c.acquire(a, &l).unwrap();
        let _s2 = c.acquire(a, &l).unwrap();
        assert!(c.acquire(a, &l).is_err(), "third from one address");
        let _s3 = c.acquire(b, &l).unwrap();
        let _s4 = c.acquire(b2, &l).unwrap();
        assert_eq!(
            c.acquire("10.0.0.7".parse().unwrap(), &l).err(),
            Some("too many connections"),
            "total cap, and no slow head to evict"
        );
        drop(s1);
        let _s5 = c.acquire("10.0.0.2".parse().unwrap(), &l).unwrap();
        assert_eq!(c.open(), 4);
    }
}
