//! The CDR database adapter against a real MariaDB (Debian's mariadb-server, started per test
//! on 127.0.0.1 with a throw-away data directory) holding FreePBX's `cdr` table, filled the way
//! `cdr_adaptive_odbc` fills it from the same calls as the AMI captures: the rows come back as
//! records with the match keys of their AMI twins; older schemas work; a refused login, a
//! missing grant, a missing table, a server that is down, dies mid-answer, never answers or
//! freezes mid-answer are error values naming what to fix (a time limit, never a hang); TLS is
//! used when the server offers it.

use crate::import_support;
use crate::mariadb;

use std::time::Duration;

use cdrbox::import::cdr_db::{CdrDb, CdrDbError, DbRow, Window};
use cdrbox::import::master_csv::CsvLayout;
use cdrbox::import::{db_record, read_csv};
use cdrbox::record::{CallRecord, Origin, PbxContext};
use import_support::{ami_records, master_csv, match_keys, moscow};
use mariadb::{freepbx_cdr, freepbx_cdr_old, freepbx_insert, MariaDb};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh server with FreePBX's table (today's schema, or the older one without the newer
/// columns) holding the Master.csv calls as cdr_adaptive_odbc writes them, and the adapter
/// reading `table` there as the read-only user.
fn freepbx_with_the_calls(ctx: &PbxContext, new_columns: bool, table: &str) -> (MariaDb, CdrDb) {
    let db = MariaDb::start_freepbx(&if new_columns {
        freepbx_cdr()
    } else {
        freepbx_cdr_old()
    });
    let sql: String = read_csv(&master_csv(), ctx, CsvLayout::default(), 1)
        .0
        .iter()
        .enumerate()
        .map(|(i, r)| freepbx_insert(r, new_columns.then_some(100 + i)))
        .collect();
    db.sql(&sql);
    let cdr = CdrDb::new(&db.url("cdrbox", "pw"), table).unwrap();
    (db, cdr)
}

/// The calls of the captures: 2026-11-22 10:07–10:10 Moscow.
fn capture_window() -> Window {
    Window {
        from_utc: 1_795_331_200,
        to_utc: 1_795_331_400,
        lookback: Duration::from_secs(4 * 3600),
    }
}

fn fetch_all(cdr: &CdrDb, w: &Window, ctx: &PbxContext) -> Result<Vec<DbRow>, CdrDbError> {
    let mut rows = Vec::new();
    rt().block_on(cdr.fetch(w, &ctx.timezone, |r| rows.push(r)))?;
    Ok(rows)
}

/// The rows of the captures' window, as records.
fn capture_records(cdr: &CdrDb, ctx: &PbxContext) -> Vec<CallRecord> {
    fetch_all(cdr, &capture_window(), ctx)
        .unwrap()
        .iter()
        .map(|r| db_record(r, ctx, 5).unwrap())
        .collect()
}

/// FreePBX's table holding the Master.csv calls doubled 11 times (42 × 2^11 ≈ 86 000 rows: far
/// more than the socket buffers hold, so an answer is still streaming when the server dies or
/// freezes), the adapter reading it, and its row count.
fn big_table(ctx: &PbxContext) -> (MariaDb, CdrDb, u64) {
    let (db, cdr) = freepbx_with_the_calls(ctx, true, "cdr");
    for _ in 0..11 {
        db.sql("INSERT INTO cdr SELECT * FROM cdr");
    }
    let total = db.sql("SELECT COUNT(*) FROM cdr").trim().parse().unwrap();
    (db, cdr, total)
}

/// A pull that calls `at_first_row` once its first row is in: how it ended, and how many rows
/// it handed over.
fn pull_interrupted(
    cdr: &CdrDb,
    w: &Window,
    ctx: &PbxContext,
    mut at_first_row: impl FnMut(),
) -> (Result<u64, CdrDbError>, u64) {
    let mut got = 0u64;
    let r = rt().block_on(cdr.fetch(w, &ctx.timezone, |_| {
        got += 1;
        if got == 1 {
            at_first_row();
        }
    }));
    (r, got)
}

/// A whole pull: (the rows it says it read, the rows it handed over).
fn pull_count(cdr: &CdrDb, w: &Window, ctx: &PbxContext) -> (u64, u64) {
    let mut n = 0u64;
    let read = rt()
        .block_on(cdr.fetch(w, &ctx.timezone, |_| n += 1))
        .unwrap();
    (read, n)
}

#[test]
fn freepbx_rows_come_back_with_the_match_keys_of_their_ami_twins() {
    let ctx = moscow();
    let (_db, cdr) = freepbx_with_the_calls(&ctx, true, "cdr");
    let records = capture_records(&cdr, &ctx);
    assert_eq!(records.len(), 42);
    assert_eq!(match_keys(&records), match_keys(&ami_records(&ctx)));
    let first = records
        .iter()
        .find(|r| r.unique_id == "1795331226.1")
        .unwrap();
    assert_eq!(first.start.rfc3339(), "2026-11-22T10:07:06+03:00");
    assert_eq!(
        first.answer, None,
        "the database has no answer time: not invented"
    );
    assert_eq!(
        first.end.raw, "",
        "the database has no end time: not invented"
    );
    assert_eq!(
        first.ama_flags, "DOCUMENTATION",
        "amaflags 3 is DOCUMENTATION"
    );
    assert_eq!(first.origin, Origin::CdrDb);
    assert_eq!(first.linked_id.as_deref(), Some("1795331226.1"));
    assert!(first.sequence.is_some());
    assert!(first
        .custom_fields
        .iter()
        .any(|(k, v)| k == "cnam" && v == "Alice Smith"));
    let petrov = records.iter().find(|r| r.source == "+79161234567").unwrap();
    assert_eq!(petrov.caller_name(), "Петров, Иван \"Ваня\"");
    // A window that ends before the calls started returns none of them.
    let before = Window {
        from_utc: 1_795_300_000,
        to_utc: 1_795_310_000,
        lookback: Duration::from_secs(3600),
    };
    assert_eq!(fetch_all(&cdr, &before, &ctx).unwrap().len(), 0);
    // The read-only user works with TLS off (Debian's MariaDB 10.11 has none by default).
    assert!(!rt().block_on(cdr.check()).unwrap());
}

#[test]
fn an_older_freepbx_schema_is_read_too() {
    let ctx = moscow();
    let (_db, cdr) = freepbx_with_the_calls(&ctx, false, "asteriskcdrdb.cdr");
    let records = capture_records(&cdr, &ctx);
    assert_eq!(match_keys(&records), match_keys(&ami_records(&ctx)));
    assert!(records.iter().all(|r| r.sequence.is_none()));
}

#[test]
fn refusals_are_errors_that_say_what_to_fix() {
    let ctx = moscow();
    let db = MariaDb::start_freepbx(&freepbx_cdr());
    db.sql("CREATE USER 'nogrant'@'127.0.0.1' IDENTIFIED BY 'pw'; CREATE TABLE other (x int);");
    let w = capture_window();
    let wrong = CdrDb::new(&db.url("cdrbox", "wrong"), "cdr").unwrap();
    let e = fetch_all(&wrong, &w, &ctx).unwrap_err();
    assert!(matches!(e, CdrDbError::Auth { .. }), "{e}");
    assert_eq!(e.code(), "DB AUTH");
    assert!(e.to_string().contains("check the user and password"), "{e}");
    assert!(
        !e.to_string().contains("wrong"),
        "no password in messages: {e}"
    );
    let nogrant = CdrDb::new(&db.url("nogrant", "pw"), "cdr").unwrap();
    let e = fetch_all(&nogrant, &w, &ctx).unwrap_err();
    // MariaDB refuses the database itself to a user with no right on it.
    assert!(
        matches!(e, CdrDbError::Auth { .. } | CdrDbError::Denied { .. }),
        "{e}"
    );
    db.sql("GRANT SELECT ON asteriskcdrdb.other TO 'nogrant'@'127.0.0.1';");
    let e = fetch_all(&nogrant, &w, &ctx).unwrap_err();
    assert!(matches!(e, CdrDbError::Denied { .. }), "{e}");
    assert!(e.to_string().contains("GRANT SELECT"), "{e}");
    let missing = CdrDb::new(&db.url("cdrbox", "pw"), "cdr_missing").unwrap();
    let e = fetch_all(&missing, &w, &ctx).unwrap_err();
    assert!(
        matches!(e, CdrDbError::Denied { .. } | CdrDbError::NoTable { .. }),
        "{e}"
    );
    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = CdrDb::new(
        &format!("mysql://cdrbox:pw@127.0.0.1:{port}/asteriskcdrdb"),
        "cdr",
    )
    .unwrap();
    let e = fetch_all(&down, &w, &ctx).unwrap_err();
    assert!(matches!(e, CdrDbError::Connect { .. }), "{e}");
    assert_eq!(e.code(), "DB DOWN");
}

#[test]
fn a_server_that_dies_mid_answer_is_an_error_and_a_later_pull_gets_everything() {
    let ctx = moscow();
    let (mut db, cdr, total) = big_table(&ctx);
    let w = capture_window();
    let (r, got) = pull_interrupted(&cdr, &w, &ctx, || db.kill());
    let e = r.unwrap_err();
    assert!(matches!(e, CdrDbError::Broken { .. }), "{e}");
    assert!(
        e.to_string().contains("the rows read so far were kept"),
        "{e}"
    );
    assert!(got < total, "{got} of {total}");
    db.restart();
    assert_eq!(pull_count(&cdr, &w, &ctx), (total, total));
}

#[test]
fn a_server_that_stops_answering_is_a_timeout_not_a_hang() {
    use cdrbox::import::cdr_db::Limits;
    use std::time::Instant;
    let ctx = moscow();
    let w = capture_window();
    let limits = Limits {
        connect: Duration::from_secs(1),
        query: Duration::from_secs(3),
    };
    // Something accepts the connection and never says a word (a hung host, a wrong service).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut hung = CdrDb::new(
        &format!("mysql://cdrbox:pw@127.0.0.1:{port}/asteriskcdrdb"),
        "cdr",
    )
    .unwrap();
    hung.limits = limits;
    let t = Instant::now();
    let e = fetch_all(&hung, &w, &ctx).unwrap_err();
    assert!(
        matches!(
            e,
            CdrDbError::Timeout {
                what: "connect",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.code(), "DB DOWN");
    assert!(e.to_string().contains("no answer within 1 s"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    drop(silent);

    // A real server that freezes while its answer streams: the query's limit ends the pull,
    // the rows read so far are handed over, and once it answers again a pull gets everything.
    let (db, mut cdr, total) = big_table(&ctx);
    cdr.limits = limits;
    let t = Instant::now();
    let (r, got) = pull_interrupted(&cdr, &w, &ctx, || db.freeze());
    db.thaw();
    let e = r.unwrap_err();
    assert!(
        matches!(e, CdrDbError::Timeout { what: "query", .. }),
        "{e}"
    );
    assert_eq!(e.code(), "DB DOWN");
    assert!(got >= 1 && got < total, "{got} of {total}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    cdr.limits = Limits::default();
    assert_eq!(pull_count(&cdr, &w, &ctx), (total, total));
}

#[test]
fn tls_is_used_when_the_server_offers_it() {
    let db_dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        db_dir.path().join("cert.pem"),
        db_dir.path().join("key.pem"),
    );
    let st = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg("/CN=pbx.example")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut db = MariaDb::start_freepbx(&freepbx_cdr());
    db.set_extra_args(vec![
        format!("--ssl-cert={}", cert.display()),
        format!("--ssl-key={}", key.display()),
    ]);
    db.restart();
    let cdr = CdrDb::new(&db.url("cdrbox", "pw"), "cdr").unwrap();
    assert!(rt().block_on(cdr.check()).unwrap(), "TLS in use");
    // And a user the server requires TLS of still gets in.
    db.sql("ALTER USER 'cdrbox'@'127.0.0.1' REQUIRE SSL;");
    assert!(rt().block_on(cdr.check()).unwrap());
}
