//! Issue 16, the server side, against a REAL PostgreSQL 15 (tests/support/postgres.rs): the
//! box's gap ledger reaches `cdrbox_gaps` and a gap that closes updates its row; a database
//! at a newer schema that only adds is written without error, and `min_writer` above the box
//! stops it (keeping every record) until it is lowered; a full server disk (the tables on a
//! small tmpfs tablespace) is named on the box and everything arrives once after space is
//! freed; and the forwarding rate of a full journal, measured. Each ends with `cdrbox_cdr`
//! equal, record for record, to the box's export, each once.

use crate::import_support;
use crate::uplink_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdrbox::clock::Clock;
use cdrbox::config::Config;
use cdrbox::journal::{Ack, Journal, JournalPaths, JournalReader};
use cdrbox::status::UplinkStatus;
use cdrbox::uplink::schema::SCHEMA_VERSION;
use cdrbox::uplink::{Settings, Uplink};
use uplink_support::postgres::Postgres;
use uplink_support::{
    canonical, central, count, count_of, has_alarm, last_error, office, poll, running, settle, url,
    SimPbx, UplinkBox, LONG, ROLE_PASSWORD,
};

/// The box's gap ledger as `/api/status` lists it (`recentGaps`: the last 7 days), as
/// `pbx|from|to|reason` lines (to empty while open).
fn box_gaps(b: &UplinkBox) -> BTreeSet<String> {
    let st = b.status();
    st["recentGaps"]
        .as_array()
        .map(|gaps| {
            gaps.iter()
                .map(|g| {
                    format!(
                        "{}|{}|{}|{}",
                        g["pbx"].as_str().unwrap_or_default(),
                        g["fromUtc"],
                        g["toUtc"].as_i64().map_or(String::new(), |t| t.to_string()),
                        g["reason"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `cdrbox_gaps` of `box_id` in the same form (empty before the box created the table).
fn central_gaps(pg: &Postgres, box_id: &str) -> BTreeSet<String> {
    pg.try_psql(
        "cdr",
        &format!(
            "SELECT pbx || '|' || extract(epoch FROM down_at)::bigint || '|' || \
             coalesce(extract(epoch FROM up_at)::bigint::text, '') || '|' || reason \
             FROM cdrbox_gaps WHERE box_id = '{box_id}'"
        ),
    )
    .map(|out| out.lines().map(str::to_string).collect())
    .unwrap_or_default()
}

fn links_up(b: &UplinkBox) -> bool {
    b.status()["links"]
        .as_array()
        .is_some_and(|l| !l.is_empty() && l.iter().all(|x| x["state"] == "up"))
}

#[test]
fn the_gap_ledger_reaches_the_server_and_a_closed_gap_updates_its_row() {
    let pg = Postgres::start();
    central(&pg);
    let dir = tempfile::tempdir().unwrap();
    let (sim_port, sim, b) = office(&pg, dir.path(), "branch-gaps", "20", 1);
    let run = running(&b, b.start());
    poll("first rows on the server", LONG, || count(&pg) > 0);
    assert!(box_gaps(&b).is_empty(), "a gap before any outage");

    // The PBX goes away: the box opens a gap, and the server gets it, still open.
    drop(sim);
    poll("an open gap on the box", LONG, || {
        box_gaps(&b).iter().any(|g| g.split('|').nth(2) == Some(""))
    });
    poll("the open gap on the server", LONG, || {
        let on_box = box_gaps(&b);
        !on_box.is_empty() && central_gaps(&pg, "branch-gaps") == on_box
    });
    let open = pg.psql(
        "cdr",
        "SELECT count(*) FROM cdrbox_gaps WHERE box_id = 'branch-gaps' AND up_at IS NULL",
    );
    assert_eq!(open.trim(), "1", "one open gap on the server");

    // The PBX is back: the gap closes on the box, and its central row is updated, not doubled.
    let sim = SimPbx::seeded(sim_port, "20", 100_000, 2);
    poll("the gap closed on the box", LONG, || {
        let g = box_gaps(&b);
        !g.is_empty() && g.iter().all(|g| g.split('|').nth(2) != Some(""))
    });
    poll("the closed gap on the server", LONG, || {
        central_gaps(&pg, "branch-gaps") == box_gaps(&b)
    });
    let rows = pg.psql(
        "cdr",
        "SELECT count(*), count(*) FILTER (WHERE up_at IS NULL), \
         bool_and(filled_from IS NULL AND lost = 0) FROM cdrbox_gaps",
    );
    assert_eq!(rows.trim(), "1|0|t", "the one gap, closed, once");
    let gaps_before = central_gaps(&pg, "branch-gaps");
    settle(&pg, vec![sim], vec![(&b, run)]);
    // settle stops the PBX (a second gap) and restarts the box (a third: the box was off);
    // every ledger entry is on the server once, the first one unchanged.
    let final_rows = central_gaps(&pg, "branch-gaps");
    assert!(final_rows.is_superset(&gaps_before), "{final_rows:?}");
    let keys = pg.psql(
        "cdr",
        "SELECT count(*) = count(DISTINCT (pbx, down_at)) FROM cdrbox_gaps",
    );
    assert_eq!(keys.trim(), "t");
}

/// What a DBA's schema version N+1 might do — it only adds: a nullable column, a column with
/// a default, a table, a view — and the version bump.
fn future_schema() -> String {
    format!(
        "ALTER TABLE cdrbox_cdr ADD COLUMN tariff_zone text;
         ALTER TABLE cdrbox_cdr ADD COLUMN billed boolean NOT NULL DEFAULT false;
         ALTER TABLE cdrbox_gaps ADD COLUMN ticket text;
         CREATE TABLE cdrbox_tariffs (zone text PRIMARY KEY, cents_per_minute integer);
         CREATE VIEW cdrbox_unbilled AS SELECT box_id, count(*) AS calls FROM cdrbox_cdr
             WHERE NOT billed GROUP BY box_id;
         UPDATE cdrbox_schema SET version = {} WHERE component = 'cdrbox';",
        SCHEMA_VERSION + 1
    )
}

#[test]
fn a_newer_schema_that_only_adds_is_written_and_min_writer_above_the_box_stops_it() {
    let pg = Postgres::start();
    central(&pg);
    uplink_support::dba_schema(&pg);
    pg.psql("cdr", &format!("SET ROLE cdrbox;\n{}", future_schema()));
    let dir = tempfile::tempdir().unwrap();
    let (_, sim, b) = office(&pg, dir.path(), "branch-old", "20", 3);
    let run = running(&b, b.start());
    poll("rows in the newer schema", LONG, || count(&pg) >= 50);
    assert!(last_error(&b).is_empty(), "{}", last_error(&b));

    // The DBA declares boxes of this schema version too old.
    pg.psql(
        "cdr",
        &format!(
            "UPDATE cdrbox_schema SET min_writer = {} WHERE component = 'cdrbox'",
            SCHEMA_VERSION + 1
        ),
    );
    poll("update this box on /api/status", LONG, || {
        last_error(&b).contains("update this box")
    });
    assert!(has_alarm(&b, "UPLINK"), "{}", b.status());
    assert_eq!(b.status()["uplink"]["state"], "retrying");
    // Stopped, not stalled: the box keeps recording, nothing more reaches the server.
    let stuck = count(&pg);
    let recorded = b.total();
    poll("calls recorded while stopped", LONG, || {
        b.total() >= recorded + 40
    });
    assert!(links_up(&b), "the AMI link: {}", b.status()["links"]);
    assert_eq!(
        count(&pg),
        stuck,
        "rows arrived while min_writer refused the box"
    );

    // Lowered again: the box resumes on its own (at most one back-off, 30 s, later).
    pg.psql(
        "cdr",
        &format!(
            "UPDATE cdrbox_schema SET min_writer = {SCHEMA_VERSION} WHERE component = 'cdrbox'"
        ),
    );
    poll("rows on the server again", LONG, || count(&pg) > stuck);
    poll("the error cleared", LONG, || {
        last_error(&b).is_empty() && !has_alarm(&b, "UPLINK")
    });
    settle(&pg, vec![sim], vec![(&b, run)]);
    // The box left the newer schema as it was: version, the added columns' defaults.
    let schema = pg.psql("cdr", "SELECT version, min_writer FROM cdrbox_schema");
    assert_eq!(
        schema.trim(),
        format!("{}|{SCHEMA_VERSION}", SCHEMA_VERSION + 1)
    );
    let added = pg.psql(
        "cdr",
        "SELECT count(*) = count(*) FILTER (WHERE tariff_zone IS NULL AND NOT billed) \
         FROM cdrbox_cdr",
    );
    assert_eq!(added.trim(), "t");
    let view = pg.psql("cdr", "SELECT calls FROM cdrbox_unbilled");
    assert_eq!(view.trim(), count_of(&pg, "branch-old").to_string());
}

/// A tmpfs of `size` at `dir/ts`, owned by `nobody` (the cluster's user); unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("ts");
        std::fs::create_dir(&path).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs {}", path.display());
        let disk = SmallDisk { path };
        let ok = Command::new("chown")
            .arg("nobody")
            .arg(&disk.path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown nobody {}", disk.path.display());
        disk
    }

    /// The DBA frees space: the volume grows.
    fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {}", self.path.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_full_server_disk_is_named_on_the_box_and_everything_arrives_once_after_space_is_freed() {
    if !is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "under CI this test must run (as root: it mounts a tmpfs)"
        );
        eprintln!("SKIPPED: mounting the small server disk needs root");
        return;
    }
    let pg = Postgres::start();
    central(&pg);
    uplink_support::dba_schema(&pg);
    // Every table and index of cdrbox on a 1 MB volume; WAL and catalogs stay on the big one
    // (a full WAL disk stops PostgreSQL itself — that is the DBA's alarm, not the box's).
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path(), "1M");
    pg.psql(
        "postgres",
        &format!(
            "CREATE TABLESPACE small OWNER cdrbox LOCATION '{}'",
            disk.path.display()
        ),
    );
    pg.psql(
        "cdr",
        "ALTER TABLE ALL IN TABLESPACE pg_default OWNED BY cdrbox SET TABLESPACE small;
         ALTER INDEX ALL IN TABLESPACE pg_default OWNED BY cdrbox SET TABLESPACE small;
         ALTER TABLE cdrbox_cdr SET TABLESPACE small;",
    );
    let box_dir = tempfile::tempdir().unwrap();
    let (_, sim, b) = office(&pg, box_dir.path(), "branch-full", "50", 4);
    let run = running(&b, b.start());
    poll("the server's disk full on /api/status", LONG, || {
        last_error(&b).contains("disk is full")
    });
    let err = last_error(&b);
    assert!(err.contains("No space left on device"), "{err}");
    let alarm = b.status()["alarms"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["code"] == "UPLINK").cloned())
        .unwrap_or_default();
    assert!(
        alarm.to_string().contains("disk is full"),
        "UPLINK alarm: {alarm}"
    );
    // The box records on, its link up, the queue grows. (A few rows may still squeeze in
    // where autovacuum frees the failed batches' pages: not a loss, not a duplicate.)
    let stuck = count(&pg);
    let recorded = b.total();
    poll(
        "calls recorded while the server's disk is full",
        LONG,
        || b.total() >= recorded + 100,
    );
    assert!(links_up(&b), "the AMI link: {}", b.status()["links"]);
    assert!(
        last_error(&b).contains("disk is full"),
        "{}",
        last_error(&b)
    );
    poll("the queue on /api/status", LONG, || {
        b.status()["uplink"]["lag_records"].as_u64().unwrap_or(0) >= 100
    });

    disk.grow("256M");
    poll("rows on the server again", LONG, || {
        count(&pg) > stuck + 100
    });
    poll("the disk error cleared", LONG, || {
        last_error(&b).is_empty() && !has_alarm(&b, "UPLINK")
    });
    settle(&pg, vec![sim], vec![(&b, run)]);
}

/// Records to forward in the rate measurement (`CDRBOX_UPLINK_RATE_RECORDS` overrides).
fn rate_records() -> usize {
    std::env::var("CDRBOX_UPLINK_RATE_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Measures records/s forwarded from a journal already holding N records (the uplink's own
/// thread, batches of 500, to the local cluster over TCP), and checks the central rows equal
/// the journal's records. The number is printed:
/// `cargo test --release --test integration -- uplink_server::forwarding_rate --nocapture`.
#[test]
fn forwarding_rate_of_a_full_journal() {
    let n = rate_records();
    let pg = Postgres::start();
    central(&pg);
    let dir = tempfile::tempdir().unwrap();
    let storage = import_support::storage(dir.path());
    let paths = JournalPaths::from_config(&storage);
    let fixtures = import_support::ami_records(&import_support::moscow());
    let records: Vec<_> = (0..n)
        .map(|i| {
            let mut r = fixtures[i % fixtures.len()].clone();
            // Distinct calls: another UniqueID, and identity bytes after the time key.
            r.unique_id = format!("{}-{i}", r.unique_id);
            r.identity[4..8].copy_from_slice(&(i as u32).to_be_bytes());
            r
        })
        .collect();
    let (journal, _) = Journal::open(&storage, Clock::system()).unwrap();
    let acks = journal
        .record_batch(records, Duration::from_secs(120))
        .unwrap();
    let stored = acks
        .iter()
        .filter(|a| matches!(a, Ack::Durable { .. }))
        .count();
    assert_eq!(stored, n, "records stored in the journal");
    journal.flush().unwrap();
    journal.shutdown();

    let cfg = Config::parse(
        &format!(
            "[uplink]\nurl = \"{}\"\nbox_id = \"rate\"\nbatch_records = 500\ninterval_ms = 100\n",
            url(pg.port, ROLE_PASSWORD)
        ),
        "rate test",
    )
    .unwrap();
    let settings = Settings::from_config(&cfg).unwrap().unwrap();
    let last: Arc<Mutex<UplinkStatus>> = Arc::default();
    let seen = Arc::clone(&last);
    let t = Instant::now();
    let uplink = Uplink::spawn(
        settings,
        paths.clone(),
        Arc::new(move |st| *seen.lock().unwrap() = st),
        Clock::system(),
    )
    .unwrap();
    let deadline = Duration::from_secs(600);
    loop {
        let st = last.lock().unwrap().clone();
        if st.sent_records as usize >= n {
            break;
        }
        assert!(t.elapsed() < deadline, "forwarding stalled: {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed();
    uplink.stop();
    println!(
        "uplink rate: {n} records in {:.2} s = {:.0} records/s (batches of 500, local PostgreSQL 15)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    let reader = JournalReader::open(&paths).unwrap();
    let mut on_box: Vec<String> = reader
        .records_after_id(0, n + 1)
        .unwrap()
        .iter()
        .map(|(_, r)| canonical(&r.to_json()))
        .collect();
    on_box.sort();
    let mut on_server: Vec<String> = pg
        .psql("cdr", "SELECT record::text FROM cdrbox_cdr")
        .lines()
        .map(|l| canonical(&serde_json::from_str(l).unwrap()))
        .collect();
    on_server.sort();
    assert_eq!(on_server.len(), n);
    assert!(
        on_server == on_box,
        "the server's records differ from the journal's"
    );
}
