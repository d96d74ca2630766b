//! The pure half of the gate: one parse of a request head (`httparse`) and every check on it —
//! framing, sizes, `Host` — giving an [`Admitted`] head to relay or the [`Refusal`] to answer.
//! No sockets here: [`check_head`] is unit-tested below and fuzzed against tiny_http's own
//! parser (`tests/fuzz`, `tests/web_gate_differential.rs`).

use std::net::IpAddr;
use std::time::Duration;

use super::HostPolicy;

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

pub(super) fn refusal(status: u16, reason: &'static str) -> Refusal {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Small limits every gate unit test shares (the host names are the ones `host_policy`
    /// checks).
    pub(crate) fn limits() -> Limits {
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
}
