//! `cdrbox-bench query1m`: how fast the page answers on a big journal (issue 14 item 3). Builds
//! a journal of `CDRBOX_BENCH_RECORDS` records (default 1,000,000; `--quick` 100,000) spread
//! over two years ending now, as a busy office's would be, and keeps it under
//! `CDRBOX_BENCH_DIR/query-N` for the next run; starts `cdrbox run` on it and reports p50/p99
//! of `/api/calls` (first page; filtered counts by disposition, direction, PBX and a number
//! search over the last month, the last year and everything) and of `/api/stats` over the same
//! ranges. The baseline, in the same run on the same file: a bare rusqlite
//! `SELECT count(*) … WHERE start_utc … AND disposition = 'ANSWERED'` (no summary, no HTTP).
//! Prints table rows; asserts nothing timed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;

use super::bench_box::{self, PASSWORD};
use super::bench_root;
use super::peers::{build_journal_at, cdrbox_bin, stop};
use cdrbox::journal::{JournalError, JournalPaths, JournalReader};
use cdrbox::sim::{CallGenerator, GeneratorOptions};

const DAY: i64 = 86_400;
/// The journal covers this many days, ending at the time of the build.
const SPAN_DAYS: i64 = 730;

/// Records per generated call (the generator's legs), from a sample of its calls.
fn records_per_call() -> f64 {
    let mut g = CallGenerator::new(GeneratorOptions {
        seed: 11,
        ..Default::default()
    });
    let calls = 2_000;
    let records: usize = (0..calls).map(|i| g.next_call(i * 60).len()).sum();
    records as f64 / calls as f64
}

/// The cached journal for `n` records, built when missing. Returns the data directory.
fn journal(dir: &Path, n: usize) -> Result<std::path::PathBuf> {
    let data = dir.join("data");
    let done = dir.join(format!("built-{n}"));
    if done.exists() && JournalPaths::from_path(&data).db.exists() {
        eprintln!(
            "query: reusing the {n}-record journal in {}",
            data.display()
        );
        return Ok(data);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let calls = n as f64 / records_per_call();
    let step = ((SPAN_DAYS * DAY) as f64 / calls).round().max(1.0) as i64;
    let first = now - SPAN_DAYS * DAY;
    let took = build_journal_at(&data, n, first, step)?;
    eprintln!("query: built {n} records, a call every {step} s from @{first}, in {took:.1?}");
    std::fs::write(&done, format!("{first} {step}\n"))?;
    Ok(data)
}

fn request(host: &str, path: &str, auth: &str) -> Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line.split(' ').nth(1).unwrap_or("0").parse()?;
    let mut body = Vec::new();
    r.read_to_end(&mut body)?;
    Ok((status, body))
}

/// (p50, p99) in ms of `n` runs of `f`.
fn percentiles(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    Ok((p(0.5), p(0.99)))
}

fn get_ok(host: &str, path: &str, auth: &str) -> Result<()> {
    let (status, body) = request(host, path, auth)?;
    if status != 200 {
        bail!(
            "{path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(())
}

/// The schema version and the summaries' reach (`meta.day_summary_upto`, absent before v3; from
/// v4 the lesser of it and `call_summary_upto`, the calls summary's).
fn summary_upto(db: &Path) -> (i32, Option<i64>) {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return (0, None);
    };
    let v = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap_or(0);
    let read = |key: &str| -> Option<i64> {
        c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .ok()
    };
    let upto = read("day_summary_upto");
    if v >= 4 {
        return (
            v,
            upto.zip(read("call_summary_upto")).map(|(a, b)| a.min(b)),
        );
    }
    (v, upto)
}

pub fn run(quick: bool) -> Result<()> {
    let n: usize = match std::env::var("CDRBOX_BENCH_RECORDS") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("CDRBOX_BENCH_RECORDS={v:?} is not a count"))?,
        Err(_) if quick => 100_000,
        Err(_) => 1_000_000,
    };
    let dir = bench_root()?.join(format!("query-{n}"));
    std::fs::create_dir_all(&dir)?;
    let data = journal(&dir, n)?;
    let db = JournalPaths::from_path(&data).db;
    let bin = cdrbox_bin()?;
    // No PBX to reach (port 9): the link retries in the background and costs nothing here.
    let moscow = "timezone = \"Europe/Moscow\"\n";
    let (mut child, port) = bench_box::start(&bin, &dir, &data, 9, moscow, Some("error"))?;
    let out = measure(&db, port, n);
    stop(&mut child);
    out
}

fn measure(db: &Path, port: u16, n: usize) -> Result<()> {
    let host = format!("127.0.0.1:{port}");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"));
    let t = Instant::now();
    while get_ok(&host, "/api/calls?limit=1", &auth).is_err() {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the web page did not answer within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    // From v3 the writer summarises closed days after start; measure once it has.
    let (version, _) = summary_upto(db);
    let mut summary = "no summary (schema v2)".to_string();
    if version >= 3 {
        let want = (now.div_euclid(DAY) - 1) * DAY;
        let t = Instant::now();
        loop {
            if let (_, Some(upto)) = summary_upto(db) {
                if upto >= want {
                    summary = format!(
                        "summary of closed days complete {:.1} s after the page answered",
                        t.elapsed().as_secs_f64()
                    );
                    break;
                }
            }
            if t.elapsed() > Duration::from_secs(600) {
                summary = "summary incomplete after 600 s".into();
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!("query: {summary}");
    let ranges: [(&str, Option<i64>); 3] = [
        ("month", Some(now - 30 * DAY)),
        ("year", Some(now - 365 * DAY)),
        ("all", None),
    ];
    let range_param = |from: Option<i64>| match from {
        Some(f) => format!("&from=@{f}&to=@{}", now + DAY),
        None => String::new(),
    };
    // As the calls page asks (its rows, then the counts from /api/calls/count), and as a
    // script asking for everything in one answer.
    let (p50, p99) = percentiles(100, || {
        get_ok(&host, "/api/calls?limit=50&counts=records", &auth)
    })?;
    println!(
        "| `/api/calls` first page as the page asks (`limit=50&counts=records`) on {n} records | p50 {p50:.1} ms, p99 {p99:.1} ms (100 requests) | — | — | {summary} |"
    );
    let (p50, p99) = percentiles(20, || get_ok(&host, "/api/calls/count", &auth))?;
    println!(
        "| `/api/calls/count` (records and calls, everything) on {n} records | p50 {p50:.1} ms, p99 {p99:.1} ms (20 requests) | — | — | the calls count: the calls summary for whole closed days, the rest from the table |"
    );
    let (p50, p99) = percentiles(20, || get_ok(&host, "/api/calls?limit=50", &auth))?;
    println!(
        "| `/api/calls` first page with both counts (`limit=50`) on {n} records | p50 {p50:.1} ms, p99 {p99:.1} ms (20 requests) | — | — | what a script gets by default |"
    );
    let filters = [
        ("disposition", "disposition=ANSWERED"),
        ("direction", "direction=inbound"),
        ("pbx", "pbx=bench"),
        ("number search", "source=12"),
    ];
    let runs = 10;
    for (name, filter) in filters {
        let mut cells = Vec::new();
        for (label, from) in ranges {
            let path = format!("/api/calls?limit=1&{filter}{}", range_param(from));
            let (p50, p99) = percentiles(runs, || get_ok(&host, &path, &auth))?;
            cells.push(format!("{label} {p50:.1} / {p99:.1}"));
        }
        let baseline = if name == "disposition" {
            bare_counts(db, &ranges)?
        } else {
            "—".into()
        };
        println!(
            "| `/api/calls` count by {name} (`{filter}`), {n} records, p50 / p99 ms | {} ({runs} requests each) | {baseline} | — | records (`total`) and calls (`calls`) in one answer |",
            cells.join("; ")
        );
    }
    reader_counts(db, &ranges, now + DAY)?;
    let runs = 3;
    let mut cells = Vec::new();
    for (label, from) in ranges {
        let path = format!("/api/stats?{}", range_param(from).trim_start_matches('&'));
        let (p50, p99) = percentiles(runs, || get_ok(&host, &path, &auth))?;
        cells.push(format!("{label} {p50:.0} / {p99:.0}"));
    }
    println!(
        "| `/api/stats`, {n} records, p50 / p99 ms | {} ({runs} requests each) | — | — | streams every record of the range through `StatsBuilder` |",
        cells.join("; ")
    );
    Ok(())
}

/// The bare scan: rusqlite counting the same disposition over the same ranges on the same file.
fn bare_counts(db: &Path, ranges: &[(&str, Option<i64>)]) -> Result<String> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut cells = Vec::new();
    for (label, from) in ranges {
        let from = from.unwrap_or(i64::MIN);
        let (p50, _) = percentiles(5, || {
            c.query_row(
                "SELECT count(*) FROM cdr WHERE start_utc >= ?1 AND disposition = 'ANSWERED'",
                [from],
                |r| r.get::<_, i64>(0),
            )?;
            Ok(())
        })?;
        cells.push(format!("{label} {p50:.1}"));
    }
    Ok(format!(
        "bare rusqlite `count(*)` p50 ms: {}",
        cells.join("; ")
    ))
}

/// The records count alone, in this process on the same file: `JournalReader::count` (the day
/// summary where it can) beside `count_scan` (the table alone), p50 of 10 each.
fn reader_counts(db: &Path, ranges: &[(&str, Option<i64>)], to: i64) -> Result<()> {
    let reader = JournalReader::open(&JournalPaths::from_path(db))?;
    let both = [JournalReader::count, JournalReader::count_scan];
    let (ours, scan) = beside_the_scan(&reader, ranges, to, "the summary", both, 10)?;
    println!(
        "| records count by disposition, `JournalReader::count` in process, p50 ms | {ours} | {scan} (`count_scan`: the table alone, same file) | — | the same filters as the row above, without HTTP and without the `calls` count |",
    );
    // The calls count alone, the same way: the calls summary beside the table.
    let both = [JournalReader::count_calls, JournalReader::count_calls_scan];
    let (ours, scan) = beside_the_scan(&reader, ranges, to, "the calls summary", both, 3)?;
    println!(
        "| calls count by disposition, `JournalReader::count_calls` in process, p50 ms | {ours} | {scan} (`count_calls_scan`: `count(DISTINCT call key)` over the table, same file) | — | asserted equal to the scan for each range |",
    );
    Ok(())
}

/// A count of the journal for a filter.
type Count = fn(&JournalReader, &cdrbox::filter::Filter) -> Result<u64, JournalError>;

/// Answered records from each range to `to`: the p50 ms of `fast` (10 runs) and of `scan`
/// (`scan_runs`), after checking they agree (`what` names `fast` if not); the two table cells.
fn beside_the_scan(
    reader: &JournalReader,
    ranges: &[(&str, Option<i64>)],
    to: i64,
    what: &str,
    [fast, scan]: [Count; 2],
    scan_runs: usize,
) -> Result<(String, String)> {
    let mut ours = Vec::new();
    let mut scanned = Vec::new();
    for (label, from) in ranges {
        let f = cdrbox::filter::Filter {
            from_utc: *from,
            to_utc: from.map(|_| to),
            dispositions: vec![cdrbox::record::Disposition::Answered],
            ..Default::default()
        };
        let (a, _) = percentiles(10, || Ok(fast(reader, &f).map(drop)?))?;
        let (b, _) = percentiles(scan_runs, || Ok(scan(reader, &f).map(drop)?))?;
        if fast(reader, &f)? != scan(reader, &f)? {
            bail!("{what} and the scan disagree on {f:?}");
        }
        ours.push(format!("{label} {a:.2}"));
        scanned.push(format!("{label} {b:.1}"));
    }
    Ok((ours.join("; "), scanned.join("; ")))
}
