//! The journal holds every caller's number: its directory and files are closed to others
//! whatever the umask, and a journal left open (an older version, a copy, a chmod) is closed
//! again at start with a warning naming each path (issue 11, finding 4). Real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Starts the real `cdrbox run` under `umask 000` (the worst case), waits until the journal
/// is open — the database exists and, when `expect` is given, that text is in the log — then
/// stops it with SIGTERM and returns its log.
fn run_with_umask_000(config: &Path, db: &Path, expect: Option<&str>) -> String {
    let log = config.with_extension("log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{}' run --config '{}'",
            env!("CARGO_BIN_EXE_cdrbox"),
            config.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .env("RUST_LOG", "info")
        .spawn()
        .expect("start cdrbox run");
    let deadline = Instant::now() + Duration::from_secs(60);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    while !(db.exists() && expect.is_none_or(|e| read().contains(e)) && read().contains("web")) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("cdrbox run ended early ({status}): {}", read());
        }
        assert!(
            Instant::now() < deadline,
            "journal not opened in 60 s: {}",
            read()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "cdrbox run stopped badly ({status}): {}",
        read()
    );
    read()
}

#[test]
fn journal_files_are_private_whatever_the_umask_and_loose_ones_are_closed_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").join("journal");
    let config = dir.path().join("cdrbox.toml");
    std::fs::write(
        &config,
        format!(
            "[[pbx]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = 5038\nusername = \"u\"\n\
             secret = \"s\"\n\n[storage]\npath = \"{}\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n[display]\ndriver = \"none\"\n",
            data.display()
        ),
    )
    .unwrap();

    let db = data.join("journal.sqlite");
    let first = run_with_umask_000(&config, &db, None);
    assert_eq!(mode(&data), 0o750, "journal directory under umask 000");
    assert_eq!(mode(&db), 0o600, "journal database under umask 000");
    for side in ["journal.sqlite-wal", "journal.sqlite-shm", "journal.ring"] {
        let p = data.join(side);
        if p.exists() {
            assert_eq!(
                mode(&p) & 0o037,
                0,
                "{side} is open to others: {:o}",
                mode(&p)
            );
        }
    }
    assert!(
        !first.contains("was open to others"),
        "a fresh journal needs no warning: {first}"
    );

    // Someone opened it all up: the next start closes it again and says so per path.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
    let second = run_with_umask_000(&config, &db, Some("now 0640"));
    assert_eq!(mode(&data), 0o750, "loose directory closed again");
    assert_eq!(
        mode(&db),
        0o640,
        "loose database closed again (group read kept)"
    );
    assert!(
        second.contains(&format!(
            "{} was open to others (mode 0777); now 0750",
            data.display()
        )),
        "warning names the directory: {second}"
    );
    assert!(
        second.contains(&format!(
            "{} was open to others (mode 0666); now 0640",
            db.display()
        )),
        "warning names the database: {second}"
    );
}
