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
//!
//! `memory` mode (issue 11, finding 3; issue 10 item 5) is self-contained: it starts a hostile
//! PBX and `cdrbox run` (the binary beside this one) three times — no records (the floor: RSS
//! logged in, nothing received), records of ~1 KB (the baseline), then of ~1 MB (60,000 custom
//! fields each) — and reports the box's peak RSS while ingesting, and while three clients page
//! through every record with `/api/calls?limit=1000` and ask `/api/stats`. Records the journal
//! dropped at its memory bound (the gap ledger's count) are reported, not waited for:
//!
//! ```text
//! cargo build --release && target/release/cdrbox-web-bench memory [RECORDS=200]
//! ```

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

#[path = "cdrbox-bench/bench_box.rs"]
mod bench_box;
#[path = "../../tests/web_support/hostile_pbx.rs"]
mod hostile_pbx;

/// What one box did with `records` records of about `bytes` (KiB, bytes).
struct MemoryRun {
    /// Peak RSS from spawn until every record was stored or counted lost.
    ingest_peak: u64,
    /// RSS when paging starts.
    before: u64,
    /// Peak RSS while three clients page.
    paging_peak: u64,
    /// Bytes of listings received.
    received: u64,
    stored: u64,
    dropped: u64,
}

/// Records the gap ledger counts as dropped at the journal's memory bound.
fn dropped(db: &std::path::Path) -> u64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row("SELECT coalesce(sum(lost), 0) FROM gaps", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n.max(0) as u64)
        .unwrap_or(0)
}

/// One box with `records` records of about `bytes`.
fn memory_run(records: u64, bytes: usize) -> anyhow::Result<MemoryRun> {
    let bin = std::env::current_exe()?.with_file_name("cdrbox");
    let dir = std::env::temp_dir().join(format!("cdrbox-webbench-{}-{bytes}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pbx = hostile_pbx::HostilePbx::start(records as usize, bytes);
    let (mut child, port) =
        bench_box::start(&bin, &dir, &dir.join("data"), pbx.addr.port(), "", None)?;
    let host = format!("127.0.0.1:{port}");
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", bench_box::PASSWORD));
    let total = |host: &str| -> u64 {
        let Ok(mut s) = TcpStream::connect(host) else {
            return 0;
        };
        let _ = write!(
            s,
            "GET /api/calls?limit=1 HTTP/1.0\r\nAuthorization: Basic {auth}\r\n\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_once("\"total\":")
            .and_then(|(_, t)| t.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0)
    };
    let t = Instant::now();
    let db = dir.join("data").join("journal.sqlite");
    let web_up = |host: &str| -> bool {
        let Ok(mut s) = TcpStream::connect(host) else {
            return false;
        };
        let _ = write!(
            s,
            "GET /api/calls?limit=1 HTTP/1.0\r\nAuthorization: Basic {auth}\r\n\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200")
    };
    while !web_up(&host) {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(60),
            "the web page did not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    if records == 0 {
        // The floor: logged in, past start-up, nothing received.
        std::thread::sleep(Duration::from_secs(3));
    }
    let mut stored = total(&host);
    while stored + dropped(&db) < records {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(900),
            "ingest took over 15 min"
        );
        std::thread::sleep(Duration::from_millis(200));
        stored = total(&host);
    }
    let pid = child.id();
    let ingest_peak = cdrbox::health::status_kib(pid, "VmHWM:");
    // The ingest has its own peak (AMI and journal); reset VmHWM so `after` is the paging's.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), b"5");
    let before = cdrbox::health::status_kib(pid, "VmHWM:");
    let received = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (host, auth, received) = (&host, &auth, &received);
                s.spawn(move || -> anyhow::Result<()> {
                    for _ in 0..2 {
                        let mut offset = 0;
                        while offset < stored {
                            let mut c = TcpStream::connect(host)?;
                            write!(c, "GET /api/calls?limit=1000&offset={offset} HTTP/1.0\r\nAuthorization: Basic {auth}\r\n\r\n")?;
                            let mut out = Vec::new();
                            c.read_to_end(&mut out)?;
                            received.fetch_add(out.len() as u64, std::sync::atomic::Ordering::SeqCst);
                            let text = String::from_utf8_lossy(&out);
                            let n: u64 = text
                                .split_once("\"returned\":")
                                .and_then(|(_, t)| t.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
                                .unwrap_or(0);
                            anyhow::ensure!(n > 0, "no records at offset {offset}: {}", &text[..text.len().min(300)]);
                            offset += n;
                        }
                        request(host, "/api/stats", auth)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in hs {
            h.join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??;
        }
        Ok(())
    })?;
    let after = cdrbox::health::status_kib(pid, "VmHWM:");
    let dropped = dropped(&db);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    drop(pbx);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(MemoryRun {
        ingest_peak,
        before,
        paging_peak: after,
        received: received.into_inner(),
        stored,
        dropped,
    })
}

fn memory(records: u64) -> anyhow::Result<()> {
    let floor = memory_run(0, 1_000)?;
    println!(
        "floor:    no records: RSS {} KiB (logged in, nothing received)",
        floor.before
    );
    for (name, bytes) in [("baseline", 1_000), ("huge", 1_000_000)] {
        let r = memory_run(records, bytes)?;
        println!(
            "{name:<9} {records} records of ~{} KB: {} stored, {} dropped at the memory bound; ingest peak RSS {} KiB ({:.2}× floor); RSS {} KiB when paging starts, peak {} KiB while 3 clients page (received {} KB)",
            bytes / 1000,
            r.stored,
            r.dropped,
            r.ingest_peak,
            r.ingest_peak as f64 / floor.before.max(1) as f64,
            r.before,
            r.paging_peak,
            r.received / 1000
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("memory") {
        let records = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200);
        return memory(records);
    }
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
