//! Calls, not CDRs (issue 13, item 1): the real Asterisk captures grouped into calls by
//! `cdrbox::calls`, compared with `tests/fixtures/calls/*.txt` — one line per call with its
//! outcome and legs.
//!
//! `UPDATE_GOLDEN=1 cargo test --release --test integration -- calls_golden::` rewrites the files;
//! read the diff: every line is a claim about what a supervisor sees.

use crate::capture_support;

use capture_support::office_records as decode;
use cdrbox::calls::{group, Call, Outcome};
use cdrbox::record::CallRecord;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn line(c: &Call, records: &[CallRecord]) -> String {
    let legs: Vec<String> = c
        .legs
        .iter()
        .map(|&i| {
            let r = &records[i];
            format!("{}:{}", r.unique_id, r.disposition.as_str())
        })
        .collect();
    format!(
        "{:<9} by={:<9} xfer={:<5} queue={:<8} talk={:<2} wait={:<4} legs={} [{}]",
        c.outcome.as_str(),
        c.answered_by.as_deref().unwrap_or("-"),
        c.transferred_to.as_deref().unwrap_or("-"),
        c.queue.as_deref().unwrap_or("-"),
        c.talk_seconds,
        c.wait_seconds.map_or("-".to_string(), |w| w.to_string()),
        c.legs.len(),
        legs.join(" ")
    )
}

fn golden(name: &str) -> Vec<Call> {
    let records = decode(name);
    let calls = group(&records);
    // Every record is in exactly one call.
    let mut seen: Vec<usize> = calls.iter().flat_map(|c| c.legs.clone()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..records.len()).collect::<Vec<_>>(), "{name}");
    let text: String = calls.iter().map(|c| line(c, &records) + "\n").collect();
    let path = format!("{DIR}/calls/{name}.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(format!("{DIR}/calls")).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (UPDATE_GOLDEN=1 writes it)"));
    assert_eq!(text, want, "{name}: got\n{text}\nwant\n{want}");
    calls
}

fn outcomes(calls: &[Call]) -> Vec<Outcome> {
    calls.iter().map(|c| c.outcome).collect()
}

#[test]
fn no_answer_and_its_hangup_leftover_are_one_missed_call() {
    assert_eq!(outcomes(&golden("cdr_no_answer")), [Outcome::Missed]);
}

#[test]
fn busy_with_its_leftover_is_one_busy_call() {
    assert_eq!(outcomes(&golden("cdr_busy")), [Outcome::Busy]);
}

#[test]
fn congestion_is_one_failed_call() {
    assert_eq!(outcomes(&golden("cdr_congestion")), [Outcome::Failed]);
}

#[test]
fn queue_ringall_is_one_call_answered_by_the_member_who_took_it() {
    let calls = golden("cdr_queue");
    assert_eq!(outcomes(&calls), [Outcome::Answered]);
    assert_eq!(calls[0].answered_by.as_deref(), Some("201"));
    assert_eq!(calls[0].queue.as_deref(), Some("support"));
    assert_eq!(calls[0].legs.len(), 2);
}

#[test]
fn transfer_is_one_call_with_both_takers() {
    let calls = golden("cdr_transfer");
    assert_eq!(outcomes(&calls), [Outcome::Answered]);
    assert_eq!(calls[0].answered_by.as_deref(), Some("2009"));
    assert_eq!(calls[0].transferred_to.as_deref(), Some("2001"));
    assert_eq!(calls[0].talk_seconds, 5);
}

#[test]
fn both_halves_of_a_local_channel_are_one_call() {
    let calls = golden("cdr_simple_answered_both_legs");
    assert_eq!(outcomes(&calls), [Outcome::Answered]);
    assert_eq!(calls[0].legs.len(), 2);
    // Both halves report the same 2 s: talked once.
    assert_eq!(calls[0].talk_seconds, 2);
}

/// Known limit, pinned: without a mapped LinkedID the stub CDR of a Dial to a channel that could
/// not be created has its own UniqueID and nothing that ties it to the caller.
#[test]
fn failed_dial_stub_without_linked_id_stays_apart() {
    assert_eq!(
        outcomes(&golden("cdr_failed")),
        [Outcome::Failed, Outcome::Missed]
    );
}

#[test]
fn mixed_session_twenty_cdrs_are_fourteen_calls() {
    let calls = golden("mixed_session_cdr_only");
    // 14 originates; `Local/busy@simple` shows both Local halves (one call).
    assert_eq!(calls.len(), 14);
    let n = |o: Outcome| calls.iter().filter(|c| c.outcome == o).count();
    assert_eq!(n(Outcome::Answered), 8);
    assert_eq!(n(Outcome::Busy), 3);
    assert_eq!(n(Outcome::Failed), 2);
    assert_eq!(n(Outcome::Missed), 1);
}

/// With LinkedID mapped, Asterisk's own relation wins: legs with different UniqueIDs but one
/// LinkedID are one call, and one UniqueID never splits.
#[test]
fn linked_id_joins_what_unique_id_cannot() {
    let mut records = decode("cdr_failed");
    for r in &mut records {
        r.linked_id = Some("1795331250.24".into());
    }
    let calls = group(&records);
    assert_eq!(outcomes(&calls), [Outcome::Failed]);
    assert_eq!(calls[0].legs.len(), 2);
}
