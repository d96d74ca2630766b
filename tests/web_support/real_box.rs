//! The real `cdrbox run` binary on 127.0.0.1 for the web hardening tests (issue 11): a temporary
//! config and data directory, a PBX address nobody listens on (the links stay down, which the
//! web page does not care about), a raw HTTP/1.x client that can bind its own loopback source
//! address (127.0.0.N), and a stop that reports how long SIGTERM took.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[path = "../support/box_process.rs"]
mod box_process;
#[path = "http_head.rs"]
mod http_head;

// Each test uses its own part of these.
#[allow(unused_imports)]
pub use box_process::{free_port, run_ok, status_kib, wait};
use box_process::{set_password, spawn_run, BoxConfig};

pub const PASS: &str = "hardening-pass-1";

pub struct RealBox {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub config: PathBuf,
    /// What the process printed on stderr (the log), filled by a reader thread.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl RealBox {
    /// Starts `cdrbox run` with `[web] listen` on a free port plus `extra` config text, and the
    /// admin password set first when `password` is true.
    pub fn start(password: bool, extra: &str) -> RealBox {
        Self::start_with_pbx(password, 9, extra)
    }

    /// Like [`RealBox::start`], its PBX on 127.0.0.1:`pbx_port` (plain login).
    pub fn start_with_pbx(password: bool, pbx_port: u16, extra: &str) -> RealBox {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = BoxConfig::new(dir.path())
            .pbx(
                "office",
                pbx_port,
                ("u", "s3cret-ami"),
                &["auth = \"plain\""],
            )
            .storage(&[])
            .web(port, &[extra])
            .no_display()
            .write();
        if password {
            set_password(&config, PASS);
        }
        let mut child = spawn_run(&config, "info", Stdio::piped());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let log = log.clone();
            let err = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let b = RealBox {
            child,
            dir,
            port,
            config,
            log,
        };
        wait("the web page", Duration::from_secs(60), || {
            // 308: HTTPS is on and plain HTTP redirects to it.
            b.request("GET /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .is_some_and(|r| r.status == 200 || r.status == 308)
        });
        b
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Connects from loopback source address `from` (127.0.0.N are all this machine).
    pub fn connect_from(&self, from: IpAddr) -> std::io::Result<TcpStream> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddr::new(from, 0).into())?;
        sock.connect_timeout(&self.addr().into(), Duration::from_secs(5))?;
        Ok(sock.into())
    }

    /// Sends `raw` (a whole request) from 127.0.0.1 and reads the answer; `None` when the
    /// connection failed or closed without a status line.
    pub fn request(&self, raw: &str) -> Option<Reply> {
        self.request_bytes_from("127.0.0.1".parse().unwrap(), raw.as_bytes())
    }

    pub fn request_bytes_from(&self, from: IpAddr, raw: &[u8]) -> Option<Reply> {
        let mut s = self.connect_from(from).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        s.write_all(raw).ok()?;
        read_reply(s)
    }

    /// `POST path` with the JSON `body` and `Host: host`, from 127.0.0.1.
    pub fn post_json(&self, host: &str, path: &str, body: &str) -> Option<Reply> {
        self.post_json_from("127.0.0.1".parse().unwrap(), host, path, body)
    }

    /// `POST path` with the JSON `body` and `Host: host`, from `from`.
    pub fn post_json_from(
        &self,
        from: IpAddr,
        host: &str,
        path: &str,
        body: &str,
    ) -> Option<Reply> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.request_bytes_from(from, (head + body).as_bytes())
    }

    /// `GET path` with Basic auth as admin.
    pub fn get(&self, path: &str) -> Option<Reply> {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
            basic(PASS)
        ))
    }

    /// SIGTERM; how long until the process was gone (panics after 30 s).
    pub fn stop(&mut self) -> Duration {
        let t = Instant::now();
        box_process::sigterm(&self.child);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status after SIGTERM: {status}");
                return t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Peak resident memory of the box so far (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmHWM:")
    }

    /// Resets the peak (VmHWM) to the current RSS (`/proc/PID/clear_refs` ← 5; we run as the
    /// box's owner), so a later [`RealBox::peak_rss_kib`] is the peak since now. False when the
    /// kernel refused.
    pub fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), b"5").is_ok()
    }

    /// Resident memory of the box now (VmRSS), KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:")
    }

    /// Records the box holds (the `total` of `/api/calls`).
    pub fn total(&self) -> u64 {
        self.get("/api/calls?limit=1")
            .filter(|r| r.status == 200)
            .and_then(|r| r.json()["total"].as_u64())
            .unwrap_or(0)
    }
}

impl Drop for RealBox {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn basic(password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
    )
}

#[derive(Debug)]
pub struct Reply {
    /// The status line as received (`HTTP/1.0 400 Bad Request`).
    pub line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads one answer (status, headers, body by Content-Length, chunks or to EOF).
pub fn read_reply(s: impl Read) -> Option<Reply> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    if !line.starts_with("HTTP/") {
        return None;
    }
    let line = line.trim_end().to_string();
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let headers = http_head::read_headers(&mut r).ok()?;
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else {
        let _ = r.read_to_end(&mut body);
    }
    Some(Reply {
        line,
        status,
        headers,
        body,
    })
}
