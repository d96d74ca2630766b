//! Regression (found by the 500-kill crash campaign): a SIGTERM that arrives while `cdrbox run`
//! is still starting on a big journal must end in the clean stop with exit 0, not in the default
//! kill (exit by signal 15). Open used to run `quick_check` itself; now the check runs in the
//! background after start, so this also pins that a stop interrupts a check still reading.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::box_process;

use box_process::{spawn_run, terminate, BoxConfig};
use cdrbox::config::Config;
use cdrbox::journal::{Journal, JournalPaths};

#[test]
fn sigterm_while_the_journal_opens_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut st = Config::default_config().storage;
    st.path = data.clone();
    let (j, _) = Journal::open(&st, cdrbox::clock::Clock::fixed_wall(1_795_331_257)).unwrap();
    j.shutdown();
    let db = JournalPaths::from_path(&data).db;
    // Pad the database so opening it (quick_check reads every page) takes a while.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE pad(x);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 192)
         INSERT INTO pad SELECT randomblob(1048576) FROM c;",
    )
    .unwrap();
    drop(conn);

    let config = BoxConfig::new(dir.path())
        .pbx("p", 9, ("u", "s"), &[])
        .storage(&[])
        .web(0, &[])
        .no_display()
        .write();
    let mut child = spawn_run(&config, "warn", Stdio::null());
    let pid = child.id();
    // Wait until the process has the database open: the journal open is under way.
    let db_name = db.file_name().unwrap().to_owned();
    let t = Instant::now();
    let opened = loop {
        let has_db = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|p| p.file_name() == Some(db_name.as_os_str()))
                })
            })
            .unwrap_or(false);
        if has_db || t.elapsed() > Duration::from_secs(20) {
            break has_db;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    assert!(opened, "cdrbox run never opened the journal");
    let status = terminate(&mut child);
    assert!(
        status.success(),
        "SIGTERM during start-up must stop cleanly, got {status:?}"
    );
}
