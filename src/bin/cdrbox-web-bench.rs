//! Benchmark of a running cdrbox web server (not a test; no assertions): latency of the
//! `/api/calls` first page and of a filtered count (p50/p99), CSV export rate, and the server's
//! peak RSS. Run it against a box whose journal holds the rows to measure (e.g. one million):
//!
//! ```text
//! cargo run --release --bin cdrbox-web-bench -- http://127.0.0.1:8080 admin PASSWORD [SERVER_PID]
//! ```
//!
//! With SERVER_PID, peak RSS is read from /proc/PID/status (VmHWM) after the export. Compare the
//! export rate with `time sqlite3 -csv journal.sqlite 'select …' > /dev/null` in the same run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;

fn request(host: &str, path: &str, auth: &str) -> anyhow::Result<(u16, u64)> {
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n")?;
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line.split(' ').nth(1).unwrap_or("0").parse()?;
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
    }
    Ok((status, bytes))
}

fn percentiles(name: &str, host: &str, path: &str, auth: &str, n: usize) -> anyhow::Result<()> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = request(host, path, auth)?;
        anyhow::ensure!(status == 200, "{path}: HTTP {status}");
        times.push(t.elapsed());
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<28} p50 {:>8.2} ms   p99 {:>8.2} ms   ({n} requests)",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 4,
        "usage: cdrbox-web-bench URL USER PASSWORD [SERVER_PID]"
    );
    let host = args[1]
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", args[2], args[3]));
    percentiles(
        "/api/calls first page",
        &host,
        "/api/calls?limit=50",
        &auth,
        200,
    )?;
    percentiles(
        "/api/calls filtered count",
        &host,
        "/api/calls?limit=1&disposition=NO%20ANSWER&minDuration=10",
        &auth,
        50,
    )?;
    let t = Instant::now();
    let (status, bytes) = request(&host, "/export.csv?profile=standard", &auth)?;
    anyhow::ensure!(status == 200, "export: HTTP {status}");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "CSV export                   {:.1} MB in {secs:.2} s = {:.1} MB/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    );
    if let Some(pid) = args.get(4) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        for l in status
            .lines()
            .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        {
            println!("server {l}");
        }
    }
    Ok(())
}
