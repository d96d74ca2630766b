//! `POST /api/import?pbx=NAME` on the real `cdrbox run`: the admin uploads the real Asterisk 22
//! Master.csv (as `curl -u admin:PASS --data-binary @Master.csv` does), gets the report as
//! JSON, and the export is then Master.csv row for row; a repeat changes nothing; the viewer
//! may not import; a bad parameter names itself; and `cdrbox import` beside the running box
//! refuses, saying how to import through it. And issue 12's "Done when" on the real binary:
//! calls recorded over a real AMI link (the real Asterisk 22's Cdr events, served by a fake
//! manager), the box stopped while calls go on and started again, then Master.csv imported
//! through the running box: the export is Master.csv row for row, each call once.

use crate::box_process;
use crate::import_support;
// Only the fake manager's login and session handling are used here.
use crate::support::fake_ami;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use box_process::{export, free_port, wait, wait_listening, BoxConfig, RunningBox, BIN};
use fake_ami::FakeAmi;
use import_support::{cdr_events, master_csv, sorted_lines, CAPTURES, MOSCOW_PBX_LINES};

const PASS: &str = "import-web-pass-1";

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_as(("admin", PASS), port, method, path, body)
}

fn http_as(
    (user, pass): (&str, &str),
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the web page");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |i| i + 4);
    (code, out[at..].to_vec())
}

/// The running box's asterisk-profile export, byte for byte as Master.csv: the formula guard
/// off, by explicit choice (issue 11: it is on in every CSV profile by default).
fn asterisk_export(web: u16) -> Vec<u8> {
    let (code, csv) = http(
        web,
        "GET",
        "/export.csv?profile=asterisk&formulaGuard=off",
        b"",
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&csv));
    csv
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

#[test]
fn admin_uploads_master_csv_and_the_export_is_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    // The PBX's AMI port has nobody listening: the link stays down, which is the point.
    let config = BoxConfig::imports_only(dir.path(), web).write();
    let _running = RunningBox::start(&config, PASS);
    wait_listening(web);

    let (code, body) = http(web, "POST", "/api/import?pbx=pbx1", &master_csv());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let report = json(&body);
    assert_eq!(report["lines"], 42);
    assert_eq!(report["new"], 42);
    assert_eq!(report["alreadyPresent"], 0);
    assert_eq!(report["rejected"], 0);
    let csv = asterisk_export(web);
    assert_eq!(sorted_lines(&csv), sorted_lines(&master_csv()));

    // Again, with a broken line added: nothing new, the line named.
    let mut again = master_csv();
    again.extend_from_slice(b"\"half a line\n");
    let (code, body) = http(web, "POST", "/api/import?pbx=pbx1", &again);
    assert_eq!(code, 200);
    let report = json(&body);
    assert_eq!(report["new"], 0);
    assert_eq!(report["alreadyPresent"], 42);
    assert_eq!(report["rejections"][0]["line"], 43);
    assert_eq!(asterisk_export(web), csv);

    // The read-only account may not import (the page shows it no upload either).
    let mut passwd = Command::new(BIN)
        .args(["passwd", "--user", "viewer", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    writeln!(passwd.stdin.take().unwrap(), "viewer-pass-1").unwrap();
    assert!(passwd.wait().unwrap().success());
    let viewer = ("viewer", "viewer-pass-1");
    let (code, body) = http_as(viewer, web, "POST", "/api/import?pbx=pbx1", &master_csv());
    assert_eq!(code, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("viewer account cannot import"));
    let (code, _) = http_as(viewer, web, "GET", "/api/calls?limit=1", b"");
    assert_eq!(code, 200, "the viewer still reads");

    // Bad requests name what is wrong.
    let (code, body) = http(web, "POST", "/api/import?pbx=nope", &master_csv());
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("no [[pbx]] named"));
    let (code, _) = http(web, "POST", "/api/import", &master_csv());
    assert_eq!(code, 400);
    let (code, body) = http(web, "POST", "/api/import?pbx=pbx1&usegmtime=maybe", b"");
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("usegmtime"));

    // The CLI beside the running box says how to import through it.
    let out = Command::new(BIN)
        .args(["import", "--pbx", "pbx1", "--config"])
        .arg(&config)
        .arg("Master.csv")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/api/import?pbx=pbx1"), "{err}");
}

/// Records the running box holds (0 while its page is not up yet).
fn total(port: u16) -> u64 {
    let Ok(_) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let (code, body) = http(port, "GET", "/api/calls?limit=1", b"");
    if code != 200 {
        return 0;
    }
    serde_json::from_slice::<serde_json::Value>(&body)
        .map_or(0, |v| v["total"].as_u64().unwrap_or(0))
}

/// How many exported records carry each origin (`cdrbox export --format ndjson`).
fn origins(config: &std::path::Path) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&export(config, &["--format", "ndjson"])).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *counts
            .entry(v["origin"].as_str().unwrap_or("(none)").to_owned())
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn box_stopped_while_calls_go_on_then_master_csv_makes_the_export_whole() {
    // The real Asterisk 22's Cdr events (the `Events: cdr` captures), in Master.csv's order:
    // the PBX sent the first 20 while the box ran, 14 while it was off, the last 8 after.
    let events: Vec<Vec<u8>> = CAPTURES
        .iter()
        .flat_map(|f| cdr_events(f))
        .map(|m| m.raw().to_vec())
        .collect();
    assert_eq!(events.len(), 42);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // What the next AMI session is sent: a session takes it, so a reconnect gets nothing twice.
    let next: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(events[..20].concat()));
    let for_pbx = next.clone();
    let pbx = rt.block_on(FakeAmi::start(move |mut c| {
        let bytes = std::mem::take(&mut *for_pbx.lock().unwrap());
        async move { c.deliver(&bytes).await }
    }));

    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let config = BoxConfig::recording(
        dir.path(),
        "pbx1",
        pbx.addr.port(),
        fake_ami::LOGIN,
        &MOSCOW_PBX_LINES,
        web,
    )
    .write();
    let running = RunningBox::start(&config, PASS);
    wait("20 calls over AMI", Duration::from_secs(60), || {
        total(web) == 20
    });
    running.stop();
    // Calls go on while the box is off; then it starts again and the link delivers the rest.
    *next.lock().unwrap() = events[34..].concat();
    let running = RunningBox::start(&config, PASS);
    wait("8 more calls over AMI", Duration::from_secs(60), || {
        total(web) == 28
    });

    // The PBX's Master.csv, through the running box (as `curl --data-binary` sends it).
    let (code, body) = http(web, "POST", "/api/import?pbx=pbx1", &master_csv());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let report = json(&body);
    assert_eq!(
        (
            &report["lines"],
            &report["new"],
            &report["alreadyPresent"],
            &report["rejected"]
        ),
        (&42.into(), &14.into(), &28.into(), &0.into()),
        "{report}"
    );
    assert_eq!(
        sorted_lines(&asterisk_export(web)),
        sorted_lines(&master_csv()),
        "the export is Master.csv row for row, each once"
    );
    running.stop();
    // Stopped, the CLI export says the same, and where each record came from.
    assert_eq!(
        sorted_lines(&export(
            &config,
            &[
                "--format",
                "csv",
                "--profile",
                "asterisk",
                "--no-formula-guard"
            ]
        )),
        sorted_lines(&master_csv())
    );
    assert_eq!(
        origins(&config),
        [("ami".to_owned(), 28), ("master-csv".to_owned(), 14)].into()
    );
}
