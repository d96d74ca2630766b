//! Helpers for tests that drive the real `cdrbox run` binary over its web API: a minimal HTTP
//! client with Basic auth and the journal's total; the box process itself (config builder,
//! free ports, polling, `RunningBox`) comes from `support/box_process.rs`.

#![allow(dead_code)]

#[path = "../support/box_process.rs"]
pub mod box_process;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

// Each test uses its own part of these.
#[allow(unused_imports)]
pub use box_process::{free_port, wait, BoxConfig, RunningBox};

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

/// Records the journal holds (the page's total of all calls).
pub fn total(port: u16) -> u64 {
    let (code, v) = http_json(port, "GET", "/api/calls?limit=1", "");
    if code != 200 {
        return 0;
    }
    v["total"].as_u64().unwrap_or(0)
}

/// The login every box of these tests uses for its simulated PBX (`cdrbox` / `s3cret`), with
/// the simulator's defaults for the rest (fill in with `..sim_login()`).
pub fn sim_login() -> cdrbox::sim::SimOptions {
    cdrbox::sim::SimOptions {
        username: "cdrbox".into(),
        secret: "s3cret".into(),
        ..cdrbox::sim::SimOptions::default()
    }
}

/// A simulated PBX on 127.0.0.1:0 with `options`, served by `rt`.
pub fn start_sim(
    rt: &tokio::runtime::Runtime,
    options: cdrbox::sim::SimOptions,
) -> cdrbox::sim::SimHandle {
    rt.block_on(cdrbox::sim::bind("127.0.0.1:0", options))
        .expect("bind the simulated PBX")
}

/// A simulated PBX on `addr` (login cdrbox/s3cret) making `rate` calls a second at a steady
/// pace (no Poisson gaps), for the boxes whose config names that account.
pub async fn steady_pbx(addr: &str, rate: f64) -> cdrbox::sim::SimHandle {
    let opts = cdrbox::sim::SimOptions {
        username: "cdrbox".into(),
        secret: "s3cret".into(),
        rate_per_sec: rate,
        poisson: false,
        ..cdrbox::sim::SimOptions::default()
    };
    cdrbox::sim::bind(addr, opts).await.unwrap()
}

/// Writes `dir/cdrbox.toml`, the config of the box `box_name` recording the simulated PBX on
/// `pbx_port` (see [`steady_pbx`]) as "office" in Moscow, its page on `web`, its data and USB
/// mounts under `dir`: commented, as a user's file is, so a save from the page can be checked to
/// keep the comments. Returns the file and its text.
pub fn write_sim_box(
    dir: &std::path::Path,
    box_name: &str,
    pbx_port: u16,
    web: u16,
) -> (std::path::PathBuf, String) {
    let d = dir.display();
    let text = format!(
        r#"# The {box_name} test box
[box]
name = "{box_name}" # on the page

# The PBX in the server room.
[[pbx]]
name = "office"
host = "127.0.0.1"
port = {pbx_port}
username = "cdrbox"
secret = "s3cret"
timezone = "Europe/Moscow"

[storage]
# Fast commits so the calls page sees records at once.
path = "{d}/data"
flush_interval_ms = 500

[web]
listen = "127.0.0.1:{web}"

[display]
driver = "none"

[usb]
mount_root = "{d}/media"
"#
    );
    let config = dir.join("cdrbox.toml");
    std::fs::write(&config, &text).expect("the test box's config written");
    (config, text)
}
