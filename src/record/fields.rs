//! From `Event: Cdr` to [`CallRecord`]: which header is which field, text decoding (UTF-8 or the
//! PBX's legacy charset), caller ID, agent, queue and direction. Pure code, no I/O.

use super::identity::compute_identity;
use super::time::{cdr_time, resolve_times};
use super::{
    CallRecord, Direction, Disposition, PbxContext, CDR_FIELD_LIMIT, ENVELOPE_FIELDS,
    STANDARD_FIELDS,
};

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
pub(super) fn queue_of(last_application: &str, last_data: &str) -> Option<String> {
    if !last_application.trim().eq_ignore_ascii_case("queue") {
        return None;
    }
    let first = last_data.split([',', '|']).next().unwrap_or("").trim();
    (!first.is_empty()).then(|| first.to_owned())
}

fn parse_seconds(s: &str) -> i64 {
    s.trim().parse().unwrap_or(0)
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
            origin: super::Origin::Ami,
        }
    }

    /// The caller ID name (`"Alice Smith" <1001>` → `Alice Smith`).
    pub fn caller_name(&self) -> String {
        split_caller_id(&self.caller_id).0
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
}
