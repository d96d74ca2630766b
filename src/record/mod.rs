//! The call record: one `Event: Cdr` (Asterisk's `cdr/cdr_manager.c`) turned into typed, derived
//! fields. Pure code.
//!
//! Source of truth is always the raw event bytes, kept in [`CallRecord::raw`]; every other field
//! can be recomputed from them and the PBX's settings ([`PbxContext`]). Must not do I/O, and
//! imports nothing of the box but the AMI message type: it is the innermost module (config,
//! export, journal and web depend on it, never the other way round).
//!
//! Map: this file holds the types; [`fields`] turns an event into a record (text decoding,
//! caller ID, agent, queue, direction); [`time`] parses and resolves PBX wall-clock times;
//! [`identity`] is the exactly-once key; [`match_key`] the key that matches one call across
//! sources (AMI, Master.csv, the FreePBX database); [`json`] is the API's JSON view.

mod fields;
mod identity;
mod json;
mod match_key;
mod time;

pub use fields::{channel_extension, decode_text, split_caller_id};
pub use identity::compute_identity;
pub use json::{JsonCustomFields, JsonRecord, RecordJsonError, JSON_FIELDS};
pub use match_key::{ama_flags_name, disposition_name, match_key, occurrence_identity};
pub use time::{civil_from_days, parse_wall_clock, unique_id_epoch};
// For match_key (a sibling): the identity's zone-less time key.
use time::wall_clock_key;

use serde::{Deserialize, Serialize};

/// Per-PBX settings needed to turn raw bytes into a record.
#[derive(Debug, Clone)]
pub struct PbxContext {
    /// The configured PBX name (`[[pbx]] name`).
    pub name: String,
    /// The PBX's time zone: CDR times are its local wall-clock time with no offset.
    pub timezone: jiff::tz::TimeZone,
    /// The IANA name of `timezone`, kept for display.
    pub timezone_name: String,
    /// Legacy charset used when a value is not valid UTF-8 (e.g. windows-1251).
    pub charset: &'static encoding_rs::Encoding,
    /// Channel patterns that mark the external (trunk) side of a call.
    pub trunk_patterns: Vec<regex_lite::Regex>,
}

/// `Disposition:` as sent by `ast_cdr_disp2str`; unknown values are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Disposition {
    Answered,
    NoAnswer,
    Busy,
    Failed,
    Congestion,
    Cancel,
    Unknown,
    /// Anything else the PBX sent, byte-exact (lossily decoded).
    Other(String),
}

/// Call direction, derived from which side matches the trunk patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
    Unknown,
}

/// A PBX local time string with what we derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrTime {
    /// Exactly as received (`2026-11-22 10:07:37`).
    pub raw: String,
    /// Seconds since the Unix epoch, when `raw` parsed in the PBX zone.
    pub utc: Option<i64>,
    /// The PBX zone's UTC offset at that instant, in seconds (for RFC 3339 output).
    pub offset_seconds: i32,
}

/// One call detail record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub pbx: String,
    pub unique_id: String,
    pub account_code: String,
    pub source: String,
    pub destination: String,
    pub destination_context: String,
    pub caller_id: String,
    pub channel: String,
    pub destination_channel: String,
    pub last_application: String,
    pub last_data: String,
    pub start: CdrTime,
    /// `None` when `AnswerTime` was empty (not answered).
    pub answer: Option<CdrTime>,
    pub end: CdrTime,
    pub duration: i64,
    pub billable_seconds: i64,
    pub disposition: Disposition,
    pub ama_flags: String,
    pub user_field: String,
    pub direction: Direction,
    /// `duration - billable_seconds`, never negative.
    pub ring_seconds: i64,
    /// First argument of `LastData` when `LastApplication` is `Queue`.
    pub queue: Option<String>,
    /// Extension in `DestinationChannel` (`PJSIP/1001-0000002a` → `1001`).
    pub agent: Option<String>,
    /// From a `[mappings]` field named `LinkedID` (any case).
    pub linked_id: Option<String>,
    /// From a `[mappings]` field named `Sequence` (any case).
    pub sequence: Option<i64>,
    /// Every header after the 18 standard ones (and not Event/Privilege/Timestamp/SystemName),
    /// names as received, in wire order.
    pub custom_fields: Vec<(String, String)>,
    /// The event exactly as received.
    pub raw: Vec<u8>,
    /// When the box received it, by the box's clock (seconds since the Unix epoch).
    pub received_utc: i64,
    /// Identity key: same PBX + (UniqueID, Sequence) if Sequence is mapped,
    /// else the same full field content. 16 bytes of SHA-256.
    pub identity: [u8; 16],
    /// How the record reached the box. Old ring payloads have none: AMI.
    #[serde(default)]
    pub origin: Origin,
}

/// How a record reached the box: the AMI link, an imported Master.csv, or FreePBX's CDR
/// database. Its text (`ami`, `master-csv`, `cdr-db`) is a contract: the API's `origin` field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Origin {
    #[default]
    #[serde(rename = "ami")]
    Ami,
    #[serde(rename = "master-csv")]
    MasterCsv,
    #[serde(rename = "cdr-db")]
    CdrDb,
}

impl Origin {
    pub const ALL: [Origin; 3] = [Origin::Ami, Origin::MasterCsv, Origin::CdrDb];

    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Ami => "ami",
            Origin::MasterCsv => "master-csv",
            Origin::CdrDb => "cdr-db",
        }
    }

    /// The stored text back; anything unknown is AMI (what every record was before imports).
    pub fn parse(s: &str) -> Origin {
        Origin::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .unwrap_or_default()
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default trunk pattern (VueSIP's): a channel on a SIP/PJSIP/IAX2/DAHDI peer whose name
/// starts with `trunk`, `provider` or `gateway` is the external side of a call.
pub const DEFAULT_TRUNK_PATTERN: &str = "^(SIP|PJSIP|IAX2|DAHDI)/(trunk|provider|gateway)";

/// Asterisk's CDR string fields are `char[80]` buffers, so a longer value arrives cut at 79 bytes,
/// possibly in the middle of a UTF-8 character.
const CDR_FIELD_LIMIT: usize = 79;

/// The 18 `Event: Cdr` fields of `cdr_manager.c`, in wire order.
pub const STANDARD_FIELDS: [&str; 18] = [
    "AccountCode",
    "Source",
    "Destination",
    "DestinationContext",
    "CallerID",
    "Channel",
    "DestinationChannel",
    "LastApplication",
    "LastData",
    "StartTime",
    "AnswerTime",
    "EndTime",
    "Duration",
    "BillableSeconds",
    "Disposition",
    "AMAFlags",
    "UniqueID",
    "UserField",
];

/// Headers that describe the event or the server rather than the call: never custom fields and
/// never part of the identity (`Timestamp`/`SystemName` depend on manager.conf/asterisk.conf).
pub const ENVELOPE_FIELDS: [&str; 4] = ["Event", "Privilege", "Timestamp", "SystemName"];

/// Why a PBX's settings cannot be turned into a [`PbxContext`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("pbx {pbx:?}: {name:?} is not an IANA time zone")]
    TimeZone { pbx: String, name: String },
    #[error("pbx {pbx:?}: {label:?} is not a known charset label (e.g. windows-1251, koi8-r, iso-8859-1)")]
    Charset { pbx: String, label: String },
    #[error("pbx {pbx:?}: trunk pattern {pattern:?} is not a valid regular expression: {reason}")]
    TrunkPattern {
        pbx: String,
        pattern: String,
        reason: String,
    },
}

impl PbxContext {
    /// Builds the context from names as written in the config.
    pub fn new<S: AsRef<str>>(
        name: &str,
        timezone: &str,
        charset: &str,
        trunk_patterns: &[S],
    ) -> Result<PbxContext, ContextError> {
        let tz = jiff::tz::TimeZone::get(timezone).map_err(|_| ContextError::TimeZone {
            pbx: name.to_owned(),
            name: timezone.to_owned(),
        })?;
        let enc = encoding_rs::Encoding::for_label(charset.trim().as_bytes()).ok_or_else(|| {
            ContextError::Charset {
                pbx: name.to_owned(),
                label: charset.to_owned(),
            }
        })?;
        let mut patterns = Vec::with_capacity(trunk_patterns.len());
        for p in trunk_patterns {
            let p = p.as_ref();
            let re = regex_lite::Regex::new(p).map_err(|e| ContextError::TrunkPattern {
                pbx: name.to_owned(),
                pattern: p.to_owned(),
                reason: e.to_string(),
            })?;
            patterns.push(re);
        }
        Ok(PbxContext {
            name: name.to_owned(),
            timezone: tz,
            timezone_name: timezone.to_owned(),
            charset: enc,
            trunk_patterns: patterns,
        })
    }

    /// True when `channel` is on the external (trunk) side.
    pub fn is_trunk(&self, channel: &str) -> bool {
        self.trunk_patterns.iter().any(|re| re.is_match(channel))
    }
}

impl Disposition {
    /// The wire string (`NO ANSWER`); `Other` gives back what the PBX sent.
    pub fn as_str(&self) -> &str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Congestion => "CONGESTION",
            Disposition::Cancel => "CANCEL",
            Disposition::Unknown => "UNKNOWN",
            Disposition::Other(s) => s,
        }
    }

    /// Parses a wire string; never fails (unknown values become `Other`, verbatim).
    pub fn parse(s: &str) -> Disposition {
        match s {
            "ANSWERED" => Disposition::Answered,
            "NO ANSWER" => Disposition::NoAnswer,
            "BUSY" => Disposition::Busy,
            "FAILED" => Disposition::Failed,
            "CONGESTION" => Disposition::Congestion,
            "CANCEL" => Disposition::Cancel,
            "UNKNOWN" => Disposition::Unknown,
            other => Disposition::Other(other.to_owned()),
        }
    }
}

impl std::str::FromStr for Disposition {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Disposition::parse(s))
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A direction name that is not `inbound|outbound|internal|unknown`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a direction (inbound, outbound, internal, unknown)")]
pub struct ParseDirectionError(pub String);

impl Direction {
    pub const ALL: [Direction; 4] = [
        Direction::Inbound,
        Direction::Outbound,
        Direction::Internal,
        Direction::Unknown,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
            Direction::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = ParseDirectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Direction::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseDirectionError(s.to_owned()))
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::fields::queue_of;
    use super::*;
    use crate::ami::AmiMessage;

    fn fixture_cdrs(name: &str) -> Vec<AmiMessage> {
        let path = format!("{}/tests/fixtures/ami/{name}", env!("CARGO_MANIFEST_DIR"));
        crate::journal::testdata::cdr_events(&std::fs::read(&path).unwrap())
    }

    fn moscow() -> PbxContext {
        crate::journal::testdata::moscow_pbx("office")
    }

    fn records(name: &str, ctx: &PbxContext) -> Vec<CallRecord> {
        fixture_cdrs(name)
            .iter()
            .map(|m| CallRecord::from_event(m, ctx, 1_795_331_300))
            .collect()
    }

    /// A Cdr event with the 18 standard fields (defaults overridden by `over`, matched by name)
    /// plus `extra` headers appended.
    fn event(over: &[(&str, &[u8])], extra: &[(&str, &[u8])]) -> AmiMessage {
        let defaults: [(&str, &[u8]); 18] = [
            ("AccountCode", b""),
            ("Source", b"1001"),
            ("Destination", b"2001"),
            ("DestinationContext", b"internal"),
            ("CallerID", b"\"Alice\" <1001>"),
            ("Channel", b"PJSIP/1001-00000001"),
            ("DestinationChannel", b"PJSIP/2001-00000002"),
            ("LastApplication", b"Dial"),
            ("LastData", b"PJSIP/2001,20"),
            ("StartTime", b"2026-11-22 10:00:00"),
            ("AnswerTime", b"2026-11-22 10:00:05"),
            ("EndTime", b"2026-11-22 10:01:00"),
            ("Duration", b"60"),
            ("BillableSeconds", b"55"),
            ("Disposition", b"ANSWERED"),
            ("AMAFlags", b"DOCUMENTATION"),
            ("UniqueID", b"1795327200.1"),
            ("UserField", b""),
        ];
        let mut raw = b"Event: Cdr\r\nPrivilege: cdr,all\r\n".to_vec();
        for (k, v) in defaults {
            let v = over
                .iter()
                .find(|(ok, _)| *ok == k)
                .map_or(v, |(_, ov)| *ov);
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(v);
            raw.extend_from_slice(b"\r\n");
        }
        for (k, v) in extra {
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(v);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        AmiMessage::parse(&raw).unwrap()
    }

    #[test]
    fn answered_capture_times_are_moscow_local() {
        let ctx = moscow();
        let r = &records("cdr_answered.bin", &ctx)[0];
        assert_eq!(r.start.raw, "2026-11-22 10:07:06");
        // 10:07:06 MSK (UTC+3) is 07:07:06Z; the UniqueID epoch (UTC) agrees.
        let expected = jiff::Timestamp::from_second(r.start.utc.unwrap())
            .unwrap()
            .to_string();
        assert_eq!(expected, "2026-11-22T07:07:06Z");
        assert_eq!(r.start.utc, unique_id_epoch(&r.unique_id));
        assert_eq!(r.start.offset_seconds, 3 * 3600);
        assert_eq!(r.start.rfc3339(), "2026-11-22T10:07:06+03:00");
        assert_eq!(
            r.answer.as_ref().unwrap().rfc3339(),
            "2026-11-22T10:07:07+03:00"
        );
        assert_eq!(r.end.utc.unwrap() - r.start.utc.unwrap(), r.duration);
        assert_eq!((r.duration, r.billable_seconds, r.ring_seconds), (4, 3, 1));
        assert_eq!(r.disposition, Disposition::Answered);
        assert_eq!(r.direction, Direction::Internal);
        assert_eq!(r.agent.as_deref(), Some("2001"));
        assert_eq!(r.queue, None);
        assert_eq!(r.pbx, "office");
        assert_eq!(r.received_utc, 1_795_331_300);
        assert!(r.raw.starts_with(b"Event: Cdr\r\n") && r.raw.ends_with(b"\r\n\r\n"));
        // Mapped fields are always sent, empty when the variable is unset.
        assert_eq!(
            r.custom_fields,
            vec![
                ("Department".to_owned(), String::new()),
                ("Campaign".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn custom_fields_capture() {
        let r = &records("cdr_custom_fields.bin", &moscow())[0];
        assert_eq!(r.account_code, "ACC-778");
        assert_eq!(r.ama_flags, "BILLING");
        assert_eq!(r.user_field, "ticket=42; note: перезвонить");
        assert_eq!(
            r.custom_fields,
            vec![
                ("Department".to_owned(), "Sales".to_owned()),
                ("Campaign".to_owned(), "Spring-2025".to_owned())
            ]
        );
        assert_eq!(r.start.utc, Some(1_795_331_257));
        let j = r.to_json();
        assert_eq!(j["customFields"]["Department"], "Sales");
        assert_eq!(j["userField"], "ticket=42; note: перезвонить");
    }

    #[test]
    fn cyrillic_and_escaped_caller_ids() {
        let rs = records("cdr_unicode_callerid.bin", &moscow());
        let names: Vec<(String, String)> =
            rs.iter().map(|r| split_caller_id(&r.caller_id)).collect();
        assert_eq!(rs[0].caller_id, r#""Петров, Иван \"Ваня\"" <+79161234567>"#);
        assert_eq!(
            names,
            vec![
                (
                    "Петров, Иван \"Ваня\"".to_owned(),
                    "+79161234567".to_owned()
                ),
                ("Иван Петров".to_owned(), "1003".to_owned()),
                ("Back\\slash, \"Q\" Ltd".to_owned(), "1003".to_owned()),
            ]
        );
        assert_eq!(rs[0].source, "+79161234567");
    }

    #[test]
    fn timestamp_and_systemname_are_envelope_not_custom() {
        let r = &records("cdr_answered_timestampevents_systemname.bin", &moscow())[0];
        assert_eq!(r.unique_id, "pbx-msk-01-1795331365.1");
        assert_eq!(unique_id_epoch(&r.unique_id), Some(1_795_331_365));
        assert_eq!(r.start.utc, Some(1_795_331_365));
        let names: Vec<&str> = r.custom_fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Department", "Campaign"]);
    }

    #[test]
    fn legacy_charset_bytes() {
        // "Иван" in windows-1251, and the same in KOI8-R.
        let cp1251: &[u8] = b"\"\xc8\xe2\xe0\xed\" <1001>";
        let ctx = moscow();
        let r = CallRecord::from_event(
            &event(
                &[("CallerID", cp1251)],
                &[("Note", b"\xcf\xf0\xe8\xe2\xe5\xf2")],
            ),
            &ctx,
            0,
        );
        assert_eq!(r.caller_id, "\"Иван\" <1001>");
        assert_eq!(
            r.custom_fields,
            vec![("Note".to_owned(), "Привет".to_owned())]
        );
        let koi = PbxContext::new("k", "UTC", "koi8-r", &[DEFAULT_TRUNK_PATTERN]).unwrap();
        let r = CallRecord::from_event(&event(&[("CallerID", b"\xe9\xd7\xc1\xce")], &[]), &koi, 0);
        assert_eq!(r.caller_id, "Иван");
        // Valid UTF-8 is never re-decoded with the legacy charset.
        let r = CallRecord::from_event(&event(&[("CallerID", "Иван".as_bytes())], &[]), &ctx, 0);
        assert_eq!(r.caller_id, "Иван");
    }

    #[test]
    fn decode_text_table() {
        let cp1251 = encoding_rs::WINDOWS_1251;
        let mut cut = "Я".repeat(39).into_bytes(); // 78 bytes
        cut.push(0xD0); // first byte of another "Я": the 79-byte cut
        let mut ascii_cut = b"x".repeat(78);
        ascii_cut.push(0xD0);
        let cases: Vec<(&[u8], String)> = vec![
            (b"plain", "plain".to_owned()),
            (b"", String::new()),
            ("Ёлка".as_bytes(), "Ёлка".to_owned()),
            (&cut, format!("{}\u{FFFD}", "Я".repeat(39))),
            // Short ASCII + one high byte: a legacy-charset letter, not a cut.
            (b"abc\xd0", "abcР".to_owned()),
            // 79 bytes ending in a UTF-8 lead byte: the field limit, so a cut.
            (&ascii_cut, format!("{}\u{FFFD}", "x".repeat(78))),
            // Invalid in the middle: legacy charset for the whole value.
            (b"\xcf\xf0\xe8 \xe2\xe5\xf2", "При вет".to_owned()),
        ];
        for (input, want) in cases {
            assert_eq!(decode_text(input, cp1251), want, "input {input:?}");
        }
        // With UTF-8 as the "legacy" charset nothing fails either.
        assert_eq!(decode_text(b"a\xffb", encoding_rs::UTF_8), "a\u{FFFD}b");
    }

    #[test]
    fn queue_and_agents_from_capture() {
        let rs = records("cdr_queue.bin", &moscow());
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].queue.as_deref(), Some("support"));
        assert_eq!(rs[1].queue.as_deref(), Some("support"));
        assert_eq!(rs[0].agent.as_deref(), Some("201"));
        assert_eq!(rs[1].agent.as_deref(), Some("202"));
        assert_eq!(rs[0].disposition, Disposition::Answered);
        assert_eq!(rs[1].disposition, Disposition::NoAnswer);
        assert_eq!(rs[1].answer, None);
        assert_eq!(rs[1].to_json()["answerTime"], serde_json::Value::Null);
        assert_eq!(rs[0].unique_id, rs[1].unique_id);
        assert_ne!(rs[0].identity, rs[1].identity);
    }

    #[test]
    fn queue_table() {
        let cases = [
            ("Queue", "support,rt,,,30", Some("support")),
            ("queue", "sales|t", Some("sales")),
            ("QUEUE", "", None),
            ("Dial", "support,rt", None),
            ("Queue", " billing ", Some("billing")),
        ];
        for (app, data, want) in cases {
            assert_eq!(queue_of(app, data).as_deref(), want, "{app} {data}");
        }
    }

    #[test]
    fn transfer_legs_share_unique_id_but_not_identity() {
        let rs = records("cdr_transfer.bin", &moscow());
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].unique_id, rs[1].unique_id);
        assert_ne!(rs[0].destination_channel, rs[1].destination_channel);
        assert_ne!(rs[0].identity, rs[1].identity);
        // The second leg starts after the transfer, 3 s after the channel was created.
        assert_eq!(
            rs[1].start.utc.unwrap() - unique_id_epoch(&rs[1].unique_id).unwrap(),
            3
        );
    }

    #[test]
    fn identity_rules() {
        let ctx = moscow();
        let a = CallRecord::from_event(&event(&[], &[]), &ctx, 1);
        let b = CallRecord::from_event(&event(&[], &[]), &ctx, 2);
        assert_eq!(a.identity, b.identity, "received time is not identity");
        // Envelope headers and key case do not matter.
        let mut raw =
            b"Event: Cdr\r\nPrivilege: cdr,all\r\nTimestamp: 1.5\r\nSystemName: x\r\n".to_vec();
        raw.extend_from_slice(&event(&[], &[]).raw()[32..]);
        let c = CallRecord::from_event(&AmiMessage::parse(&raw).unwrap(), &ctx, 3);
        assert_eq!(a.identity, c.identity);
        let lower = String::from_utf8(event(&[], &[]).raw().to_vec())
            .unwrap()
            .replace("UniqueID", "uniqueid");
        let d = CallRecord::from_event(&AmiMessage::parse(lower.as_bytes()).unwrap(), &ctx, 3);
        assert_eq!(a.identity, d.identity);
        // Any content change, or another PBX, is another record.
        let e = CallRecord::from_event(&event(&[("Duration", b"61")], &[]), &ctx, 1);
        assert_ne!(a.identity, e.identity);
        let other = PbxContext::new(
            "branch",
            "Europe/Moscow",
            "windows-1251",
            &[DEFAULT_TRUNK_PATTERN],
        )
        .unwrap();
        assert_ne!(
            a.identity,
            CallRecord::from_event(&event(&[], &[]), &other, 1).identity
        );
        // Length prefixes: moving bytes between key and value changes the identity.
        let f = CallRecord::from_event(&event(&[], &[("Ab", b"c")]), &ctx, 1);
        let g = CallRecord::from_event(&event(&[], &[("A", b"bc")]), &ctx, 1);
        assert_ne!(f.identity, g.identity);
        // With Sequence mapped only (PBX, UniqueID, Sequence) count.
        let s1 = CallRecord::from_event(&event(&[], &[("Sequence", b"7")]), &ctx, 1);
        let s2 = CallRecord::from_event(
            &event(&[("Duration", b"99")], &[("sequence", b"7")]),
            &ctx,
            1,
        );
        let s3 = CallRecord::from_event(&event(&[], &[("Sequence", b"8")]), &ctx, 1);
        assert_eq!(s1.identity, s2.identity);
        assert_ne!(s1.identity, s3.identity);
        assert_eq!(s1.sequence, Some(7));
        // An empty Sequence falls back to full content.
        let s4 = CallRecord::from_event(&event(&[], &[("Sequence", b"")]), &ctx, 1);
        let s5 = CallRecord::from_event(
            &event(&[("Duration", b"99")], &[("Sequence", b"")]),
            &ctx,
            1,
        );
        assert_ne!(s4.identity, s5.identity);
        assert_eq!(s4.sequence, None);
    }

    #[test]
    fn linked_id_and_sequence_mappings_any_case() {
        let r = CallRecord::from_event(
            &event(
                &[],
                &[
                    ("linkedid", b"1795327200.1"),
                    ("SEQUENCE", b"42"),
                    ("Dept", b""),
                ],
            ),
            &moscow(),
            0,
        );
        assert_eq!(r.linked_id.as_deref(), Some("1795327200.1"));
        assert_eq!(r.sequence, Some(42));
        assert_eq!(r.custom_fields.len(), 3);
        assert_eq!(r.custom_fields[0].0, "linkedid");
        let j = r.to_json();
        assert_eq!(j["linkedId"], "1795327200.1");
        assert_eq!(j["sequence"], 42);
    }

    fn berlin() -> PbxContext {
        PbxContext::new(
            "de",
            "Europe/Berlin",
            "windows-1252",
            &[DEFAULT_TRUNK_PATTERN],
        )
        .unwrap()
    }

    #[test]
    fn dst_fold_and_gap() {
        let ctx = berlin();
        // 2026-10-25 02:30 happens twice in Berlin: 00:30Z (CEST) and 01:30Z (CET).
        let first = 1_792_888_200; // 2026-10-25T00:30:00Z
        let second = first + 3600;
        struct Case {
            what: &'static str,
            start: &'static [u8],
            answer: &'static [u8],
            end: &'static [u8],
            duration: &'static [u8],
            billable: &'static [u8],
            unique_id: &'static [u8],
            want_start: i64,
            want_end: i64,
        }
        let cases = [
            Case {
                what: "UniqueID epoch says the second 02:30",
                start: b"2026-10-25 02:30:00",
                answer: b"",
                end: b"2026-10-25 02:31:00",
                duration: b"60",
                billable: b"0",
                unique_id: b"1792891800.5",
                want_start: second,
                want_end: second + 60,
            },
            Case {
                what: "UniqueID epoch says the first 02:30",
                start: b"2026-10-25 02:30:00",
                answer: b"",
                end: b"2026-10-25 02:31:00",
                duration: b"60",
                billable: b"0",
                unique_id: b"pbx-a-1792888200.5",
                want_start: first,
                want_end: first + 60,
            },
            Case {
                what: "Duration agrees with an unambiguous end",
                start: b"2026-10-25 02:30:00",
                answer: b"",
                end: b"2026-10-25 03:10:00",
                duration: b"2400",
                billable: b"0",
                unique_id: b"",
                want_start: second,
                want_end: second + 2400,
            },
            Case {
                what: "long call from the first 02:30 to after the fold",
                start: b"2026-10-25 02:30:00",
                answer: b"",
                end: b"2026-10-25 03:10:00",
                duration: b"6000",
                billable: b"0",
                unique_id: b"",
                want_start: first,
                want_end: first + 6000,
            },
            Case {
                what: "nothing to go by: the earlier",
                start: b"2026-10-25 02:30:00",
                answer: b"",
                end: b"2026-10-25 02:31:00",
                duration: b"60",
                billable: b"0",
                unique_id: b"",
                want_start: first,
                want_end: first + 60,
            },
            Case {
                what: "end in the fold follows start + duration",
                start: b"2026-10-25 01:50:00",
                answer: b"2026-10-25 01:55:00",
                end: b"2026-10-25 02:10:00",
                duration: b"4800",
                billable: b"4500",
                unique_id: b"",
                want_start: first - 2400,
                want_end: first - 2400 + 4800,
            },
        ];
        for c in cases {
            let m = event(
                &[
                    ("StartTime", c.start),
                    ("AnswerTime", c.answer),
                    ("EndTime", c.end),
                    ("Duration", c.duration),
                    ("BillableSeconds", c.billable),
                    ("UniqueID", c.unique_id),
                ],
                &[],
            );
            let r = CallRecord::from_event(&m, &ctx, 0);
            assert_eq!(r.start.utc, Some(c.want_start), "{}: start", c.what);
            assert_eq!(r.end.utc, Some(c.want_end), "{}: end", c.what);
            assert_eq!(
                r.start.local(),
                std::str::from_utf8(c.start).unwrap(),
                "{}",
                c.what
            );
            if let Some(a) = &r.answer {
                assert_eq!(a.utc, Some(c.want_end - 4500), "{}: answer", c.what);
            }
        }
        let r = CallRecord::from_event(
            &event(
                &[
                    ("StartTime", b"2026-10-25 02:30:00"),
                    ("UniqueID", b"1792891800.5"),
                ],
                &[],
            ),
            &ctx,
            0,
        );
        assert_eq!(r.start.rfc3339(), "2026-10-25T02:30:00+01:00");

        // 2026-03-29 02:30 does not exist in Berlin: the offset before the gap (+01:00).
        let gap = CdrTime::parse("2026-03-29 02:30:00", &ctx.timezone);
        assert_eq!(gap.utc, Some(1_774_747_800)); // 2026-03-29T01:30:00Z
        assert_eq!(gap.rfc3339(), "2026-03-29T02:30:00+01:00");
        let summer = CdrTime::parse("2026-03-29 03:30:00", &ctx.timezone);
        assert_eq!(summer.rfc3339(), "2026-03-29T03:30:00+02:00");
        assert_eq!(
            summer.utc, gap.utc,
            "02:30 in the gap is the instant 03:30 CEST"
        );
    }

    #[test]
    fn unparseable_and_empty_times() {
        let ctx = moscow();
        let r = CallRecord::from_event(
            &event(
                &[
                    ("StartTime", b"yesterday"),
                    ("AnswerTime", b""),
                    ("EndTime", b"2026-13-01 00:00:00"),
                ],
                &[],
            ),
            &ctx,
            0,
        );
        assert_eq!(
            r.start,
            CdrTime {
                raw: "yesterday".into(),
                utc: None,
                offset_seconds: 0
            }
        );
        assert_eq!(r.answer, None);
        assert_eq!(r.end.utc, None);
        let j = r.to_json();
        assert_eq!(j["startTime"], "yesterday");
        assert_eq!(j["endTime"], "2026-13-01 00:00:00");
        assert_eq!(j["answerTime"], serde_json::Value::Null);
    }

    #[test]
    fn missing_fields_are_empty_never_fail() {
        let m = AmiMessage::parse(b"Event: Cdr\r\nDuration: x\r\n\r\n").unwrap();
        let r = CallRecord::from_event(&m, &moscow(), 0);
        assert_eq!(r.unique_id, "");
        assert_eq!(r.duration, 0);
        assert_eq!(r.disposition, Disposition::Other(String::new()));
        assert_eq!(r.direction, Direction::Unknown);
        assert_eq!(r.answer, None);
        assert_eq!(r.agent, None);
    }

    #[test]
    fn disposition_and_direction_strings() {
        let cases = [
            ("ANSWERED", Disposition::Answered),
            ("NO ANSWER", Disposition::NoAnswer),
            ("BUSY", Disposition::Busy),
            ("FAILED", Disposition::Failed),
            ("CONGESTION", Disposition::Congestion),
            ("CANCEL", Disposition::Cancel),
            ("UNKNOWN", Disposition::Unknown),
            ("RINGING?", Disposition::Other("RINGING?".into())),
        ];
        for (s, d) in cases {
            assert_eq!(s.parse::<Disposition>().unwrap(), d);
            assert_eq!(d.as_str(), s);
        }
        let r = CallRecord::from_event(
            &event(&[("Disposition", b"SOMETHING NEW")], &[]),
            &moscow(),
            0,
        );
        assert_eq!(r.disposition, Disposition::Other("SOMETHING NEW".into()));
        assert_eq!(r.to_json()["disposition"], "SOMETHING NEW");
        for d in Direction::ALL {
            assert_eq!(d.as_str().parse::<Direction>().unwrap(), d);
        }
        assert!("sideways"
            .parse::<Direction>()
            .unwrap_err()
            .to_string()
            .contains("\"sideways\""));
    }

    #[test]
    fn direction_table() {
        let ctx = moscow();
        let cases: [(&[u8], &[u8], Direction); 8] = [
            (
                b"PJSIP/trunk-0000001",
                b"PJSIP/1001-00000002",
                Direction::Inbound,
            ),
            (b"SIP/provider-00000001", b"", Direction::Inbound),
            (
                b"PJSIP/1001-00000001",
                b"PJSIP/trunk-00000002",
                Direction::Outbound,
            ),
            (b"DAHDI/gateway-1", b"IAX2/gateway-2", Direction::Unknown),
            (
                b"PJSIP/1001-00000001",
                b"PJSIP/1002-00000002",
                Direction::Internal,
            ),
            (b"Local/2005@internal-00000008;2", b"", Direction::Internal),
            (b"", b"PJSIP/1002-00000002", Direction::Unknown),
            // Patterns are case-sensitive like VueSIP's.
            (b"pjsip/trunk-1", b"PJSIP/1001-2", Direction::Internal),
        ];
        for (ch, dst, want) in cases {
            let r = CallRecord::from_event(
                &event(&[("Channel", ch), ("DestinationChannel", dst)], &[]),
                &ctx,
                0,
            );
            assert_eq!(
                r.direction,
                want,
                "{:?} → {:?}",
                String::from_utf8_lossy(ch),
                String::from_utf8_lossy(dst)
            );
        }
        // Custom patterns replace the default.
        let custom = PbxContext::new("x", "UTC", "utf-8", &["^PJSIP/(beeline|mts)-"]).unwrap();
        let r = CallRecord::from_event(
            &event(&[("Channel", b"PJSIP/mts-00000001")], &[]),
            &custom,
            0,
        );
        assert_eq!(r.direction, Direction::Inbound);
        // A trunk on the destination side is not an agent.
        let r = CallRecord::from_event(
            &event(&[("DestinationChannel", b"PJSIP/trunk-00000002")], &[]),
            &ctx,
            0,
        );
        assert_eq!(r.agent, None);
    }

    #[test]
    fn channel_extension_table() {
        let cases = [
            ("PJSIP/1001-0000002a", Some("1001")),
            ("SIP/1001-00000001", Some("1001")),
            ("Local/201@agents-00000012;1", Some("201")),
            ("PJSIP/1001", Some("1001")),
            ("PJSIP/office-phone-0000000f", Some("office-phone")),
            ("IAX2/200-1234", Some("200")),
            ("", None),
            ("PJSIP/", None),
        ];
        for (ch, want) in cases {
            assert_eq!(channel_extension(ch).as_deref(), want, "{ch}");
        }
    }

    #[test]
    fn caller_id_table() {
        let cases = [
            (r#""Alice Smith" <1001>"#, "Alice Smith", "1001"),
            (r#""Anonymous" <>"#, "Anonymous", ""),
            (r#""" <>"#, "", ""),
            ("<1001>", "", "1001"),
            ("Bob <1002>", "Bob", "1002"),
            ("Just a name", "Just a name", ""),
            (r#""unterminated"#, "unterminated", ""),
            ("", "", ""),
        ];
        for (clid, name, num) in cases {
            assert_eq!(
                split_caller_id(clid),
                (name.to_owned(), num.to_owned()),
                "{clid}"
            );
        }
    }

    #[test]
    fn context_errors_name_the_problem() {
        let e =
            PbxContext::new("p", "Europe/Moskow", "utf-8", &[DEFAULT_TRUNK_PATTERN]).unwrap_err();
        assert!(matches!(e, ContextError::TimeZone { .. }), "{e}");
        let e = PbxContext::new("p", "UTC", "klingon", &[DEFAULT_TRUNK_PATTERN]).unwrap_err();
        assert!(e.to_string().contains("\"klingon\""), "{e}");
        let e = PbxContext::new("p", "UTC", "utf-8", &["(unclosed"]).unwrap_err();
        assert!(e.to_string().contains("(unclosed"), "{e}");
    }

    #[test]
    fn json_view_names_and_round_trip_on_every_fixture() {
        let ctx = moscow();
        let mut all = Vec::new();
        for f in [
            "cdr_answered.bin",
            "cdr_no_answer.bin",
            "cdr_custom_fields.bin",
            "cdr_unicode_callerid.bin",
            "cdr_queue.bin",
            "cdr_transfer.bin",
            "mixed_session_cdr_only.bin",
            "cdr_answered_timestampevents_systemname.bin",
        ] {
            all.extend(records(f, &ctx));
        }
        assert_eq!(all.len(), 32);
        for r in &all {
            let j = r.to_json();
            let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, JSON_FIELDS);
            let back = CallRecord::from_json(&j).unwrap();
            assert_eq!(back.to_json(), j);
            // Same identity as from the wire: the fixtures are UTF-8 with canonical times.
            assert_eq!(back.identity, r.identity, "{}", r.unique_id);
            assert_eq!(back.start, r.start);
            assert_eq!(back.answer, r.answer);
        }
        let j = all[0].to_json();
        assert_eq!(j["startTime"], "2026-11-22T10:07:06+03:00");
        assert_eq!(j["disposition"], "ANSWERED");
        assert_eq!(j["duration"], 4);
        assert_eq!(j["direction"], "internal");
        assert_eq!(
            j["customFields"],
            serde_json::json!({"Department": "", "Campaign": ""})
        );
        assert_eq!(j["queue"], serde_json::Value::Null);
        assert!(matches!(
            CallRecord::from_json(&serde_json::json!([])),
            Err(RecordJsonError::NotAnObject)
        ));
        assert_eq!(
            CallRecord::from_json(&serde_json::json!({"duration": "4"}))
                .unwrap_err()
                .to_string(),
            "duration: expected an integer"
        );
    }

    #[test]
    fn replay_from_raw_gives_the_same_record() {
        let ctx = moscow();
        for r in records("cdr_custom_fields.bin", &ctx) {
            let again = CallRecord::from_raw(&r.raw, &ctx, r.received_utc).unwrap();
            assert_eq!(again, r);
        }
    }

    #[test]
    fn origin_is_in_the_json_view_and_reads_back() {
        let ctx = moscow();
        let mut r = records("cdr_answered.bin", &ctx).remove(0);
        assert_eq!(r.origin, Origin::Ami);
        assert_eq!(r.to_json()["origin"], "ami");
        for o in Origin::ALL {
            r.origin = o;
            let back = CallRecord::from_json(&r.to_json()).unwrap();
            assert_eq!(back.origin, o);
            assert_eq!(Origin::parse(o.as_str()), o);
        }
        let mut j = r.to_json();
        j["origin"] = serde_json::json!("fax");
        assert!(CallRecord::from_json(&j).is_err());
        j.as_object_mut().unwrap().remove("origin");
        assert_eq!(CallRecord::from_json(&j).unwrap().origin, Origin::Ami);
        assert_eq!(Origin::parse("something else"), Origin::Ami);
    }

    #[test]
    fn identities_sort_by_start_time() {
        assert_eq!(super::time::wall_clock_key(b"2000-01-01 00:00:00"), 0);
        assert_eq!(super::time::wall_clock_key(b"2000-01-02 00:00:01"), 86_401);
        assert_eq!(
            super::time::wall_clock_key(b"2026-11-22 10:07:37"),
            848_657_257
        );
        assert_eq!(super::time::wall_clock_key(b"garbage"), 0);
        let id = |start: &str, uid: &str| {
            let fields: Vec<(&[u8], &[u8])> = vec![
                (b"StartTime", start.as_bytes()),
                (b"UniqueID", uid.as_bytes()),
                (b"Sequence", b"1"),
            ];
            super::compute_identity("pbx", &fields)
        };
        let early = id("2026-11-22 10:00:00", "9.9");
        let late = id("2026-11-22 10:00:01", "1.1");
        assert!(early < late, "time-ordered regardless of the hash part");
        assert_eq!(early, id("2026-11-22 10:00:00", "9.9"), "deterministic");
        assert_ne!(early, id("2026-11-22 10:00:00", "9.8"));
    }
}
