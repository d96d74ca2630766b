//! `POST /api/import?pbx=NAME` on the real `cdrbox run`: the admin uploads the real Asterisk 22
//! Master.csv (as `curl -u admin:PASS --data-binary @Master.csv` does), gets the report as
//! JSON, and the export is then Master.csv row for row; a repeat changes nothing; the viewer
//! may not import; a bad parameter names itself; and `cdrbox import` beside the running box
//! refuses, saying how to import through it.

#[path = "support/box_process.rs"]
mod box_process;
mod import_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use box_process::{free_port, wait_listening, BoxConfig, RunningBox, BIN};
use import_support::{master_csv, sorted_lines};

const PASS: &str = "import-web-pass-1";

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASS}"));
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

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

#[test]
fn admin_uploads_master_csv_and_the_export_is_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    // The PBX's AMI port has nobody listening: the link stays down, which is the point.
    let config = BoxConfig::new(dir.path())
        .pbx(
            "pbx1",
            free_port(),
            ("cdrbox", "s3cret"),
            &["timezone = \"Europe/Moscow\""],
        )
        .storage(&[])
        .web(web, &[])
        .write();
    let _running = RunningBox::start(&config, PASS);
    wait_listening(web);

    let (code, body) = http(web, "POST", "/api/import?pbx=pbx1", &master_csv());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let report = json(&body);
    assert_eq!(report["lines"], 42);
    assert_eq!(report["new"], 42);
    assert_eq!(report["alreadyPresent"], 0);
    assert_eq!(report["rejected"], 0);
    // Byte for byte as Master.csv: the formula guard off, by explicit choice (issue 11).
    let (code, csv) = http(
        web,
        "GET",
        "/export.csv?profile=asterisk&formulaGuard=off",
        b"",
    );
    assert_eq!(code, 200);
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
    let (_, csv2) = http(
        web,
        "GET",
        "/export.csv?profile=asterisk&formulaGuard=off",
        b"",
    );
    assert_eq!(csv2, csv);

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
