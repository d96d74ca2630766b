//! The CDR-database puller against a real MariaDB with FreePBX's table: the AMI link went down
//! while calls went on (the database got every row, the journal only those from before and
//! after the gap); when the gap closes the box fills exactly the missing calls, each once; a
//! database that goes away is a failing status and an alarm, and the next pull after it comes
//! back adds nothing twice; rows that keep arriving are picked up by the reconciliation.

use crate::import_support;
use crate::mariadb;

use std::time::{Duration, Instant};

use cdrbox::clock::Clock;
use cdrbox::filter::{Filter, Sort};
use cdrbox::import::cdr_db::CdrDb;
use cdrbox::import::master_csv::CsvLayout;
use cdrbox::import::pull::{PullJob, PullReason, PullSettings};
use cdrbox::import::puller::{alarm, Puller};
use cdrbox::import::read_csv;
use cdrbox::journal::{Journal, JournalHandle};
use cdrbox::record::{match_key, CallRecord};
use cdrbox::sink::{DownKind, LinkEvent, RecordSink};
use import_support::{ami_records, key_counts, master_csv, moscow, storage};
use mariadb::{freepbx_cdr, freepbx_insert, MariaDb};

fn insert(db: &MariaDb, r: &CallRecord, sequence: usize) {
    db.sql(&freepbx_insert(r, Some(sequence)));
}

fn stored(journal: &JournalHandle) -> Vec<CallRecord> {
    journal.flush().unwrap();
    let mut out = Vec::new();
    journal
        .reader()
        .unwrap()
        .for_each(&Filter::default(), Sort::StartAsc, |r| {
            out.push(r);
            Ok::<(), cdrbox::journal::JournalError>(())
        })
        .unwrap();
    out
}

#[test]
fn a_closed_gap_is_filled_with_exactly_the_missing_calls() {
    let ctx = moscow();
    let mut db = MariaDb::start_freepbx(&freepbx_cdr());
    let calls = read_csv(&master_csv(), &ctx, CsvLayout::default(), 1).0;
    let ami = ami_records(&ctx);
    // The link goes down after the 15th call ends and comes back as the 30th ends.
    let mut ends: Vec<i64> = ami.iter().map(|r| r.end.utc.unwrap()).collect();
    ends.sort();
    let (down, up) = (ends[14], ends[29]);
    let in_gap = |r: &CallRecord| {
        let e = r.end.utc.unwrap();
        e >= down && e <= up
    };
    let dir = tempfile::tempdir().unwrap();
    // The box's clock: ten minutes after the calls.
    let clock = Clock::fixed_wall(ends[41] + 600);
    let (journal, _) = Journal::open(&storage(dir.path()), clock.clone()).unwrap();
    for r in ami.iter().filter(|r| !in_gap(r)) {
        journal
            .record_durable(r.clone(), Duration::from_secs(30))
            .unwrap();
    }
    let missing = ami.iter().filter(|r| in_gap(r)).count();
    assert!(missing >= 10, "{missing}");
    journal.link_event(
        "pbx1",
        down,
        LinkEvent::Down {
            reason: "network cable pulled".into(),
            kind: DownKind::Transient,
        },
    );
    // The PBX kept every call in its database, also while the link was down.
    for (i, r) in calls.iter().enumerate() {
        insert(&db, r, 100 + i);
    }
    journal.link_event(
        "pbx1",
        up,
        LinkEvent::Up {
            banner: None,
            pbx_restarted: false,
        },
    );
    journal.flush().unwrap();
    assert_eq!(stored(&journal).len(), 42 - missing);

    let settings = PullSettings {
        settle: Duration::ZERO,
        reconcile_every: Duration::ZERO,
        ..PullSettings::default()
    };
    let cdr = CdrDb::new(&db.url("cdrbox", "pw"), "cdr").unwrap();
    let puller = Puller::new(
        ctx.clone(),
        cdr.clone(),
        settings,
        journal.clone(),
        clock.clone(),
    );
    let status = puller.status();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = rt.spawn(puller.run(stop_rx));
    let t = Instant::now();
    while stored(&journal).len() < 42 {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "the gap was not filled: {:?}",
            status.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = stop_tx.send(true);
    rt.block_on(task).unwrap();
    let all = stored(&journal);
    assert_eq!(all.len(), 42);
    assert_eq!(
        key_counts(&all),
        key_counts(&calls),
        "every call exactly once"
    );
    let from_db: Vec<&CallRecord> = all.iter().filter(|r| r.end.raw.is_empty()).collect();
    assert_eq!(
        from_db.len(),
        missing,
        "exactly the missing ones came from the database"
    );
    assert!(from_db.iter().all(|r| in_gap(
        &ami[ami
            .iter()
            .position(|a| match_key(a) == match_key(r))
            .unwrap()]
    )));
    {
        let s = status.lock().unwrap();
        assert_eq!(s.state, "ok");
        assert_eq!(s.total_new, missing as u64);
        assert_eq!(s.waiting_gaps, 0);
    }

    // The database goes away: a failing status and an alarm, nothing stored twice after.
    let mut puller = Puller::new(
        ctx.clone(),
        cdr.clone(),
        settings,
        journal.clone(),
        clock.clone(),
    );
    let st = puller.status();
    let job = PullJob {
        reason: PullReason::Reconcile,
        from_utc: ends[0] - 3600,
        to_utc: ends[41] + 60,
    };
    db.kill();
    assert!(!rt.block_on(puller.pull(&job)));
    let (code, message) = alarm("pbx1", &st.lock().unwrap()).expect("an alarm");
    assert_eq!(code, "DB DOWN");
    assert!(message.contains("cannot connect"), "{message}");
    db.restart();
    // Meanwhile one more call reached only the database.
    let mut late = calls[0].clone();
    late.unique_id = "1795331500.900".into();
    insert(&db, &late, 999);
    assert!(rt.block_on(puller.pull(&job)));
    let after = stored(&journal);
    assert_eq!(after.len(), 43, "the late row only");
    assert_eq!(st.lock().unwrap().last_new, 1);
    assert!(alarm("pbx1", &st.lock().unwrap()).is_none());
    // And the same again adds nothing.
    assert!(rt.block_on(puller.pull(&job)));
    assert_eq!(stored(&journal).len(), 43);
    journal.shutdown();
}

#[test]
fn a_refused_login_is_a_status_not_a_crash() {
    let ctx = moscow();
    let db = MariaDb::start_freepbx(&freepbx_cdr());
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let (journal, _) = Journal::open(&storage(dir.path()), clock.clone()).unwrap();
    let cdr = CdrDb::new(&db.url("cdrbox", "not-the-password"), "cdr").unwrap();
    let mut puller = Puller::new(
        ctx,
        cdr,
        PullSettings::default(),
        journal.clone(),
        clock.clone(),
    );
    let st = puller.status();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = clock.unix();
    let job = PullJob {
        reason: PullReason::Reconcile,
        from_utc: now - 3600,
        to_utc: now,
    };
    assert!(!rt.block_on(puller.pull(&job)));
    let s = st.lock().unwrap().clone();
    assert_eq!(s.state, "failing");
    assert_eq!(s.code.as_deref(), Some("DB AUTH"));
    assert!(!s.message.unwrap().contains("not-the-password"));
    journal.shutdown();
}
