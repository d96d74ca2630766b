//! `cdrbox-bench`: measures the core logger against baselines run in the same process and the
//! same minute, and prints ratios (never absolute claims alone).
//!
//! Rows (issue 2 §10):
//! - **decode**: AMI decoder MB/s on a large capture vs a plain `memchr` scan for `\r\n\r\n`
//!   over the same bytes (the limit: framing cannot be cheaper than finding the terminators).
//! - **ingest**: CDRs/s from a loopback socket to the committed journal vs a plain rusqlite
//!   insert loop of the same, pre-parsed rows in one transaction (the limit).
//! - **wear**: bytes written to the block device and flushes per CDR at 1 CDR/s and in a
//!   burst, beside the floor (a bare `pwrite`+`fdatasync` of one 4 KiB block) measured in the
//!   same run, with fresh records and the image's mount options (`cdrbox-bench/wear.rs`). When
//!   run as root it measures on a private loop-mounted ext4 (clean numbers); otherwise on the
//!   data directory's device, where other processes add noise (said in the output).
//!
//! - **peers**: the same decode and ingest rows against panoramisk (PyPI), the most used Python
//!   AMI library: its own parser, and a logger written the usual way (panoramisk + `sqlite3`,
//!   one INSERT and commit per event). Needs `python3` and `pip install panoramisk`.
//! - **proc**: `cdrbox run` as a process against a blast server: CDR/s, peak and steady RSS,
//!   CPU per CDR; then idle CPU and wake-ups (context switches of all threads) per minute.
//! - **idle**: only that idle row.
//! - **export1m**: export of a million records, `cdrbox export --format csv` vs `sqlite3 -csv`
//!   of the same rows and columns; wall time and peak RSS.
//! - **startup1m**: time from spawning `cdrbox run` to logged in and recording, with a million
//!   records in the journal vs an empty one.
//! - **qemu**: the `proc` ingest of the aarch64 binary under `qemu-aarch64-static` (emulated),
//!   if `target/aarch64-unknown-linux-gnu/release/cdrbox` exists.
//! - **query1m**: `/api/calls` counts and `/api/stats` over a month, a year and everything of a
//!   journal of a million records (`CDRBOX_BENCH_RECORDS` for more), beside a bare rusqlite
//!   count on the same file (`cdrbox-bench/query.rs`). Only when asked for by name.
//! - **uplink**: the central PostgreSQL uplink (issue 16 item 6) against a throw-away local
//!   PostgreSQL: one box's records/s, lag at 1 record/s and 100 boxes into one server, each with
//!   the server's CPU, WAL and table bytes per record beside `psql \copy` of the same rows
//!   (`cdrbox-bench/uplink.rs`). Needs Debian's `postgresql`; only when asked for by name.
//!
//! Usage: `cargo run --release --bin cdrbox-bench -- [--quick]
//! [decode|ingest|wear|peers|proc|idle|export1m|startup1m|query1m|qemu|uplink|all]`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;

use cdrbox::ami::client::{run_link, LinkConfig};
use cdrbox::ami::{AmiMessage, Decoder, Frame};
use cdrbox::config::{Config, PbxConfig, StorageConfig};
use cdrbox::journal::Journal;
use cdrbox::record::CallRecord;
use cdrbox::runtime::context_of;
use cdrbox::sim::{CallGenerator, GeneratorOptions};
use cdrbox::sink::RecordSink;

#[path = "cdrbox-bench/bench_box.rs"]
mod bench_box;
#[path = "cdrbox-bench/peers.rs"]
mod peers;
#[path = "cdrbox-bench/query.rs"]
mod query;
#[path = "cdrbox-bench/uplink.rs"]
mod uplink;
#[path = "cdrbox-bench/wear.rs"]
mod wear;

const CAPTURE: &[u8] = include_bytes!("../../tests/fixtures/ami/mixed_session.bin");

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let section = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str)
        .unwrap_or("all");
    println!(
        "# cdrbox-bench ({}), {}",
        if quick { "quick" } else { "full" },
        host_line()
    );
    println!();
    println!("| row | ours | baseline (same run) | ratio | notes |");
    println!("|---|---:|---:|---:|---|");
    if matches!(section, "decode" | "all") {
        decode(quick)?;
    }
    if matches!(section, "ingest" | "all") {
        ingest(quick)?;
    }
    if matches!(section, "wear" | "all") {
        wear::run(quick)?;
    }
    if matches!(section, "peers" | "all") {
        peers::run(quick)?;
    }
    if matches!(section, "proc" | "all") {
        peers::proc_rows(quick)?;
    }
    if section == "idle" {
        peers::idle_row(quick)?;
    }
    if matches!(section, "export1m" | "startup1m" | "all") {
        peers::million(quick, section)?;
    }
    if section == "query1m" {
        query::run(quick)?;
    }
    if matches!(section, "qemu" | "all") {
        peers::qemu(quick)?;
    }
    if section == "uplink" {
        uplink::run(quick)?;
    }
    Ok(())
}

fn host_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!(
        "{} ({}), {} CPUs",
        cpu,
        std::env::consts::ARCH,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    )
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.expect("at least one run"))
}

// ---------------------------------------------------------------------------------------------
// decode

fn decode(quick: bool) -> Result<()> {
    let target = if quick { 16 << 20 } else { 128 << 20 };
    // The capture minus its banner line, repeated: a long session of real events and responses.
    let body = &CAPTURE[CAPTURE
        .iter()
        .position(|&b| b == b'\n')
        .map_or(0, |i| i + 1)..];
    let mut input = Vec::with_capacity(target + body.len());
    input.extend_from_slice(b"Asterisk Call Manager/11.0.0\r\n");
    while input.len() < target {
        input.extend_from_slice(body);
    }
    let mb = input.len() as f64 / 1e6;
    let chunk = 64 * 1024;
    let (ours, (frames, cdrs)) = best_of(3, || {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::with_capacity(2 * chunk);
        let (mut frames, mut cdrs) = (0u64, 0u64);
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(f) = dec.decode(&mut buf) {
                frames += 1;
                if let Frame::Message(m) = &f {
                    cdrs += u64::from(m.is_event("Cdr"));
                }
            }
        }
        (frames, cdrs)
    });
    let finder = memchr::memmem::Finder::new(b"\r\n\r\n");
    let (limit, terminators) = best_of(3, || {
        // Same chunking, carrying 3 bytes so terminators split across chunks are found.
        let mut n = 0u64;
        let mut carry: Vec<u8> = Vec::new();
        for piece in input.chunks(chunk) {
            carry.extend_from_slice(piece);
            n += finder.find_iter(&carry).count() as u64;
            let keep = carry.len().min(3);
            carry.drain(..carry.len() - keep);
        }
        n
    });
    let ours_mbs = mb / ours.as_secs_f64();
    let limit_mbs = mb / limit.as_secs_f64();
    println!(
        "| AMI decode, MB/s ({mb:.0} MB of mixed_session.bin, {frames} frames, {cdrs} Cdr) | {ours_mbs:.0} | {limit_mbs:.0} (memchr scan, {terminators} terminators) | {:.2} | ours frames, splits fields and keeps raw bytes; the limit only finds terminators |",
        ours_mbs / limit_mbs
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ingest

fn generate_events(n: usize) -> Vec<Vec<u8>> {
    let mut generator = CallGenerator::new(GeneratorOptions {
        seed: 7,
        ..Default::default()
    });
    let mut out = Vec::with_capacity(n);
    let mut now = 1_795_331_257;
    while out.len() < n {
        out.extend(generator.next_call(now));
        now += 3;
    }
    out.truncate(n);
    out
}

fn pbx_config(port: u16) -> PbxConfig {
    // The config file's defaults but for the account: the default config has no [[pbx]] to
    // start from, and the parser is what fills a real box's defaults in.
    let toml = format!(
        "[[pbx]]\nname = \"bench\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"bench\"\n\
         secret = \"bench\"\nauth = \"plain\"\ntimezone = \"Europe/Moscow\"\n"
    );
    match Config::parse(&toml, "cdrbox-bench PBX") {
        Ok(mut c) => c.pbx.remove(0),
        // A constant of this file, not user input.
        Err(e) => panic!("the bench PBX config is invalid: {e}"),
    }
}

fn storage(dir: &Path) -> StorageConfig {
    let mut s = Config::default_config().storage;
    s.path = dir.to_path_buf();
    s
}

/// A PBX that logs the client in and then writes `events` as fast as the socket takes them.
/// A PBX that logs the box in and writes `events` as fast as loopback takes them, in 60 KiB
/// writes. Its thread returns the longest single write: a real Asterisk ends the session when
/// one write blocks past the user's `writetimeout` (default 100 ms).
fn blast_server(events: Arc<Vec<Vec<u8>>>) -> Result<(u16, std::thread::JoinHandle<Duration>)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let h = std::thread::spawn(move || {
        let mut longest = Duration::ZERO;
        let Ok((mut s, _)) = listener.accept() else {
            return longest;
        };
        let _ = s.write_all(b"Asterisk Call Manager/11.0.0\r\n");
        let mut got = Vec::new();
        let mut b = [0u8; 512];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(0) | Err(_) => return longest,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
        let id = String::from_utf8_lossy(&got)
            .lines()
            .find_map(|l| l.strip_prefix("ActionID: ").map(str::to_string))
            .unwrap_or_default();
        let _ = s.write_all(
            format!(
                "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
            )
            .as_bytes(),
        );
        let mut batch = Vec::with_capacity(64 * 1024);
        for e in events.iter() {
            batch.extend_from_slice(e);
            if batch.len() >= 60 * 1024 {
                let t = Instant::now();
                if s.write_all(&batch).is_err() {
                    return longest;
                }
                longest = longest.max(t.elapsed());
                batch.clear();
            }
        }
        let _ = s.write_all(&batch);
        // Keep the session open (answering nothing) until the client logs off.
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        longest
    });
    Ok((port, h))
}

fn ingest(quick: bool) -> Result<()> {
    let n = if quick { 5_000 } else { 50_000 };
    let events = Arc::new(generate_events(n));
    let bench_dir = bench_root()?.join("ingest");
    let _ = std::fs::remove_dir_all(&bench_dir);
    std::fs::create_dir_all(&bench_dir)?;

    // Ours: socket → decoder → session → CallRecord → ring (fdatasync) → SQLite group commits.
    let (port, server) = blast_server(events.clone())?;
    let pbx = pbx_config(port);
    let ctx = Arc::new(context_of(&pbx).context("bench PBX context")?);
    let mut st = storage(&bench_dir.join("ours"));
    st.flush_interval = Duration::from_millis(1000);
    let (journal, _) = Journal::open(&st, cdrbox::clock::Clock::fixed_wall(1_795_331_257))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sink: Arc<dyn RecordSink> = Arc::new(journal.clone());
    let c2 = ctx.clone();
    let started = Instant::now();
    let link = rt.spawn(run_link(
        LinkConfig::from_pbx(&pbx),
        sink,
        Arc::new(move |m: &AmiMessage, t| CallRecord::from_event(m, &c2, t)),
        cdrbox::clock::Clock::fixed_wall(1_795_331_257),
        stop_rx,
    ));
    let deadline = Instant::now() + Duration::from_secs(300);
    while journal.counters().records < n as u64 {
        if Instant::now() > deadline {
            bail!(
                "ingest: only {} of {n} records arrived",
                journal.counters().records
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    journal.flush()?;
    let ours = started.elapsed();
    let committed = journal.counters().inserted;
    let _ = stop_tx.send(true);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), link).await;
    });
    journal.shutdown();
    let _ = server.join();
    if committed != n as u64 {
        bail!("ingest: committed {committed} of {n}");
    }

    // Limit: the same rows, parsed beforehand, inserted in one transaction.
    let records: Vec<CallRecord> = events
        .iter()
        .filter_map(|e| AmiMessage::parse(e))
        .map(|m| CallRecord::from_event(&m, &ctx, 1_795_331_257))
        .collect();
    let db = bench_dir.join("limit.sqlite");
    let limit = {
        let conn = rusqlite::Connection::open(&db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE cdr(id INTEGER PRIMARY KEY, identity BLOB NOT NULL UNIQUE, pbx TEXT,
               unique_id TEXT, start_utc INTEGER, end_utc INTEGER, disposition TEXT, json TEXT, raw BLOB);
             CREATE INDEX cdr_start ON cdr(start_utc);",
        )?;
        let t = Instant::now();
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO cdr(identity,pbx,unique_id,start_utc,end_utc,disposition,json,raw) VALUES (?,?,?,?,?,?,?,?)
                 ON CONFLICT DO NOTHING",
            )?;
            for r in &records {
                stmt.execute(rusqlite::params![
                    &r.identity[..],
                    r.pbx,
                    r.unique_id,
                    r.start.utc,
                    r.end.utc,
                    r.disposition.as_str(),
                    r.to_json().to_string(),
                    r.raw
                ])?;
            }
        }
        tx.commit()?;
        t.elapsed()
    };
    let ours_rate = n as f64 / ours.as_secs_f64();
    let limit_rate = n as f64 / limit.as_secs_f64();
    println!(
        "| end-to-end ingest, CDR/s ({n} CDRs, loopback socket → committed journal) | {ours_rate:.0} | {limit_rate:.0} (pre-parsed rows, one rusqlite transaction) | {:.2} | ours includes TCP, framing, parsing, time zones, identity, ring fdatasyncs and group commits |",
        ours_rate / limit_rate
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// shared by the sections

fn bench_root() -> Result<PathBuf> {
    let root = std::env::var_os("CDRBOX_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    Ok(root)
}
