//! The front gate: accepts browser and script connections, enforces the HTTP limits tiny_http
//! 0.12 lacks, and relays each admitted request to tiny_http on a private loopback socket.
//!
//! Why it exists: tiny_http reads a request head without a size cap, keeps a thread per
//! connection with no time-outs, and — fatal — drains an unread request body on drop by
//! allocating its declared `Content-Length` in one piece, so one `Content-Length: 10^14` aborts
//! the process. Here every connection gets: a head of at most `max_head` bytes and
//! `max_headers` lines arriving within `head_timeout` (else 431/408), a target of at most
//! `max_url` bytes (414), a declared body of at most `max_body` bytes (413; chunked request
//! bodies get 411), per-operation socket time-outs, and a cap on open connections (503).
//! One request per connection: the head is rewritten with `Connection: close` and the client's
//! address (with a per-process token so nobody else can claim one).
//!
//! [`check_head`] is pure and unit-tested; the rest is thin socket plumbing.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header carrying the real client address to tiny_http: `<token> <ip>`.
pub const PEER_HEADER: &str = "x-cdrbox-peer";

/// Limits applied before a request reaches tiny_http.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_head: usize,
    pub max_headers: usize,
    pub max_url: usize,
    pub max_body: usize,
    /// `max_body` for `POST /api/import` (a Master.csv upload).
    pub max_import_body: usize,
    /// The whole head must arrive within this.
    pub head_timeout: Duration,
    /// Each socket read/write must make progress within this.
    pub io_timeout: Duration,
    /// Connections open at once; more get 503.
    pub max_connections: usize,
}

/// A head that passed the checks.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Declared body length (0 when none).
    pub content_length: usize,
    /// The head to send upstream: original request line and headers minus hop-by-hop ones,
    /// plus `Connection: close` and the peer header.
    pub head: Vec<u8>,
}

/// A refusal: status and a short reason.
pub type Refusal = (u16, &'static str);

/// Checks a complete request head (`…\r\n\r\n` included) and rewrites it for upstream.
pub fn check_head(
    raw: &[u8],
    limits: &Limits,
    peer: IpAddr,
    token: &str,
) -> Result<Admitted, Refusal> {
    if raw.len() > limits.max_head {
        return Err((431, "request headers too large"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| (400, "request head is not text"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err((400, "malformed request line"));
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return Err((400, "malformed request line"));
    }
    if target.len() > limits.max_url {
        return Err((414, "request URL too long"));
    }
    // The version stays: an HTTP/1.0 client must not get a chunked answer.
    let mut head = format!("{method} {target} {version}\r\n");
    let mut count = 0;
    let mut content_length = 0usize;
    for line in lines.filter(|l| !l.is_empty()) {
        count += 1;
        if count > limits.max_headers {
            return Err((431, "too many request headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err((400, "malformed header line"));
        };
        let lname = name.trim().to_ascii_lowercase();
        match lname.as_str() {
            "connection" | "keep-alive" | "proxy-connection" | "upgrade" | "te" | PEER_HEADER => {
                continue
            }
            "transfer-encoding" => {
                return Err((
                    411,
                    "send a Content-Length; chunked request bodies are not accepted",
                ))
            }
            "content-length" => {
                content_length = value
                    .trim()
                    .parse()
                    .map_err(|_| (400, "bad Content-Length"))?;
                let max = if target.split('?').next() == Some("/api/import") {
                    limits.max_import_body
                } else {
                    limits.max_body
                };
                if content_length > max {
                    return Err((413, "request body too large"));
                }
            }
            _ => {}
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "Connection: close\r\n{PEER_HEADER}: {token} {peer}\r\n\r\n"
    ));
    Ok(Admitted {
        content_length,
        head: head.into_bytes(),
    })
}

/// Accepts on `public` until `stop`, relaying admitted requests to `upstream`.
pub fn run(
    public: TcpListener,
    upstream: SocketAddr,
    limits: Arc<Limits>,
    token: Arc<str>,
    stop: Arc<AtomicBool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
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
        if open.load(Ordering::SeqCst) >= limits.max_connections {
            let _ = client.set_write_timeout(Some(Duration::from_secs(1)));
            refuse(&client, (503, "too many connections"));
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (limits, token, open2) = (limits.clone(), token.clone(), open.clone());
        let spawned = std::thread::Builder::new()
            .name("cdrbox-web-conn".into())
            .spawn(move || {
                if let Err(e) = relay(client, upstream, &limits, &token) {
                    tracing::debug!(target: "cdrbox::web", error = %e, "connection ended");
                }
                open2.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn refuse(mut client: &TcpStream, (status, reason): Refusal) {
    let body = format!("{{\"error\":\"{reason}\"}}");
    let _ = write!(
        client,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n{body}",
        body.len()
    );
    let _ = client.flush();
    let _ = client.shutdown(Shutdown::Write);
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// One connection: read and check the head, then pipe the body up and the answer down.
fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    limits: &Limits,
    token: &str,
) -> io::Result<()> {
    client.set_read_timeout(Some(limits.io_timeout.min(limits.head_timeout)))?;
    client.set_write_timeout(Some(limits.io_timeout))?;
    let _ = client.set_nodelay(true);
    let peer = client.peer_addr()?.ip();
    let started = Instant::now();
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = find_end(&buf) {
            break end;
        }
        if buf.len() > limits.max_head {
            refuse(&client, (431, "request headers too large"));
            return Ok(());
        }
        if started.elapsed() > limits.head_timeout {
            refuse(&client, (408, "request head took too long"));
            return Ok(());
        }
        match client.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if !buf.is_empty() {
                    refuse(&client, (408, "request head took too long"));
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    };
    let admitted = match check_head(&buf[..end], limits, peer, token) {
        Ok(a) => a,
        Err(r) => {
            refuse(&client, r);
            return Ok(());
        }
    };
    client.set_read_timeout(Some(limits.io_timeout))?;
    let mut up = TcpStream::connect(upstream)?;
    let _ = up.set_nodelay(true);
    up.write_all(&admitted.head)?;
    let early = &buf[end..];
    let early = &early[..early.len().min(admitted.content_length)];
    up.write_all(early)?;
    // Answer down on its own thread, so `Expect: 100-continue` and streams flow while the body
    // goes up.
    let mut up_read = up.try_clone()?;
    let mut client_write = client.try_clone()?;
    let down = std::thread::Builder::new()
        .name("cdrbox-web-down".into())
        .spawn(move || {
            let r = io::copy(&mut up_read, &mut client_write);
            let _ = client_write.shutdown(Shutdown::Both);
            let _ = up_read.shutdown(Shutdown::Both);
            r
        })?;
    let rest = (admitted.content_length - early.len()) as u64;
    if rest > 0 {
        let copied = io::copy(&mut (&mut client).take(rest), &mut up);
        if copied.is_err() {
            let _ = up.shutdown(Shutdown::Both);
        }
    }
    let _ = down.join();
    Ok(())
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
            io_timeout: Duration::from_secs(1),
            max_connections: 4,
        }
    }

    fn check(raw: &str) -> Result<Admitted, Refusal> {
        check_head(
            raw.as_bytes(),
            &limits(),
            "10.0.0.9".parse().unwrap(),
            "tok",
        )
    }

    #[test]
    fn admits_and_rewrites() {
        let a = check("PUT /api/config HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nX-Cdrbox-Peer: tok 6.6.6.6\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(a.content_length, 12);
        let head = String::from_utf8(a.head).unwrap();
        assert_eq!(
            head,
            "PUT /api/config HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nConnection: close\r\nx-cdrbox-peer: tok 10.0.0.9\r\n\r\n"
        );
    }

    #[test]
    fn refusals() {
        let cases = [
            ("GET / HTTP/1.1\r\nContent-Length: 100000000000000\r\n\r\n", 413),
            ("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
            ("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\n\r\n", 431),
            ("GARBAGE\r\n\r\n", 400),
            ("get / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        ];
        for (raw, status) in cases {
            assert_eq!(check(raw).unwrap_err().0, status, "{raw:?}");
        }
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(check(&big).unwrap_err().0, 431);
    }
}
