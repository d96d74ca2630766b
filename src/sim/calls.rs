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
//! Must not: read the clock, touch sockets, or print.

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;

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

const PHONES: &[(&str, &str)] = &[
    ("1001", "Alice Smith"),
    ("1002", "Bob Jones"),
    ("1003", "Иван Петров"),
    ("1004", "Carol White"),
    ("1005", "Dave Brown"),
    ("1006", "Eve Adams"),
    ("1007", "Мария Соколова"),
    ("1008", "Frank Miller"),
];

/// External callers: number and display name ("" = the trunk sent no name).
const EXTERNAL: &[(&str, &str)] = &[
    ("+74957778899", "ООО Ромашка"),
    ("+79031112233", ""),
    ("+74991234567", "Sidorov A."),
    ("+79265550101", ""),
    ("+442071234567", "Acme Ltd"),
];

/// Names and numbers from `cdr_unicode_callerid.bin`; `true` = the caller is external.
const UNICODE_CALLERS: &[(&str, &str, bool)] = &[
    ("+79161234567", "Петров, Иван \"Ваня\"", true),
    ("1003", "Иван Петров", false),
    ("1003", "Back\\slash, \"Q\" Ltd", false),
];

const DIALLED_OUT: &[&str] = &["89161234567", "84959876543", "+74951230000", "88005553535"];
const DIDS: &[&str] = &["74951234500", "74951234501"];
const ACCOUNT_CODES: &[&str] = &["ACC-778", "ACC-101", "SALES-01"];
const CAMPAIGNS: &[&str] = &["Spring-2025", "Autumn-2025", ""];
const QUEUES: &[(&str, &str)] = &[("support", "Support"), ("sales", "Sales")];
const TRUNK: &str = "trunk";

/// Asterisk's `AST_MAX_EXTENSION` buffers (clid, channel, …) hold 79 bytes plus NUL.
const CLID_MAX: usize = 79;

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

/// A channel as allocated by the PBX.
#[derive(Debug, Clone)]
struct Chan {
    name: String,
    unique_id: String,
}

/// The calling party.
#[derive(Debug, Clone)]
struct Party {
    number: String,
    caller_id: String,
    chan: Chan,
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

    /// The headers of `cdr` in cdr_manager's wire order, with this PBX's options.
    pub fn headers(&self, cdr: &CdrData) -> Vec<(&'static str, String)> {
        let tz = &self.opts.timezone;
        let mut h: Vec<(&'static str, String)> = Vec::with_capacity(26);
        h.push(("Event", "Cdr".into()));
        h.push(("Privilege", "cdr,all".into()));
        if self.opts.timestamp_events {
            h.push((
                "Timestamp",
                format!("{}.{:06}", cdr.dispatched.0, cdr.dispatched.1),
            ));
        }
        if let Some(sys) = &self.opts.system_name {
            h.push(("SystemName", sys.clone()));
        }
        h.push(("AccountCode", cdr.account_code.clone()));
        h.push(("Source", cdr.source.clone()));
        h.push(("Destination", cdr.destination.clone()));
        h.push(("DestinationContext", cdr.destination_context.clone()));
        h.push(("CallerID", cdr.caller_id.clone()));
        h.push(("Channel", cdr.channel.clone()));
        h.push(("DestinationChannel", cdr.destination_channel.clone()));
        h.push(("LastApplication", cdr.last_application.clone()));
        h.push(("LastData", cdr.last_data.clone()));
        h.push(("StartTime", local_time(tz, cdr.start)));
        h.push((
            "AnswerTime",
            cdr.answer.map(|a| local_time(tz, a)).unwrap_or_default(),
        ));
        h.push(("EndTime", local_time(tz, cdr.end)));
        h.push(("Duration", cdr.duration().to_string()));
        h.push(("BillableSeconds", cdr.billable_seconds().to_string()));
        h.push(("Disposition", cdr.disposition.into()));
        h.push(("AMAFlags", cdr.ama_flags.into()));
        h.push(("UniqueID", cdr.unique_id.clone()));
        h.push(("UserField", cdr.user_field.clone()));
        if self.opts.map_linkedid_sequence {
            h.push(("LinkedID", cdr.linked_id.clone()));
            h.push(("Sequence", cdr.sequence.to_string()));
        }
        if self.opts.map_department_campaign {
            h.push(("Department", cdr.department.clone()));
            h.push(("Campaign", cdr.campaign.clone()));
        }
        h
    }

    /// The exact event bytes: `Key: value\r\n` lines (empty values keep the space) and a blank line.
    pub fn render(&self, cdr: &CdrData) -> Vec<u8> {
        let headers = self.headers(cdr);
        let mut out = Vec::with_capacity(720);
        for (k, v) in &headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            // AMI has no escaping: a CR or LF would split the event. Generated values never
            // contain them; this keeps a configured system name from doing so.
            out.extend(
                v.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    // ----- building blocks -------------------------------------------------------------

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(0..items.len())]
    }

    fn secs(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.i64(lo..=hi)
    }

    /// Talk time: mostly short, sometimes long, like office calls.
    fn talk(&mut self) -> i64 {
        if self.rng.u8(0..10) == 0 {
            self.secs(300, 1800)
        } else {
            self.secs(5, 240)
        }
    }

    fn unique_id(&mut self, epoch: i64) -> String {
        let n = self.uniqueint;
        self.uniqueint += 1;
        match &self.opts.system_name {
            Some(sys) => format!("{sys}-{epoch}.{n}"),
            None => format!("{epoch}.{n}"),
        }
    }

    fn pjsip(&mut self, endpoint: &str, created: i64) -> Chan {
        let idx = self.pjsip_idx;
        self.pjsip_idx = self.pjsip_idx.wrapping_add(1);
        Chan {
            name: format!("PJSIP/{endpoint}-{idx:08x}"),
            unique_id: self.unique_id(created),
        }
    }

    /// A Local channel pair; returns the `;1` half (the one a Dial or Queue talks to) and the
    /// `;2` half. The pair takes two UniqueIDs, `;1` first.
    fn local_pair(&mut self, exten: &str, context: &str, created: i64) -> (Chan, Chan) {
        let idx = self.local_idx;
        self.local_idx = self.local_idx.wrapping_add(1);
        let base = format!("Local/{exten}@{context}-{idx:08x}");
        let one = Chan {
            name: format!("{base};1"),
            unique_id: self.unique_id(created),
        };
        let two = Chan {
            name: format!("{base};2"),
            unique_id: self.unique_id(created),
        };
        (one, two)
    }

    fn next_sequence(&mut self) -> u64 {
        let s = self.sequence;
        self.sequence += 1;
        s
    }

    fn phone_pair(&mut self) -> ((&'static str, &'static str), (&'static str, &'static str)) {
        let a = self.rng.usize(0..PHONES.len());
        let mut b = self.rng.usize(0..PHONES.len() - 1);
        if b >= a {
            b += 1;
        }
        (PHONES[a], PHONES[b])
    }

    fn internal_caller(&mut self, phone: (&str, &str), created: i64) -> Party {
        Party {
            number: phone.0.to_string(),
            caller_id: callerid_merge(Some(phone.1), Some(phone.0)),
            chan: self.pjsip(phone.0, created),
        }
    }

    fn external_caller(&mut self, number: &str, name: &str, created: i64) -> Party {
        Party {
            number: number.to_string(),
            caller_id: callerid_merge(Some(name), Some(number)),
            chan: self.pjsip(TRUNK, created),
        }
    }

    /// A CDR skeleton for `party`'s channel; the caller fills in the rest.
    #[allow(clippy::too_many_arguments)]
    fn cdr(
        &mut self,
        party: &Party,
        destination: &str,
        context: &str,
        destination_channel: &str,
        app: &str,
        data: &str,
        times: (i64, Option<i64>, i64),
        disposition: &'static str,
    ) -> CdrData {
        CdrData {
            account_code: String::new(),
            source: party.number.clone(),
            destination: destination.to_string(),
            destination_context: context.to_string(),
            caller_id: party.caller_id.clone(),
            channel: party.chan.name.clone(),
            destination_channel: destination_channel.to_string(),
            last_application: app.to_string(),
            last_data: data.to_string(),
            start: times.0,
            answer: times.1,
            end: times.2,
            disposition,
            ama_flags: "DOCUMENTATION",
            unique_id: party.chan.unique_id.clone(),
            user_field: String::new(),
            linked_id: party.chan.unique_id.clone(),
            sequence: self.next_sequence(),
            department: String::new(),
            campaign: String::new(),
            dispatched: (times.2, 0),
        }
    }

    /// A caller dials `callee` and the callee answers after ringing; one `ANSWERED` CDR.
    fn answered_call(&mut self, caller: Party, callee: &str, context: &str, now: i64) -> CdrData {
        let ring = self.secs(1, 15);
        let talk = self.talk();
        let start = now - ring - talk;
        let mut caller = caller;
        // The caller's channel was created at call start: re-stamp its UniqueID epoch.
        restamp(&mut caller.chan, start);
        let dest = self.pjsip(callee, start);
        self.cdr(
            &caller,
            callee,
            context,
            &dest.name,
            "Dial",
            &format!("PJSIP/{callee},30,tT"),
            (start, Some(start + ring), now),
            "ANSWERED",
        )
    }

    // ----- scenarios --------------------------------------------------------------------

    fn answered(&mut self, now: i64) -> Vec<CdrData> {
        let (a, b) = self.phone_pair();
        let caller = self.internal_caller(a, now);
        vec![self.answered_call(caller, b.0, "internal", now)]
    }

    /// Dial ends without answer (`NO ANSWER`, `BUSY`, `CONGESTION`), then the dialplan goes on
    /// to `Hangup`, which `unanswered=yes` logs as a 0 s `NO ANSWER` leftover.
    fn unanswered(&mut self, now: i64, disposition: &'static str) -> Vec<CdrData> {
        let (a, b) = self.phone_pair();
        let (ring, timeout) = match disposition {
            "NO ANSWER" => {
                let t = *self.pick(&[15i64, 20, 30]);
                (t, t)
            }
            _ => (self.secs(0, 1), 30),
        };
        let start = now - ring;
        let caller = self.internal_caller(a, start);
        let dest = self.pjsip(b.0, start);
        let dial = self.cdr(
            &caller,
            b.0,
            "internal",
            &dest.name,
            "Dial",
            &format!("PJSIP/{},{timeout},tT", b.0),
            (start, None, now),
            disposition,
        );
        let leftover = self.cdr(
            &caller,
            b.0,
            "internal",
            "",
            "Hangup",
            "",
            (now, None, now),
            "NO ANSWER",
        );
        vec![dial, leftover]
    }

    fn failed(&mut self, now: i64) -> Vec<CdrData> {
        let phone = *self.pick(PHONES);
        let caller = self.internal_caller(phone, now);
        let dialled = *self.pick(&["2005", "6000"]);
        let target = *self.pick(&["9999", "9998"]);
        // The caller's CDR is created first (lower sequence) but dispatched after the stub's.
        let mut caller_cdr = self.cdr(
            &caller,
            dialled,
            "internal",
            "",
            "Dial",
            &format!("Local/{target}@no-such-context,20"),
            (now, None, now),
            "NO ANSWER",
        );
        let (_one, two) = self.local_pair(target, "no-such-context", now);
        let stub_party = Party {
            number: caller.number.clone(),
            caller_id: caller.caller_id.clone(),
            chan: two,
        };
        let mut stub = self.cdr(
            &stub_party,
            target,
            "no-such-context",
            "",
            "",
            "",
            (now, None, now),
            "FAILED",
        );
        stub.linked_id = caller.chan.unique_id.clone();
        caller_cdr.linked_id = caller.chan.unique_id.clone();
        vec![stub, caller_cdr]
    }

    fn failed_hangup(&mut self, now: i64) -> Vec<CdrData> {
        let phone = *self.pick(PHONES);
        let caller = self.internal_caller(phone, now);
        let dialled = *self.pick(&["2015", "0000", "5555"]);
        vec![self.cdr(
            &caller,
            dialled,
            "internal",
            "",
            "Hangup",
            "3",
            (now, None, now),
            "FAILED",
        )]
    }

    fn queue(&mut self, now: i64) -> Vec<CdrData> {
        let (number, name) = *self.pick(EXTERNAL);
        let did = *self.pick(DIDS);
        let (queue, department) = *self.pick(QUEUES);
        let ring = self.secs(2, 20);
        let talk = self.talk();
        let start = now - ring - talk;
        let caller = self.external_caller(number, name, start);
        // ringall: both members are called at once; the first answers.
        let (m1, _) = self.local_pair("201", "agents", start);
        let (m2, _) = self.local_pair("202", "agents", start);
        let data = format!("{queue},rt,,,30");
        let mut answered = self.cdr(
            &caller,
            did,
            "from-trunk",
            &m1.name,
            "Queue",
            &data,
            (start, Some(start + ring), now),
            "ANSWERED",
        );
        let mut missed = self.cdr(
            &caller,
            did,
            "from-trunk",
            &m2.name,
            "Queue",
            &data,
            (start, None, start + ring),
            "NO ANSWER",
        );
        for c in [&mut answered, &mut missed] {
            c.department = department.to_string();
        }
        // Dispatched answered first, although the missed leg ended earlier (cdr_queue.bin).
        vec![answered, missed]
    }

    fn blind_transfer(&mut self, now: i64) -> Vec<CdrData> {
        let (a, b) = self.phone_pair();
        let c = loop {
            let p = *self.pick(PHONES);
            if p.0 != a.0 && p.0 != b.0 {
                break p;
            }
        };
        let ring = self.secs(1, 10);
        let talk1 = self.secs(3, 60);
        let talk2 = self.talk();
        let start = now - ring - talk1 - talk2;
        let transfer_at = start + ring + talk1;
        let external = self.rng.bool();
        let caller = if external {
            let (number, name) = *self.pick(EXTERNAL);
            self.external_caller(number, name, start)
        } else {
            self.internal_caller(a, start)
        };
        let context = if external { "from-trunk" } else { "internal" };
        let first_dest = self.pjsip(b.0, start);
        // Both CDRs carry the transfer target as Destination (cdr_transfer.bin).
        let first = self.cdr(
            &caller,
            c.0,
            context,
            &first_dest.name,
            "Dial",
            &format!("PJSIP/{},30,tT", b.0),
            (start, Some(start + ring), transfer_at),
            "ANSWERED",
        );
        let second_dest = self.pjsip(c.0, transfer_at);
        let second = self.cdr(
            &caller,
            c.0,
            context,
            &second_dest.name,
            "Dial",
            &format!("PJSIP/{},30,tT", c.0),
            (transfer_at, Some(transfer_at), now),
            "ANSWERED",
        );
        vec![first, second]
    }

    fn custom_fields(&mut self, now: i64) -> Vec<CdrData> {
        let (a, b) = self.phone_pair();
        let caller = self.internal_caller(a, now);
        let mut cdr = self.answered_call(caller, b.0, "internal", now);
        cdr.account_code = self.pick(ACCOUNT_CODES).to_string();
        cdr.ama_flags = "BILLING";
        let ticket = self.rng.u32(1..10_000);
        cdr.user_field = format!("ticket={ticket}; note: перезвонить");
        cdr.department = "Sales".to_string();
        cdr.campaign = self.pick(CAMPAIGNS).to_string();
        vec![cdr]
    }

    fn unicode(&mut self, now: i64) -> Vec<CdrData> {
        let (number, name, external) = *self.pick(UNICODE_CALLERS);
        let callee = *self.pick(PHONES);
        let (caller, context) = if external {
            (self.external_caller(number, name, now), "from-trunk")
        } else {
            (self.internal_caller((number, name), now), "internal")
        };
        let dest = if external {
            callee.0
        } else if callee.0 == number {
            "1001"
        } else {
            callee.0
        };
        vec![self.answered_call(caller, dest, context, now)]
    }

    fn anonymous(&mut self, now: i64) -> Vec<CdrData> {
        let name = if self.rng.u8(0..5) == 0 {
            ""
        } else {
            "Anonymous"
        };
        let callee = *self.pick(PHONES);
        let caller = self.external_caller("", name, now);
        vec![self.answered_call(caller, callee.0, "from-trunk", now)]
    }

    fn inbound(&mut self, now: i64) -> Vec<CdrData> {
        let (number, name) = *self.pick(EXTERNAL);
        let callee = *self.pick(PHONES);
        let caller = self.external_caller(number, name, now);
        vec![self.answered_call(caller, callee.0, "from-trunk", now)]
    }

    fn outbound(&mut self, now: i64) -> Vec<CdrData> {
        let phone = *self.pick(PHONES);
        let dialled = *self.pick(DIALLED_OUT);
        let ring = self.secs(3, 25);
        let talk = self.talk();
        let start = now - ring - talk;
        let caller = self.internal_caller(phone, start);
        let dest = self.pjsip(TRUNK, start);
        vec![self.cdr(
            &caller,
            dialled,
            "internal",
            &dest.name,
            "Dial",
            &format!("PJSIP/{dialled}@{TRUNK},60,T"),
            (start, Some(start + ring), now),
            "ANSWERED",
        )]
    }
}

/// Replaces the epoch part of a UniqueID (`[sys-]<epoch>.<n>`) keeping the counter.
fn restamp(chan: &mut Chan, epoch: i64) {
    if let Some(dot) = chan.unique_id.rfind('.') {
        let head = &chan.unique_id[..dot];
        let prefix_end = head.rfind('-').map_or(0, |i| i + 1);
        let new = format!(
            "{}{}{}",
            &chan.unique_id[..prefix_end],
            epoch,
            &chan.unique_id[dot..]
        );
        chan.unique_id = new;
    }
}

/// `ast_callerid_merge`: `"<name>" <<number>>` with `"` and `\` escaped inside the quotes
/// (`ast_escape_quoted`, 127-byte name buffer), or only the name / only the number when the
/// other is absent, or `""` when neither is; the result fits cdr's 80-byte `clid`.
pub fn callerid_merge(name: Option<&str>, number: Option<&str>) -> String {
    let merged = match (name, number) {
        (Some(name), Some(number)) => {
            let mut escaped = String::with_capacity(name.len() + 4);
            for ch in name.chars() {
                let extra = if ch == '"' || ch == '\\' { 1 } else { 0 };
                if escaped.len() + extra + ch.len_utf8() > 127 {
                    break;
                }
                if extra == 1 {
                    escaped.push('\\');
                }
                escaped.push(ch);
            }
            format!("\"{escaped}\" <{number}>")
        }
        (Some(name), None) => name.to_string(),
        (None, Some(number)) => number.to_string(),
        (None, None) => String::new(),
    };
    truncate_at_char(merged, CLID_MAX)
}

/// Cuts to at most `max` bytes at a character boundary (Asterisk cuts at a byte boundary; a
/// `String` cannot hold half a character, and generated values never get this long).
fn truncate_at_char(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// `%Y-%m-%d %H:%M:%S` in the PBX zone, as cdr_manager's `DATE_FORMAT`.
pub fn local_time(tz: &TimeZone, epoch: i64) -> String {
    match jiff::Timestamp::from_second(epoch) {
        Ok(ts) => {
            let dt = tz.to_datetime(ts);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            )
        }
        // Only for epochs outside jiff's range (±9999 years); never produced by a real clock.
        Err(_) => String::new(),
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
    fn local_time_is_moscow_wall_clock() {
        // cdr_answered.bin: UniqueID epoch 1795331226 ↔ StartTime 10:07:06.
        assert_eq!(
            local_time(&default_timezone(), 1_795_331_226),
            "2026-11-22 10:07:06"
        );
        assert_eq!(local_time(&TimeZone::UTC, 0), "1970-01-01 00:00:00");
    }

    #[test]
    fn callerid_escaping_matches_captures() {
        assert_eq!(
            callerid_merge(Some("Петров, Иван \"Ваня\""), Some("+79161234567")),
            "\"Петров, Иван \\\"Ваня\\\"\" <+79161234567>"
        );
        assert_eq!(
            callerid_merge(Some("Back\\slash, \"Q\" Ltd"), Some("1003")),
            r#""Back\\slash, \"Q\" Ltd" <1003>"#
        );
        assert_eq!(
            callerid_merge(Some("Anonymous"), Some("")),
            "\"Anonymous\" <>"
        );
        assert_eq!(callerid_merge(Some(""), Some("")), "\"\" <>");
        assert_eq!(callerid_merge(None, Some("100")), "100");
        let long = "Я".repeat(100);
        let merged = callerid_merge(Some(&long), Some("1"));
        assert!(merged.len() <= CLID_MAX);
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

    #[test]
    fn render_matches_cdr_answered_capture_layout() {
        let g = CallGenerator::new(GeneratorOptions {
            map_linkedid_sequence: false,
            map_department_campaign: true,
            ..GeneratorOptions::default()
        });
        let cdr = CdrData {
            account_code: String::new(),
            source: "1001".into(),
            destination: "2001".into(),
            destination_context: "internal".into(),
            caller_id: "\"Alice Smith\" <1001>".into(),
            channel: "Local/2001@internal-00000000;2".into(),
            destination_channel: "Local/2001@sim-answer-00000001;1".into(),
            last_application: "Dial".into(),
            last_data: "Local/2001@sim-answer,20".into(),
            start: 1_795_331_226,
            answer: Some(1_795_331_227),
            end: 1_795_331_230,
            disposition: "ANSWERED",
            ama_flags: "DOCUMENTATION",
            unique_id: "1795331226.1".into(),
            user_field: String::new(),
            linked_id: "1795331226.1".into(),
            sequence: 0,
            department: String::new(),
            campaign: String::new(),
            dispatched: (1_795_331_230, 0),
        };
        let capture = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ami/cdr_answered.bin"
        ))
        .unwrap();
        let rendered = g.render(&cdr);
        let at = capture
            .windows(rendered.len())
            .position(|w| w == rendered.as_slice());
        assert!(at.is_some(), "{}", String::from_utf8_lossy(&rendered));
    }

    #[test]
    fn restamp_keeps_prefix_and_counter() {
        let mut c = Chan {
            name: String::new(),
            unique_id: "pbx-msk-01-100.7".into(),
        };
        restamp(&mut c, 42);
        assert_eq!(c.unique_id, "pbx-msk-01-42.7");
        let mut c = Chan {
            name: String::new(),
            unique_id: "100.7".into(),
        };
        restamp(&mut c, 42);
        assert_eq!(c.unique_id, "42.7");
    }
}
