//! The real tiny_http server on 127.0.0.1:0 with an in-memory backend: setup, login, cookie,
//! Basic, live feed, streamed export, and the limits (body, headers, idle clients, time-outs).

use crate::web_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use cdrbox::web::{serve_listener, CdrExporter, WebHandle, WebOptions};
use web_support::{record, MemBackend};

const PASS: &str = "correct-horse-1";

struct Server {
    handle: Option<WebHandle>,
    addr: SocketAddr,
    backend: Arc<MemBackend>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

fn start(records: usize, tweak: impl FnOnce(&mut WebOptions)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let backend = MemBackend::new((0..records as i64).map(|i| record(i * 60)).collect());
    let mut opts = WebOptions::new(dir.path().join("cdrbox.passwd"));
    opts.workers = 2;
    tweak(&mut opts);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handle = serve_listener(listener, backend.clone(), Arc::new(CdrExporter), opts).unwrap();
    Server {
        addr: handle.local_addr(),
        handle: Some(handle),
        backend,
        _dir: dir,
    }
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASS}"))
    )
}

/// `GET path` with Basic auth as admin.
fn get_admin(addr: SocketAddr, path: &str) -> Reply {
    get(addr, path, &format!("Authorization: {}\n", basic()))
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let headers = web_support::http_head::read_headers(r).unwrap();
    (status, headers)
}

/// Sends `head` (+ body) with `Connection: close` and reads the whole reply, de-chunking.
fn send(addr: SocketAddr, head: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = head.replace('\n', "\r\n");
    req.push_str(&format!("Host: {addr}\r\nConnection: close\r\n"));
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end).unwrap();
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn get(addr: SocketAddr, target: &str, auth: &str) -> Reply {
    send(addr, &format!("GET {target} HTTP/1.1\n{auth}"), b"")
}

/// Opens the live feed (`GET /api/events` as admin), its answer not read yet.
fn open_feed(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut c = TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
        basic()
    )
    .unwrap();
    BufReader::new(c)
}

fn setup_password(s: &Server) -> String {
    // The one-time setup code is made on the first look at the setup state.
    assert_eq!(get(s.addr, "/api/setup", "").status, 200);
    let code = cdrbox::web::setup_code::current(&cdrbox::web::setup_code::path_for(
        &s._dir.path().join("cdrbox.passwd"),
    ))
    .expect("a setup code");
    let r = send(
        s.addr,
        "POST /api/setup HTTP/1.1\nContent-Type: application/json\n",
        format!("{{\"password\":\"{PASS}\",\"code\":\"{code}\"}}").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("Set-Cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn first_setup_then_cookie_and_basic_and_refusals() {
    let s = start(20, |_| {});
    let r = get(s.addr, "/api/status", "");
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_some());
    assert_eq!(get(s.addr, "/", "").status, 303);
    let login = get(s.addr, "/login", "");
    assert_eq!(login.status, 200);
    assert!(login
        .header("Content-Security-Policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let cookie = setup_password(&s);
    let r = get(s.addr, "/api/calls?limit=5", &format!("Cookie: {cookie}\n"));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["total"], 20);
    assert_eq!(v["records"].as_array().unwrap().len(), 5);
    let r = get_admin(s.addr, "/api/status");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_admin(s.addr, "/api/calls?limit=abc");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("\"param\":\"limit\""), "{}", r.text());
    let r = get(s.addr, "/", &format!("Cookie: {cookie}\n"));
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<nav"));
}

#[test]
fn live_feed_receives_a_pushed_record() {
    let s = start(0, |_| {});
    setup_password(&s);
    let mut r = open_feed(s.addr);
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "text/event-stream"));
    // The live feed holds no worker: ordinary requests still go through with 2 workers.
    for _ in 0..3 {
        assert_eq!(get_admin(s.addr, "/api/status").status, 200);
    }
    s.backend.push(record(42 * 60));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if line.starts_with("data: ") {
            let v: serde_json::Value =
                serde_json::from_str(line.trim_start_matches("data: ")).unwrap();
            assert_eq!(v["uniqueId"], "1795330800.2520");
            assert!(seen.contains("event: record"), "{seen}");
            return;
        }
    }
    panic!("no record event; got {seen:?}");
}

#[test]
fn export_is_streamed_chunked_and_complete() {
    const N: usize = 30_000;
    let s = start(N, |_| {});
    setup_password(&s);
    let auth = format!("Authorization: {}\n", basic());
    let r = get(s.addr, "/export.csv", &auth);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert!(r.header("Content-Length").is_none());
    let text = r.text();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), N + 1, "header + every row, never a cut");
    assert!(lines[0].starts_with("uniqueId,accountCode,source"));
    assert!(text.contains("Иванов Пётр"), "Cyrillic intact");
    // Excel profile: BOM and semicolons.
    let r = get(
        s.addr,
        "/export.csv?profile=excel&disposition=ANSWERED",
        &auth,
    );
    // Issue 13: headers in words (changed on purpose from the standard names).
    assert!(r.body.starts_with("\u{feff}Start;Answered;".as_bytes()));
    assert_eq!(
        r.text().split("\r\n").filter(|l| !l.is_empty()).count(),
        N * 2 / 3 + 1
    );
    // The separator the page picks by locale.
    let r = get(
        s.addr,
        "/export.csv?profile=excel&separator=comma&disposition=ANSWERED",
        &auth,
    );
    assert!(r.body.starts_with("\u{feff}Start,Answered,".as_bytes()));
    // JSON array parses and holds the filtered set; NDJSON one line per record.
    let r = get(s.addr, "/export.json?maxDuration=65&pbx=main", &auth);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), N);
    let r = get(s.addr, "/export.ndjson?direction=outbound", &auth);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    // Every profile downloads; Master.csv (asterisk) has no header row.
    let r = get(s.addr, "/export.csv?profile=pbxlogger&limit", &auth);
    assert_eq!(r.status, 400, "limit is not an export parameter");
    let r = get(s.addr, "/export.csv?profile=pbxlogger", &auth);
    assert!(
        r.text().starts_with("ACC,DIALED_PHONE,FLAG1,CALLER_PHONE"),
        "{}",
        &r.text()[..80]
    );
    let r = get(s.addr, "/export.csv?profile=asterisk&maxDuration=65", &auth);
    assert_eq!(r.text().lines().count(), N);
    // A bad filter is refused before streaming starts.
    let r = get(s.addr, "/export.csv?from=whenever", &auth);
    assert_eq!(r.status, 400);
}

#[test]
fn oversized_requests_are_refused() {
    let s = start(0, |_| {});
    setup_password(&s);
    let big = vec![b'x'; 200 * 1024];
    let r = send(
        s.addr,
        &format!(
            "PUT /api/config HTTP/1.1\nAuthorization: {}\nContent-Type: text/plain\n",
            basic()
        ),
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let long = "a".repeat(20 * 1024);
    let r = get(
        s.addr,
        "/api/status",
        &format!("X-Long: {long}\nAuthorization: {}\n", basic()),
    );
    assert_eq!(r.status, 431);
    let many: String = (0..100).map(|i| format!("X-H{i}: v\n")).collect();
    let r = get(s.addr, "/api/status", &many);
    assert_eq!(r.status, 431);
    let r = get(
        s.addr,
        &format!("/api/calls?source={}", "1".repeat(10_000)),
        "",
    );
    assert_eq!(r.status, 414);
    // A huge declared body is refused before anything tries to hold it (tiny_http alone
    // would allocate the declared length and abort the process).
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"PUT /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000000000\r\n\r\nabc",
    )
    .unwrap();
    let mut head = String::new();
    let _ = BufReader::new(c).read_line(&mut head);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let r = send(
        s.addr,
        "POST /api/login HTTP/1.1\nTransfer-Encoding: chunked\n",
        b"",
    );
    assert_eq!(r.status, 411);
    // The server is still fine.
    assert_eq!(get_admin(s.addr, "/api/status").status, 200);
}

#[test]
fn idle_clients_do_not_block_others_and_are_dropped() {
    let s = start(5, |o| o.io_timeout = Duration::from_secs(2));
    setup_password(&s);
    // Ten connections that never finish their request.
    let mut idle: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr).unwrap();
            c.write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            c
        })
        .collect();
    let t = Instant::now();
    let r = get_admin(s.addr, "/api/calls");
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the 11th request waited for idle ones"
    );
    // The idle ones are closed by the server after the time-out.
    let c = &mut idle[0];
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 408"),
        "expected 408 then close, got {got:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(8));
}

#[test]
fn too_many_live_feeds_get_503() {
    let s = start(0, |o| o.max_event_clients = 2);
    setup_password(&s);
    let mut feeds = Vec::new();
    for _ in 0..2 {
        let mut r = open_feed(s.addr);
        assert_eq!(read_head(&mut r).0, 200);
        feeds.push(r);
    }
    let r = get_admin(s.addr, "/api/events");
    assert_eq!(r.status, 503);
}

#[test]
fn still_serving_after_being_idle_longer_than_the_timeout() {
    // The read time-out also ends tiny_http's accept loop; the server must recover.
    let s = start(3, |o| o.io_timeout = Duration::from_millis(500));
    setup_password(&s);
    // A keep-alive connection opened before the idle period…
    let mut keep = TcpStream::connect(s.addr).unwrap();
    keep.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(1300));
        let r = get_admin(s.addr, "/api/status");
        assert_eq!(r.status, 200, "round {round}");
    }
    // …was closed for idleness meanwhile.
    let mut buf = [0u8; 8];
    assert_eq!(keep.read(&mut buf).unwrap_or(0), 0);
}

#[test]
fn connections_beyond_the_cap_get_503_at_once() {
    let s = start(0, |o| o.max_connections = 3);
    let _idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = get(s.addr, "/api/setup", "");
    assert_eq!(r.status, 503);
}

#[test]
fn http10_clients_get_an_unchunked_export() {
    let s = start(10, |_| {});
    setup_password(&s);
    let mut c = TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "GET /export.ndjson HTTP/1.0\r\nAuthorization: {}\r\n\r\n",
        basic()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    // Issue 11, finding 8: an HTTP/1.0 request is answered in HTTP/1.0.
    assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    assert!(
        !out.to_ascii_lowercase().contains("transfer-encoding"),
        "{out}"
    );
    let body = out.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(body.lines().count(), 10);
}

/// Issue 11, finding 1: the systemd watchdog never noticed a wedged web server. Now the probe it
/// polls says so once every page worker is stuck far past the deadlines — and a stop still ends
/// within the grace period although those workers never return.
#[test]
fn wedged_page_workers_make_the_probe_unhealthy_and_stop_still_ends() {
    use cdrbox::filter::Filter;
    use cdrbox::web::{Backend, BackendError};
    struct Stuck(Arc<MemBackend>);
    impl Backend for Stuck {
        fn status(&self) -> cdrbox::status::StatusView {
            self.0.status()
        }
        fn count(&self, _f: &Filter) -> Result<u64, BackendError> {
            // A journal that never answers.
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
        fn query(
            &self,
            f: &Filter,
            s: cdrbox::filter::Sort,
            p: cdrbox::filter::Page,
        ) -> Result<Vec<cdrbox::record::CallRecord>, BackendError> {
            self.0.query(f, s, p)
        }
        fn for_each(
            &self,
            f: &Filter,
            s: cdrbox::filter::Sort,
            each: &mut dyn FnMut(&cdrbox::record::CallRecord) -> std::io::Result<()>,
        ) -> Result<(), BackendError> {
            self.0.for_each(f, s, each)
        }
        fn subscribe(&self) -> cdrbox::journal::Subscription {
            self.0.subscribe()
        }
        fn config_text(&self) -> String {
            self.0.config_text()
        }
        fn apply_config(&self, t: &str) -> Result<(), BackendError> {
            self.0.apply_config(t)
        }
        fn gaps(&self, f: i64, t: i64) -> Vec<cdrbox::web::Gap> {
            self.0.gaps(f, t)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    cdrbox::web::auth::set_password(&dir.path().join("cdrbox.passwd"), "admin", PASS).unwrap();
    let mut opts = WebOptions::new(dir.path().join("cdrbox.passwd"));
    opts.workers = 2;
    opts.response_timeout = Duration::from_secs(1);
    opts.io_timeout = Duration::from_secs(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = Arc::new(Stuck(MemBackend::new(vec![])));
    let h = serve_listener(listener, backend, Arc::new(CdrExporter), opts).unwrap();
    let addr = h.local_addr();
    assert_eq!(h.health(), Ok(()));
    // Both page workers get stuck in the journal; the clients get 504 from the gate.
    let clients: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get_admin(addr, "/api/calls").status))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 504);
    }
    let probe = h.probe();
    let t = Instant::now();
    let problem = loop {
        if let Err(e) = probe.check() {
            break e;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "never unhealthy");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(problem.contains("busy"), "{problem}");
    let t = Instant::now();
    h.shutdown();
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "stop took {:?}",
        t.elapsed()
    );
}

/// Issue 13 items 2 and 6: the page's excel download names the people behind the numbers as
/// the calls page does (`[names]` here); the standard CSV keeps its columns.
#[test]
fn excel_download_names_the_people_behind_the_numbers() {
    let s = start(3, |_| {});
    setup_password(&s);
    s.backend
        .config
        .lock()
        .unwrap()
        .push_str("\n[names]\n\"100\" = \"Ресепшн\"\n");
    let auth = format!("Authorization: {}\n", basic());
    let r = get(s.addr, "/export.csv?profile=excel", &auth);
    assert_eq!(r.status, 200);
    let text = r.text();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains(";Caller number;Source name;Dialled;Destination name;"),
        "{header}"
    );
    let rows: Vec<&str> = text
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert!(row.contains(";;100;Ресепшн;inbound;"), "{row}");
    }
    let r = get(s.addr, "/export.csv", &auth);
    assert!(!r.text().contains("Ресепшн"));
}
