//! The call record: one `Event: Cdr` turned into typed, derived fields (PRODUCT.md §2). Pure code.
//!
//! Source of truth is always the raw event bytes, kept in [`CallRecord::raw`]; every other field
//! can be recomputed from them and the PBX's settings ([`PbxContext`]). Must not do I/O.

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
    /// Identity key (PRODUCT.md §2): same PBX + (UniqueID, Sequence) if Sequence is mapped,
    /// else the same full field content. 16 bytes of SHA-256.
    pub identity: [u8; 16],
}
