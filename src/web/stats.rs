//! Call statistics for the stats page and `/api/stats`. Pure code over a stream of records.
//!
//! Counted by *call*, not by CDR: Asterisk writes several CDRs per call (queues, ring groups,
//! transfers), which is why other viewers get missed counts wrong. A call is the set of CDRs
//! with one [`crate::calls::call_key`] (the rule every page counts by); it is answered when any
//! of its CDRs is ANSWERED. Hours are the PBX's local wall-clock hours (the offset stored with each start).
//! Records should come in start order; calls idle for an hour of record time are closed so
//! memory stays flat over a long range.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::record::{CallRecord, Disposition};

/// Service-level threshold when the request names none (answered within 20 s of ringing).
pub const DEFAULT_SLA_SECONDS: i64 = 20;
/// A call with no new CDR for this long (in record start time) is complete.
const CALL_IDLE_SECS: i64 = 3600;
/// Names and call keys are kept to this many bytes, and at most [`MAX_NAMES`] agents and
/// queues are listed (the rest count under [`OTHER`]): a PBX decides how long and how many
/// they are, and memory must not (issue 11, finding 3).
const NAME_BYTES: usize = 128;
const MAX_NAMES: usize = 1000;
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
}

#[derive(Debug, Default)]
struct CallAcc {
    hour: u8,
    last_start: i64,
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
        }
    }

    pub fn add(&mut self, r: &CallRecord) {
        self.out.cdrs += 1;
        let start = r.start.utc.unwrap_or(r.received_utc);
        let answered = r.disposition == Disposition::Answered;
        // One key per call, the rule every page and the journal count by; bounded because a PBX
        // decides how long ids are (PBX name + NUL + id: twice the name budget).
        let key = bounded_to(&crate::calls::call_key(r), 2 * NAME_BYTES);
        let hour = ((start + i64::from(r.start.offset_seconds)).rem_euclid(86_400) / 3600) as u8;
        let call = self.open.entry(key).or_insert_with(|| CallAcc {
            hour,
            last_start: start,
            ..Default::default()
        });
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
        let mut o = self.out;
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

    #[test]
    fn empty_range() {
        let s = StatsBuilder::new(20).finish();
        assert_eq!(s.calls, 0);
        assert_eq!(s.answer_rate, None);
    }
}
