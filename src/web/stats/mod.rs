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
//!
//! Supervisor views (issue 13, item 3), all by call and over the whole range: a trend in
//! hour/day/week/month buckets of the PBX's local time (a call in the bucket of its first CDR's
//! start); the top inbound callers and outbound destinations by number; per queue, abandoned
//! calls by how long the caller waited; per agent, calls offered and answered (one call ringing
//! an agent twice is one offer) and so an answer rate. Memory stays bounded as for names: at most
//! [`MAX_NUMBERS`] numbers per list (the rest under [`OTHER`]) and [`MAX_TREND_BUCKETS`] trend
//! buckets (beyond, the buckets coarsen: hours to days, days to months, and the answer says so).
//! The trend's calendar arithmetic (bucket numbers, labels, filling) is in `trend`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

mod trend;

use trend::{coarser, day_to, trend_points, TrendAcc};
pub use trend::{Bucket, TrendPoint};

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
/// Where agents, queues and numbers beyond their bound are counted.
pub const OTHER: &str = "(other)";
/// Distinct numbers counted for the top callers and, apart, the top destinations: an office's
/// regular callers fit many times over, a flood of one-off numbers cannot grow memory.
pub const MAX_NUMBERS: usize = 5000;
/// Numbers listed in `topCallers` and `topDestinations`.
const TOP_LISTED: usize = 10;
/// Trend buckets kept while the range streams by (and points filled in between at the end):
/// 5000 hours are 208 days, 5000 days 13 years.
pub const MAX_TREND_BUCKETS: usize = 5000;
/// Distinct agents remembered per call to count offers by call; a call ringing more agents
/// than this (a huge ring-all) counts each further agent's CDRs as offers of their own.
const AGENTS_PER_CALL: usize = 64;
/// Upper bounds (exclusive, seconds) of the abandoned-by-wait buckets; the last bucket is
/// open: < 10 s, 10–30 s, 30–60 s, 1–2 min, ≥ 2 min.
pub const ABANDON_WAIT_LIMITS: [i64; 4] = [10, 30, 60, 120];

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

/// The map key for `name`: itself (bounded), or [`OTHER`] once the map holds [`MAX_NAMES`].
fn name_key<V>(map: &BTreeMap<String, V>, name: &str) -> String {
    key_within(map, name, MAX_NAMES)
}

/// The map key for `name`: itself (bounded), or [`OTHER`] once the map holds `max` keys.
fn key_within<V>(map: &BTreeMap<String, V>, name: &str, max: usize) -> String {
    let name = bounded(name);
    if map.len() >= max && !map.contains_key(&name) {
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
    /// Calls that rang this agent (a call ringing the agent twice counts once).
    pub offered_calls: u64,
    /// Of those, the calls this agent answered.
    pub answered_calls: u64,
    /// `answered_calls ÷ offered_calls`.
    pub answer_rate: Option<f64>,
}

/// Abandoned queue calls whose wait was `min_seconds ≤ wait < max_seconds` (no upper bound for
/// the last bucket).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitBucket {
    pub min_seconds: i64,
    pub max_seconds: Option<i64>,
    pub abandoned: u64,
}

/// The wait buckets of [`ABANDON_WAIT_LIMITS`], all empty.
fn wait_buckets() -> Vec<WaitBucket> {
    let mut lower = 0;
    let mut out = Vec::with_capacity(ABANDON_WAIT_LIMITS.len() + 1);
    for &upper in &ABANDON_WAIT_LIMITS {
        out.push(WaitBucket {
            min_seconds: lower,
            max_seconds: Some(upper),
            abandoned: 0,
        });
        lower = upper;
    }
    out.push(WaitBucket {
        min_seconds: lower,
        max_seconds: None,
        abandoned: 0,
    });
    out
}

/// Calls from (top callers) or to (top destinations) one number.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberStats {
    /// The number, or [`OTHER`] for the numbers beyond [`MAX_NUMBERS`]; empty when the PBX
    /// gave none.
    pub number: String,
    /// The caller's name from CallerID (its first call's), for callers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub calls: u64,
    pub answered: u64,
    pub talk_seconds: i64,
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
    /// Abandoned calls by how long the caller waited (the longest CDR of the call), in the
    /// buckets of [`ABANDON_WAIT_LIMITS`]; they sum to `abandoned`.
    pub abandoned_by_wait: Vec<WaitBucket>,
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
    /// The bucket size of `trend`: the request's, else chosen from the range's length (see
    /// [`Bucket::for_span`]), coarser when the range held more than [`MAX_TREND_BUCKETS`].
    pub trend_bucket: Bucket,
    /// Calls per bucket, oldest first, from the first call's bucket to the last's (empty
    /// buckets included while at most [`MAX_TREND_BUCKETS`]).
    pub trend: Vec<TrendPoint>,
    /// Inbound calls by the caller's number, most calls first ([`TOP_LISTED`] at most).
    pub top_callers: Vec<NumberStats>,
    /// Outbound calls by the number dialled, most calls first ([`TOP_LISTED`] at most).
    pub top_destinations: Vec<NumberStats>,
    /// True when a list met more than [`MAX_NUMBERS`] numbers: the rest count as [`OTHER`].
    pub numbers_truncated: bool,
}

#[derive(Debug, Default)]
struct CallAcc {
    hour: u8,
    /// The first record's start as local wall-clock seconds (for the trend).
    local_start: i64,
    first_start: i64,
    last_start: i64,
    pbx: String,
    /// Number and name of the first record's caller, when the call came in.
    inbound: Option<(String, String)>,
    /// The number the first record dialled, when the call went out.
    outbound: Option<String>,
    /// Agents rung by this call so far, and whether each answered (offers counted by call).
    agents: Vec<(String, bool)>,
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
    offered_calls: u64,
    answered_calls: u64,
}

#[derive(Debug, Default)]
struct NumberAcc {
    name: Option<String>,
    calls: u64,
    answered: u64,
    talk: i64,
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
    /// The bucket size asked for; `None`: chosen at the end from the calls' span.
    trend_want: Option<Bucket>,
    /// The size `trend` is kept in: hours while hours may be wanted, else days; coarser once
    /// [`MAX_TREND_BUCKETS`] are met.
    trend_kept: Bucket,
    trend: BTreeMap<i64, TrendAcc>,
    callers: BTreeMap<String, NumberAcc>,
    destinations: BTreeMap<String, NumberAcc>,
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
            trend_want: None,
            trend_kept: Bucket::Hour,
            trend: BTreeMap::new(),
            callers: BTreeMap::new(),
            destinations: BTreeMap::new(),
        }
    }

    /// The trend's bucket size; `None` chooses from the span of the calls seen (the route
    /// chooses from the filter's range when it has both ends).
    pub fn with_trend(mut self, bucket: Option<Bucket>) -> Self {
        self.trend_want = bucket;
        // Weeks and months are folded from days at the end; hours only if they may be wanted.
        self.trend_kept = match bucket {
            None | Some(Bucket::Hour) => Bucket::Hour,
            Some(_) => Bucket::Day,
        };
        self
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
            local_start: start.saturating_add(i64::from(r.start.offset_seconds)),
            first_start: start,
            last_start: start,
            pbx: bounded(&r.pbx),
            inbound: (r.direction == Direction::Inbound)
                .then(|| (bounded(&r.source), bounded(&r.caller_name()))),
            outbound: (r.direction == Direction::Outbound).then(|| bounded(&r.destination)),
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
            let a = self.agents.entry(key.clone()).or_default();
            a.offered += 1;
            if answered {
                a.answered += 1;
                a.talk += r.billable_seconds;
                a.ring += r.ring_seconds;
            }
            // By call: a queue ringing the agent again (retry) is the same offer, and the
            // agent answering it once is one answered call.
            match call.agents.iter_mut().find(|(k, _)| *k == key) {
                Some((_, took)) => {
                    if answered && !*took {
                        *took = true;
                        a.answered_calls += 1;
                    }
                }
                None => {
                    a.offered_calls += 1;
                    a.answered_calls += u64::from(answered);
                    if call.agents.len() < AGENTS_PER_CALL {
                        call.agents.push((key, answered));
                    }
                }
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

    /// Counts a closed call in its trend bucket, coarsening the kept buckets once there are
    /// too many.
    fn count_trend(&mut self, c: &CallAcc) {
        let key = match self.trend_kept {
            Bucket::Hour => c.local_start.div_euclid(3600),
            kept => day_to(kept, c.local_start.div_euclid(86_400)),
        };
        let t = self.trend.entry(key).or_default();
        t.calls += 1;
        if c.answered {
            t.answered += 1;
            t.talk += c.talk;
        } else {
            t.missed += 1;
        }
        while self.trend.len() > MAX_TREND_BUCKETS && self.trend_kept != Bucket::Month {
            let from = self.trend_kept;
            let to = if from == Bucket::Hour {
                Bucket::Day
            } else {
                Bucket::Month
            };
            let mut merged: BTreeMap<i64, TrendAcc> = BTreeMap::new();
            for (k, t) in std::mem::take(&mut self.trend) {
                let m = merged.entry(coarser(k, from, to)).or_default();
                m.calls += t.calls;
                m.answered += t.answered;
                m.missed += t.missed;
                m.talk += t.talk;
            }
            self.trend = merged;
            self.trend_kept = to;
        }
    }

    /// Counts a closed call for its number (the caller's when it came in, the dialled one when
    /// it went out).
    fn count_number(&mut self, c: &CallAcc) {
        let (map, number, name) = match (&c.inbound, &c.outbound) {
            (Some((number, name)), _) => (&mut self.callers, number, Some(name)),
            (None, Some(number)) => (&mut self.destinations, number, None),
            (None, None) => return,
        };
        let key = key_within(map, number, MAX_NUMBERS);
        if key == OTHER && number != OTHER {
            self.out.numbers_truncated = true;
        }
        let n = map.entry(key).or_insert_with(|| NumberAcc {
            name: name.cloned(),
            ..Default::default()
        });
        n.calls += 1;
        if c.answered {
            n.answered += 1;
            n.talk += c.talk;
        }
    }

    fn close(&mut self, c: CallAcc) {
        self.count_trend(&c);
        self.count_number(&c);
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
                        abandoned_by_wait: wait_buckets(),
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
                let i = ABANDON_WAIT_LIMITS.partition_point(|&upper| upper <= c.longest);
                if let Some(b) = qs.abandoned_by_wait.get_mut(i) {
                    b.abandoned += 1;
                }
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
                offered_calls: a.offered_calls,
                answered_calls: a.answered_calls,
                answer_rate: ratio(a.answered_calls, a.offered_calls),
            })
            .collect();
        (o.trend_bucket, o.trend) = trend_points(self.trend_want, self.trend_kept, self.trend);
        o.top_callers = top_numbers(self.callers);
        o.top_destinations = top_numbers(self.destinations);
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

/// The [`TOP_LISTED`] numbers with the most calls (ties: more talk, then by number).
fn top_numbers(numbers: BTreeMap<String, NumberAcc>) -> Vec<NumberStats> {
    let mut all: Vec<NumberStats> = numbers
        .into_iter()
        .map(|(number, n)| NumberStats {
            number,
            name: n.name,
            calls: n.calls,
            answered: n.answered,
            talk_seconds: n.talk,
        })
        .collect();
    all.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then(b.talk_seconds.cmp(&a.talk_seconds))
            .then_with(|| a.number.cmp(&b.number))
    });
    all.truncate(TOP_LISTED);
    all
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

    /// Issue 13, item 3: a call of several CDRs (a queue ringing two agents, one of them
    /// twice) is one call in the trend, one for its caller and one offer per agent rung.
    #[test]
    fn a_call_of_several_cdrs_counts_once_everywhere() {
        // 2026-11-22 07:00 UTC = 10:00 Moscow, a Sunday.
        let t0 = 1_795_330_800;
        let mut b = StatsBuilder::new(20).with_trend(Some(Bucket::Hour));
        let leg = |uid: &str, agent: &str, d: Disposition, billable: i64| {
            let mut c = cdr(uid, Some("1.0"), t0, d, 60, billable);
            c.source = "+74951110001".into();
            c.caller_id = "\"Пётр\" <+74951110001>".into();
            c.queue = Some("sales".into());
            c.agent = Some(agent.into());
            c
        };
        b.add(&leg("1.1", "1001", Disposition::NoAnswer, 0));
        b.add(&leg("1.2", "1002", Disposition::NoAnswer, 0));
        // The queue rings 1001 again (retry), who answers this time.
        b.add(&leg("1.3", "1001", Disposition::Answered, 40));
        let s = b.finish();
        assert_eq!((s.cdrs, s.calls, s.answered), (3, 1, 1));
        assert_eq!(s.trend_bucket, Bucket::Hour);
        assert_eq!(
            s.trend,
            vec![TrendPoint {
                start: "2026-11-22 10:00".into(),
                calls: 1,
                answered: 1,
                missed: 0,
                talk_seconds: 40,
            }]
        );
        assert_eq!(
            s.top_callers,
            vec![NumberStats {
                number: "+74951110001".into(),
                name: Some("Пётр".into()),
                calls: 1,
                answered: 1,
                talk_seconds: 40,
            }]
        );
        assert!(s.top_destinations.is_empty());
        let a1001 = &s.agents[0];
        assert_eq!(a1001.agent, "1001");
        // By CDR (the old fields, unchanged): rung twice, answered once.
        assert_eq!((a1001.offered, a1001.answered), (2, 1));
        // By call: offered one call, answered it.
        assert_eq!((a1001.offered_calls, a1001.answered_calls), (1, 1));
        assert_eq!(a1001.answer_rate, Some(1.0));
        assert_eq!(
            (s.agents[1].offered_calls, s.agents[1].answered_calls),
            (1, 0)
        );
        assert_eq!(s.agents[1].answer_rate, Some(0.0));
    }

    /// Issue 13, item 3: answer rate per agent = calls answered ÷ calls offered to the agent.
    #[test]
    fn answer_rate_per_agent() {
        let mut b = StatsBuilder::new(20);
        let offer = |uid: &str, call: &str, at: i64, agent: &str, d: Disposition| {
            let billable = if d == Disposition::Answered { 20 } else { 0 };
            let mut c = cdr(uid, Some(call), at, d, 30, billable);
            c.queue = Some("support".into());
            c.agent = Some(agent.into());
            c
        };
        // Four calls ring 1001; it answers three. 1002 is rung by two and answers one.
        b.add(&offer("1.1", "1", 0, "1001", Disposition::Answered));
        b.add(&offer("2.1", "2", 100, "1001", Disposition::NoAnswer));
        b.add(&offer("2.2", "2", 100, "1002", Disposition::Answered));
        b.add(&offer("3.1", "3", 200, "1001", Disposition::Answered));
        b.add(&offer("4.1", "4", 300, "1001", Disposition::Answered));
        b.add(&offer("4.2", "4", 300, "1002", Disposition::NoAnswer));
        let s = b.finish();
        let by: HashMap<&str, &AgentStats> =
            s.agents.iter().map(|a| (a.agent.as_str(), a)).collect();
        assert_eq!(
            (by["1001"].offered_calls, by["1001"].answered_calls),
            (4, 3)
        );
        assert_eq!(by["1001"].answer_rate, Some(0.75));
        assert_eq!(by["1001"].talk_seconds, 60);
        assert_eq!(
            (by["1002"].offered_calls, by["1002"].answered_calls),
            (2, 1)
        );
        assert_eq!(by["1002"].answer_rate, Some(0.5));
    }

    /// Issue 13, item 3: an abandoned queue call lands in the bucket of its wait, lower bound
    /// inclusive; answered calls land in none.
    #[test]
    fn abandoned_calls_by_wait() {
        let mut b = StatsBuilder::new(20);
        let waits = [0, 9, 10, 29, 30, 59, 60, 119, 120, 3600];
        for (i, w) in waits.iter().enumerate() {
            let mut c = cdr(
                &format!("{i}.1"),
                None,
                i as i64 * 10,
                Disposition::NoAnswer,
                *w,
                0,
            );
            c.queue = Some("sales".into());
            b.add(&c);
        }
        let mut answered = cdr("99.1", None, 200, Disposition::Answered, 300, 250);
        answered.queue = Some("sales".into());
        b.add(&answered);
        let s = b.finish();
        let q = &s.queues[0];
        assert_eq!((q.calls, q.abandoned), (11, 10));
        let got: Vec<(i64, Option<i64>, u64)> = q
            .abandoned_by_wait
            .iter()
            .map(|w| (w.min_seconds, w.max_seconds, w.abandoned))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, Some(10), 2),
                (10, Some(30), 2),
                (30, Some(60), 2),
                (60, Some(120), 2),
                (120, None, 2)
            ]
        );
        // The service level beside it is unchanged.
        assert_eq!(q.service_level, Some(0.0));
    }

    /// A one-CDR call; answered ones talk 20 s.
    fn call_at(uid: &str, at: i64, d: Disposition) -> CallRecord {
        let billable = if d == Disposition::Answered { 20 } else { 0 };
        cdr(uid, None, at, d, 30, billable)
    }

    /// Days, weeks (Monday first) and months of the PBX's local calendar; empty buckets in
    /// between are shown, not skipped.
    #[test]
    fn trend_buckets_follow_the_local_calendar() {
        // 2026-11-29 22:30 UTC = Monday 2026-11-30 01:30 Moscow.
        let mon = 1_795_991_400;
        let calls = [
            (mon, Disposition::Answered),
            (mon + 3600, Disposition::NoAnswer),
            // Wednesday: Tuesday stays empty.
            (mon + 2 * 86_400, Disposition::Answered),
            // Tuesday 2026-12-08, the next week and the next month.
            (mon + 8 * 86_400, Disposition::Answered),
        ];
        let run = |bucket: Option<Bucket>| {
            let mut b = StatsBuilder::new(20).with_trend(bucket);
            for (i, (at, d)) in calls.iter().enumerate() {
                b.add(&call_at(&i.to_string(), *at, d.clone()));
            }
            b.finish()
        };
        let points = |s: &Stats| -> Vec<(String, u64, u64)> {
            s.trend
                .iter()
                .map(|p| (p.start.clone(), p.calls, p.missed))
                .collect()
        };
        let day = run(Some(Bucket::Day));
        assert_eq!(day.trend.len(), 9);
        assert_eq!(
            points(&day)[..3],
            [
                ("2026-11-30".to_string(), 2, 1),
                ("2026-12-01".to_string(), 0, 0),
                ("2026-12-02".to_string(), 1, 0)
            ]
        );
        assert_eq!(day.trend[8].start, "2026-12-08");
        let week = run(Some(Bucket::Week));
        assert_eq!(
            points(&week),
            [
                ("2026-11-30".to_string(), 3, 1),
                ("2026-12-07".to_string(), 1, 0)
            ]
        );
        let month = run(Some(Bucket::Month));
        assert_eq!(
            points(&month),
            [("2026-11".to_string(), 2, 1), ("2026-12".to_string(), 2, 0)]
        );
        assert_eq!(month.trend[1].talk_seconds, 40);
        // Nine days of calls and no bucket asked for: by day.
        assert_eq!(run(None).trend_bucket, Bucket::Day);
        let total: u64 = day.trend.iter().map(|p| p.calls).sum();
        assert_eq!(total, day.calls);
    }

    /// Hours over a long range coarsen to days instead of growing without bound, and the
    /// answer says which bucket it used.
    #[test]
    fn too_many_hours_become_days() {
        let mut b = StatsBuilder::new(20).with_trend(Some(Bucket::Hour));
        let hours = MAX_TREND_BUCKETS as i64 + 100;
        for h in 0..hours {
            b.add(&call_at(&h.to_string(), h * 3600, Disposition::Answered));
        }
        assert!(b.trend.len() <= MAX_TREND_BUCKETS);
        let s = b.finish();
        assert_eq!(s.trend_bucket, Bucket::Day);
        assert_eq!(s.trend.iter().map(|p| p.calls).sum::<u64>(), hours as u64);
        // Moscow midnight is 21:00 UTC: the first local day holds 21 of the hours.
        assert_eq!(s.trend[0].calls, 21);
        assert_eq!(s.trend[1].calls, 24);
    }

    /// Inbound calls rank their callers, outbound calls their destinations; internal calls
    /// neither.
    #[test]
    fn top_callers_and_destinations() {
        let mut b = StatsBuilder::new(20);
        let mut n = 0;
        let mut add =
            |b: &mut StatsBuilder, dir: Direction, from: &str, to: &str, d: Disposition| {
                n += 1;
                let mut c = call_at(&n.to_string(), n * 60, d);
                c.direction = dir;
                c.source = from.into();
                c.destination = to.into();
                b.add(&c);
            };
        for _ in 0..3 {
            add(
                &mut b,
                Direction::Inbound,
                "+7001",
                "100",
                Disposition::Answered,
            );
        }
        add(
            &mut b,
            Direction::Inbound,
            "+7002",
            "100",
            Disposition::NoAnswer,
        );
        add(
            &mut b,
            Direction::Inbound,
            "+7002",
            "100",
            Disposition::Answered,
        );
        add(
            &mut b,
            Direction::Inbound,
            "+7003",
            "100",
            Disposition::NoAnswer,
        );
        add(
            &mut b,
            Direction::Outbound,
            "1001",
            "84951234567",
            Disposition::Answered,
        );
        add(
            &mut b,
            Direction::Outbound,
            "1002",
            "84951234567",
            Disposition::Busy,
        );
        add(
            &mut b,
            Direction::Internal,
            "1001",
            "1002",
            Disposition::Answered,
        );
        let s = b.finish();
        let rank = |v: &[NumberStats]| -> Vec<(String, u64, u64, i64)> {
            v.iter()
                .map(|n| (n.number.clone(), n.calls, n.answered, n.talk_seconds))
                .collect()
        };
        assert_eq!(
            rank(&s.top_callers),
            [
                ("+7001".to_string(), 3, 3, 60),
                ("+7002".to_string(), 2, 1, 20),
                ("+7003".to_string(), 1, 0, 0)
            ]
        );
        assert_eq!(
            rank(&s.top_destinations),
            [("84951234567".to_string(), 2, 1, 20)]
        );
        assert_eq!(s.top_destinations[0].name, None);
        assert!(!s.numbers_truncated);
    }

    /// A flood of one-off numbers: at most MAX_NUMBERS are kept, the rest count as "(other)".
    #[test]
    fn numbers_are_bounded() {
        let mut b = StatsBuilder::new(20);
        let total = MAX_NUMBERS as i64 + 50;
        for i in 0..total {
            let mut c = call_at(&i.to_string(), i, Disposition::NoAnswer);
            c.source = format!("+7{i:010}");
            b.add(&c);
        }
        let s = b.finish();
        assert!(s.numbers_truncated);
        assert_eq!(s.top_callers[0].number, OTHER);
        assert_eq!(s.top_callers[0].calls, 50);
    }

    #[test]
    fn empty_range() {
        let s = StatsBuilder::new(20).finish();
        assert_eq!(s.calls, 0);
        assert_eq!(s.answer_rate, None);
    }
}
