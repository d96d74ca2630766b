//! The call record: one `Event: Cdr` turned into typed, derived fields (PRODUCT.md §2). Pure code.
//!
//! Source of truth is always the raw event bytes, kept in [`CallRecord::raw`]; every other field
//! can be recomputed from them and the PBX's settings ([`PbxContext`]). Must not do I/O.

use serde::{Deserialize, Serialize};

mod match_key;
pub use match_key::{ama_flags_name, disposition_name, match_key, occurrence_identity};

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

    /// The context for one `[[pbx]]` table.
    pub fn from_config(pbx: &crate::config::PbxConfig) -> Result<PbxContext, ContextError> {
        PbxContext::new(&pbx.name, &pbx.timezone, &pbx.charset, &pbx.trunk_patterns)
    }

    /// True when `channel` is on the external (trunk) side.
    pub fn is_trunk(&self, channel: &str) -> bool {
        self.trunk_patterns.iter().any(|re| re.is_match(channel))
    }
}

/// Decodes one raw value: valid UTF-8 as is, otherwise with the PBX's legacy charset. Never fails.
///
/// One exception: when the only invalid bytes are an incomplete UTF-8 sequence at the very end
/// and the value is clearly UTF-8 (it already holds multi-byte characters, or it has the 79-byte
/// length of a cut Asterisk `char[80]` field), the value was cut inside a character: the valid
/// prefix is kept and the cut character becomes U+FFFD. Decoding the whole value with the
/// legacy charset would turn every Cyrillic letter before the cut into mojibake. The raw bytes
/// are kept in the record either way.
pub fn decode_text(bytes: &[u8], charset: &'static encoding_rs::Encoding) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(e) => {
            let valid = e.valid_up_to();
            let prefix = &bytes[..valid];
            let cut_inside_char =
                e.error_len().is_none() && (!prefix.is_ascii() || bytes.len() >= CDR_FIELD_LIMIT);
            if cut_inside_char {
                let mut s = String::from_utf8_lossy(prefix).into_owned();
                s.push('\u{FFFD}');
                s
            } else {
                charset.decode_without_bom_handling(bytes).0.into_owned()
            }
        }
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

/// One candidate instant for a PBX wall-clock time: (UTC seconds, offset seconds).
type Candidate = (i64, i32);

/// Parses `YYYY-MM-DD HH:MM:SS` strictly (what `cdr_manager` and `cdr_csv` write).
pub fn parse_wall_clock(raw: &str) -> Option<jiff::civil::DateTime> {
    let b = raw.trim().as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = &b[r];
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    jiff::civil::DateTime::new(
        i16::try_from(num(0..4)?).ok()?,
        i8::try_from(num(5..7)?).ok()?,
        i8::try_from(num(8..10)?).ok()?,
        i8::try_from(num(11..13)?).ok()?,
        i8::try_from(num(14..16)?).ok()?,
        i8::try_from(num(17..19)?).ok()?,
        0,
    )
    .ok()
}

/// Every instant the wall-clock `raw` can mean in `tz`: one normally, two in an autumn fold
/// (earlier first), none when unparseable. In a spring gap the time never existed on the clock;
/// we use the offset in force before the gap (the "compatible" instant, later than the gap's
/// start), which keeps the wall-clock digits in the RFC 3339 form.
fn candidates(raw: &str, tz: &jiff::tz::TimeZone) -> Vec<Candidate> {
    use jiff::tz::AmbiguousOffset;
    let Some(dt) = parse_wall_clock(raw) else {
        return Vec::new();
    };
    let at = |off: jiff::tz::Offset| -> Option<Candidate> {
        off.to_timestamp(dt)
            .ok()
            .map(|ts| (ts.as_second(), off.seconds()))
    };
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => at(offset).into_iter().collect(),
        AmbiguousOffset::Gap { before, .. } => at(before).into_iter().collect(),
        AmbiguousOffset::Fold { before, after } => {
            let mut v: Vec<Candidate> = [at(before), at(after)].into_iter().flatten().collect();
            v.sort_unstable();
            v
        }
    }
}

/// The candidate closest to `target`, earlier on ties.
fn closest(c: &[Candidate], target: i64) -> Option<Candidate> {
    c.iter()
        .copied()
        .min_by_key(|(t, _)| ((t - target).abs(), *t))
}

fn cdr_time(raw: String, pick: Option<Candidate>) -> CdrTime {
    CdrTime {
        raw,
        utc: pick.map(|p| p.0),
        offset_seconds: pick.map_or(0, |p| p.1),
    }
}

/// The channel-creation epoch in a UniqueID `[systemname-]<epoch>.<n>`.
pub fn unique_id_epoch(unique_id: &str) -> Option<i64> {
    let tail = unique_id.rsplit('-').next()?;
    let (epoch, seq) = tail.split_once('.')?;
    if epoch.is_empty()
        || !epoch.bytes().all(|b| b.is_ascii_digit())
        || !seq.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    epoch.parse().ok()
}

/// Resolves start, answer and end together, so a time in an autumn fold gets the instant that
/// agrees with the rest of the record (see [`CallRecord::from_event`]).
fn resolve_times(
    start: &str,
    answer: &str,
    end: &str,
    duration: i64,
    billable: i64,
    unique_id: &str,
    tz: &jiff::tz::TimeZone,
) -> (Option<Candidate>, Option<Candidate>, Option<Candidate>) {
    let s = candidates(start, tz);
    let e = candidates(end, tz);
    let a = candidates(answer, tz);
    let start_pick = if s.len() <= 1 {
        s.first().copied()
    } else if let Some(epoch) = unique_id_epoch(unique_id) {
        // The CDR starts at or after the channel was created (a later CDR of the same channel,
        // e.g. after a transfer, starts later still): the first candidate not before the epoch
        // (1 s of rounding allowed), else the latest.
        s.iter()
            .copied()
            .find(|(t, _)| *t >= epoch - 1)
            .or_else(|| s.last().copied())
    } else if !e.is_empty() {
        // The pair whose difference is closest to Duration; earliest start on ties.
        let mut best: Option<(i64, Candidate)> = None;
        for sc in &s {
            for ec in &e {
                let err = ((ec.0 - sc.0) - duration).abs();
                if best.is_none_or(|(b, _)| err < b) {
                    best = Some((err, *sc));
                }
            }
        }
        best.map(|(_, c)| c)
    } else {
        s.first().copied()
    };
    let end_pick = match start_pick {
        Some(sp) => closest(&e, sp.0 + duration),
        None => e.first().copied(),
    };
    let answer_pick = match (end_pick, start_pick) {
        (Some(ep), _) => closest(&a, ep.0 - billable),
        (None, Some(sp)) => closest(&a, sp.0 + duration - billable),
        (None, None) => a.first().copied(),
    };
    (start_pick, answer_pick, end_pick)
}

impl CdrTime {
    /// Parses a PBX wall-clock string in `tz` (no fold resolution: the earlier instant).
    pub fn parse(raw: &str, tz: &jiff::tz::TimeZone) -> CdrTime {
        cdr_time(raw.to_owned(), candidates(raw, tz).first().copied())
    }

    /// RFC 3339 with the PBX zone's offset (`2026-11-22T10:04:05+03:00`); the raw string when
    /// it did not parse.
    pub fn rfc3339(&self) -> String {
        match self.utc.and_then(|u| self.zoned(u)) {
            Some(z) => z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            None => self.raw.clone(),
        }
    }

    /// PBX local wall-clock time `YYYY-MM-DD HH:MM:SS` (what cdr_csv writes): recomputed from
    /// the instant when known, else the raw string.
    pub fn local(&self) -> String {
        match self.utc.and_then(|u| self.zoned(u)) {
            Some(z) => z.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            None => self.raw.clone(),
        }
    }

    fn zoned(&self, utc: i64) -> Option<jiff::Zoned> {
        let ts = jiff::Timestamp::from_second(utc).ok()?;
        let off = jiff::tz::Offset::from_seconds(self.offset_seconds).ok()?;
        Some(ts.to_zoned(jiff::tz::TimeZone::fixed(off)))
    }

    /// Reads the JSON form back: an RFC 3339 string becomes (local wall clock, UTC, offset);
    /// anything else is kept as an unparsed raw string.
    pub fn from_rfc3339(s: &str) -> CdrTime {
        let parsed = (|| {
            let b = s.as_bytes();
            if b.len() < 20 || b[10] != b'T' {
                return None;
            }
            let wall = format!("{} {}", s.get(..10)?, s.get(11..19)?);
            let dt = parse_wall_clock(&wall)?;
            let off_secs = match s.get(19..)? {
                "Z" => 0,
                o if o.len() == 6 && o.as_bytes()[3] == b':' => {
                    let sign = match o.as_bytes()[0] {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    let hh: i32 = o.get(1..3)?.parse().ok()?;
                    let mm: i32 = o.get(4..6)?.parse().ok()?;
                    sign * (hh * 3600 + mm * 60)
                }
                _ => return None,
            };
            let off = jiff::tz::Offset::from_seconds(off_secs).ok()?;
            let ts = off.to_timestamp(dt).ok()?;
            Some(CdrTime {
                raw: wall,
                utc: Some(ts.as_second()),
                offset_seconds: off_secs,
            })
        })();
        match parsed {
            // Only canonical strings (the ones we write) are taken apart; anything else stays
            // an unparsed raw string, so the JSON view reproduces it exactly.
            Some(t) if t.rfc3339() == s => t,
            _ => cdr_time(s.to_owned(), None),
        }
    }
}

/// Splits `"name" <number>` as written by `ast_callerid_merge` (`\"` and `\\` unescaped inside
/// the quotes). A bare `name <number>` or `<number>` is accepted too; text with no `<` is a name.
pub fn split_caller_id(clid: &str) -> (String, String) {
    let s = clid.trim();
    let (name, rest) = if let Some(inner) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = inner.char_indices();
        let mut rest = "";
        let mut closed = false;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, n)) => name.push(n),
                    None => name.push('\\'),
                },
                '"' => {
                    rest = &inner[i + 1..];
                    closed = true;
                    break;
                }
                c => name.push(c),
            }
        }
        if !closed {
            rest = "";
        }
        (name, rest)
    } else {
        match s.find('<') {
            Some(i) => (s[..i].trim().to_owned(), &s[i..]),
            None => (s.to_owned(), ""),
        }
    };
    let rest = rest.trim();
    let number = rest
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or("")
        .to_owned();
    (name, number)
}

/// The extension in a channel name: `PJSIP/1001-0000002a` → `1001`,
/// `Local/201@agents-00000012;1` → `201`. `None` for an empty name or no extension.
pub fn channel_extension(channel: &str) -> Option<String> {
    let ch = channel.trim();
    let after_tech = ch.split_once('/').map_or(ch, |(_, r)| r);
    // Local channels carry `;1`/`;2` for their halves.
    let body = after_tech.split(';').next().unwrap_or("");
    let ext = if let Some((exten, _)) = body.split_once('@') {
        exten
    } else {
        match body.rsplit_once('-') {
            Some((peer, seq)) if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_hexdigit()) => {
                peer
            }
            _ => body,
        }
    };
    (!ext.is_empty()).then(|| ext.to_owned())
}

/// First argument of a `Queue()` application's data (`support,rt,,,30` → `support`); Asterisk
/// 1.4 and older separated arguments with `|`.
fn queue_of(last_application: &str, last_data: &str) -> Option<String> {
    if !last_application.trim().eq_ignore_ascii_case("queue") {
        return None;
    }
    let first = last_data.split([',', '|']).next().unwrap_or("").trim();
    (!first.is_empty()).then(|| first.to_owned())
}

fn parse_seconds(s: &str) -> i64 {
    s.trim().parse().unwrap_or(0)
}

/// Identity key (PRODUCT.md §2) over raw wire fields: SHA-256 of length-prefixed parts,
/// truncated to 16 bytes. Fields are compared by raw bytes, so changing the configured charset
/// never changes an identity.
pub fn compute_identity<'a>(pbx: &str, fields: &[(&'a [u8], &'a [u8])]) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    fn part(h: &mut Sha256, b: &[u8]) {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    let is = |k: &[u8], name: &str| k.eq_ignore_ascii_case(name.as_bytes());
    let get = |name: &str| fields.iter().find(|(k, _)| is(k, name)).map(|(_, v)| *v);
    let mut h = Sha256::new();
    match get("Sequence").filter(|v| !v.is_empty()) {
        Some(seq) => {
            part(&mut h, b"cdrbox-identity-v1:sequence");
            part(&mut h, pbx.as_bytes());
            part(&mut h, get("UniqueID").unwrap_or(b""));
            part(&mut h, seq);
        }
        None => {
            part(&mut h, b"cdrbox-identity-v1:fields");
            part(&mut h, pbx.as_bytes());
            for (k, v) in fields {
                if ENVELOPE_FIELDS.iter().any(|e| is(k, e)) {
                    continue;
                }
                part(&mut h, &k.to_ascii_lowercase());
                part(&mut h, v);
            }
        }
    }
    let digest = h.finalize();
    // The first 4 bytes are the StartTime wall clock (seconds since 2000-01-01, big-endian),
    // so identities sort by time: the journal's UNIQUE index then grows at its tail like the
    // table does, and a commit dirties a few index pages instead of one random page per row
    // (on a months-old journal that is ~4 KiB of flash per CDR). The wall clock comes from the
    // raw bytes, not the configured zone, so a duplicate always maps to the same identity;
    // 96 bits of SHA-256 remain for telling records apart.
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&wall_clock_key(get("StartTime").unwrap_or(b"")).to_be_bytes());
    out[4..].copy_from_slice(&digest[..12]);
    out
}

/// `YYYY-MM-DD HH:MM:SS` as seconds since 2000-01-01 00:00:00 of the same (zone-less) clock;
/// 0 when the text is not in that form.
fn wall_clock_key(t: &[u8]) -> u32 {
    fn num(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    }
    if t.len() != 19 {
        return 0;
    }
    let (Some(y), Some(m), Some(d), Some(hh), Some(mm), Some(ss)) = (
        num(&t[0..4]),
        num(&t[5..7]),
        num(&t[8..10]),
        num(&t[11..13]),
        num(&t[14..16]),
        num(&t[17..19]),
    ) else {
        return 0;
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return 0;
    }
    // Days from civil (Howard Hinnant's algorithm), relative to 2000-01-01.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 730_425;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u32::try_from(secs).unwrap_or(0)
}

impl CallRecord {
    /// Turns one `Event: Cdr` into a record. Never fails: a missing field is empty, an
    /// unparseable number is 0 and an unparseable time has `utc: None`; the raw bytes are kept.
    ///
    /// Times are PBX wall clock in `ctx.timezone`. In an autumn fold (the hour that happens
    /// twice) the start takes the candidate that agrees with the UniqueID's epoch, else the one
    /// that makes `end − start` closest to Duration, else the earlier; end and answer then take
    /// the candidate closest to `start + Duration` and `end − BillableSeconds`. A time in a
    /// spring gap uses the offset from before the gap.
    pub fn from_event(
        msg: &crate::ami::AmiMessage,
        ctx: &PbxContext,
        received_utc: i64,
    ) -> CallRecord {
        let fields: Vec<(&[u8], &[u8])> = msg.fields().collect();
        let mut rec = CallRecord::from_fields(&fields, ctx, received_utc);
        rec.raw = msg.raw().to_vec();
        rec
    }

    /// A record from `Event: Cdr`-named fields (raw bytes, names case-insensitive), whatever
    /// source they were read from: the AMI event, a Master.csv line, a database row. Same
    /// rules as [`from_event`](Self::from_event); `raw` is left empty for the caller to fill
    /// with the source's own bytes. A missing standard field is empty, which is how imports
    /// leave what their source does not know (the database has no AnswerTime/EndTime).
    pub fn from_fields(
        fields: &[(&[u8], &[u8])],
        ctx: &PbxContext,
        received_utc: i64,
    ) -> CallRecord {
        let mut std_vals: [Option<&[u8]>; 18] = [None; 18];
        let mut custom_fields = Vec::new();
        let mut linked_id = None;
        let mut sequence = None;
        for (k, v) in fields {
            if ENVELOPE_FIELDS
                .iter()
                .any(|e| k.eq_ignore_ascii_case(e.as_bytes()))
            {
                continue;
            }
            if let Some(i) = STANDARD_FIELDS
                .iter()
                .position(|s| k.eq_ignore_ascii_case(s.as_bytes()))
            {
                if std_vals[i].is_none() {
                    std_vals[i] = Some(v);
                    continue;
                }
            }
            let name = String::from_utf8_lossy(k).into_owned();
            let value = decode_text(v, ctx.charset);
            if k.eq_ignore_ascii_case(b"LinkedID") && linked_id.is_none() {
                linked_id = Some(value.clone());
            }
            if k.eq_ignore_ascii_case(b"Sequence") && sequence.is_none() {
                sequence = value.trim().parse::<i64>().ok();
            }
            custom_fields.push((name, value));
        }
        let text = |i: usize| decode_text(std_vals[i].unwrap_or(b""), ctx.charset);
        let mut rec = CallRecord::assemble(
            ctx,
            [
                text(0),
                text(1),
                text(2),
                text(3),
                text(4),
                text(5),
                text(6),
                text(7),
                text(8),
                text(9),
                text(10),
                text(11),
                text(12),
                text(13),
                text(14),
                text(15),
                text(16),
                text(17),
            ],
            custom_fields,
            linked_id,
            sequence,
        );
        rec.received_utc = received_utc;
        rec.identity = compute_identity(&ctx.name, fields);
        rec
    }

    /// Replays stored raw event bytes (the journal's source of truth) into a record.
    pub fn from_raw(raw: &[u8], ctx: &PbxContext, received_utc: i64) -> Option<CallRecord> {
        crate::ami::AmiMessage::parse(raw).map(|m| CallRecord::from_event(&m, ctx, received_utc))
    }

    /// Everything but `raw`, `received_utc` and `identity`, from decoded standard values.
    fn assemble(
        ctx: &PbxContext,
        v: [String; 18],
        custom_fields: Vec<(String, String)>,
        linked_id: Option<String>,
        sequence: Option<i64>,
    ) -> CallRecord {
        let [account_code, source, destination, destination_context, caller_id, channel, destination_channel, last_application, last_data, start_raw, answer_raw, end_raw, duration, billable, disposition, ama_flags, unique_id, user_field] =
            v;
        let duration = parse_seconds(&duration);
        let billable_seconds = parse_seconds(&billable);
        let (sp, ap, ep) = resolve_times(
            &start_raw,
            &answer_raw,
            &end_raw,
            duration,
            billable_seconds,
            &unique_id,
            &ctx.timezone,
        );
        let answer = if answer_raw.trim().is_empty() {
            None
        } else {
            Some(cdr_time(answer_raw, ap))
        };
        let direction = direction_of(ctx, &channel, &destination_channel);
        let agent = if ctx.is_trunk(&destination_channel) {
            None
        } else {
            channel_extension(&destination_channel)
        };
        CallRecord {
            pbx: ctx.name.clone(),
            queue: queue_of(&last_application, &last_data),
            agent,
            direction,
            ring_seconds: (duration - billable_seconds).max(0),
            disposition: Disposition::parse(&disposition),
            unique_id,
            account_code,
            source,
            destination,
            destination_context,
            caller_id,
            channel,
            destination_channel,
            last_application,
            last_data,
            start: cdr_time(start_raw, sp),
            answer,
            end: cdr_time(end_raw, ep),
            duration,
            billable_seconds,
            ama_flags,
            user_field,
            linked_id,
            sequence,
            custom_fields,
            raw: Vec::new(),
            received_utc: 0,
            identity: [0; 16],
        }
    }

    /// The caller ID name (`"Alice Smith" <1001>` → `Alice Smith`).
    pub fn caller_name(&self) -> String {
        split_caller_id(&self.caller_id).0
    }

    /// The identity as 32 lowercase hex digits.
    pub fn identity_hex(&self) -> String {
        self.identity.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The 18 standard fields as wire strings, in `cdr_manager` order (times as PBX wall clock).
    pub fn standard_values(&self) -> [String; 18] {
        [
            self.account_code.clone(),
            self.source.clone(),
            self.destination.clone(),
            self.destination_context.clone(),
            self.caller_id.clone(),
            self.channel.clone(),
            self.destination_channel.clone(),
            self.last_application.clone(),
            self.last_data.clone(),
            self.start.raw.clone(),
            self.answer
                .as_ref()
                .map(|a| a.raw.clone())
                .unwrap_or_default(),
            self.end.raw.clone(),
            self.duration.to_string(),
            self.billable_seconds.to_string(),
            self.disposition.as_str().to_owned(),
            self.ama_flags.clone(),
            self.unique_id.clone(),
            self.user_field.clone(),
        ]
    }

    /// The JSON view (PRODUCT.md §2, the API contract).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(JsonRecord(self)).unwrap_or(serde_json::Value::Null)
    }

    /// Reads the JSON view back. Raw bytes are not in the JSON: `raw` is empty, `received_utc`
    /// is 0, and `identity` is computed from the fields as if they had arrived as an event
    /// (equal to the wire identity for UTF-8 records with canonical times). Derived fields
    /// (`direction`, `queue`, …) are taken as given, not recomputed.
    pub fn from_json(v: &serde_json::Value) -> Result<CallRecord, RecordJsonError> {
        use serde_json::Value;
        let obj = v.as_object().ok_or(RecordJsonError::NotAnObject)?;
        let s = |name: &'static str| -> Result<String, RecordJsonError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(RecordJsonError::WrongType {
                    field: name,
                    expected: "a string",
                }),
            }
        };
        let opt = |name: &'static str| -> Result<Option<String>, RecordJsonError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(RecordJsonError::WrongType {
                    field: name,
                    expected: "a string or null",
                }),
            }
        };
        let int = |name: &'static str| -> Result<Option<i64>, RecordJsonError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(RecordJsonError::WrongType {
                    field: name,
                    expected: "an integer",
                }),
                Some(_) => Err(RecordJsonError::WrongType {
                    field: name,
                    expected: "an integer",
                }),
            }
        };
        let direction = match opt("direction")? {
            None => Direction::Unknown,
            Some(d) => d.parse().map_err(|_| RecordJsonError::WrongType {
                field: "direction",
                expected: "inbound, outbound, internal or unknown",
            })?,
        };
        let custom_fields = match obj.get("customFields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(RecordJsonError::WrongType {
                        field: "customFields",
                        expected: "an object of strings",
                    }),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => Err(RecordJsonError::WrongType {
                field: "customFields",
                expected: "an object of strings",
            })?,
        };
        let mut rec = CallRecord {
            pbx: s("pbx")?,
            unique_id: s("uniqueId")?,
            account_code: s("accountCode")?,
            source: s("source")?,
            destination: s("destination")?,
            destination_context: s("destinationContext")?,
            caller_id: s("callerId")?,
            channel: s("channel")?,
            destination_channel: s("destinationChannel")?,
            last_application: s("lastApplication")?,
            last_data: s("lastData")?,
            start: CdrTime::from_rfc3339(&s("startTime")?),
            answer: opt("answerTime")?.map(|a| CdrTime::from_rfc3339(&a)),
            end: CdrTime::from_rfc3339(&s("endTime")?),
            duration: int("duration")?.unwrap_or(0),
            billable_seconds: int("billableSeconds")?.unwrap_or(0),
            disposition: Disposition::parse(&s("disposition")?),
            ama_flags: s("amaFlags")?,
            user_field: s("userField")?,
            direction,
            ring_seconds: int("ringSeconds")?.unwrap_or(0),
            queue: opt("queue")?,
            agent: opt("agent")?,
            linked_id: opt("linkedId")?,
            sequence: int("sequence")?,
            custom_fields,
            raw: Vec::new(),
            received_utc: 0,
            identity: [0; 16],
        };
        let values = rec.standard_values();
        let mut fields: Vec<(&[u8], &[u8])> = STANDARD_FIELDS
            .iter()
            .zip(values.iter())
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        fields.extend(
            rec.custom_fields
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        );
        rec.identity = compute_identity(&rec.pbx, &fields);
        Ok(rec)
    }
}

fn direction_of(ctx: &PbxContext, channel: &str, destination_channel: &str) -> Direction {
    // An empty DestinationChannel means the call stayed on the PBX (IVR, voicemail, a Dial that
    // reached nobody), so it counts as the internal side; an empty Channel tells us nothing.
    let src = channel.trim();
    let dst = destination_channel.trim();
    if src.is_empty() {
        return Direction::Unknown;
    }
    match (ctx.is_trunk(src), !dst.is_empty() && ctx.is_trunk(dst)) {
        (true, false) => Direction::Inbound,
        (false, true) => Direction::Outbound,
        (false, false) => Direction::Internal,
        (true, true) => Direction::Unknown,
    }
}

/// Why a JSON value is not a record view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordJsonError {
    #[error("a call record must be a JSON object")]
    NotAnObject,
    #[error("{field}: expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
}

/// The JSON names of the record view, in order (PRODUCT.md §2); also the `standard` CSV columns.
pub const JSON_FIELDS: [&str; 26] = [
    "uniqueId",
    "accountCode",
    "source",
    "destination",
    "destinationContext",
    "callerId",
    "channel",
    "destinationChannel",
    "lastApplication",
    "lastData",
    "startTime",
    "answerTime",
    "endTime",
    "duration",
    "billableSeconds",
    "disposition",
    "amaFlags",
    "userField",
    "pbx",
    "direction",
    "ringSeconds",
    "queue",
    "agent",
    "linkedId",
    "sequence",
    "customFields",
];

/// Serializes a record as its JSON view, streaming (no intermediate `Value`). Custom fields
/// appear in wire order; a name sent twice appears twice (JSON readers keep the last).
pub struct JsonRecord<'a>(pub &'a CallRecord);

/// Custom fields as a JSON object, in order.
pub struct JsonCustomFields<'a>(pub &'a [(String, String)]);

impl Serialize for JsonCustomFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for JsonRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let mut m = s.serialize_map(Some(JSON_FIELDS.len()))?;
        m.serialize_entry("uniqueId", &r.unique_id)?;
        m.serialize_entry("accountCode", &r.account_code)?;
        m.serialize_entry("source", &r.source)?;
        m.serialize_entry("destination", &r.destination)?;
        m.serialize_entry("destinationContext", &r.destination_context)?;
        m.serialize_entry("callerId", &r.caller_id)?;
        m.serialize_entry("channel", &r.channel)?;
        m.serialize_entry("destinationChannel", &r.destination_channel)?;
        m.serialize_entry("lastApplication", &r.last_application)?;
        m.serialize_entry("lastData", &r.last_data)?;
        m.serialize_entry("startTime", &r.start.rfc3339())?;
        m.serialize_entry("answerTime", &r.answer.as_ref().map(CdrTime::rfc3339))?;
        m.serialize_entry("endTime", &r.end.rfc3339())?;
        m.serialize_entry("duration", &r.duration)?;
        m.serialize_entry("billableSeconds", &r.billable_seconds)?;
        m.serialize_entry("disposition", r.disposition.as_str())?;
        m.serialize_entry("amaFlags", &r.ama_flags)?;
        m.serialize_entry("userField", &r.user_field)?;
        m.serialize_entry("pbx", &r.pbx)?;
        m.serialize_entry("direction", r.direction.as_str())?;
        m.serialize_entry("ringSeconds", &r.ring_seconds)?;
        m.serialize_entry("queue", &r.queue)?;
        m.serialize_entry("agent", &r.agent)?;
        m.serialize_entry("linkedId", &r.linked_id)?;
        m.serialize_entry("sequence", &r.sequence)?;
        m.serialize_entry("customFields", &JsonCustomFields(&r.custom_fields))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ami::{AmiMessage, Decoder, Frame};
    use bytes::BytesMut;

    fn fixture_cdrs(name: &str) -> Vec<AmiMessage> {
        let path = format!("{}/tests/fixtures/ami/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut dec = Decoder::default();
        let mut out = Vec::new();
        while let Some(frame) = dec.decode(&mut buf) {
            if let Frame::Message(m) = frame {
                if m.is_event("Cdr") {
                    out.push(m);
                }
            }
        }
        out
    }

    fn moscow() -> PbxContext {
        PbxContext::new(
            "office",
            "Europe/Moscow",
            "windows-1251",
            &[DEFAULT_TRUNK_PATTERN],
        )
        .unwrap()
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
    fn identities_sort_by_start_time() {
        assert_eq!(super::wall_clock_key(b"2000-01-01 00:00:00"), 0);
        assert_eq!(super::wall_clock_key(b"2000-01-02 00:00:01"), 86_401);
        assert_eq!(super::wall_clock_key(b"2026-11-22 10:07:37"), 848_657_257);
        assert_eq!(super::wall_clock_key(b"garbage"), 0);
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
