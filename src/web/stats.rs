//! Call statistics for the stats page and `/api/stats`. Pure code over a stream of records.
//!
//! Counted by *call*, not by CDR: Asterisk writes several CDRs per call (queues, ring groups,
//! transfers), which is why other viewers get missed counts wrong. A call is the set of CDRs
//! with one [`crate::calls::call_key`] (the rule every page counts by); it is answered when any
//! of its CDRs is ANSWERED. Hours are the PBX's local wall-clock hours (the offset stored with each start).
//! Records should come in start order; calls idle for an hour of record time are closed so
//! memory stays flat over a long range.
//!
//! Missed calls to call back (issue 13, item 3): an inbound call nobody answered is *called
//! back* when, within the callback window after it started, a call is placed to that number
//! (outbound or internal, answered or not: someone tried) or a call from it is answered (they
//! got through). Kept per number in start order, pruned as the range streams by.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::calls::Outcome;
use crate::record::{CallRecord, Direction, Disposition};

/// Service-level threshold when the request names none (answered within 20 s of ringing).
pub const DEFAULT_SLA_SECONDS: i64 = 20;
/// A call with no new CDR for this long (in record start time) is complete.
const CALL_IDLE_SECS: i64 = 3600;
/// Names and call keys are kept to this many bytes, and at most [`MAX_NAMES`] agents and
/// queues are listed (the rest count under [`OTHER`]): a PBX decides how long and how many
/// they are, and memory must not (issue 11, finding 3).
const NAME_BYTES: usize = 128;
const MAX_NAMES: usize = 1000;
/// Callback window when the request names none.
pub const DEFAULT_CALLBACK_SECONDS: i64 = 3600;
/// Missed calls listed in one answer (the newest); all are counted.
const MISSED_LISTED: usize = 500;
/// Missed calls tracked for callbacks over one range; beyond, they are counted only.
const MISSED_TRACKED: usize = 20_000;
/// Where agents and queues beyond [`MAX_NAMES`] are counted.
pub const OTHER: &str = "(other)";

/// `s` cut to [`NAME_BYTES`] at a character boundary.
fn bounded(s: &str) -> String {
    bounded_to(s, NAME_BYTES)
}

/// `s` cut to `max` bytes at a character boundary.
fn bounded_to(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The map key for `name`: itself (bounded), or [`OTHER`] once the map is full.
fn name_key<V>(map: &BTreeMap<String, V>, name: &str) -> String {
    let name = bounded(name);
    if map.len() >= MAX_NAMES && !map.contains_key(&name) {
        OTHER.to_string()
    } else {
        name
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HourStats {
    pub hour: u8,
    pub calls: u64,
    pub answered: u64,
    pub missed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStats {
    pub agent: String,
    /// CDRs that rang this agent.
    pub offered: u64,
    pub answered: u64,
    pub talk_seconds: i64,
    pub avg_talk_seconds: Option<f64>,
    pub avg_ring_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub queue: String,
    pub calls: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub answered_within_sla: u64,
    /// Answered within the threshold ÷ calls offered to the queue.
    pub service_level: Option<f64>,
    /// Abandoned ÷ calls.
    pub abandon_rate: Option<f64>,
    /// Mean wait before answer or hang-up.
    pub avg_wait_seconds: Option<f64>,
}

/// A missed inbound call and whether its number was called back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissedCall {
    pub start_utc: i64,
    pub pbx: String,
    /// The caller's number (`source`), the one to call back.
    pub number: String,
    /// The caller's name from CallerID, without Asterisk's quoting.
    pub name: String,
    /// `missed`, `abandoned` (in a queue), `busy` or `failed` (see `calls::Outcome`).
    pub outcome: &'static str,
    pub queue: Option<String>,
    /// When the number was called back (the first such call), `None` while not.
    pub called_back_utc: Option<i64>,
}

/// The whole answer of `/api/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub cdrs: u64,
    pub calls: u64,
    pub answered: u64,
    pub missed: u64,
    /// Answered calls ÷ calls; `None` without calls.
    pub answer_rate: Option<f64>,
    /// Talk time per answered call (all its answered CDRs).
    pub avg_talk_seconds: Option<f64>,
    /// Ringing before answer, per answered call.
    pub avg_ring_seconds: Option<f64>,
    /// How long missed calls rang before the caller gave up.
    pub avg_missed_wait_seconds: Option<f64>,
    pub sla_seconds: i64,
    /// 24 entries, hour 0–23 of the PBX's local day (summed over every day in the range).
    pub hourly: Vec<HourStats>,
    pub agents: Vec<AgentStats>,
    pub queues: Vec<QueueStats>,
    /// The callback window used, in seconds.
    pub callback_seconds: i64,
    /// Inbound calls nobody answered (missed, abandoned, busy, failed), and how many of them
    /// were called back within the window.
    pub missed_inbound: u64,
    pub called_back: u64,
    /// The newest missed inbound calls ([`MISSED_LISTED`] at most), newest first.
    pub missed_calls: Vec<MissedCall>,
    /// True when the range held more missed calls than could be tracked for callbacks.
    pub missed_truncated: bool,
}

#[derive(Debug, Default)]
struct CallAcc {
    hour: u8,
    first_start: i64,
    last_start: i64,
    pbx: String,
    /// Number and name of the first record's caller, when the call came in.
    inbound: Option<(String, String)>,
    busy: bool,
    failed: bool,
    answered: bool,
    talk: i64,
    ring_to_answer: Option<i64>,
    longest: i64,
    queue: Option<String>,
}

#[derive(Debug, Default)]
struct AgentAcc {
    offered: u64,
    answered: u64,
    talk: i64,
    ring: i64,
}

/// Feeds records in, [`StatsBuilder::finish`] gives [`Stats`].
#[derive(Debug)]
pub struct StatsBuilder {
    sla: i64,
    open: HashMap<String, CallAcc>,
    last_sweep: i64,
    out: Stats,
    talk_total: i64,
    ring_total: i64,
    missed_wait_total: i64,
    agents: BTreeMap<String, AgentAcc>,
    queues: BTreeMap<String, (QueueStats, i64)>,
    callback: i64,
    /// (PBX, number) → starts of the records that called it back, in start order.
    contacts: HashMap<(String, String), VecDeque<i64>>,
    /// (PBX, number) → missed calls not yet called back, still inside their window.
    waiting: HashMap<(String, String), Vec<usize>>,
    missed: Vec<MissedCall>,
}

impl StatsBuilder {
    pub fn new(sla_seconds: i64) -> Self {
        Self {
            sla: sla_seconds,
            open: HashMap::new(),
            last_sweep: i64::MIN,
            out: Stats {
                sla_seconds,
                hourly: (0..24)
                    .map(|h| HourStats {
                        hour: h,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            talk_total: 0,
            ring_total: 0,
            missed_wait_total: 0,
            agents: BTreeMap::new(),
            queues: BTreeMap::new(),
            callback: DEFAULT_CALLBACK_SECONDS,
            contacts: HashMap::new(),
            waiting: HashMap::new(),
            missed: Vec::new(),
        }
    }

    /// The callback window (seconds after a missed call's start).
    pub fn with_callback(mut self, seconds: i64) -> Self {
        self.callback = seconds.max(0);
        self
    }

    pub fn add(&mut self, r: &CallRecord) {
        self.out.cdrs += 1;
        let start = r.start.utc.unwrap_or(r.received_utc);
        let answered = r.disposition == Disposition::Answered;
        // One key per call, the rule every page and the journal count by; bounded because a PBX
        // decides how long ids are (PBX name + NUL + id: twice the name budget).
        let key = bounded_to(&crate::calls::call_key(r), 2 * NAME_BYTES);
        let hour = ((start + i64::from(r.start.offset_seconds)).rem_euclid(86_400) / 3600) as u8;
        self.note_contact(r, start);
        let call = self.open.entry(key).or_insert_with(|| CallAcc {
            hour,
            first_start: start,
            last_start: start,
            pbx: bounded(&r.pbx),
            inbound: (r.direction == Direction::Inbound)
                .then(|| (bounded(&r.source), bounded(&r.caller_name()))),
            ..Default::default()
        });
        call.busy |= r.disposition == Disposition::Busy;
        call.failed |= matches!(r.disposition, Disposition::Failed | Disposition::Congestion);
        call.last_start = call.last_start.max(start);
        call.longest = call.longest.max(r.duration);
        if answered {
            call.talk += r.billable_seconds;
            if call.ring_to_answer.is_none() {
                call.ring_to_answer = Some(r.ring_seconds);
            }
            call.answered = true;
        }
        if call.queue.is_none() {
            call.queue = r.queue.as_deref().filter(|q| !q.is_empty()).map(bounded);
        }
        if let Some(agent) = r.agent.as_deref().filter(|a| !a.is_empty()) {
            let key = name_key(&self.agents, agent);
            let a = self.agents.entry(key).or_default();
            a.offered += 1;
            if answered {
                a.answered += 1;
                a.talk += r.billable_seconds;
                a.ring += r.ring_seconds;
            }
        }
        if start.saturating_sub(self.last_sweep) > 600 {
            self.last_sweep = start;
            let cutoff = start - CALL_IDLE_SECS;
            let done: Vec<_> = self
                .open
                .iter()
                .filter(|(_, c)| c.last_start < cutoff)
                .map(|(k, _)| k.clone())
                .collect();
            for k in done {
                if let Some(c) = self.open.remove(&k) {
                    self.close(c);
                }
            }
            self.prune_contacts(start);
        }
    }

    /// A record that calls a number back: a call placed to it, or an answered call from it.
    fn note_contact(&mut self, r: &CallRecord, t: i64) {
        let mut numbers = Vec::new();
        if r.direction != Direction::Inbound && !r.destination.is_empty() {
            numbers.push(&r.destination);
        }
        if r.disposition == Disposition::Answered && !r.source.is_empty() {
            numbers.push(&r.source);
        }
        for n in numbers {
            let key = (bounded(&r.pbx), bounded(n));
            if let Some(waiting) = self.waiting.get_mut(&key) {
                let window = self.callback;
                let missed = &mut self.missed;
                waiting.retain(|&i| {
                    let m = &mut missed[i];
                    if t > m.start_utc && t <= m.start_utc + window {
                        m.called_back_utc = Some(t);
                        false
                    } else {
                        t <= m.start_utc + window
                    }
                });
                if waiting.is_empty() {
                    self.waiting.remove(&key);
                }
            }
            self.contacts.entry(key).or_default().push_back(t);
        }
    }

    /// Contacts too old to call back any call still open or waiting.
    fn prune_contacts(&mut self, now: i64) {
        let keep_from = now - self.callback - CALL_IDLE_SECS - 600;
        self.contacts.retain(|_, times| {
            while times.front().is_some_and(|&t| t < keep_from) {
                times.pop_front();
            }
            !times.is_empty()
        });
    }

    fn close_missed(&mut self, c: &CallAcc, number: String, name: String) {
        self.out.missed_inbound += 1;
        if self.missed.len() >= MISSED_TRACKED {
            self.out.missed_truncated = true;
            return;
        }
        let outcome = if c.queue.is_some() {
            Outcome::Abandoned
        } else if c.busy {
            Outcome::Busy
        } else if c.failed {
            Outcome::Failed
        } else {
            Outcome::Missed
        };
        let key = (c.pbx.clone(), number.clone());
        let start = c.first_start;
        let called_back_utc = self.contacts.get(&key).and_then(|times| {
            times
                .iter()
                .copied()
                .find(|&t| t > start && t <= start + self.callback)
        });
        let i = self.missed.len();
        self.missed.push(MissedCall {
            start_utc: start,
            pbx: c.pbx.clone(),
            number,
            name,
            outcome: outcome.as_str(),
            queue: c.queue.clone(),
            called_back_utc,
        });
        if called_back_utc.is_none() && !self.missed[i].number.is_empty() {
            self.waiting.entry(key).or_default().push(i);
        }
    }

    fn close(&mut self, c: CallAcc) {
        let o = &mut self.out;
        o.calls += 1;
        let h = &mut o.hourly[usize::from(c.hour)];
        h.calls += 1;
        if c.answered {
            o.answered += 1;
            h.answered += 1;
            self.talk_total += c.talk;
            self.ring_total += c.ring_to_answer.unwrap_or(0);
        } else {
            o.missed += 1;
            h.missed += 1;
            self.missed_wait_total += c.longest;
            if let Some((number, name)) = c.inbound.clone() {
                self.close_missed(&c, number, name);
            }
        }
        if let Some(q) = c.queue {
            let q = name_key(&self.queues, &q);
            let (qs, wait) = self.queues.entry(q.clone()).or_insert_with(|| {
                (
                    QueueStats {
                        queue: q,
                        ..Default::default()
                    },
                    0,
                )
            });
            qs.calls += 1;
            if c.answered {
                qs.answered += 1;
                let ring = c.ring_to_answer.unwrap_or(0);
                *wait += ring;
                if ring <= self.sla {
                    qs.answered_within_sla += 1;
                }
            } else {
                qs.abandoned += 1;
                *wait += c.longest;
            }
        }
    }

    pub fn finish(mut self) -> Stats {
        let open: Vec<CallAcc> = self.open.drain().map(|(_, c)| c).collect();
        for c in open {
            self.close(c);
        }
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        let mean = |n: i64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        let mut missed = std::mem::take(&mut self.missed);
        missed.sort_by_key(|m| std::cmp::Reverse(m.start_utc));
        let mut o = self.out;
        o.callback_seconds = self.callback;
        o.called_back = missed
            .iter()
            .filter(|m| m.called_back_utc.is_some())
            .count() as u64;
        missed.truncate(MISSED_LISTED);
        o.missed_calls = missed;
        o.answer_rate = ratio(o.answered, o.calls);
        o.avg_talk_seconds = mean(self.talk_total, o.answered);
        o.avg_ring_seconds = mean(self.ring_total, o.answered);
        o.avg_missed_wait_seconds = mean(self.missed_wait_total, o.missed);
        o.agents = self
            .agents
            .into_iter()
            .map(|(agent, a)| AgentStats {
                agent,
                offered: a.offered,
                answered: a.answered,
                talk_seconds: a.talk,
                avg_talk_seconds: mean(a.talk, a.answered),
                avg_ring_seconds: mean(a.ring, a.answered),
            })
            .collect();
        o.queues = self
            .queues
            .into_values()
            .map(|(mut q, wait)| {
                q.service_level = ratio(q.answered_within_sla, q.calls);
                q.abandon_rate = ratio(q.abandoned, q.calls);
                q.avg_wait_seconds = mean(wait, q.calls);
                q
            })
            .collect();
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CdrTime, Direction};

    /// A CDR starting at `start` (UTC seconds, Moscow offset).
    pub(crate) fn cdr(
        uid: &str,
        linked: Option<&str>,
        start: i64,
        disp: Disposition,
        duration: i64,
        billable: i64,
    ) -> CallRecord {
        let t = |u: i64| CdrTime {
            raw: String::new(),
            utc: Some(u),
            offset_seconds: 3 * 3600,
        };
        CallRecord {
            pbx: "p".into(),
            unique_id: uid.into(),
            account_code: String::new(),
            source: "200".into(),
            destination: "100".into(),
            destination_context: "from-internal".into(),
            caller_id: String::new(),
            channel: String::new(),
            destination_channel: String::new(),
            last_application: String::new(),
            last_data: String::new(),
            start: t(start),
            answer: None,
            end: t(start + duration),
            duration,
            billable_seconds: billable,
            disposition: disp,
            ama_flags: "DOCUMENTATION".into(),
            user_field: String::new(),
            direction: Direction::Inbound,
            ring_seconds: duration - billable,
            queue: None,
            agent: None,
            linked_id: linked.map(String::from),
            sequence: None,
            custom_fields: vec![],
            raw: vec![],
            received_utc: start + duration,
            identity: [0; 16],
            origin: Default::default(),
        }
    }

    #[test]
    fn counts_calls_not_cdrs() {
        // 07:00 UTC = 10:00 Moscow.
        let t0 = 1_795_330_800;
        let mut b = StatsBuilder::new(20);
        // A queue call ringing two agents: one NO ANSWER leg, one ANSWERED leg → one answered call.
        let mut leg1 = cdr("1.1", Some("1.0"), t0, Disposition::NoAnswer, 15, 0);
        leg1.queue = Some("sales".into());
        leg1.agent = Some("1001".into());
        let mut leg2 = cdr("1.2", Some("1.0"), t0, Disposition::Answered, 75, 60);
        leg2.queue = Some("sales".into());
        leg2.agent = Some("1002".into());
        b.add(&leg1);
        b.add(&leg2);
        // A queue call nobody answered (abandoned after 40 s).
        let mut ab = cdr("2.1", None, t0 + 100, Disposition::NoAnswer, 40, 0);
        ab.queue = Some("sales".into());
        b.add(&ab);
        // An answered direct call at 11:xx local, slow answer.
        b.add(&cdr(
            "3.1",
            None,
            t0 + 3700,
            Disposition::Answered,
            130,
            100,
        ));
        let s = b.finish();
        assert_eq!((s.cdrs, s.calls, s.answered, s.missed), (4, 3, 2, 1));
        assert_eq!(s.answer_rate, Some(2.0 / 3.0));
        assert_eq!(s.avg_talk_seconds, Some(80.0));
        assert_eq!(s.avg_ring_seconds, Some(22.5));
        assert_eq!(s.avg_missed_wait_seconds, Some(40.0));
        assert_eq!(s.hourly.len(), 24);
        assert_eq!((s.hourly[10].calls, s.hourly[10].answered), (2, 1));
        assert_eq!(s.hourly[11].calls, 1);
        let q = &s.queues[0];
        assert_eq!(
            (q.queue.as_str(), q.calls, q.answered, q.abandoned),
            ("sales", 2, 1, 1)
        );
        assert_eq!(q.answered_within_sla, 1);
        assert_eq!(q.service_level, Some(0.5));
        assert_eq!(q.abandon_rate, Some(0.5));
        assert_eq!(s.agents.len(), 2);
        assert_eq!(
            (s.agents[1].agent.as_str(), s.agents[1].answered),
            ("1002", 1)
        );
        assert_eq!(s.agents[0].answered, 0);
    }

    #[test]
    fn sla_threshold_applies() {
        let mut b = StatsBuilder::new(10);
        let mut c = cdr("1", None, 0, Disposition::Answered, 30, 15);
        c.queue = Some("q".into());
        b.add(&c);
        assert_eq!(b.finish().queues[0].answered_within_sla, 0);
    }

    #[test]
    fn long_ranges_close_old_calls() {
        let mut b = StatsBuilder::new(20);
        for i in 0..1000 {
            b.add(&cdr(
                &i.to_string(),
                None,
                i * 120,
                Disposition::Answered,
                10,
                5,
            ));
        }
        assert!(b.open.len() < 100, "{} calls still open", b.open.len());
        assert_eq!(b.finish().calls, 1000);
    }

    /// Issue 13, item 3: a missed inbound call is called back by a call to the number (tried,
    /// answered or not) or an answered call from it, within the window; not by itself, not
    /// after the window.
    #[test]
    fn missed_calls_know_whether_they_were_called_back() {
        let t0 = 1_795_330_800;
        let mut b = StatsBuilder::new(20).with_callback(1800);
        let missed = |uid: &str, from: &str, at: i64| {
            let mut c = cdr(uid, None, at, Disposition::NoAnswer, 20, 0);
            c.source = from.into();
            c.caller_id = format!("\"Пётр\" <{from}>");
            c
        };
        let call_to = |uid: &str, to: &str, at: i64, d: Disposition| {
            let mut c = cdr(uid, None, at, d, 30, 0);
            c.direction = Direction::Outbound;
            c.source = "1001".into();
            c.destination = to.into();
            c
        };
        b.add(&missed("1.1", "+74951110001", t0));
        b.add(&missed("2.1", "+74951110002", t0 + 10));
        b.add(&missed("3.1", "+74951110003", t0 + 20));
        let mut busy = missed("4.1", "+74951110004", t0 + 30);
        busy.disposition = Disposition::Busy;
        b.add(&busy);
        // 1: called back 10 min later (nobody answered: it still counts as called back).
        b.add(&call_to(
            "5.1",
            "+74951110001",
            t0 + 600,
            Disposition::NoAnswer,
        ));
        // 2: the caller tried again and got through.
        let mut again = missed("6.1", "+74951110002", t0 + 900);
        again.disposition = Disposition::Answered;
        again.billable_seconds = 10;
        b.add(&again);
        // 3: called back too late (after 30 min).
        b.add(&call_to(
            "7.1",
            "+74951110003",
            t0 + 20 + 1801,
            Disposition::Answered,
        ));
        let s = b.finish();
        assert_eq!((s.missed_inbound, s.called_back), (4, 2));
        assert_eq!(s.callback_seconds, 1800);
        let by: HashMap<&str, &MissedCall> = s
            .missed_calls
            .iter()
            .map(|m| (m.number.as_str(), m))
            .collect();
        assert_eq!(by["+74951110001"].called_back_utc, Some(t0 + 600));
        assert_eq!(by["+74951110002"].called_back_utc, Some(t0 + 900));
        assert_eq!(by["+74951110003"].called_back_utc, None);
        assert_eq!(by["+74951110004"].outcome, "busy");
        assert_eq!(by["+74951110001"].name, "Пётр");
        // Newest first.
        assert_eq!(s.missed_calls[0].number, "+74951110004");
    }

    #[test]
    fn empty_range() {
        let s = StatsBuilder::new(20).finish();
        assert_eq!(s.calls, 0);
        assert_eq!(s.answer_rate, None);
    }
}
