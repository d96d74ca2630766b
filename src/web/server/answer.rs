//! One request, start to end, on a page or stream worker: the limits checked again (in case
//! tiny_http is ever reached without the gate), the body read, the route called, and the
//! answer written — small ones through tiny_http, downloads and the live feed streamed by hand
//! (chunked) so memory stays flat.

use std::io::{self, BufWriter, Read, Write};
// Instant, not the box Clock: it only measures how long a real answer took, for the log.
use std::time::Instant;

use super::feed::Hub;
use super::WebOptions;
use crate::web::gate;
use crate::web::routes::{self, App, Body};

pub(super) fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|_| {
        tiny_http::Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).expect("static header")
    })
}

pub(super) fn quick(rq: tiny_http::Request, status: u16, message: &str) {
    let body = serde_json::json!({ "error": message }).to_string();
    let resp = tiny_http::Response::from_data(body.into_bytes())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Connection", "close"));
    let _ = rq.respond(resp);
}

/// Checks limits, reads the body, routes, and writes the answer.
pub(super) fn handle(
    mut rq: tiny_http::Request,
    app: &App,
    opts: &WebOptions,
    hub: &Hub,
    token: &str,
) {
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
    let mut resp = app.handle(&req, opts.clock.unix());
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
                    // The excel profile's name columns: the names the calls page shows.
                    let names = app.backend().names();
                    let mut w = app
                        .exporter()
                        .writer(format, profile, formula_guard, separator, names, sink)
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
                Ok(()) => hub.add_client(out),
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
            crate::web::auth::constant_time_eq(t.as_bytes(), token.as_bytes())
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
