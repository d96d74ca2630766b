//! Differential check of the web gate against tiny_http's own request parser (issue 11,
//! finding 1: the gate took the last `Content-Length`, tiny_http the first, and one request
//! wedged a worker forever). Shared by the `web_gate` fuzz target and the stable
//! `web_gate_differential` test.
//!
//! For any input the gate admits:
//! - the head the gate sends upstream, fed to a real tiny_http server, must come out exactly as
//!   the gate understood it: method, target, version, headers, body;
//! - the raw input, fed to tiny_http directly, must — if tiny_http accepts it at all — frame the
//!   same body (same length) for the same method and target, so the two can never disagree on
//!   where a request ends.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use cdrbox::web::gate::{check_head, HostPolicy, Limits};

/// What tiny_http made of some bytes.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub version: (u8, u8),
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A tiny_http server on 127.0.0.1:0 that only parses.
pub struct TinyHttp {
    server: tiny_http::Server,
    addr: SocketAddr,
}

impl Default for TinyHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl TinyHttp {
    pub fn new() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("tiny_http on loopback");
        let addr = server
            .server_addr()
            .to_ip()
            .expect("tiny_http listens on an IP address");
        Self { server, addr }
    }

    /// Sends `bytes` on a fresh connection; what tiny_http parsed, or `None` when it produced
    /// no request (refused or waiting for more).
    pub fn parse(&self, bytes: &[u8], wait: Duration) -> Option<Seen> {
        let mut c = TcpStream::connect(self.addr).ok()?;
        let ours = c.local_addr().ok()?;
        let _ = c.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = c.write_all(bytes);
        let _ = c.shutdown(Shutdown::Write);
        // Pipelined input from an earlier call can leave further requests queued in the
        // server; only one from this connection is an answer for these bytes.
        let deadline = std::time::Instant::now() + wait;
        let mut rq = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let rq = self.server.recv_timeout(left).ok()??;
            if rq.remote_addr() == Some(&ours) {
                break rq;
            }
            let _ = rq.respond(tiny_http::Response::empty(204));
        };
        let mut body = Vec::new();
        // A short body ends at EOF; its length is what tiny_http framed.
        let _ = rq.as_reader().take(1 << 20).read_to_end(&mut body);
        let seen = Seen {
            method: rq.method().as_str().to_string(),
            url: rq.url().to_string(),
            version: (rq.http_version().0, rq.http_version().1),
            headers: rq
                .headers()
                .iter()
                .map(|h| {
                    (
                        h.field.as_str().as_str().to_string(),
                        h.value.as_str().to_string(),
                    )
                })
                .collect(),
            body,
        };
        let _ = rq.respond(tiny_http::Response::empty(204));
        Some(seen)
    }
}

/// Generous limits that accept any `Host`, so the comparison sees as many inputs as possible.
pub fn limits() -> Limits {
    Limits {
        max_head: 16 * 1024,
        max_headers: 64,
        max_url: 8 * 1024,
        max_body: 64 * 1024,
        max_import_body: 64 * 1024,
        head_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        io_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        stream_idle_timeout: Duration::from_secs(1),
        max_connections: 4,
        max_per_address: 4,
        max_event_clients: 4,
        hosts: HostPolicy {
            names: vec![],
            any: true,
        },
        redirect_https: None,
    }
}

/// Runs both checks on `input`; panics on a disagreement. Returns true when the gate admitted
/// the input (for counting coverage).
pub fn check(peer: &TinyHttp, input: &[u8]) -> bool {
    let l = limits();
    let a = match check_head(input, &l) {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => return false,
    };
    let rest = &input[a.head_len..];
    if rest.len() < a.content_length {
        // The gate would wait for the rest of the body.
        return false;
    }
    let body = &rest[..a.content_length];
    let mut upstream = a.upstream_head("10.1.2.3".parse().unwrap(), "tok", false);
    upstream.extend_from_slice(body);
    let seen = peer
        .parse(&upstream, Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "tiny_http refused the head the gate built: {:?}",
                String::from_utf8_lossy(&upstream)
            )
        });
    assert_eq!(seen.method, a.method, "method");
    assert_eq!(seen.url, a.target, "target");
    assert_eq!(seen.version, (1, a.minor_version), "version");
    assert_eq!(seen.body, body, "body");
    let theirs: Vec<(String, String)> = seen
        .headers
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("connection")
                && !k.eq_ignore_ascii_case("content-length")
                && !k.eq_ignore_ascii_case(cdrbox::web::gate::PEER_HEADER)
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let ours: Vec<(String, String)> = a
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    assert_eq!(theirs, ours, "headers");
    let peer_header = seen
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(cdrbox::web::gate::PEER_HEADER))
        .count();
    assert_eq!(peer_header, 1, "exactly the gate's own peer header");
    // The raw bytes: when tiny_http accepts them, it must frame the same body. Only when the
    // gate relayed every header (one it drops, like `Connection: upgrade`, changes tiny_http's
    // framing on purpose, and never reaches it).
    // A head with a bare LF line end: the gate (httparse) reads it as separate lines, tiny_http
    // (CRLF only) folds those lines into one header. That is why the gate never forwards the
    // raw head but rebuilds it with CRLF (checked above); raw bytes fed to tiny_http prove
    // nothing here (CI fuzz find 1b29b4cc: `Content-Type: …\nContent-Length: 16`).
    let head = &input[..a.head_len];
    if head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
    {
        return true;
    }
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut raw_req = httparse::Request::new(&mut slots);
    let all = match raw_req.parse(input) {
        Ok(httparse::Status::Complete(_)) => raw_req.headers.len(),
        _ => usize::MAX,
    };
    if all != a.headers.len() {
        return true;
    }
    if let Some(raw) = peer.parse(input, Duration::from_millis(300)) {
        if raw.method == a.method && raw.url == a.target {
            assert_eq!(
                raw.body.len(),
                a.content_length,
                "gate and tiny_http disagree on the body length of {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
    true
}
