//! `cdrbox-bench` rows that run other programs: the panoramisk peers (Python), `cdrbox run` as a
//! process (RSS, CPU, idle wake-ups, start-up), exports of a million records against `sqlite3`,
//! and the aarch64 binary under qemu-user. Prints table rows; must not assert anything timed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{bench_root, blast_server, generate_events, pbx_config, storage};
use cdrbox::ami::AmiMessage;
use cdrbox::journal::{Journal, JournalPaths};
use cdrbox::record::CallRecord;
use cdrbox::runtime::context_of;
use cdrbox::sim::{CallGenerator, GeneratorOptions, SimOptions};
use cdrbox::sink::RecordSink;

const PEER: &str = "tests/peers/panoramisk_bench.py";
const CAPTURE_PATH: &str = "tests/fixtures/ami/mixed_session.bin";

fn python_peer(args: &[String]) -> Result<serde_json::Value> {
    let out = Command::new("python3")
        .arg(PEER)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .context("running python3 (is it installed?)")?;
    if !out.status.success() {
        bail!("{PEER} {args:?} failed (pip install panoramisk?)");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("peer output {line:?}"))
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// Decode and ingest against panoramisk.
pub fn run(quick: bool) -> Result<()> {
    // Decode: the same capture, repeated, fed in 64 KiB chunks; ours re-measured here so both
    // numbers come from the same minute.
    let target: usize = if quick { 8 << 20 } else { 32 << 20 };
    let peer = python_peer(&["decode".into(), CAPTURE_PATH.into(), target.to_string()])?;
    let (ours_mbs, frames) = ours_decode(target);
    let peer_mbs = f(&peer, "bytes") / 1e6 / f(&peer, "seconds");
    println!(
        "| AMI decode, MB/s ({:.0} MB of mixed_session.bin) | {ours_mbs:.0} | {peer_mbs:.1} (panoramisk AMIProtocol.data_received, {} messages) | {:.0} | ours {frames} frames, keeps raw bytes and duplicate keys; panoramisk decodes to str and splits on blank lines |",
        target as f64 / 1e6,
        peer["events"],
        ours_mbs / peer_mbs
    );

    // Ingest: the same generated events from the same blast server, to committed rows.
    let n = if quick { 2_000 } else { 20_000 };
    let dir = bench_root()?.join("peers");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let events = Arc::new(generate_events(n));
    let ours = proc_ingest(&[], &cdrbox_bin()?, events.clone(), &dir.join("ours"))?;
    let (port, server) = blast_server(events)?;
    let db = dir.join("panoramisk.sqlite");
    let peer = python_peer(&[
        "logger".into(),
        "127.0.0.1".into(),
        port.to_string(),
        n.to_string(),
        db.display().to_string(),
    ])?;
    let _ = server.join();
    let ours_rate = n as f64 / ours.secs;
    let peer_rate = n as f64 / f(&peer, "seconds");
    println!(
        "| end-to-end ingest, CDR/s ({n} CDRs, socket → committed, both as processes) | {ours_rate:.0} | {peer_rate:.0} (panoramisk + Python sqlite3, commit per event) | {:.1} | ours: `cdrbox run` incl. its start-up, ring fdatasync + group commits; peer: from connect |",
        ours_rate / peer_rate
    );
    Ok(())
}

fn ours_decode(target: usize) -> (f64, u64) {
    use bytes::BytesMut;
    use cdrbox::ami::Decoder;
    let cap = super::CAPTURE;
    let body = &cap[cap.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1)..];
    let mut input = b"Asterisk Call Manager/11.0.0\r\n".to_vec();
    while input.len() < target {
        input.extend_from_slice(body);
    }
    let (best, frames) = super::best_of(3, || {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::new();
        let mut frames = 0u64;
        for piece in input.chunks(64 * 1024) {
            buf.extend_from_slice(piece);
            while dec.decode(&mut buf).is_some() {
                frames += 1;
            }
        }
        frames
    });
    (input.len() as f64 / 1e6 / best.as_secs_f64(), frames)
}

/// The release `cdrbox` next to this bench binary.
pub(super) fn cdrbox_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("cdrbox");
    if !bin.exists() {
        bail!(
            "{} missing: build it first (cargo build --release)",
            bin.display()
        );
    }
    Ok(bin)
}

fn write_config(dir: &Path, port: u16, extra_pbx: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let cfg = dir.join("cdrbox.toml");
    // `CDRBOX_BENCH_STORAGE="memory_queue_kb = 4096"`: more [storage] lines, to measure what a
    // bound costs (each `;` starts a new line).
    let extra_storage = std::env::var("CDRBOX_BENCH_STORAGE")
        .unwrap_or_default()
        .replace(';', "\n");
    std::fs::write(
        &cfg,
        format!(
            "[[pbx]]\nname = \"bench\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"bench\"\nsecret = \"bench\"\nauth = \"plain\"\ntimezone = \"Europe/Moscow\"\n{extra_pbx}\n[storage]\npath = \"{}\"\nflush_interval_ms = 1000\n{extra_storage}\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n[display]\ndriver = \"none\"\n",
            dir.join("data").display()
        ),
    )?;
    Ok(cfg)
}

fn spawn_run(wrapper: &[&str], bin: &Path, cfg: &Path) -> Result<Child> {
    let mut cmd = match wrapper.split_first() {
        Some((w, rest)) => {
            let mut c = Command::new(w);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("CDRBOX_BENCH_STDERR").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))
}

/// utime + stime of the process (all threads), seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 (1-based).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let v: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    v.iter().sum::<u64>() as f64 / hz
}

/// A counter from /proc/PID/io (`write_bytes:` is what the process made the block layer write).
fn io_counter(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Context switches (voluntary + involuntary) summed over every thread: wake-ups.
fn switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn committed(db: &Path) -> u64 {
    read_number(db, "SELECT count(*) FROM cdr") as u64
}

/// One number read from the journal `db` (read-only, beside the running box); 0 while the
/// file is not there or not readable yet.
fn read_number(db: &Path, sql: &str) -> i64 {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or(0)
}

/// The newest row's id: O(1), unlike `count(*)`, which on a million rows would take the CPU
/// from the box this polls while it starts.
fn newest_id(db: &Path) -> i64 {
    read_number(db, "SELECT coalesce(max(id), 0) FROM cdr")
}

pub(super) fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

struct ProcRun {
    secs: f64,
    peak_kib: u64,
    steady_kib: u64,
    cpu: f64,
    /// Records dropped at the journal's memory bound (in the gap ledger's `lost`).
    dropped: u64,
    /// The blast PBX's longest single write (Asterisk's `writetimeout` is measured on this).
    longest_write: Duration,
}

/// Records the gap ledger counts as dropped at the memory bound.
fn dropped(db: &Path) -> u64 {
    read_number(db, "SELECT coalesce(sum(lost), 0) FROM gaps") as u64
}

/// `cdrbox run` (maybe under a wrapper such as qemu) against a blast server sending `events`:
/// time from spawn to all rows committed, RSS, CPU.
fn proc_ingest(
    wrapper: &[&str],
    bin: &Path,
    events: Arc<Vec<Vec<u8>>>,
    dir: &Path,
) -> Result<ProcRun> {
    let n = events.len() as u64;
    let _ = std::fs::remove_dir_all(dir);
    let (port, server) = blast_server(events)?;
    let cfg = write_config(dir, port, "")?;
    let db = JournalPaths::from_path(&dir.join("data")).db;
    let t = Instant::now();
    let mut child = spawn_run(wrapper, bin, &cfg)?;
    let pid = child.id();
    let mut peak = 0;
    loop {
        peak = peak.max(cdrbox::health::status_kib(pid, "VmRSS:"));
        // A record dropped at the memory bound is counted, not stored: it ends the run too.
        if committed(&db) + dropped(&db) >= n {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            bail!("cdrbox run exited early: {st}");
        }
        if t.elapsed() > Duration::from_secs(900) {
            stop(&mut child);
            bail!("only {} of {n} rows after 900 s", committed(&db));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(2));
    let steady = cdrbox::health::status_kib(pid, "VmRSS:");
    peak = peak.max(cdrbox::health::status_kib(pid, "VmHWM:"));
    stop(&mut child);
    let longest_write = server.join().unwrap_or_default();
    Ok(ProcRun {
        secs,
        peak_kib: peak,
        steady_kib: steady,
        cpu,
        dropped: dropped(&db),
        longest_write,
    })
}

/// RSS and CPU per CDR during a burst; idle CPU and wake-ups per minute.
pub fn proc_rows(quick: bool) -> Result<()> {
    let n = if quick { 5_000 } else { 50_000 };
    let dir = bench_root()?.join("proc");
    let floor = floor_kib()?;
    // `CDRBOX_BENCH_WRAPPER="heaptrack -o /tmp/x"`: runs the burst's box under a profiler (the
    // RSS columns are then the wrapper's, not the box's; its own report is what counts).
    let wrapper = std::env::var("CDRBOX_BENCH_WRAPPER").unwrap_or_default();
    let wrapper: Vec<&str> = wrapper.split_whitespace().collect();
    let r = proc_ingest(
        &wrapper,
        &cdrbox_bin()?,
        Arc::new(generate_events(n)),
        &dir.join("burst"),
    )?;
    println!(
        "| `cdrbox run` burst ({n} CDRs): CDR/s, peak / steady RSS, CPU per CDR | {:.0} CDR/s; {} / {} KiB; {:.0} µs; {} dropped; longest PBX write {} ms | {floor} KiB (floor: logged in, no calls yet) | {:.2} / {:.2} (peak / steady over floor) | process level, from spawn (start-up included) to the last row committed; VmHWM, VmRSS 2 s after; utime+stime / n; the PBX writes 60 KiB at a time as fast as loopback takes them, and the link stops reading for ≤ 1 s at a stretch while the journal's memory queue is ¾ full |",
        n as f64 / r.secs,
        r.peak_kib,
        r.steady_kib,
        r.cpu / n as f64 * 1e6,
        r.dropped,
        r.longest_write.as_millis(),
        r.peak_kib as f64 / floor.max(1) as f64,
        r.steady_kib as f64 / floor.max(1) as f64
    );

    idle_row(quick)
}

/// RSS of `cdrbox run` logged in to a PBX that sends no calls: the floor, measured in the same
/// run as the burst it is compared with.
fn floor_kib() -> Result<u64> {
    let dir = bench_root()?.join("proc");
    let (rt, sim) = idle_sim()?;
    let cfg = write_config(&dir.join("floor"), sim.local_addr().port(), "")?;
    let mut child = spawn_run(&[], &cdrbox_bin()?, &cfg)?;
    let pid = child.id();
    let t = Instant::now();
    while sim.logged_in() == 0 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past start-up (ring created, background check done).
    std::thread::sleep(Duration::from_secs(3));
    let rss = cdrbox::health::status_kib(pid, "VmRSS:");
    stop(&mut child);
    rt.block_on(sim.stop());
    Ok(rss)
}

/// Idle CPU, wake-ups and disk writes per minute, by thread: logged in to a simulated PBX that
/// sends no calls but answers pings (`cdrbox-bench idle` runs only this).
/// `CDRBOX_BENCH_IDLE_BIN=/path/to/cdrbox` measures another build (e.g. main's) in the same run.
pub fn idle_row(quick: bool) -> Result<()> {
    let bin = match std::env::var_os("CDRBOX_BENCH_IDLE_BIN") {
        Some(b) => PathBuf::from(b),
        None => cdrbox_bin()?,
    };
    let dir = bench_root()?.join("proc");
    let idle = Duration::from_secs(if quick { 15 } else { 60 });
    let (rt, sim) = idle_sim()?;
    let cfg = write_config(&dir.join("idle"), sim.local_addr().port(), "")?;
    let mut child = spawn_run(&[], &bin, &cfg)?;
    let pid = child.id();
    let t = Instant::now();
    while sim.logged_in() == 0 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past the start-up work (the background quick_check and indexes, the journal writer's
    // first day-summary step 30 s after start): the row is the box at rest, which it is from
    // then on for months. CDRBOX_BENCH_IDLE_LEAD_S=3 measures the first minute instead.
    let lead = std::env::var("CDRBOX_BENCH_IDLE_LEAD_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    std::thread::sleep(Duration::from_secs(lead));
    let (c0, s0, by0, w0) = (
        cpu_secs(pid),
        switches(pid),
        switches_by_thread(pid),
        io_counter(pid, "write_bytes:"),
    );
    std::thread::sleep(idle);
    let (c1, s1, by1, w1) = (
        cpu_secs(pid),
        switches(pid),
        switches_by_thread(pid),
        io_counter(pid, "write_bytes:"),
    );
    let mins = idle.as_secs_f64() / 60.0;
    let mut by: Vec<(String, f64)> = by1
        .iter()
        .map(|(k, n)| {
            let before = by0.iter().find(|(b, _)| b == k).map_or(0, |(_, m)| *m);
            (k.clone(), n.saturating_sub(before) as f64 / mins)
        })
        .collect();
    by.sort_by(|a, b| b.1.total_cmp(&a.1));
    let by_text: Vec<String> = by.iter().map(|(k, n)| format!("{k} {n:.0}")).collect();
    let rss = cdrbox::health::status_kib(pid, "VmRSS:");
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    stop(&mut child);
    rt.block_on(sim.stop());
    println!(
        "| idle, logged in, no calls ({:.0} s, from {lead} s after logged in) | {:.3} % CPU; {:.0} wake-ups/min; {:.0} bytes written to disk/min | — | — | {threads} threads; context switches of all threads per minute, by thread: {}; RSS {rss} KiB; pings every 20 s (default); {} |",
        idle.as_secs_f64(),
        (c1 - c0) / idle.as_secs_f64() * 100.0,
        (s1 - s0) as f64 / mins,
        w1.saturating_sub(w0) as f64 / mins,
        by_text.join(", "),
        bin.display()
    );
    Ok(())
}

/// Builds a journal of `n` records through the Journal API (the writer's own path).
fn build_journal(dir: &Path, n: usize) -> Result<Duration> {
    build_journal_at(dir, n, 1_700_000_000, 3)
}

/// [`build_journal`] with the first call at `first_utc` and a new call every `seconds_per_call`
/// (the query section spreads a million records over two years, as a busy office would).
pub(super) fn build_journal_at(
    dir: &Path,
    n: usize,
    first_utc: i64,
    seconds_per_call: i64,
) -> Result<Duration> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let mut st = storage(dir);
    st.flush_records = 5_000;
    let (journal, _) = Journal::open(&st, cdrbox::clock::Clock::fixed_wall(1_795_331_257))?;
    let ctx = context_of(&pbx_config(5038))?;
    let mut generator = CallGenerator::new(GeneratorOptions {
        seed: 11,
        ..Default::default()
    });
    let t = Instant::now();
    let mut now = first_utc;
    let mut made = 0;
    while made < n {
        let mut batch = 0;
        while batch < 5_000 && made < n {
            for e in generator.next_call(now) {
                if made >= n {
                    break;
                }
                if let Some(m) = AmiMessage::parse(&e) {
                    // This producer can wait: the memory queue (1 MiB by default) would drop
                    // a 5,000-record batch handed over at once.
                    while journal.behind() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    journal.record(CallRecord::from_event(&m, &ctx, now));
                    made += 1;
                    batch += 1;
                }
            }
            now += seconds_per_call;
        }
        journal.flush()?;
    }
    journal.flush()?;
    let inserted = journal.counters().inserted;
    journal.shutdown();
    if inserted < n as u64 {
        bail!("journal holds {inserted} of {n}");
    }
    Ok(t.elapsed())
}

/// Runs `cmd` with stdout to `out`, returns (seconds, peak RSS KiB). The peak is VmHWM polled
/// from /proc (wait4's ru_maxrss would include the forking parent's image).
fn timed(cmd: &mut Command, out: &Path) -> Result<(f64, u64)> {
    let t = Instant::now();
    let mut child = cmd
        .stdout(std::fs::File::create(out)?)
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        peak = peak.max(cdrbox::health::status_kib(pid, "VmHWM:"));
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok((secs, peak))
}

/// Context switches per thread name, most first (where idle wake-ups come from).
fn switches_by_thread(pid: u32) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let st = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let name = st
                .lines()
                .find_map(|l| l.strip_prefix("Name:"))
                .unwrap_or("?")
                .trim()
                .to_string();
            let n: u64 = st
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            match out.iter_mut().find(|(k, _)| *k == name) {
                Some(slot) => slot.1 += n,
                None => out.push((name, n)),
            }
        }
    }
    out
}

const SQLITE_COLUMNS: &str = "unique_id, account_code, source, destination, destination_context, caller_id, channel, destination_channel, last_application, last_data, start_raw, answer_raw, end_raw, duration, billable_seconds, disposition, ama_flags, user_field, pbx, direction, ring_seconds, queue, agent, linked_id, sequence, custom_fields";

/// Export of a million records and start-up with a million records.
pub fn million(quick: bool, section: &str) -> Result<()> {
    let n = if quick { 100_000 } else { 1_000_000 };
    let dir = bench_root()?.join("million");
    let data = dir.join("data");
    let built = build_journal(&data, n)?;
    let cfg = write_config(&dir, 5038, "")?;
    let db = JournalPaths::from_path(&data).db;
    let bin = cdrbox_bin()?;
    let db_mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    eprintln!("built a {n}-record journal ({db_mb:.0} MB) in {built:.1?}");

    if matches!(section, "export1m" | "all") {
        let ours_out = dir.join("ours.csv");
        let (ours, ours_rss) = timed(
            Command::new(&bin)
                .args(["export", "--format", "csv", "--config"])
                .arg(&cfg),
            &ours_out,
        )?;
        let peer_out = dir.join("sqlite3.csv");
        let (peer, peer_rss) = timed(
            Command::new("sqlite3")
                .args(["-readonly", "-csv", "-header"])
                .arg(&db)
                .arg(format!(
                    "SELECT {SQLITE_COLUMNS} FROM cdr ORDER BY start_utc, id"
                )),
            &peer_out,
        )?;
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        println!(
            "| export of {n} records to CSV (CLI), s | {ours:.2} s, peak RSS {ours_rss} KiB, {:.0} MB | {peer:.2} s, peak RSS {peer_rss} KiB, {:.0} MB (`sqlite3 -csv`, same 26 columns, raw stored values) | {:.2} (time, peer/ours) | ours renders RFC 3339 times, JSON custom fields and quoting per the standard profile; the DB is {db_mb:.0} MB |",
            size(&ours_out),
            size(&peer_out),
            peer / ours
        );
        println!(
            "| export of {n} records over HTTP | pending web | — | — | the web server is not merged yet |"
        );
    }
    if matches!(section, "startup1m" | "all") {
        let full = startup(&bin, &dir, &data, "million")?;
        let empty_dir = dir.join("empty");
        let _ = std::fs::remove_dir_all(&empty_dir);
        let empty = startup(&bin, &empty_dir, &empty_dir.join("data"), "empty")?;
        println!(
            "| start-up to recording with {n} records: spawn → logged in / → first new CDR committed | {:.2} s / {:.2} s | {:.2} s / {:.2} s (empty journal) | {:.2} | first CDR committed includes flush_interval_ms = 1000 |",
            full.0, full.1, empty.0, empty.1, full.0 / empty.0
        );
    }
    Ok(())
}

/// (seconds to logged in, seconds to the first new CDR in the database).
fn startup(bin: &Path, dir: &Path, data: &Path, _label: &str) -> Result<(f64, f64)> {
    let (rt, sim) = idle_sim()?;
    let cfg = write_config(dir, sim.local_addr().port(), "")?;
    // The journal lives in `data` (write_config points at dir/data).
    debug_assert_eq!(dir.join("data"), data);
    let db = JournalPaths::from_path(data).db;
    let before = newest_id(&db);
    let t = Instant::now();
    let mut child = spawn_run(&[], bin, &cfg)?;
    while sim.logged_in() == 0 {
        if t.elapsed() > Duration::from_secs(120) {
            stop(&mut child);
            bail!("no login within 120 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let up = t.elapsed().as_secs_f64();
    sim.trigger_random_call();
    while newest_id(&db) <= before {
        if t.elapsed() > Duration::from_secs(120) {
            stop(&mut child);
            bail!("no commit within 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = t.elapsed().as_secs_f64();
    stop(&mut child);
    rt.block_on(sim.stop());
    Ok((up, first))
}

/// The ingest row for the aarch64 binary under qemu-user (emulated), beside the native one.
pub fn qemu(quick: bool) -> Result<()> {
    let arm = PathBuf::from("target/aarch64-unknown-linux-gnu/release/cdrbox");
    if !arm.exists() {
        println!(
            "| ingest, aarch64 under qemu-user (emulated) | skipped | — | — | {} missing: build it with image/cross-build.sh aarch64 |",
            arm.display()
        );
        return Ok(());
    }
    let qemu = "qemu-aarch64-static";
    let n = if quick { 2_000 } else { 10_000 };
    let events = Arc::new(generate_events(n));
    let dir = bench_root()?.join("qemu");
    let native = proc_ingest(&[], &cdrbox_bin()?, events.clone(), &dir.join("native"))?;
    let emu = proc_ingest(&[qemu], &arm, events, &dir.join("arm"))?;
    println!(
        "| end-to-end ingest, CDR/s, aarch64 binary **emulated** by {qemu} ({n} CDRs) | {:.0} | {:.0} (the x86-64 binary, native) | {:.2} | emulation, not a Pi: only says the cross-built binary works and roughly how far it is from native |",
        n as f64 / emu.secs,
        n as f64 / native.secs,
        native.secs / emu.secs
    );
    Ok(())
}

/// A simulated PBX on 127.0.0.1 that makes no calls by itself (the bench triggers them), with
/// the runtime that drives it.
fn idle_sim() -> Result<(tokio::runtime::Runtime, cdrbox::sim::SimHandle)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let sim = rt.block_on(cdrbox::sim::bind(
        "127.0.0.1:0",
        SimOptions {
            username: "bench".into(),
            secret: "bench".into(),
            rate_per_sec: 0.0,
            record_events: false,
            ..SimOptions::default()
        },
    ))?;
    Ok((rt, sim))
}
