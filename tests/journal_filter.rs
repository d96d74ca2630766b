//! The journal's SQL for a `Filter` must select exactly what `Filter::matches` selects; sorting,
//! paging, totals, and streaming over 100k rows.

use crate::journal_common;

use std::collections::BTreeSet;

use cdrbox::filter::{Filter, Page, Sort};
use cdrbox::journal::testdata::{sample_record, BASE_UTC};
use cdrbox::journal::{Journal, JournalError, JournalHandle, JournalReader};
use cdrbox::record::{CallRecord, Direction, Disposition};
use cdrbox::sink::RecordSink;
use journal_common::{cfg, clock, paths};

fn records() -> Vec<CallRecord> {
    let mut v: Vec<CallRecord> = (0..600).map(sample_record).collect();
    v[7].start.utc = None; // unparsable PBX time
    v[8].caller_id = "ΟΔΟΣ Σ".into();
    v[9].source = "ABC-ÄÖ".into();
    v[10].queue = Some("Support".into());
    // Several records of one call (issue 13, item 1): six legs with one LinkedID, and the two
    // halves of a Local channel without one (UniqueIDs 1767000010.0 and .1: same second), each
    // on one PBX (a call never spans two).
    let pbx = v[21].pbx.clone();
    for r in &mut v[20..26] {
        r.linked_id = Some("1767000006.2".into());
        r.pbx = pbx.clone();
    }
    for (r, half) in v[30..32].iter_mut().zip(["1", "2"]) {
        r.linked_id = None;
        r.channel = format!("Local/2001@internal-0000001a;{half}");
        r.pbx = pbx.clone();
    }
    // The same LinkedID on another PBX is another call.
    v[40].linked_id = Some("1767000006.2".into());
    v[40].pbx = "elsewhere".into();
    v
}

fn filters() -> Vec<Filter> {
    let d = Filter::default;
    vec![
        d(),
        Filter {
            from_utc: Some(BASE_UTC + 1000),
            ..d()
        },
        Filter {
            to_utc: Some(BASE_UTC + 1000),
            ..d()
        },
        Filter {
            from_utc: Some(BASE_UTC + 37 * 100),
            to_utc: Some(BASE_UTC + 37 * 200),
            ..d()
        },
        Filter {
            dispositions: vec![Disposition::Answered],
            ..d()
        },
        Filter {
            dispositions: vec![Disposition::Busy, Disposition::NoAnswer],
            ..d()
        },
        Filter {
            dispositions: vec![Disposition::Other("WEIRD".into())],
            ..d()
        },
        Filter {
            directions: vec![Direction::Inbound, Direction::Internal],
            ..d()
        },
        Filter {
            pbx: vec!["branch".into()],
            ..d()
        },
        Filter {
            source_contains: Some("иВаН".into()),
            ..d()
        },
        Filter {
            source_contains: Some("σ".into()),
            ..d()
        },
        Filter {
            source_contains: Some("äö".into()),
            ..d()
        },
        Filter {
            source_contains: Some("1013".into()),
            ..d()
        },
        Filter {
            source_contains: Some("%".into()),
            ..d()
        },
        Filter {
            source_contains: Some("".into()),
            ..d()
        },
        Filter {
            destination_contains: Some("91600001".into()),
            ..d()
        },
        Filter {
            account_code: Some("acc2".into()),
            ..d()
        },
        Filter {
            queue: Some("q1".into()),
            ..d()
        },
        Filter {
            queue: Some("support".into()),
            ..d()
        },
        Filter {
            agent: Some("2004".into()),
            ..d()
        },
        Filter {
            min_duration: Some(100),
            max_duration: Some(120),
            ..d()
        },
        Filter {
            from_utc: Some(BASE_UTC),
            dispositions: vec![Disposition::Answered, Disposition::Failed],
            directions: vec![Direction::Outbound, Direction::Inbound],
            pbx: vec!["main".into()],
            min_duration: Some(30),
            ..d()
        },
    ]
}

/// A journal in `dir` handed `recs` (not yet flushed).
fn journal_with(dir: &std::path::Path, recs: &[CallRecord]) -> JournalHandle {
    let (c, _) = clock(BASE_UTC);
    let (j, _) = Journal::open(&cfg(dir), c).unwrap();
    for r in recs {
        j.record(r.clone());
    }
    j
}

#[test]
fn sql_and_matches_select_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records();
    let j = journal_with(dir.path(), &recs);
    j.flush().unwrap();
    let reader = JournalReader::open(&paths(dir.path())).unwrap();
    for f in filters() {
        let want: BTreeSet<[u8; 16]> = recs
            .iter()
            .filter(|r| f.matches(r))
            .map(|r| r.identity)
            .collect();
        let got: BTreeSet<[u8; 16]> = reader
            .query(
                &f,
                Sort::StartAsc,
                Page {
                    limit: 10_000,
                    offset: 0,
                },
            )
            .unwrap()
            .iter()
            .map(|r| r.identity)
            .collect();
        assert_eq!(got, want, "filter {f:?}");
        assert_eq!(reader.count(&f).unwrap(), want.len() as u64, "count {f:?}");
        // Calls are counted in SQL by the same key the page groups by.
        let calls: BTreeSet<String> = recs
            .iter()
            .filter(|r| f.matches(r))
            .map(cdrbox::calls::call_key)
            .collect();
        assert_eq!(
            reader.count_calls(&f).unwrap(),
            calls.len() as u64,
            "calls {f:?}"
        );
        let totals = reader.totals(&f).unwrap();
        assert_eq!(totals.count, want.len() as u64);
        let answered = recs
            .iter()
            .filter(|r| f.matches(r) && r.disposition == Disposition::Answered)
            .count() as u64;
        assert_eq!(totals.answered, answered);
        // The pending view (records not yet committed) uses matches() on the same records.
        let _ = j.pending_records().iter().filter(|r| f.matches(r)).count();
    }
    // The shared LinkedID and the Local halves make fewer calls than records.
    assert_eq!(
        reader.count_calls(&Filter::default()).unwrap(),
        recs.len() as u64 - 5 - 1
    );
    // Non-trivial filters: each selects something and not everything, so the test can fail.
    for f in filters().iter().skip(1) {
        if f.source_contains.as_deref() == Some("") || f.source_contains.as_deref() == Some("%") {
            continue;
        }
        if f.queue.as_deref() == Some("support") {
            // Equality filters are exact: queue names are case-sensitive in Asterisk.
            assert_eq!(reader.count(f).unwrap(), 0);
            continue;
        }
        let n = reader.count(f).unwrap();
        assert!(n > 0 && n < recs.len() as u64, "{f:?} selects {n}");
    }
    j.shutdown();
}

#[test]
fn sorting_and_paging_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records();
    let j = journal_with(dir.path(), &recs);
    j.shutdown();
    let reader = JournalReader::open(&paths(dir.path())).unwrap();
    let all = Filter::default();
    for sort in [
        Sort::StartDesc,
        Sort::StartAsc,
        Sort::DurationDesc,
        Sort::DurationAsc,
    ] {
        let whole = reader
            .query(
                &all,
                sort,
                Page {
                    limit: 10_000,
                    offset: 0,
                },
            )
            .unwrap();
        assert_eq!(whole.len(), recs.len());
        let mut paged = Vec::new();
        for p in 0..(recs.len() as u64).div_ceil(70) {
            paged.extend(
                reader
                    .query(
                        &all,
                        sort,
                        Page {
                            limit: 70,
                            offset: p * 70,
                        },
                    )
                    .unwrap(),
            );
        }
        assert_eq!(paged, whole, "{sort:?}");
        let mut streamed = Vec::new();
        reader
            .for_each::<JournalError>(&all, sort, |r| {
                streamed.push(r);
                Ok(())
            })
            .unwrap();
        assert_eq!(streamed, whole, "{sort:?}");
        let key = |r: &CallRecord| match sort {
            Sort::StartDesc | Sort::StartAsc => r.start.utc.unwrap_or(i64::MIN),
            Sort::DurationDesc | Sort::DurationAsc => r.duration,
        };
        let keys: Vec<i64> = whole.iter().map(key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if matches!(sort, Sort::StartDesc | Sort::DurationDesc) {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{sort:?}");
    }
    let newest = reader
        .query(
            &all,
            Sort::StartDesc,
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .unwrap();
    assert_eq!(newest[0].sequence, Some(599));
}

#[test]
fn for_each_streams_100k_rows_and_stops_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = clock(BASE_UTC);
    let (j, report) = Journal::open(&cfg(dir.path()), c).unwrap();
    for n in 0..1000 {
        j.record(sample_record(n));
    }
    j.shutdown();
    // Grow to 100k rows in SQL (new identities, later start times) — quicker than the writer.
    {
        let conn = rusqlite::Connection::open(&report.paths.db).unwrap();
        let cols: Vec<String> = {
            let mut st = conn
                .prepare("SELECT name FROM pragma_table_info('cdr')")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let rest: Vec<&String> = cols.iter().filter(|c| *c != "id").collect();
        let select: Vec<String> = rest
            .iter()
            .map(|c| match c.as_str() {
                "identity" => "randomblob(16)".to_string(),
                "start_utc" => format!("start_utc + ?1 * {}", 37 * 1000),
                other => other.to_string(),
            })
            .collect();
        let names: Vec<&str> = rest.iter().map(|s| s.as_str()).collect();
        let sql = format!(
            "INSERT INTO cdr ({}) SELECT {} FROM cdr WHERE id <= 1000",
            names.join(", "),
            select.join(", ")
        );
        let tx = conn.unchecked_transaction().unwrap();
        for k in 1..100 {
            tx.execute(&sql, [k]).unwrap();
        }
        tx.commit().unwrap();
    }
    let reader = JournalReader::open(&paths(dir.path())).unwrap();
    assert_eq!(reader.count(&Filter::default()).unwrap(), 100_000);
    let mut n = 0u64;
    let mut last = i64::MIN;
    let mut in_order = true;
    let passed = reader
        .for_each::<JournalError>(&Filter::default(), Sort::StartAsc, |r| {
            let t = r.start.utc.unwrap();
            in_order &= t >= last;
            last = t;
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!((n, passed), (100_000, 100_000));
    assert!(in_order);

    #[derive(Debug)]
    enum Stop {
        Enough,
        Journal,
    }
    impl From<JournalError> for Stop {
        fn from(_: JournalError) -> Self {
            Stop::Journal
        }
    }
    let mut seen = 0;
    let r = reader.for_each(&Filter::default(), Sort::StartDesc, |_| {
        seen += 1;
        if seen == 10 {
            Err(Stop::Enough)
        } else {
            Ok(())
        }
    });
    assert!(matches!(r, Err(Stop::Enough)));
    assert_eq!(seen, 10, "stops at the first error");
    assert_eq!(reader.max_id().unwrap(), 100_000);
    let after = reader.records_after_id(99_990, 100).unwrap();
    assert_eq!(after.len(), 10);
    assert_eq!(after[0].0, 99_991);
}
