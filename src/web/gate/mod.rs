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
//!
//! Files: `head.rs` (the pure [`check_head`] and its [`Limits`]), `host.rs` ([`HostPolicy`],
//! the HTTPS redirect target), `conn.rs` ([`ConnCount`]: places per address, upload, live
//! feed); this file is the socket plumbing — accept, read with deadlines, relay, copy back.

mod conn;
mod head;
mod host;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
// Instant, not the box Clock: every deadline here bounds a real socket (head, body, answer,
// refusal) that a peer holds open in real time; a paused test clock must not let one hang.
use std::time::{Duration, Instant};

pub use conn::ConnCount;
use conn::Slot;
use head::refusal;
pub use head::{
    check_head, is_stream_target, is_upload_target, Admitted, Limits, Refusal, PEER_HEADER,
    UPLOAD_DEADLINE_FACTOR,
};
pub use host::{https_location, system_hostname, HostPolicy};

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
