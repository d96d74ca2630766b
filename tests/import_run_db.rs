//! `cdrbox run` with `[[pbx]] cdr_db` against a real MariaDB holding FreePBX's `cdr` table,
//! beside a simulated PBX (`cdrbox sim-pbx`) whose calls arrive over AMI: the box stores every
//! call the database has that it lacks (start-up reconciliation), each once, with origin
//! `cdr-db`, and says so on `/api/status`; a database that refuses the login is a status line
//! and a `DB AUTH` alarm that never quotes the password, while the AMI link keeps recording.
//! And issue 12's "Done when" for the database: the real Asterisk 22's calls, happening now,
//! reach FreePBX's table and (while it is up) the AMI link of a fake manager; the link drops
//! while rows keep arriving, the database goes away before the link comes back (a `DB DOWN`
//! alarm, the link records on), and once it is back the box fills exactly the missing calls:
//! every call in the database is in the export exactly once.

use crate::cli_support;
use crate::import_support;
use crate::mariadb;
// Only the fake manager's login and session handling are used here.
use crate::support::fake_ami;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use cdrbox::ami::{AmiMessage, Decoder, Frame};
use cdrbox::record::{CallRecord, PbxContext};
use cli_support::box_process::export;
use cli_support::{free_port, http_json, total, wait, BoxConfig, RunningBox, PASS};
use fake_ami::{FakeAmi, Pong};
use import_support::{cdr_events, key_counts, master_csv, moscow, CAPTURES, MOSCOW_PBX_LINES};
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

/// What the status says of the (first) CDR database, `""` when it says nothing.
fn db_message(status: &serde_json::Value) -> &str {
    status["cdr_db"][0]["message"].as_str().unwrap_or("")
}

#[test]
fn run_fills_from_the_database_beside_a_live_ami_link() {
    let db = MariaDb::start_freepbx(&freepbx_cdr());
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
    let db = MariaDb::start_freepbx(&freepbx_cdr());
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
    assert!(db_message(&s).contains("cdrbox"), "names the user: {s}");
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

/// The config of a box whose PBX `pbx1` is the fake manager `pbx` and whose CDR database is
/// `db` (asked at once: settle 0), its page on `web`, plus the `more` `[[pbx]]` lines.
fn box_beside(
    dir: &Path,
    pbx: &FakeAmi,
    web: u16,
    db: &MariaDb,
    more: &[&str],
) -> std::path::PathBuf {
    let url = format!("cdr_db = \"{}\"", db.url("cdrbox", "pw"));
    let lines = [&[url.as_str(), "cdr_db_settle_seconds = 0"][..], more].concat();
    BoxConfig::recording(dir, "pbx1", pbx.addr.port(), fake_ami::LOGIN, &lines, web).write()
}

/// What the fake PBX's AMI does next: refuse sessions while `up` is false, send `outbox` on the
/// open session, and end that session (`cut`: the cable is pulled).
#[derive(Default)]
struct Plan {
    up: bool,
    outbox: Vec<u8>,
    cut: bool,
}

/// A fake Asterisk manager following `plan`.
fn fake_pbx(rt: &tokio::runtime::Runtime, plan: Arc<Mutex<Plan>>) -> FakeAmi {
    rt.block_on(FakeAmi::start(move |mut c| {
        let plan = plan.clone();
        async move {
            if !plan.lock().unwrap().up {
                return; // accepted and closed at once: the link cannot log in
            }
            let Some(session) = c.open(Pong::Modern, None).await else {
                return;
            };
            loop {
                let (bytes, cut) = {
                    let mut p = plan.lock().unwrap();
                    (std::mem::take(&mut p.outbox), std::mem::take(&mut p.cut))
                };
                if !bytes.is_empty() && c.send(&bytes).await.is_err() {
                    return;
                }
                if cut || session.is_finished() {
                    c.writer.close().await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }))
}

/// A captured Cdr event with its StartTime / AnswerTime / EndTime moved (the same shift) so
/// the call ended at `end_utc`, in the PBX's zone (`ctx`): the same call, happening now.
fn happening_now(m: &AmiMessage, ctx: &PbxContext, end_utc: i64) -> AmiMessage {
    let tz = ctx.timezone.clone();
    let parse = |v: &[u8]| {
        let s = std::str::from_utf8(v).ok()?;
        let dt = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s).ok()?;
        dt.to_zoned(tz.clone())
            .ok()
            .map(|z| z.timestamp().as_second())
    };
    let end = parse(m.get("EndTime").unwrap()).expect("a captured EndTime");
    let mut raw = Vec::new();
    for (k, v) in m.fields() {
        raw.extend_from_slice(k);
        raw.extend_from_slice(b": ");
        let time = ["StartTime", "AnswerTime", "EndTime"]
            .iter()
            .any(|t| k.eq_ignore_ascii_case(t.as_bytes()));
        match parse(v).filter(|_| time) {
            Some(t) => raw.extend_from_slice(
                jiff::Timestamp::from_second(t + end_utc - end)
                    .unwrap()
                    .to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
                    .as_bytes(),
            ),
            None => raw.extend_from_slice(v),
        }
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    match Decoder::default().decode(&mut BytesMut::from(&raw[..])) {
        Some(Frame::Message(moved)) => moved,
        other => panic!("the moved event does not decode: {other:?}"),
    }
}

/// The PBX makes `calls` now: each gets its row in FreePBX's table (as cdr_adaptive_odbc
/// inserts it) and, when `over_ami`, its Cdr event on the AMI session. Returns the records.
fn make_calls(
    db: &MariaDb,
    plan: &Mutex<Plan>,
    ctx: &PbxContext,
    calls: &[AmiMessage],
    over_ami: bool,
    sequence: &mut usize,
) -> Vec<CallRecord> {
    let mut made = Vec::new();
    for m in calls {
        let now = jiff::Timestamp::now().as_second();
        let ev = happening_now(m, ctx, now - 1);
        let r = CallRecord::from_event(&ev, ctx, now);
        *sequence += 1;
        db.sql(&freepbx_insert(&r, Some(*sequence)));
        if over_ami {
            plan.lock().unwrap().outbox.extend_from_slice(ev.raw());
        }
        made.push(r);
    }
    made
}

#[test]
fn a_link_that_drops_while_rows_keep_arriving_is_filled_from_the_database() {
    let ctx = moscow();
    let mut db = MariaDb::start_freepbx(&freepbx_cdr());
    let calls: Vec<AmiMessage> = CAPTURES.iter().flat_map(|f| cdr_events(f)).collect();
    assert_eq!(calls.len(), 42);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plan = Arc::new(Mutex::new(Plan {
        up: true,
        ..Plan::default()
    }));
    let pbx = fake_pbx(&rt, plan.clone());
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    // No periodic reconciliation: what gets filled is filled because the gap closed.
    let config = box_beside(
        dir.path(),
        &pbx,
        web,
        &db,
        &[&MOSCOW_PBX_LINES[..], &["cdr_db_reconcile_minutes = 0"]].concat(),
    );
    let running = RunningBox::start(&config, PASS);
    let link = || {
        status(web)["links"][0]["state"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    wait("the AMI link", Duration::from_secs(60), || link() == "up");
    let mut seq = 0;
    let mut made = make_calls(&db, &plan, &ctx, &calls[..15], true, &mut seq);
    wait("15 calls over AMI", Duration::from_secs(60), || {
        total(web) == 15
    });

    // The cable is pulled; the PBX goes on calling and its table gets every row.
    {
        let mut p = plan.lock().unwrap();
        p.up = false;
        p.cut = true;
    }
    wait("the link down", Duration::from_secs(60), || link() != "up");
    // The calls of the gap end after it began (the box's clock is in whole seconds).
    let down = status(web)["links"][0]["since_utc"].as_i64().unwrap();
    wait("a second into the gap", Duration::from_secs(10), || {
        jiff::Timestamp::now().as_second() >= down + 2
    });
    made.extend(make_calls(
        &db,
        &plan,
        &ctx,
        &calls[15..30],
        false,
        &mut seq,
    ));
    // The database goes away before the link is back: the gap's pull fails.
    db.kill();
    plan.lock().unwrap().up = true;
    wait("the link up again", Duration::from_secs(60), || {
        link() == "up"
    });
    wait("the DB DOWN alarm", Duration::from_secs(90), || {
        status(web)["alarms"].to_string().contains("DB DOWN")
    });
    let s = status(web);
    assert_eq!(s["cdr_db"][0]["state"], "failing", "{s}");
    assert_eq!(s["cdr_db"][0]["waitingGaps"], 1, "the gap waits: {s}");
    assert_eq!(s["links"][0]["state"], "up", "the link records on: {s}");
    assert_eq!(total(web), 15, "nothing was filled without the database");

    // The database is back; calls go on over AMI; the retry fills the gap.
    db.restart();
    made.extend(make_calls(&db, &plan, &ctx, &calls[30..], true, &mut seq));
    wait("12 more calls over AMI", Duration::from_secs(60), || {
        total(web) >= 27
    });
    wait(
        "the gap filled from the database",
        Duration::from_secs(180),
        || total(web) >= 42,
    );
    // The status page's snapshot follows within a few seconds.
    wait("the database's status ok", Duration::from_secs(30), || {
        let s = status(web);
        s["cdr_db"][0]["state"] == "ok" && s["storage"]["committed"] == 42
    });
    let s = status(web);
    let d = &s["cdr_db"][0];
    assert_eq!(d["state"], "ok", "{s}");
    assert_eq!(d["totalNew"], 15, "exactly the missing calls: {s}");
    assert_eq!(d["waitingGaps"], 0, "{s}");
    // The one link-down gap is marked filled, with the records the pull added inside it.
    let gaps = s["recentGaps"].as_array().cloned().unwrap_or_default();
    let filled: Vec<_> = gaps.iter().filter(|g| !g["filled"].is_null()).collect();
    assert_eq!(filled.len(), 1, "{s}");
    assert_eq!(filled[0]["filled"]["from"], "cdr-db", "{s}");
    assert_eq!(filled[0]["filled"]["records"], 15, "{s}");
    assert_eq!(s["storage"]["gaps"], 0, "no gap left open: {s}");
    assert!(!s["alarms"].to_string().contains("DB "), "{s}");
    running.stop();

    // Every call in the database is in the export exactly once; 27 came over AMI.
    let exported: Vec<CallRecord> =
        String::from_utf8_lossy(&export(&config, &["--format", "ndjson"]))
            .lines()
            .map(|l| CallRecord::from_json(&serde_json::from_str(l).unwrap()).unwrap())
            .collect();
    let db_rows: u64 = db.sql("SELECT COUNT(*) FROM cdr").trim().parse().unwrap();
    assert_eq!(db_rows, 42);
    assert_eq!(exported.len(), 42);
    assert_eq!(key_counts(&exported), key_counts(&made), "each call once");
    let mut origins = std::collections::BTreeMap::new();
    for r in &exported {
        *origins.entry(r.origin.as_str().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(
        origins,
        [("ami".to_owned(), 27), ("cdr-db".to_owned(), 15)].into()
    );
}

/// A database that hangs (frozen: it accepts connections and never answers) while the box
/// pulls from it must not hold up the AMI link: the box starts with the database frozen, so its
/// start-up reconciliation (due at once: settle 0) waits out the 10 s connect limit, and the 30
/// calls the PBX sends in the first seconds are all stored before that pull gives up with
/// `DB DOWN`. (The overlap follows from the schedule; the test prints both times.)
#[test]
fn a_hung_database_never_holds_up_the_ami_link() {
    let db = MariaDb::start_freepbx(&freepbx_cdr());
    db.freeze();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = rt.block_on(FakeAmi::cdr_stream("55", 30, Duration::from_millis(500)));
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let config = box_beside(dir.path(), &pbx, web, &db, &[]);
    let started = std::time::Instant::now();
    let running = RunningBox::start(&config, PASS);
    wait("the 30 calls over AMI", Duration::from_secs(60), || {
        total(web) == 30
    });
    let stored = started.elapsed();
    // The pull that started with the box is still waiting on the frozen server.
    let s = status(web);
    assert_ne!(s["cdr_db"][0]["state"], "ok", "{s}");
    assert!(
        !s["alarms"].to_string().contains("DB DOWN"),
        "the pull gave up first: {s}"
    );
    wait("the pull's time limit", Duration::from_secs(60), || {
        status(web)["alarms"].to_string().contains("DB DOWN")
    });
    eprintln!(
        "box started → 30 calls stored {stored:?}, → DB DOWN seen {:?}",
        started.elapsed()
    );
    let s = status(web);
    assert!(db_message(&s).contains("no answer within 10 s"), "{s}");
    assert_eq!(s["links"][0]["state"], "up", "{s}");
    db.thaw();
    running.stop();
}
