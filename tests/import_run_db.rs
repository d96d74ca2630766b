//! `cdrbox run` with `[[pbx]] cdr_db` against a real MariaDB holding FreePBX's `cdr` table,
//! beside a simulated PBX (`cdrbox sim-pbx`) whose calls arrive over AMI: the box stores every
//! call the database has that it lacks (start-up reconciliation), each once, with origin
//! `cdr-db`, and says so on `/api/status`; a database that refuses the login is a status line
//! and a `DB AUTH` alarm that never quotes the password, while the AMI link keeps recording.

mod cli_support;
mod import_support;
// The MariaDB harness and cli_support each include support/box_process.rs so that either
// stands alone in a test; here both are needed, hence two copies of that small module.
#[allow(clippy::duplicate_mod)]
#[path = "support/mariadb.rs"]
mod mariadb;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cli_support::{free_port, http_json, wait, RunningBox, PASS};
use import_support::{master_csv, moscow};
use mariadb::{freepbx_cdr, freepbx_insert, MariaDb};

/// `cdrbox sim-pbx` on `port`: a PBX making `rate` calls per second, times in UTC.
struct SimPbx(Child);
impl SimPbx {
    fn start(port: u16, rate: &str) -> SimPbx {
        let child = Command::new(env!("CARGO_BIN_EXE_cdrbox"))
            .args(["sim-pbx", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--rate", rate, "--timezone", "UTC", "--seed", "7"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        SimPbx(child)
    }
}
impl Drop for SimPbx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(dir: &Path, web: u16, ami: u16, cdr_db: &str) -> std::path::PathBuf {
    let config = dir.join("cdrbox.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[pbx]]
name = "pbx1"
host = "127.0.0.1"
port = {ami}
username = "cdrbox"
secret = "cdrbox"
timezone = "UTC"
cdr_db = "{cdr_db}"
cdr_db_settle_seconds = 0

[storage]
path = "{}"
flush_interval_ms = 200

[web]
listen = "127.0.0.1:{web}"

[display]
driver = "none"
"#,
            dir.join("data").display()
        ),
    )
    .unwrap();
    config
}

/// The 42 calls of the real Master.csv, moved to the last hour (the reconciliation looks at
/// the last 24 h) with their own unique IDs, as cdr_adaptive_odbc would have inserted them.
fn recent_calls(db: &MariaDb, now: i64) {
    let calls = cdrbox::import::read_csv(
        &master_csv(),
        &moscow(),
        cdrbox::import::master_csv::CsvLayout::default(),
        1,
    )
    .0;
    assert_eq!(calls.len(), 42);
    for (i, mut r) in calls.into_iter().enumerate() {
        let start = now - 3600 + i as i64 * 20;
        r.start.raw = jiff::Timestamp::from_second(start)
            .unwrap()
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string();
        r.unique_id = format!("{start}.{i}");
        db.sql(&freepbx_insert(&r, Some(i + 1)));
    }
}

/// `(origin, count)` over every stored call, from the calls API (empty while the page is
/// not up yet).
fn origins(web: u16) -> std::collections::BTreeMap<String, u64> {
    let (code, v) = http_json(web, "GET", "/api/calls?limit=1000", "");
    let mut m = std::collections::BTreeMap::new();
    if code != 200 {
        return m;
    }
    assert!(
        v["total"].as_u64().unwrap_or(0) <= 1000,
        "more calls than one page"
    );
    for r in v["records"].as_array().cloned().unwrap_or_default() {
        *m.entry(r["origin"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    m
}

fn status(web: u16) -> serde_json::Value {
    http_json(web, "GET", "/api/status", "").1
}

#[test]
fn run_fills_from_the_database_beside_a_live_ami_link() {
    let db = MariaDb::start();
    db.freepbx(&freepbx_cdr());
    let now = jiff::Timestamp::now().as_second();
    recent_calls(&db, now);
    let ami = free_port();
    let _pbx = SimPbx::start(ami, "2");
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let config = write_config(dir.path(), web, ami, &db.url("cdrbox", "pw"));
    let running = RunningBox::start(&config, PASS);
    wait("the database's 42 calls", Duration::from_secs(120), || {
        origins(web).get("cdr-db").copied().unwrap_or(0) >= 42
    });
    wait("calls over AMI too", Duration::from_secs(60), || {
        origins(web).get("ami").copied().unwrap_or(0) >= 3
    });
    let s = status(web);
    let d = &s["cdr_db"][0];
    assert_eq!(d["pbx"], "pbx1", "{s}");
    assert_eq!(d["state"], "ok", "{s}");
    assert_eq!(d["totalNew"], 42, "each database row stored once: {s}");
    assert_eq!(d["addr"], format!("127.0.0.1:{}", db.port), "{s}");
    assert_eq!(s["links"][0]["state"], "up", "{s}");
    assert!(
        !s["alarms"].to_string().contains("DB "),
        "no database alarm: {s}"
    );
    assert_eq!(origins(web)["cdr-db"], 42, "each once");
    running.stop();
}

#[test]
fn a_refused_login_is_an_alarm_and_the_link_keeps_recording() {
    let db = MariaDb::start();
    db.freepbx(&freepbx_cdr());
    let ami = free_port();
    let _pbx = SimPbx::start(ami, "2");
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let secret = "wrong-pass-77";
    let config = write_config(dir.path(), web, ami, &db.url("cdrbox", secret));
    let running = RunningBox::start(&config, PASS);
    wait("the DB AUTH alarm", Duration::from_secs(90), || {
        status(web)["alarms"].to_string().contains("DB AUTH")
    });
    let s = status(web);
    assert_eq!(s["cdr_db"][0]["state"], "failing", "{s}");
    assert!(
        s["cdr_db"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cdrbox"),
        "names the user: {s}"
    );
    assert!(!s.to_string().contains(secret), "password quoted: {s}");
    // The AMI link is up and records calls all the while.
    let before = origins(web).get("ami").copied().unwrap_or(0);
    wait("more AMI calls", Duration::from_secs(60), || {
        origins(web).get("ami").copied().unwrap_or(0) >= before + 3
    });
    assert_eq!(status(web)["links"][0]["state"], "up");
    // The settings page never gets the URL (it holds the password).
    let (code, cfg) = http_json(web, "GET", "/api/config", "");
    assert_eq!(code, 200);
    assert!(!cfg.to_string().contains(secret), "{cfg}");
    running.stop();
}
