//! `POST /api/import?pbx=NAME` on the real `cdrbox run`: the admin uploads the real Asterisk 22
//! Master.csv (as `curl -u admin:PASS --data-binary @Master.csv` does), gets the report as
//! JSON, and the export is then Master.csv row for row; a repeat changes nothing; the viewer
//! may not import; a bad parameter names itself; and `cdrbox import` beside the running box
//! refuses, saying how to import through it.

mod import_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use import_support::master_csv;

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct RunningBox(Child);
impl Drop for RunningBox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sorted_lines(b: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(b)
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

#[test]
fn admin_uploads_master_csv_and_the_export_is_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let config = dir.path().join("cdrbox.toml");
    // The PBX's AMI port has nobody listening: the link stays down, which is the point.
    std::fs::write(
        &config,
        format!(
            r#"
[[pbx]]
name = "pbx1"
host = "127.0.0.1"
port = {}
username = "cdrbox"
secret = "s3cret"
timezone = "Europe/Moscow"

[storage]
path = "{}"

[web]
listen = "127.0.0.1:{web}"
"#,
            free_port(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_cdrbox");
    let mut passwd = Command::new(bin)
        .args(["passwd", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(passwd.stdin.take().unwrap(), "{PASS}").unwrap();
    assert!(passwd.wait().unwrap().success());
    let _running = RunningBox(
        Command::new(bin)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", web)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "web page never came up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

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
    let out = Command::new(bin)
        .args(["import", "--pbx", "pbx1", "--config"])
        .arg(&config)
        .arg("Master.csv")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/api/import?pbx=pbx1"), "{err}");
}
