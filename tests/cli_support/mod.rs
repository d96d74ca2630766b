//! Helpers for tests that drive the real `cdrbox run` binary over its web API: a minimal HTTP
//! client with Basic auth, free ports, polling with a deadline, and the box process itself
//! (password set with `cdrbox passwd`, stopped with SIGTERM when dropped).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The admin password every box of these tests gets.
pub const PASS: &str = "cli-test-pass-1";

/// A minimal HTTP/1.0 client with Basic auth (the crate has no HTTP client dependency).
/// `(0, "")` when nothing answers.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let (code, bytes) = http_bytes(port, method, path, body);
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

/// [`http`] with the answer's body as bytes (`GET /display.png`).
pub fn http_bytes(port: u16, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASS}"));
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Vec::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let sent = write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut out = Vec::new();
    if sent.is_err() || s.read_to_end(&mut out).is_err() {
        return (0, Vec::new());
    }
    let Some(head_end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let code = String::from_utf8_lossy(&out[..head_end])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out[head_end + 4..].to_vec())
}

/// `http` with a JSON answer (`Null` when it is not JSON).
pub fn http_json(port: u16, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (code, text) = http(port, method, path, body);
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 100 ms; fails the test naming `what` after `limit`.
pub fn wait(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Records the journal holds (the page's total of all calls).
pub fn total(port: u16) -> u64 {
    let (code, v) = http_json(port, "GET", "/api/calls?limit=1", "");
    if code != 200 {
        return 0;
    }
    v["total"].as_u64().unwrap_or(0)
}

/// A running `cdrbox run --config FILE`, stopped with SIGTERM on drop.
pub struct RunningBox {
    pub child: Child,
    pub config: PathBuf,
}

impl RunningBox {
    /// Sets the admin password for `config`, then starts the box.
    pub fn start(config: &Path) -> RunningBox {
        let bin = env!("CARGO_BIN_EXE_cdrbox");
        let mut passwd = Command::new(bin)
            .args(["passwd", "--config"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(passwd.stdin.take().unwrap(), "{PASS}").unwrap();
        assert!(passwd.wait().unwrap().success());
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        RunningBox {
            child,
            config: config.to_path_buf(),
        }
    }

    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, and the exit status must be success.
    pub fn stop(mut self) {
        self.terminate();
        assert!(self.child.wait().unwrap().success());
    }

    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }
}

impl Drop for RunningBox {
    fn drop(&mut self) {
        if self.still_running() {
            self.terminate();
            let _ = self.child.wait();
        }
    }
}
