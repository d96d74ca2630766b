//! Memory on the ingest path is bounded by bytes, not rows (issue 10 item 5, issue 11 item 4):
//! the real `cdrbox run` against a hostile PBX whose records are ~1 MB each (60,000 custom
//! fields, ~7 MB once parsed), and a journal whose byte bound is reached while SQLite is full.
//! Peaks come from the child's VmHWM with a generous margin; nothing here is timed.

use crate::hostile_pbx;
use crate::real_box;

use std::process::{Command, Stdio};
use std::time::Duration;

use cdrbox::journal::{JournalPaths, JournalReader};

/// Huge records sent by the hostile PBX. Before the byte bounds, 200 of them left the box at
/// ~1 GB: the commit thread kept up to 2,048 records in memory and read up to 1,000 back for one
/// commit, whatever their size.
const N: usize = 40;
/// The bound asserted: the floor (~10 MB), the memory queue (`memory_queue_kb` default 16 MiB),
/// the commit thread's cache and one commit's read-back (1 + 2 MiB), one record being parsed,
/// encoded and written (~7 + 3 + 3 MB) — with room for the allocator's slack.
const PEAK_LIMIT_KIB: u64 = 160 * 1024;

/// (rows stored, records counted lost in the gap ledger), or `None` before the journal exists.
fn stored_and_lost(paths: &JournalPaths) -> Option<(u64, u64)> {
    let reader = JournalReader::open(paths).ok()?;
    let rows = reader.rows().ok()?;
    let lost = reader.gaps(None, None).ok()?.iter().map(|g| g.lost).sum();
    Some((rows, lost))
}

#[test]
fn huge_records_from_a_hostile_pbx_stay_within_the_byte_bounds() {
    let pbx = hostile_pbx::HostilePbx::start(N, 940_000);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cdrbox.toml");
    // A few seconds between commits, so records wait in the journal (where the old count
    // bounds let them pile up) rather than going straight into SQLite.
    std::fs::write(
        &config,
        format!(
            "[[pbx]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"u\"\nsecret = \"s\"\nauth = \"plain\"\n\n[storage]\npath = \"{}\"\nflush_interval_ms = 3000\n\n[web]\nlisten = \"127.0.0.1:{}\"\n\n[display]\ndriver = \"none\"\n",
            pbx.addr.port(),
            dir.path().join("data").display(),
            real_box::free_port()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let paths = JournalPaths::from_path(&dir.path().join("data"));
    let mut last = None;
    real_box::wait(
        "every huge record stored or counted lost",
        Duration::from_secs(600),
        || {
            last = stored_and_lost(&paths);
            last.is_some_and(|(rows, lost)| rows + lost >= N as u64)
        },
    );
    let peak = real_box::status_kib(pid, "VmHWM:");
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let (rows, lost) = last.unwrap_or_default();
    eprintln!(
        "{N} records of ~0.94 MB: {rows} stored, {lost} dropped at the bound; peak RSS {peak} KiB"
    );
    assert!(status.success(), "cdrbox run ended with {status}");
    assert_eq!(
        rows + lost,
        N as u64,
        "every record stored or in the gap ledger"
    );
    assert!(rows > 0, "huge records are stored, not all refused");
    assert!(
        peak > 0 && peak < PEAK_LIMIT_KIB,
        "peak RSS {peak} KiB, bound {PEAK_LIMIT_KIB} KiB"
    );
}
