//! Pure generator of realistic call scenarios as `Event: Cdr` bytes, byte-compatible with
//! Asterisk 22's `cdr_manager`. No I/O and no clock: the caller passes `now_utc`.
//!
//! Spec: `tests/fixtures/ami/README.md` ("Observed format facts") and the `cdr_*.bin` captures.
//! Each [`Scenario`] reproduces the CDR pattern of one capture (how many CDRs, which share a
//! UniqueID, their dispositions, `LastApplication`/`LastData`, the 0 s `Hangup` leftover, the
//! dispatch order), with PJSIP phone and trunk channels instead of the Local channels the capture
//! rig used, so direction derivation sees inbound, outbound and internal calls.
//!
//! Modelled Asterisk details: UniqueID is `[<systemname>-]<epoch of channel creation>.<global
//! counter>`; each channel driver numbers its channels with its own counter (`PJSIP/1001-0000001a`,
//! `Local/…-00000014;1`, a Local pair takes two UniqueIDs); the CDR `sequence` is a global counter
//! taken when each CDR object is created (so a failed Dial's stub is dispatched before the caller's
//! CDR although its sequence is higher); times are formatted in the PBX's local zone; `Duration`
//! is end − start and `BillableSeconds` end − answer. Calls are generated so that they *end* at
//! `now_utc`, which is when Asterisk dispatches their CDRs.
//!
//! Files: this one has the scenario names and mix, the options, the record types and the
//! generator's counters; `scenarios` has one function per scenario, `parts` the building blocks
//! (phones, trunk callers, channel and UniqueID numbering, a CDR skeleton), `render` the wire
//! bytes (header order, local times, `ast_callerid_merge`).
//!
//! Must not: read the clock, touch sockets, or print.

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;

mod parts;
mod render;
mod scenarios;

pub use render::{callerid_merge, local_time};

/// One kind of call, each modelled on a capture in `tests/fixtures/ami/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Phone to phone, answered: 1 CDR `ANSWERED` (`cdr_answered.bin`).
    Answered,
    /// Phone to phone, ring timeout: Dial `NO ANSWER` + 0 s `Hangup` leftover, same UniqueID
    /// (`cdr_no_answer.bin`).
    NoAnswer,
    /// `BUSY` Dial CDR + `NO ANSWER` Hangup leftover (`cdr_busy.bin`).
    Busy,
    /// `CONGESTION` Dial CDR + `NO ANSWER` Hangup leftover (`cdr_congestion.bin`).
    Congestion,
    /// Dial of an uncallable Local channel: its `FAILED` stub (own UniqueID, empty
    /// LastApplication) then the caller's Dial `NO ANSWER` with empty DestinationChannel
    /// (`cdr_failed.bin`).
    Failed,
    /// The caller runs `Hangup(3)` unanswered: 1 CDR `FAILED` (`cdr_failed_hangup_cause3.bin`).
    FailedHangup,
    /// Inbound trunk call into a ringall queue with two members: `ANSWERED` then `NO ANSWER`,
    /// same UniqueID, `LastApplication: Queue` (`cdr_queue.bin`).
    Queue,
    /// Answered call blind-transferred to a third phone: 2 `ANSWERED` CDRs, same UniqueID,
    /// different DestinationChannel (`cdr_transfer.bin`).
    BlindTransfer,
    /// AccountCode, `AMAFlags: BILLING`, a UserField containing `: ` and Cyrillic, and the
    /// Department/Campaign mappings (`cdr_custom_fields.bin`).
    CustomFields,
    /// Cyrillic and backslash/quote-escaped caller names (`cdr_unicode_callerid.bin`).
    UnicodeCallerId,
    /// Inbound call with a withheld number: `"Anonymous" <>` or `"" <>`, empty Source
    /// (`mixed_session_cdr_only.bin`).
    Anonymous,
    /// Trunk to phone, answered.
    Inbound,
    /// Phone to trunk, answered.
    Outbound,
}

impl Scenario {
    /// Every scenario, in declaration order.
    pub const ALL: [Scenario; 13] = [
        Scenario::Answered,
        Scenario::NoAnswer,
        Scenario::Busy,
        Scenario::Congestion,
        Scenario::Failed,
        Scenario::FailedHangup,
        Scenario::Queue,
        Scenario::BlindTransfer,
        Scenario::CustomFields,
        Scenario::UnicodeCallerId,
        Scenario::Anonymous,
        Scenario::Inbound,
        Scenario::Outbound,
    ];

    /// Short kebab-case name, as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Answered => "answered",
            Scenario::NoAnswer => "no-answer",
            Scenario::Busy => "busy",
            Scenario::Congestion => "congestion",
            Scenario::Failed => "failed",
            Scenario::FailedHangup => "failed-hangup",
            Scenario::Queue => "queue",
            Scenario::BlindTransfer => "blind-transfer",
            Scenario::CustomFields => "custom-fields",
            Scenario::UnicodeCallerId => "unicode-callerid",
            Scenario::Anonymous => "anonymous",
            Scenario::Inbound => "inbound",
            Scenario::Outbound => "outbound",
        }
    }

    /// Relative frequency in the default mix: roughly an office day.
    pub fn default_weight(self) -> u32 {
        match self {
            Scenario::Answered => 20,
            Scenario::Inbound => 18,
            Scenario::Outbound => 18,
            Scenario::NoAnswer => 8,
            Scenario::Queue => 8,
            Scenario::Busy => 5,
            Scenario::BlindTransfer => 4,
            Scenario::CustomFields => 4,
            Scenario::UnicodeCallerId => 4,
            Scenario::Anonymous => 4,
            Scenario::Congestion => 2,
            Scenario::Failed => 2,
            Scenario::FailedHangup => 2,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario name that is not one of [`Scenario::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown call scenario {name:?}; known: answered, no-answer, busy, congestion, failed, failed-hangup, queue, blind-transfer, custom-fields, unicode-callerid, anonymous, inbound, outbound")]
pub struct UnknownScenario {
    pub name: String,
}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('_', "-");
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name().eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| UnknownScenario {
                name: s.to_string(),
            })
    }
}

/// How the simulated PBX is configured, as far as the Cdr bytes are concerned.
#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    /// Seed for every random choice; same seed and same `now_utc` values give the same bytes.
    pub seed: u64,
    /// The PBX's `/etc/localtime`: Start/Answer/EndTime are formatted in it.
    pub timezone: TimeZone,
    /// `cdr_manager.conf [mappings]`: `linkedid => LinkedID` and `sequence => Sequence`
    /// (what cdrbox tells users to configure). Default on.
    pub map_linkedid_sequence: bool,
    /// `[mappings]`: `department => Department` and `campaign => Campaign`, as in the captures.
    /// Default off.
    pub map_department_campaign: bool,
    /// `manager.conf timestampevents = yes`: `Timestamp: <epoch>.<usec>` after Privilege.
    pub timestamp_events: bool,
    /// `asterisk.conf systemname`: `SystemName:` after Privilege/Timestamp and a UniqueID prefix.
    pub system_name: Option<String>,
    /// Relative weights of the scenarios picked by [`CallGenerator::next_call`]; empty means
    /// [`Scenario::default_weight`] for all.
    pub mix: Vec<(Scenario, u32)>,
}

/// The zone of the captures (Europe/Moscow, UTC+3 without DST), from the bundled tzdb.
pub fn default_timezone() -> TimeZone {
    TimeZone::get("Europe/Moscow").unwrap_or_else(|_| {
        // The bundled tzdb always has it; the fixed offset is only a fallback that keeps
        // the same wall-clock times.
        TimeZone::fixed(jiff::tz::offset(3))
    })
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            seed: 1,
            timezone: default_timezone(),
            map_linkedid_sequence: true,
            map_department_campaign: false,
            timestamp_events: false,
            system_name: None,
            mix: Vec::new(),
        }
    }
}

/// The values of one CDR before formatting. Times are UTC epoch seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrData {
    pub account_code: String,
    pub source: String,
    pub destination: String,
    pub destination_context: String,
    pub caller_id: String,
    pub channel: String,
    pub destination_channel: String,
    pub last_application: String,
    pub last_data: String,
    pub start: i64,
    /// `None` when unanswered (`AnswerTime: ` empty on the wire).
    pub answer: Option<i64>,
    pub end: i64,
    pub disposition: &'static str,
    pub ama_flags: &'static str,
    pub unique_id: String,
    pub user_field: String,
    /// `LinkedID` mapping value (the first channel's UniqueID).
    pub linked_id: String,
    /// `Sequence` mapping value (global CDR counter, reset on restart).
    pub sequence: u64,
    pub department: String,
    pub campaign: String,
    /// When Asterisk dispatched the event (`Timestamp:` header): seconds and microseconds.
    pub dispatched: (i64, u32),
}

impl CdrData {
    /// `Duration` as cdr_manager computes it: end − start.
    pub fn duration(&self) -> i64 {
        self.end - self.start
    }

    /// `BillableSeconds`: end − answer, 0 when unanswered.
    pub fn billable_seconds(&self) -> i64 {
        self.answer.map_or(0, |a| self.end - a)
    }
}

/// One generated call: its scenario, the CDR values and the exact event bytes, in dispatch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCall {
    pub scenario: Scenario,
    pub cdrs: Vec<CdrData>,
    pub events: Vec<Vec<u8>>,
}

/// Deterministic generator of calls. Holds the PBX's counters (UniqueID, channel numbers, CDR
/// sequence), like a running Asterisk does.
#[derive(Debug, Clone)]
pub struct CallGenerator {
    opts: GeneratorOptions,
    rng: fastrand::Rng,
    weights: Vec<(Scenario, u32)>,
    total_weight: u32,
    uniqueint: u64,
    pjsip_idx: u32,
    local_idx: u32,
    sequence: u64,
    calls: u64,
}

impl CallGenerator {
    pub fn new(opts: GeneratorOptions) -> Self {
        let mut weights: Vec<(Scenario, u32)> = if opts.mix.is_empty() {
            Scenario::ALL
                .into_iter()
                .map(|s| (s, s.default_weight()))
                .collect()
        } else {
            opts.mix.clone()
        };
        weights.retain(|(_, w)| *w > 0);
        if weights.is_empty() {
            weights.push((Scenario::Answered, 1));
        }
        let total_weight = weights.iter().map(|(_, w)| *w).sum();
        CallGenerator {
            rng: fastrand::Rng::with_seed(opts.seed),
            opts,
            weights,
            total_weight,
            // Asterisk's first channel after boot gets `.1` (cdr_answered.bin).
            uniqueint: 1,
            pjsip_idx: 0,
            local_idx: 0,
            sequence: 0,
            calls: 0,
        }
    }

    pub fn options(&self) -> &GeneratorOptions {
        &self.opts
    }

    /// Calls generated so far.
    pub fn calls_generated(&self) -> u64 {
        self.calls
    }

    /// Resets the counters an Asterisk restart resets (UniqueID counter, channel numbers, CDR
    /// sequence). The random stream continues.
    pub fn restart(&mut self) {
        self.uniqueint = 1;
        self.pjsip_idx = 0;
        self.local_idx = 0;
        self.sequence = 0;
    }

    /// Picks a scenario from the mix (consumes randomness).
    pub fn next_scenario(&mut self) -> Scenario {
        let mut pick = self.rng.u32(0..self.total_weight.max(1));
        for (s, w) in &self.weights {
            if pick < *w {
                return *s;
            }
            pick -= w;
        }
        Scenario::Answered
    }

    /// The next call from the mix, ending at `now_utc`, as Cdr event bytes in dispatch order.
    pub fn next_call(&mut self, now_utc: i64) -> Vec<Vec<u8>> {
        let scenario = self.next_scenario();
        self.call(scenario, now_utc).events
    }

    /// A call of the given scenario, ending at `now_utc`.
    pub fn call(&mut self, scenario: Scenario, now_utc: i64) -> GeneratedCall {
        self.calls += 1;
        let mut cdrs = match scenario {
            Scenario::Answered => self.answered(now_utc),
            Scenario::NoAnswer => self.unanswered(now_utc, "NO ANSWER"),
            Scenario::Busy => self.unanswered(now_utc, "BUSY"),
            Scenario::Congestion => self.unanswered(now_utc, "CONGESTION"),
            Scenario::Failed => self.failed(now_utc),
            Scenario::FailedHangup => self.failed_hangup(now_utc),
            Scenario::Queue => self.queue(now_utc),
            Scenario::BlindTransfer => self.blind_transfer(now_utc),
            Scenario::CustomFields => self.custom_fields(now_utc),
            Scenario::UnicodeCallerId => self.unicode(now_utc),
            Scenario::Anonymous => self.anonymous(now_utc),
            Scenario::Inbound => self.inbound(now_utc),
            Scenario::Outbound => self.outbound(now_utc),
        };
        // Dispatch timestamps: a few hundred microseconds apart, after the call ended.
        let mut usec = self.rng.u32(1_000..400_000);
        for cdr in &mut cdrs {
            cdr.dispatched = (now_utc, usec);
            usec = (usec + self.rng.u32(50..500)).min(999_999);
        }
        let events = cdrs.iter().map(|c| self.render(c)).collect();
        GeneratedCall {
            scenario,
            cdrs,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_331_230; // 2026-11-22 07:07:10 UTC, the captures' day

    fn gen() -> CallGenerator {
        CallGenerator::new(GeneratorOptions::default())
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>().unwrap(), s);
        }
        assert_eq!("No_Answer".parse::<Scenario>().unwrap(), Scenario::NoAnswer);
        assert!("nope".parse::<Scenario>().is_err());
    }

    #[test]
    fn durations_are_consistent_and_calls_end_now() {
        let mut g = gen();
        for s in Scenario::ALL {
            for _ in 0..20 {
                let call = g.call(s, NOW);
                assert_eq!(call.cdrs.iter().map(|c| c.end).max(), Some(NOW), "{s}");
                for c in &call.cdrs {
                    assert!(c.start <= c.end, "{s}");
                    if let Some(a) = c.answer {
                        assert!(c.start <= a && a <= c.end, "{s}");
                    }
                    assert!(c.duration() >= c.billable_seconds());
                }
            }
        }
    }
}
