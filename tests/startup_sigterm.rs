//! Regression (found by the 500-kill crash campaign): a SIGTERM that arrives while `cdrbox run`
//! is still starting on a big journal must end in the clean stop with exit 0, not in the default
//! kill (exit by signal 15). Open used to run `quick_check` itself; now the check runs in the
//! background after start, so this also pins that a stop interrupts a check still reading.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

    let config = dir.path().join("cdrbox.toml");
    std::fs::write(
        &config,
        format!(
            "[[pbx]]\nname = \"p\"\nhost = \"127.0.0.1\"\nport = 9\nusername = \"u\"\nsecret = \"s\"\n\n[storage]\npath = \"{}\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n[display]\ndriver = \"none\"\n",
            data.display()
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
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM during start-up must stop cleanly, got {status:?}"
    );
}
