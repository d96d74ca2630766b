//! Fault campaign: the simulated PBX (`cdrbox::sim`, in-process) → a TCP fault proxy → a real
//! `cdrbox run` child process. For `CDRBOX_FAULT_SECONDS` (default 20; the documented long run
//! is 600) the proxy injects delay, reorder-free fragmentation, clean drops (FIN, often in the
//! middle of a Cdr), RSTs, black-holes and PBX restarts. Then the exactly-once comparison:
//! `cdrbox export --format json` must hold every Cdr the proxy forwarded whole, once, field by
//! field equal to what the PBX sent, and nothing else. The child's file descriptors and RSS
//! must be flat across its reconnects (the 10,000-reconnect count is `ami_reconnect_soak`).

// Its own module (not via support/mod.rs, which the AMI tests own).
#[path = "support/fault_proxy.rs"]
mod fault_proxy_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdrbox::record::{CallRecord, PbxContext};
use cdrbox::sim::{SimHandle, SimOptions};
use fault_proxy_support::{Cut, FaultProxy, Mode};

/// Starts `cdrbox run`; its log goes to `log` (printed when the campaign fails).
fn spawn_logger(config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start cdrbox run")
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the logger is logged in to the simulator again (or `limit` passes).
async fn wait_logged_in(sim: &SimHandle, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if sim.logged_in() >= 1 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_between_pbx_and_logger_lose_or_duplicate_nothing_delivered_whole() {
    let seconds: u64 = std::env::var("CDRBOX_FAULT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CDRBOX_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xFA17);
    let mut rng = fastrand::Rng::with_seed(seed);

    let opts = SimOptions {
        username: "logger".into(),
        secret: "s3cret".into(),
        rate_per_sec: 25.0,
        poisson: true,
        record_events: true,
        ..SimOptions::default()
    };
    let timezone = opts
        .generator
        .timezone
        .iana_name()
        .unwrap_or("UTC")
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = cdrbox::sim::start(listener, opts).await.unwrap();
    let proxy = FaultProxy::start(sim.local_addr(), seed).await;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("cdrbox.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[pbx]]
name = "faulty"
host = "127.0.0.1"
port = {port}
username = "logger"
secret = "s3cret"
auth = "md5"
timezone = "{timezone}"
ping_interval_ms = 2000
ping_timeout_ms = 1000
connect_timeout_ms = 1000
login_timeout_ms = 2000

[storage]
path = "{data}"
flush_interval_ms = 200

[web]
listen = "127.0.0.1:0"

[display]
driver = "none"
"#,
            port = proxy.addr.port(),
            data = data.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("logger.log");
    let mut child = spawn_logger(&config, &log);
    let log_tail = || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let pid = child.id();
    assert!(
        wait_logged_in(&sim, Duration::from_secs(20)).await,
        "the logger never logged in through the proxy; its log:\n{}",
        log_tail()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (fds0, rss0) = (fds(pid), status_kib(pid, "VmRSS:"));

    // The campaign: a non-fatal spell, then one fatal fault, until the time is up.
    let mut counts: HashMap<&str, u32> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let spell = match rng.u8(0..3) {
            0 => Mode::Clean,
            1 => Mode::Delay,
            _ => Mode::Fragment,
        };
        proxy.set_mode(spell);
        *counts
            .entry(["clean", "delay", "fragment"][spell as usize])
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(rng.u64(300..1500))).await;
        let fault = match rng.u8(0..4) {
            0 => {
                proxy.cut(Cut::Drop);
                "drop"
            }
            1 => {
                proxy.cut(Cut::Reset);
                "rst"
            }
            2 => {
                // Longer than ping interval + timeout: the logger must notice by itself.
                proxy.set_mode(Mode::BlackHole);
                tokio::time::sleep(Duration::from_millis(rng.u64(3300..4500))).await;
                proxy.set_mode(Mode::Clean);
                "black-hole"
            }
            _ => {
                sim.shutdown_event(true);
                "pbx-restart"
            }
        };
        *counts.entry(fault).or_default() += 1;
        // Let the old session die before waiting for the new one.
        tokio::time::sleep(Duration::from_millis(400)).await;
        proxy.set_mode(Mode::Clean);
        assert!(
            wait_logged_in(&sim, Duration::from_secs(40)).await,
            "the logger did not come back after {fault}; its log:\n{}",
            log_tail()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "cdrbox run exited during the campaign"
        );
    }
    proxy.set_mode(Mode::Clean);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (fds1, rss1, hwm) = (
        fds(pid),
        status_kib(pid, "VmRSS:"),
        status_kib(pid, "VmHWM:"),
    );

    // Stop cleanly: everything received is committed at exit.
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "cdrbox run exit after SIGTERM: {status:?}"
    );
    proxy.stop();
    let sent: Vec<Vec<u8>> = sim.events().iter().map(|b| b.to_vec()).collect();
    let delivered = proxy.delivered();
    let stats = sim.stats();
    sim.stop().await;

    // The ground truth is sane: whatever the proxy says it delivered, the PBX sent.
    let sent_set: std::collections::HashSet<&[u8]> = sent.iter().map(|v| &v[..]).collect();
    for d in &delivered {
        assert!(
            sent_set.contains(&d[..]),
            "the proxy delivered a Cdr the PBX never sent:\n{}",
            String::from_utf8_lossy(d)
        );
    }

    let out = Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(["export", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .expect("cdrbox export");
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();

    let ctx = PbxContext::new(
        "faulty",
        &timezone,
        "windows-1252",
        &[cdrbox::record::DEFAULT_TRUNK_PATTERN],
    )
    .unwrap();
    let key = |v: &serde_json::Value| (v["uniqueId"].clone(), v["sequence"].clone());
    let mut expected: HashMap<_, serde_json::Value> = HashMap::new();
    for d in &delivered {
        let r = CallRecord::from_raw(d, &ctx, 0).expect("a delivered Cdr derives a record");
        let j = r.to_json();
        if let Some(prev) = expected.insert(key(&j), j.clone()) {
            assert_eq!(prev, j, "two different Cdrs share UniqueID+Sequence");
        }
    }
    let mut seen: HashMap<_, usize> = HashMap::new();
    for row in &exported {
        *seen.entry(key(row)).or_default() += 1;
        let Some(want) = expected.get(&key(row)) else {
            panic!("exported a record that was never delivered whole: {row}");
        };
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(
                &row[field], value,
                "field {field} of {} differs from what the PBX sent",
                row["uniqueId"]
            );
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "records exported more than once: {dups:?}");
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} Cdrs delivered whole are missing, e.g. {:?}",
        missing.len(),
        expected.len(),
        missing.first()
    );

    let conn = rusqlite::Connection::open_with_flags(
        cdrbox::journal::JournalPaths::from_path(&data).db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    );
    if let Ok(conn) = conn {
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    let l = &proxy.ledger;
    use std::sync::atomic::Ordering::SeqCst;
    eprintln!(
        "fault campaign: {seconds} s, seed {seed}, faults {counts:?}; proxy: {} connections, {} drops, {} RSTs, {} B forwarded, {} B black-holed; PBX sent {} Cdrs ({} generated, {} sessions dropped); {} delivered whole, {} exported, 0 missing, 0 duplicated; logger fds {fds0}→{fds1}, RSS {rss0}→{rss1} KiB (peak {hwm} KiB)",
        l.connections.load(SeqCst),
        l.drops.load(SeqCst),
        l.resets.load(SeqCst),
        l.bytes_to_logger.load(SeqCst),
        l.bytes_discarded.load(SeqCst),
        stats.cdrs_sent,
        stats.cdrs_generated,
        stats.sessions_dropped,
        expected.len(),
        exported.len(),
    );
    assert!(
        l.connections.load(SeqCst) >= 3,
        "too few reconnects to mean anything"
    );
    assert!(!expected.is_empty(), "nothing was delivered");
    assert!(fds1 <= fds0 + 4, "fds grew from {fds0} to {fds1}");
    assert!(
        rss1 <= rss0 + 16 * 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB"
    );
}
