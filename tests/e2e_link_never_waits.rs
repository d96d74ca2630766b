//! The real `cdrbox run` binary never makes the PBX wait (issue 10 item 5): while its journal
//! database is locked by another program (a stalled journal), a fake manager writes a burst of
//! Cdr events; none of its writes may block for Asterisk's default `writetimeout` (100 ms, after
//! which a real Asterisk ends the session and discards its queued events), the link is never
//! dropped, and once the lock goes every call is in the journal exactly once — read back from
//! the ring, which held them while SQLite could not take them.

use crate::cli_support;
// Only the fake manager's login, session and Cdr events are used here.
use crate::support::fake_ami;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli_support::{free_port, http_json, total, wait, BoxConfig, RunningBox, PASS};
use fake_ami::{cdr_event, FakeAmi, Pong};

/// Calls in the burst: ~25 MB of ring entries, far more than the commit side keeps in memory
/// (2 MiB of copies), well inside the default 32 MiB ring.
const TOTAL: usize = 20_000;

/// Takes SQLite's write lock on `db` (as another program would) until `release` is set.
fn lock_database(db: std::path::PathBuf, release: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        while !release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    holder
}

#[test]
fn a_burst_while_the_journal_is_stalled_never_blocks_the_pbx_and_loses_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let go = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicBool::new(false));
    let (go2, sent2) = (go.clone(), sent.clone());
    // After login the fake PBX waits for `go`, then writes the burst as 10-event writes, one
    // every 2 ms (5,000 CDR/s: a fast burst the link must read as it comes).
    let pbx = rt.block_on(FakeAmi::start(move |mut c| {
        let (go, sent) = (go2.clone(), sent2.clone());
        async move {
            let Some(done) = c.open(Pong::Modern, None).await else {
                return;
            };
            while !go.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let start = tokio::time::Instant::now();
            for batch in 0..TOTAL / 10 {
                let blob: Vec<u8> = (0..10)
                    .flat_map(|i| cdr_event(&format!("77.{}", batch * 10 + i), b"\"\" <>"))
                    .collect();
                if c.send(&blob).await.is_err() {
                    return;
                }
                tokio::time::sleep_until(start + Duration::from_millis(2) * (batch as u32 + 1))
                    .await;
            }
            sent.store(true, Ordering::SeqCst);
            let _ = done.await;
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let config = BoxConfig::recording(
        dir.path(),
        "pbx1",
        pbx.addr.port(),
        fake_ami::LOGIN,
        &[],
        web,
    );
    let db = cdrbox::journal::JournalPaths::from_path(&config.data()).db;
    let config = config.write();
    let running = RunningBox::start(&config, PASS);
    let link_up = || {
        let (_, s) = http_json(web, "GET", "/api/status", "");
        s["links"][0]["state"] == "up"
    };
    wait("the link logged in", Duration::from_secs(60), link_up);

    let release = Arc::new(AtomicBool::new(false));
    let locker = lock_database(db, release.clone());
    go.store(true, Ordering::SeqCst);
    let t = Instant::now();
    wait("the burst sent", Duration::from_secs(120), || {
        sent.load(Ordering::SeqCst)
    });
    eprintln!(
        "burst of {TOTAL} sent in {:?} with the journal locked",
        t.elapsed()
    );
    let (_, s) = http_json(web, "GET", "/api/status", "");
    assert!(
        s["alarms"].to_string().contains("JOURNAL STALL") || total(web) < TOTAL as u64,
        "the journal really was stalled while the burst came: {s}"
    );
    release.store(true, Ordering::SeqCst);
    locker.join().unwrap();

    wait("every call committed", Duration::from_secs(120), || {
        total(web) >= TOTAL as u64
    });
    assert_eq!(total(web), TOTAL as u64, "each call once");
    let (_, s) = http_json(web, "GET", "/api/status", "");
    assert!(
        !s["alarms"].to_string().contains("RECORDS DROPPED"),
        "nothing dropped: {s}"
    );
    assert_eq!(pbx.stats.connections(), 1, "the link was never dropped");
    let max = pbx.stats.max_write();
    assert!(
        max < Duration::from_millis(100),
        "a PBX write (10 Cdr events) blocked for {max:?}: Asterisk would end the session"
    );
    eprintln!("longest PBX write {max:?}");
    running.stop();
}
