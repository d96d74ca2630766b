//! Issue 16 against a REAL PostgreSQL 15 (tests/support/postgres.rs): the real `cdrbox run`,
//! fed by a real `cdrbox sim-pbx`, forwards to a throw-away cluster over TCP with a password;
//! the server is restarted in the middle of the stream; at the end `cdrbox_cdr` holds exactly
//! the box's export, record for record, each once. Also: `cdrbox uplink-schema` is the SQL a
//! DBA runs, and a box then writes into that schema.

use crate::uplink_support;

use std::path::Path;
use std::time::Duration;

use cdrbox::uplink::schema::{MIN_WRITER, SCHEMA_VERSION};
use uplink_support::cli_support::box_process::{
    free_port, spawn_run, terminate, wait, BoxConfig, RunningBox,
};
use uplink_support::postgres::Postgres;
use uplink_support::{box_export, central, count, SimPbx, ROLE_PASSWORD};

/// At 10 calls/s the PBX produces for ~40 s: still producing when the server is stopped, even
/// on a loaded machine.
const CALLS: u64 = 400;

fn box_config(dir: &Path, sim_port: u16, pg: &Postgres) -> std::path::PathBuf {
    let url = format!(
        "url = \"postgres://cdrbox:{ROLE_PASSWORD}@127.0.0.1:{}/cdr?sslmode=disable\"",
        pg.port
    );
    BoxConfig::new(dir)
        .pbx("office", sim_port, ("cdrbox", "sim-secret"), &[])
        // Commits every 0.5 s: the uplink forwards what SQLite holds, and the shipped 60 s /
        // 500 records would hold the whole run back until the PBX has finished.
        .storage(&["flush_interval_ms = 500"])
        .web(0, &[])
        .no_display()
        .table(
            "[uplink]",
            &[
                &url,
                "box_id = \"branch-1\"",
                "batch_records = 25",
                "interval_ms = 100",
            ],
        )
        .write()
}

/// The `record` column of every central row of `box_id`, canonical and sorted (a duplicate
/// would show up twice): the support's rows without their box id.
fn records_of(pg: &Postgres, box_id: &str) -> Vec<String> {
    uplink_support::central_rows(pg, Some(box_id))
        .into_iter()
        .map(|row| row[box_id.len() + 1..].to_owned())
        .collect()
}

/// Waits until the box's export and the server agree and stay so across the box's commit
/// interval (500 ms here): a record can reach the journal's ring a moment before SQLite and the
/// export have it, so one equal reading is not the end. Call it once the PBX has stopped.
fn settled(pg: &Postgres, config: &Path, limit: Duration) -> usize {
    let mut last = usize::MAX;
    let mut agreed = 0;
    let mut n = 0;
    wait(
        "the box's export and the server agree and stay so",
        limit,
        || {
            n = box_export(config).len();
            agreed = if n == last && count(pg) == n as u64 {
                agreed + 1
            } else {
                0
            };
            last = n;
            std::thread::sleep(Duration::from_millis(700));
            agreed >= 3
        },
    );
    n
}

/// `cdrbox run` on `config`, its log (`cdrbox=info`) in `dir/run.log`; stopped on drop, so a
/// failed assertion does not leave the box running.
fn run_logged(config: &Path, dir: &Path) -> RunningBox {
    let log = std::fs::File::create(dir.join("run.log")).unwrap();
    RunningBox {
        child: spawn_run(config, "cdrbox=info", log),
        config: config.to_path_buf(),
    }
}

#[test]
fn every_record_reaches_postgres_once_through_a_server_restart() {
    let pg = Postgres::start();
    central(&pg);
    let dir = tempfile::tempdir().unwrap();
    let sim_port = free_port();
    let sim = SimPbx::start(sim_port, "10", CALLS);
    let config = box_config(dir.path(), sim_port, &pg);
    let mut run = run_logged(&config, dir.path());

    // Records arrive on the server while the PBX is still producing.
    wait("first rows on the server", Duration::from_secs(120), || {
        count(&pg) > 0
    });
    // The server goes away mid-stream; the box keeps recording meanwhile.
    pg.stop_server();
    let during = box_export(&config).len();
    wait(
        "calls recorded while the server is down",
        Duration::from_secs(120),
        || box_export(&config).len() >= during + 20,
    );
    pg.start_server();

    // Every call of the PBX on the box, and every record of the box on the server.
    wait("every call on the box", Duration::from_secs(180), || {
        box_export(&config).len() as u64 >= CALLS
    });
    // The PBX stops (its last calls would otherwise race the final comparison), then the box
    // forwards the rest.
    drop(sim);
    settled(&pg, &config, Duration::from_secs(180));
    let status = terminate(&mut run.child);
    assert!(
        status.success(),
        "cdrbox run exit after SIGTERM: {status:?}"
    );

    let on_box = box_export(&config);
    assert!(
        on_box.len() as u64 >= CALLS,
        "{} records on the box",
        on_box.len()
    );
    let on_server = records_of(&pg, "branch-1");
    assert_eq!(
        on_server.len(),
        on_box.len(),
        "each record once on the server"
    );
    assert!(
        on_server == on_box,
        "the server's records differ from the box's export"
    );
    // The box's row in cdrbox_boxes counts what it added, and its last seq is the newest.
    let boxes = pg.psql(
        "cdr",
        "SELECT records, version FROM cdrbox_boxes WHERE box_id = 'branch-1'",
    );
    assert_eq!(
        boxes.trim(),
        format!("{}|{}", on_box.len(), env!("CARGO_PKG_VERSION")),
        "cdrbox_boxes row"
    );
    let schema = pg.psql("cdr", "SELECT version, min_writer FROM cdrbox_schema");
    assert_eq!(schema.trim(), format!("{SCHEMA_VERSION}|{MIN_WRITER}"));
}

#[test]
fn uplink_schema_is_what_the_box_writes_into() {
    let pg = Postgres::start();
    central(&pg);
    // The DBA creates the schema as the owner role; the box then finds it current.
    let sql = uplink_support::dba_schema(&pg);
    assert!(sql.contains("PRIMARY KEY (box_id, pbx, identity)"), "{sql}");
    assert_eq!(
        pg.psql("cdr", "SELECT version FROM cdrbox_schema").trim(),
        SCHEMA_VERSION.to_string()
    );
    let months = pg.psql(
        "cdr",
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'cdrbox_cdr'::regclass",
    );
    // Default partition + the four months around today.
    assert_eq!(months.trim(), "5", "partitions");

    let dir = tempfile::tempdir().unwrap();
    let sim_port = free_port();
    // The simulated PBX makes its calls on its own clock from the start, logged in or not (as
    // Asterisk): spread over ~6 s so a box that starts slowly on a loaded machine still gets
    // most of them; the test needs records, not a count.
    let sim = SimPbx::start(sim_port, "5", 30);
    let config = box_config(dir.path(), sim_port, &pg);
    let mut run = run_logged(&config, dir.path());
    wait("calls on the box", Duration::from_secs(120), || {
        box_export(&config).len() >= 10
    });
    std::thread::sleep(Duration::from_secs(3));
    drop(sim);
    assert!(settled(&pg, &config, Duration::from_secs(120)) >= 10);
    assert!(terminate(&mut run.child).success());
    let on_server = records_of(&pg, "branch-1");
    let on_box = box_export(&config);
    assert_eq!(on_server.len(), on_box.len());
    assert!(
        on_server == on_box,
        "the server's records differ from the box's export"
    );
}
