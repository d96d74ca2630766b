//! What the uplink tests against a real PostgreSQL share: a simulated PBX per box
//! (`cdrbox sim-pbx`), the central role and database, a box's `cdrbox.toml` with `[uplink]`,
//! and the one check every test ends with — `cdrbox_cdr` equal, record for record, to the union
//! of the boxes' NDJSON exports, each once. Include with `mod uplink_support;`.
#![allow(dead_code)]

#[path = "../cli_support/mod.rs"]
pub mod cli_support;
#[path = "../support/postgres.rs"]
pub mod postgres;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::box_process::{set_password, spawn_run, terminate, BoxConfig, RunningBox};
use cli_support::PASS;
use postgres::Postgres;

pub const ROLE_PASSWORD: &str = "upl1nk-s3cret";

/// `cdrbox sim-pbx` on `port`; killed on drop.
pub struct SimPbx(Child);

impl SimPbx {
    pub fn start(port: u16, rate: &str, calls: u64) -> SimPbx {
        SimPbx::seeded(port, rate, calls, 1)
    }

    /// A PBX with its own calls (`seed`), so boxes beside each other hold different records.
    pub fn seeded(port: u16, rate: &str, calls: u64, seed: u64) -> SimPbx {
        SimPbx(
            Command::new(env!("CARGO_BIN_EXE_cdrbox"))
                .args(["sim-pbx", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--secret", "sim-secret", "--rate", rate])
                .args(["--calls", &calls.to_string(), "--seed", &seed.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for SimPbx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A role `cdrbox` with a password, owning database `cdr`.
pub fn central(pg: &Postgres) {
    pg.psql(
        "postgres",
        &format!("CREATE ROLE cdrbox LOGIN PASSWORD '{ROLE_PASSWORD}'"),
    );
    pg.psql("postgres", "CREATE DATABASE cdr OWNER cdrbox");
}

/// `postgres://cdrbox:PASSWORD@127.0.0.1:PORT/cdr` without TLS (the tests' cluster has none).
pub fn url(port: u16, password: &str) -> String {
    format!("postgres://cdrbox:{password}@127.0.0.1:{port}/cdr?sslmode=disable")
}

/// One box of a test: its directory, config, web port and `[uplink] box_id`.
pub struct UplinkBox {
    pub config: PathBuf,
    pub web: u16,
    pub box_id: String,
    dir: PathBuf,
}

impl UplinkBox {
    /// Writes `dir/cdrbox.toml`: the PBX on `sim_port`, the web page on a free port with the
    /// tests' admin password, `[uplink]` to `url` in batches of `batch` every 100 ms.
    pub fn new(dir: &Path, sim_port: u16, url: &str, box_id: &str, batch: u32) -> UplinkBox {
        let web = cli_support::free_port();
        let b = UplinkBox {
            config: dir.join("cdrbox.toml"),
            web,
            box_id: box_id.to_string(),
            dir: dir.to_path_buf(),
        };
        b.write(sim_port, url, batch);
        set_password(&b.config, PASS);
        b
    }

    /// (Re)writes the config, e.g. with a new password in the URL.
    pub fn write(&self, sim_port: u16, url: &str, batch: u32) {
        let url = format!("url = \"{url}\"");
        let box_id = format!("box_id = \"{}\"", self.box_id);
        let batch = format!("batch_records = {batch}");
        let text = BoxConfig::new(&self.dir)
            .pbx("office", sim_port, ("cdrbox", "sim-secret"), &[])
            // Commits every 0.5 s: the uplink forwards what SQLite holds, and the shipped 60 s /
            // 500 records would hold the whole run back until the PBX has finished.
            .storage(&["flush_interval_ms = 500"])
            .web(self.web, &[])
            .no_display()
            .table("[uplink]", &[&url, &box_id, &batch, "interval_ms = 100"])
            .text()
            .to_string();
        std::fs::write(&self.config, text).unwrap();
    }

    /// `cdrbox run` with its log in `dir/run-N.log`, once its web page answers (by then it
    /// handles SIGTERM: a stop right after the start is a clean one).
    pub fn start(&self) -> Child {
        let n = std::fs::read_dir(&self.dir).map_or(0, |d| d.count());
        let log = std::fs::File::create(self.dir.join(format!("run-{n}.log"))).unwrap();
        let child = spawn_run(&self.config, "cdrbox=info", log);
        cli_support::box_process::wait_listening(self.web);
        child
    }

    /// The end of the newest `run-N.log`, for a failure message.
    pub fn log_tail(&self) -> String {
        let newest = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let text = newest.map_or(String::new(), |p| {
            std::fs::read_to_string(p).unwrap_or_default()
        });
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// `/api/status` (`Null` while the page is not up).
    pub fn status(&self) -> serde_json::Value {
        cli_support::http_json(self.web, "GET", "/api/status", "").1
    }

    /// Records on the box (the calls page's total; 0 while the page is not up).
    pub fn total(&self) -> u64 {
        cli_support::total(self.web)
    }
}

/// A box `box_id` in `dir` on its own PBX (`rate` calls/s, calls of `seed`, far more than a
/// test waits for), writing to `pg` in batches of 25: (the PBX's port, the PBX, the box).
pub fn office(
    pg: &Postgres,
    dir: &Path,
    box_id: &str,
    rate: &str,
    seed: u64,
) -> (u16, SimPbx, UplinkBox) {
    let sim_port = cli_support::free_port();
    let sim = SimPbx::seeded(sim_port, rate, 100_000, seed);
    let b = UplinkBox::new(dir, sim_port, &url(pg.port, ROLE_PASSWORD), box_id, 25);
    (sim_port, sim, b)
}

/// Polls `cond` every 250 ms (psql and the export are processes: a tighter poll would eat the
/// shared machine); fails naming `what` after `limit`.
pub fn poll(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A record's JSON with object keys sorted (jsonb keeps its own key order), as text.
pub fn canonical(v: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&String, serde_json::Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::to_value(sorted).unwrap()
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

/// The box's records as the NDJSON export writes them, canonical and sorted.
pub fn box_export(config: &Path) -> Vec<String> {
    let run = Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(["export", "--format", "ndjson", "--config"])
        .arg(config)
        .output()
        .unwrap();
    if !run.status.success() {
        // Polled while the box is still creating its journal: nothing stored yet.
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            err.contains("nothing has been recorded") || err.contains("start `cdrbox run` once"),
            "cdrbox export failed: {err}"
        );
        return Vec::new();
    }
    let mut rows: Vec<String> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| canonical(&serde_json::from_str(l).unwrap()))
        .collect();
    rows.sort();
    rows
}

/// `box_id` + the `record` column of every central row (of `box_id` when given), canonical
/// and sorted: a duplicate shows up twice.
pub fn central_rows(pg: &Postgres, box_id: Option<&str>) -> Vec<String> {
    let filter = box_id.map_or(String::new(), |b| format!(" WHERE box_id = '{b}'"));
    let out = pg.psql(
        "cdr",
        &format!("SELECT box_id || ' ' || record::text FROM cdrbox_cdr{filter}"),
    );
    let mut rows: Vec<String> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (b, json) = l.split_once(' ').unwrap();
            format!("{b} {}", canonical(&serde_json::from_str(json).unwrap()))
        })
        .collect();
    rows.sort();
    rows
}

/// Rows in `cdrbox_cdr`; 0 before the box created it.
pub fn count(pg: &Postgres) -> u64 {
    pg.try_psql("cdr", "SELECT count(*) FROM cdrbox_cdr")
        .map_or(0, |out| out.trim().parse().unwrap_or(0))
}

/// The end of every test: the central table is the union of the boxes' exports, each once.
pub fn assert_central_is_union(pg: &Postgres, boxes: &[&UplinkBox]) {
    let mut union: Vec<String> = boxes
        .iter()
        .flat_map(|b| {
            box_export(&b.config)
                .into_iter()
                .map(move |r| format!("{} {r}", b.box_id))
        })
        .collect();
    union.sort();
    let on_server = central_rows(pg, None);
    assert_eq!(
        on_server.len(),
        union.len(),
        "rows on the server vs records in the boxes' exports"
    );
    let first_diff = on_server.iter().zip(&union).position(|(a, b)| a != b);
    assert!(
        first_diff.is_none(),
        "the server's records differ from the boxes' exports at {first_diff:?}"
    );
}

/// How long a poll of the uplink tests waits (a shared, loaded machine).
pub const LONG: Duration = Duration::from_secs(240);

/// Stopped with SIGTERM on drop, so a failed assertion leaves no box running.
pub fn running(b: &UplinkBox, child: Child) -> RunningBox {
    RunningBox {
        child,
        config: b.config.clone(),
    }
}

/// Rows of `box_id` in `cdrbox_cdr`; 0 before the box created it.
pub fn count_of(pg: &Postgres, box_id: &str) -> u64 {
    pg.try_psql(
        "cdr",
        &format!("SELECT count(*) FROM cdrbox_cdr WHERE box_id = '{box_id}'"),
    )
    .map_or(0, |out| out.trim().parse().unwrap_or(0))
}

/// The end of every test. A PBX of `cdrbox sim-pbx --calls N` makes more than N records
/// (transfers, queues) and never says it is done, so: the PBXs stop, each box stops cleanly
/// (its journal is then final: the export is the truth), then runs once more without calls
/// until the server holds all of it; the central table must be the union of the exports.
pub fn settle(pg: &Postgres, sims: Vec<SimPbx>, runs: Vec<(&UplinkBox, RunningBox)>) {
    drop(sims);
    let mut last = Vec::new();
    for (b, mut run) in runs {
        let exit = terminate(&mut run.child);
        assert!(exit.success(), "SIGTERM exit {exit:?}: {}", b.log_tail());
        let on_box = box_export(&b.config).len() as u64;
        last.push((b, on_box, running(b, b.start())));
    }
    for (b, on_box, _) in &last {
        poll("every record of the box on the server", LONG, || {
            count_of(pg, &b.box_id) == *on_box
        });
        poll("up to date on /api/status", LONG, || {
            let st = b.status();
            st["uplink"]["lag_records"] == 0 && st["uplink"]["state"] == "up to date"
        });
    }
    let boxes: Vec<&UplinkBox> = last.iter().map(|(b, _, _)| *b).collect();
    for (b, _, mut run) in last {
        let exit = terminate(&mut run.child);
        assert!(exit.success(), "SIGTERM exit {exit:?}: {}", b.log_tail());
    }
    assert_central_is_union(pg, &boxes);
}

/// The uplink's `last_error` on `/api/status` (empty when none).
pub fn last_error(b: &UplinkBox) -> String {
    b.status()["uplink"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether `/api/status` lists the alarm `code`.
pub fn has_alarm(b: &UplinkBox, code: &str) -> bool {
    b.status()["alarms"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["code"] == code))
}

/// The schema as `cdrbox uplink-schema` prints it (returned), run as the owner role as a DBA
/// would.
pub fn dba_schema(pg: &Postgres) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .arg("uplink-schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let sql = String::from_utf8(out.stdout).unwrap();
    pg.psql("cdr", &format!("SET ROLE cdrbox;\n{sql}"));
    sql
}
