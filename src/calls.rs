//! Calls, not CDRs: groups call records into the calls a person made or took, and says how each
//! ended (answered by whom, missed, abandoned in a queue, busy, failed). Pure code over
//! [`CallRecord`]s; no I/O (issue 13, item 1).
//!
//! Why: Asterisk writes several CDRs per call — a failed Dial plus its 0 s `Hangup` leftover,
//! one CDR per queue member rung, one per transfer leg, one per half of a Local channel (see
//! `tests/fixtures/ami/README.md`, "Observed format facts" 7). Counting rows made the calls page
//! say 506 where the status said 387. Every count that says "calls" (status "today", the calls
//! page, stats, the OLED) uses [`call_key`], and the journal counts distinct keys in SQL with the
//! same function, so they agree.
//!
//! The key is per record on purpose (so SQL can count it over any range without loading rows):
//! 1. `LinkedID` when the PBX maps it (`[mappings]` in cdr_manager.conf) — Asterisk's own "this
//!    belongs to that call", covering transfers and Local-channel ring groups;
//! 2. else the two halves of one Local channel (`Local/x@ctx-0000001e;1` and `;2`, created in
//!    the same second) are one call;
//! 3. else `UniqueID`: every CDR of one channel (queue members, transfer legs, the leftover).
//!
//! Not joined without `LinkedID`: a Dial to a Local channel that could not be created (its stub
//! CDR has its own UniqueID and no relation a record carries) — the golden test pins this.

use crate::record::{unique_id_epoch, CallRecord, Direction, Disposition};

/// The call a record belongs to: PBX, NUL, then the key described in the module docs.
pub fn call_key(r: &CallRecord) -> String {
    call_key_of(&r.pbx, r.linked_id.as_deref(), &r.unique_id, &r.channel)
}

/// [`call_key`] from the stored columns (the journal's SQL function calls this).
pub fn call_key_of(pbx: &str, linked_id: Option<&str>, unique_id: &str, channel: &str) -> String {
    if let Some(linked) = linked_id.filter(|l| !l.is_empty()) {
        return format!("{pbx}\u{0}{linked}");
    }
    if let (Some(base), Some(epoch)) = (local_base(channel), unique_id_epoch(unique_id)) {
        // The counter in a Local channel's name restarts with Asterisk, so the creation second
        // (the UniqueID's epoch part) keeps two restarts' `Local/x-00000001` apart.
        return format!("{pbx}\u{0}{base}@{epoch}");
    }
    format!("{pbx}\u{0}{unique_id}")
}

/// `Local/answered@simple-0000001e;2` → `Local/answered@simple-0000001e`; `None` for any other
/// channel technology or shape.
fn local_base(channel: &str) -> Option<&str> {
    let rest = channel.strip_prefix("Local/")?;
    let (base, half) = rest.rsplit_once(';')?;
    if !matches!(half, "1" | "2") {
        return None;
    }
    let (_, counter) = base.rsplit_once('-')?;
    if counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(&channel[..channel.len() - half.len() - 1])
}

/// How a call ended, as a person says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Some leg was answered.
    Answered,
    /// Rang a queue and nobody answered before the caller hung up or the queue gave up.
    Abandoned,
    /// The callee was busy.
    Busy,
    /// The call could not be placed (FAILED, CONGESTION).
    Failed,
    /// Rang and nobody answered (NO ANSWER, CANCEL, anything else).
    Missed,
}

impl Outcome {
    /// The API's text for it (`/api/calls` `calls[].outcome`); a contract.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::Busy => "busy",
            Outcome::Failed => "failed",
            Outcome::Missed => "missed",
        }
    }
}

/// One call: which records are its legs and what a person wants to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub key: String,
    /// Indices into the slice given to [`group`], in start order (ties: input order).
    pub legs: Vec<usize>,
    pub outcome: Outcome,
    /// Who took the call: the agent (extension) of the first answered leg, else its
    /// destination.
    pub answered_by: Option<String>,
    /// The last answered leg's taker when it is not the first (a transfer).
    pub transferred_to: Option<String>,
    /// The first queue a leg went through.
    pub queue: Option<String>,
    pub direction: Direction,
    /// Earliest start of any leg (Unix seconds), when known.
    pub start_utc: Option<i64>,
    /// Latest end of any leg minus `start_utc`, when both are known.
    pub duration_seconds: Option<i64>,
    /// Talk time: the answered legs' billable time, overlapping legs counted once.
    pub talk_seconds: i64,
    /// From the call's start to the first answer.
    pub wait_seconds: Option<i64>,
}

/// Groups `records` into calls, in the order each call's first record appears.
pub fn group(records: &[CallRecord]) -> Vec<Call> {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for (i, r) in records.iter().enumerate() {
        let key = call_key(r);
        by_key
            .entry(key)
            .or_insert_with_key(|k| {
                order.push(k.clone());
                Vec::new()
            })
            .push(i);
    }
    order
        .into_iter()
        .filter_map(|key| {
            let legs = by_key.remove(&key)?;
            Some(summarize(key, legs, records))
        })
        .collect()
}

fn summarize(key: String, mut legs: Vec<usize>, records: &[CallRecord]) -> Call {
    // Stable: equal starts keep the order the PBX sent them in.
    legs.sort_by_key(|&i| records[i].start.utc.unwrap_or(i64::MAX));
    let rec = |i: &usize| &records[*i];
    let answered: Vec<&CallRecord> = legs
        .iter()
        .map(rec)
        .filter(|r| r.disposition == Disposition::Answered)
        .collect();
    let queue = legs
        .iter()
        .map(rec)
        .find_map(|r| r.queue.clone().filter(|q| !q.is_empty()));
    let has = |d: &[Disposition]| legs.iter().map(rec).any(|r| d.contains(&r.disposition));
    let outcome = if !answered.is_empty() {
        Outcome::Answered
    } else if queue.is_some() {
        Outcome::Abandoned
    } else if has(&[Disposition::Busy]) {
        Outcome::Busy
    } else if has(&[Disposition::Failed, Disposition::Congestion]) {
        Outcome::Failed
    } else {
        Outcome::Missed
    };
    let taker = |r: &CallRecord| {
        r.agent
            .clone()
            .filter(|a| !a.is_empty())
            .or_else(|| Some(r.destination.clone()).filter(|d| !d.is_empty()))
    };
    let answered_by = answered.first().and_then(|r| taker(r));
    let transferred_to = answered
        .last()
        .and_then(|r| taker(r))
        .filter(|t| answered.len() > 1 && Some(t) != answered_by.as_ref());
    let start_utc = legs.iter().filter_map(|i| records[*i].start.utc).min();
    let end_utc = legs.iter().filter_map(|i| records[*i].end.utc).max();
    let first_answer = answered
        .iter()
        .filter_map(|r| r.answer.as_ref().and_then(|a| a.utc))
        .min();
    let direction = legs
        .first()
        .map(|i| records[*i].direction)
        .unwrap_or(Direction::Unknown);
    Call {
        key,
        outcome,
        answered_by,
        transferred_to,
        queue,
        direction,
        start_utc,
        duration_seconds: start_utc.zip(end_utc).map(|(s, e)| (e - s).max(0)),
        talk_seconds: talk_seconds(&answered),
        wait_seconds: start_utc.zip(first_answer).map(|(s, a)| (a - s).max(0)),
        legs,
    }
}

/// Talk time of a call: the answered legs' time, overlaps counted once — both halves of a
/// Local channel report the same two seconds, a transfer's legs follow each other. A leg
/// whose answer or end time is unknown adds its billable seconds.
fn talk_seconds(answered: &[&CallRecord]) -> i64 {
    let mut spans: Vec<(i64, i64)> = Vec::new();
    let mut loose = 0;
    for r in answered {
        match (r.answer.as_ref().and_then(|a| a.utc), r.end.utc) {
            (Some(a), Some(e)) if e >= a => spans.push((a, a + r.billable_seconds.max(0))),
            _ => loose += r.billable_seconds.max(0),
        }
    }
    spans.sort_unstable();
    let mut total = loose;
    let mut reach = i64::MIN;
    for (a, e) in spans {
        let from = a.max(reach);
        if e > from {
            total += e - from;
        }
        reach = reach.max(e);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_base_takes_only_local_halves() {
        assert_eq!(
            local_base("Local/answered@simple-0000001e;2"),
            Some("Local/answered@simple-0000001e")
        );
        assert_eq!(
            local_base("Local/201@agents-00000014;1"),
            Some("Local/201@agents-00000014")
        );
        assert_eq!(local_base("PJSIP/1001-0000002a"), None);
        assert_eq!(local_base("Local/x@ctx-0001;3"), None);
        assert_eq!(local_base("Local/x@ctx;1"), None);
        assert_eq!(local_base("Local/x@ctx-zz;1"), None);
    }

    #[test]
    fn linked_id_wins_then_local_then_unique_id() {
        assert_eq!(
            call_key_of("p", Some("9.1"), "9.2", "Local/a@b-01;1"),
            "p\u{0}9.1"
        );
        assert_eq!(call_key_of("p", Some(""), "9.2", "PJSIP/1-01"), "p\u{0}9.2");
        assert_eq!(
            call_key_of("p", None, "9.2", "Local/a@b-01;1"),
            call_key_of("p", None, "9.3", "Local/a@b-01;2")
        );
        // Same Local name after an Asterisk restart: another call.
        assert_ne!(
            call_key_of("p", None, "9.2", "Local/a@b-01;1"),
            call_key_of("p", None, "19.3", "Local/a@b-01;2")
        );
        // Another PBX: another call, whatever the ids.
        assert_ne!(
            call_key_of("p", None, "9.2", "x"),
            call_key_of("q", None, "9.2", "x")
        );
    }
}
