//! How a `CallRecord` is laid out as a ring-file payload. Pure code.
//!
//! Version 2 (written now): `[2u8]`, then every field except `raw` in struct order in a compact
//! binary form (strings as a varint length + UTF-8 bytes, integers as zigzag varints, options
//! and enums as one tag byte), then the raw event bytes to the end. About 300 bytes plus the raw
//! event for an ordinary CDR, against ~850 + raw for version 1's JSON: the ring thread's work in
//! a burst is writing these bytes (`pwrite` + `fdatasync`; `cdrbox-bench proc`, BENCHMARKS.md
//! "RSS in a burst"), so fewer bytes are more records made durable per second and more records
//! per ring, and no JSON to render per record.
//!
//! Version 1 (`[1u8][json_len u32][json of every field except raw][raw bytes]`) is still read:
//! a ring written by an older cdrbox is replayed after an upgrade.

use crate::record::{CallRecord, CdrTime, Direction, Disposition, Origin};

const VERSION_JSON: u8 = 1;
const VERSION: u8 = 2;

/// Why a ring payload could not be turned back into a record.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("ring payload is {0} bytes, too short for its header")]
    Short(usize),
    #[error("ring payload has unknown format version {0}")]
    Version(u8),
    #[error("ring payload says its JSON part is {json} bytes but only {have} follow")]
    Length { json: usize, have: usize },
    #[error("ring payload JSON is not a call record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("ring payload ends inside its {0}")]
    Truncated(&'static str),
    #[error("ring payload has a bad {0}")]
    Bad(&'static str),
}

/// Encodes a record for the ring.
pub fn encode(record: &CallRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(384 + record.raw.len());
    out.push(VERSION);
    let CallRecord {
        pbx,
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
        start,
        answer,
        end,
        duration,
        billable_seconds,
        disposition,
        ama_flags,
        user_field,
        direction,
        ring_seconds,
        queue,
        agent,
        linked_id,
        sequence,
        custom_fields,
        raw,
        received_utc,
        identity,
        origin,
    } = record;
    // Destructured without `..`: a field added to CallRecord fails to compile here until the
    // format carries it.
    let w = &mut out;
    for s in [
        pbx,
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
    ] {
        put_str(w, s);
    }
    put_time(w, start);
    match answer {
        Some(t) => {
            w.push(1);
            put_time(w, t);
        }
        None => w.push(0),
    }
    put_time(w, end);
    put_int(w, *duration);
    put_int(w, *billable_seconds);
    w.push(disposition_tag(disposition));
    if let Disposition::Other(s) = disposition {
        put_str(w, s);
    }
    put_str(w, ama_flags);
    put_str(w, user_field);
    w.push(match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
        Direction::Internal => 2,
        Direction::Unknown => 3,
    });
    put_int(w, *ring_seconds);
    for o in [queue, agent, linked_id] {
        match o {
            Some(s) => {
                w.push(1);
                put_str(w, s);
            }
            None => w.push(0),
        }
    }
    match sequence {
        Some(n) => {
            w.push(1);
            put_int(w, *n);
        }
        None => w.push(0),
    }
    put_uint(w, custom_fields.len() as u64);
    for (k, v) in custom_fields {
        put_str(w, k);
        put_str(w, v);
    }
    put_int(w, *received_utc);
    w.extend_from_slice(identity);
    let origin_tag = Origin::ALL.iter().position(|o| o == origin).unwrap_or(0);
    w.push(origin_tag as u8);
    w.extend_from_slice(raw);
    out
}

/// Decodes a ring payload (either version).
pub fn decode(bytes: &[u8]) -> Result<CallRecord, PayloadError> {
    match bytes.first() {
        None => Err(PayloadError::Short(0)),
        Some(&VERSION) => decode_v2(&bytes[1..]),
        Some(&VERSION_JSON) => decode_json(bytes),
        Some(&v) => Err(PayloadError::Version(v)),
    }
}

fn decode_v2(bytes: &[u8]) -> Result<CallRecord, PayloadError> {
    let mut r = Reader(bytes);
    let mut s = || r.string("text field");
    let (pbx, unique_id, account_code, source, destination) = (s()?, s()?, s()?, s()?, s()?);
    let (destination_context, caller_id, channel) = (s()?, s()?, s()?);
    let (destination_channel, last_application, last_data) = (s()?, s()?, s()?);
    let start = r.time()?;
    let answer = match r.byte("answer tag")? {
        0 => None,
        1 => Some(r.time()?),
        _ => return Err(PayloadError::Bad("answer tag")),
    };
    let end = r.time()?;
    let duration = r.int("duration")?;
    let billable_seconds = r.int("billable seconds")?;
    let disposition = match r.byte("disposition")? {
        0 => Disposition::Answered,
        1 => Disposition::NoAnswer,
        2 => Disposition::Busy,
        3 => Disposition::Failed,
        4 => Disposition::Congestion,
        5 => Disposition::Cancel,
        6 => Disposition::Unknown,
        7 => Disposition::Other(r.string("disposition")?),
        _ => return Err(PayloadError::Bad("disposition")),
    };
    let ama_flags = r.string("AMA flags")?;
    let user_field = r.string("user field")?;
    let direction = match r.byte("direction")? {
        0 => Direction::Inbound,
        1 => Direction::Outbound,
        2 => Direction::Internal,
        3 => Direction::Unknown,
        _ => return Err(PayloadError::Bad("direction")),
    };
    let ring_seconds = r.int("ring seconds")?;
    let mut opt = |what| -> Result<Option<String>, PayloadError> {
        match r.byte(what)? {
            0 => Ok(None),
            1 => r.string(what).map(Some),
            _ => Err(PayloadError::Bad(what)),
        }
    };
    let (queue, agent, linked_id) = (opt("queue")?, opt("agent")?, opt("linked id")?);
    let sequence = match r.byte("sequence tag")? {
        0 => None,
        1 => Some(r.int("sequence")?),
        _ => return Err(PayloadError::Bad("sequence tag")),
    };
    let n = r.uint("custom field count")?;
    // Each pair takes at least two bytes: a count beyond that is damage, not a reason to
    // reserve gigabytes.
    if n > r.0.len() as u64 / 2 {
        return Err(PayloadError::Bad("custom field count"));
    }
    let mut custom_fields = Vec::with_capacity(n as usize);
    for _ in 0..n {
        custom_fields.push((r.string("custom field")?, r.string("custom field")?));
    }
    let received_utc = r.int("received time")?;
    let identity: [u8; 16] = r
        .take(16, "identity")?
        .try_into()
        .map_err(|_| PayloadError::Truncated("identity"))?;
    let origin = *Origin::ALL
        .get(r.byte("origin")? as usize)
        .ok_or(PayloadError::Bad("origin"))?;
    Ok(CallRecord {
        pbx,
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
        start,
        answer,
        end,
        duration,
        billable_seconds,
        disposition,
        ama_flags,
        user_field,
        direction,
        ring_seconds,
        queue,
        agent,
        linked_id,
        sequence,
        custom_fields,
        raw: r.0.to_vec(),
        received_utc,
        identity,
        origin,
    })
}

/// Version 1: the JSON of every field but `raw`, then the raw bytes.
fn decode_json(bytes: &[u8]) -> Result<CallRecord, PayloadError> {
    if bytes.len() < 5 {
        return Err(PayloadError::Short(bytes.len()));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[1..5]);
    let json = u32::from_le_bytes(len) as usize;
    let rest = &bytes[5..];
    if json > rest.len() {
        return Err(PayloadError::Length {
            json,
            have: rest.len(),
        });
    }
    let mut record: CallRecord = serde_json::from_slice(&rest[..json])?;
    record.raw = rest[json..].to_vec();
    Ok(record)
}

fn put_uint(w: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

fn put_int(w: &mut Vec<u8>, v: i64) {
    put_uint(w, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_uint(w, s.len() as u64);
    w.extend_from_slice(s.as_bytes());
}

fn put_time(w: &mut Vec<u8>, t: &CdrTime) {
    put_str(w, &t.raw);
    match t.utc {
        Some(u) => {
            w.push(1);
            put_int(w, u);
        }
        None => w.push(0),
    }
    put_int(w, i64::from(t.offset_seconds));
}

/// The unread rest of a version 2 payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PayloadError> {
        if n > self.0.len() {
            return Err(PayloadError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, PayloadError> {
        Ok(self.take(1, what)?[0])
    }

    fn uint(&mut self, what: &'static str) -> Result<u64, PayloadError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(PayloadError::Bad(what))
    }

    fn int(&mut self, what: &'static str) -> Result<i64, PayloadError> {
        let u = self.uint(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn string(&mut self, what: &'static str) -> Result<String, PayloadError> {
        let n = self.uint(what)?;
        let n = usize::try_from(n).map_err(|_| PayloadError::Bad(what))?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| PayloadError::Bad(what))
    }

    fn time(&mut self) -> Result<CdrTime, PayloadError> {
        let raw = self.string("time")?;
        let utc = match self.byte("time tag")? {
            0 => None,
            1 => Some(self.int("time")?),
            _ => return Err(PayloadError::Bad("time tag")),
        };
        let offset = self.int("time offset")?;
        let offset_seconds = i32::try_from(offset).map_err(|_| PayloadError::Bad("time offset"))?;
        Ok(CdrTime {
            raw,
            utc,
            offset_seconds,
        })
    }
}

/// A disposition's one-byte tag in the payload: the seven Asterisk spells, then `Other` (whose
/// text follows). The calls summary numbers its group bits the same way.
pub(crate) fn disposition_tag(d: &Disposition) -> u8 {
    match d {
        Disposition::Answered => 0,
        Disposition::NoAnswer => 1,
        Disposition::Busy => 2,
        Disposition::Failed => 3,
        Disposition::Congestion => 4,
        Disposition::Cancel => 5,
        Disposition::Unknown => 6,
        Disposition::Other(_) => OTHER_DISPOSITION,
    }
}

/// [`disposition_tag`] of `Disposition::Other`.
pub(crate) const OTHER_DISPOSITION: u8 = 7;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::testdata::sample_record;
    use proptest::prelude::*;

    /// What version 1 wrote (kept here to prove old rings still replay).
    fn encode_json(record: &CallRecord) -> Vec<u8> {
        let shallow = CallRecord {
            raw: Vec::new(),
            ..record.clone()
        };
        let json = serde_json::to_vec(&shallow).unwrap();
        let mut out = vec![VERSION_JSON];
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&record.raw);
        out
    }

    #[test]
    fn round_trip_keeps_every_field() {
        for n in 0..40 {
            let r = sample_record(n);
            let bytes = encode(&r);
            assert_eq!(decode(&bytes).unwrap(), r);
            assert!(bytes.len() < 4096 - 20, "typical record fits one block");
            let old = encode_json(&r);
            assert_eq!(
                decode(&old).unwrap(),
                r,
                "a version 1 payload still decodes"
            );
            // What the new format is for: the fields beside the raw event take less than half
            // of what their JSON took.
            let fields_v2 = bytes.len() - r.raw.len();
            let fields_v1 = old.len() - r.raw.len();
            assert!(fields_v2 * 2 < fields_v1, "{fields_v2} B vs {fields_v1} B");
        }
    }

    #[test]
    fn every_variant_and_option_round_trips() {
        let mut r = sample_record(3);
        for (i, d) in [
            Disposition::Answered,
            Disposition::NoAnswer,
            Disposition::Busy,
            Disposition::Failed,
            Disposition::Congestion,
            Disposition::Cancel,
            Disposition::Unknown,
            Disposition::Other("ANSWERED".into()),
            Disposition::Other(String::new()),
        ]
        .into_iter()
        .enumerate()
        {
            r.disposition = d;
            r.direction = [
                Direction::Inbound,
                Direction::Outbound,
                Direction::Internal,
                Direction::Unknown,
            ][i % 4];
            r.origin = Origin::ALL[i % 3];
            r.answer = (i % 2 == 0).then(|| r.start.clone());
            r.start.utc = (i % 3 != 0).then_some(-(i as i64) * 1_000_000_007);
            r.end.offset_seconds = -50_400 + i as i32 * 3600;
            r.queue = (i % 2 == 1).then(|| "sales".into());
            r.agent = (i % 3 == 1).then(String::new);
            r.linked_id = (i % 4 == 2).then(|| "Привет".into());
            r.sequence = (i % 2 == 0).then_some(i64::MIN + i as i64);
            r.duration = i64::MAX - i as i64;
            r.raw = vec![0, 255, b'\r', b'\n'];
            assert_eq!(decode(&encode(&r)).unwrap(), r, "case {i}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[1, 255, 255, 255, 255]).is_err());
        assert!(decode(&[3, 0, 0, 0, 0]).is_err());
        assert!(decode(&[1, 3, 0, 0, 0, b'{', b'}', b'x']).is_err());
        assert!(decode(&[2]).is_err());
        assert!(decode(&[2, 0xff, 0xff, 0xff]).is_err());
        let full = encode(&sample_record(1));
        let raw_len = sample_record(1).raw.len();
        for cut in 1..full.len() - raw_len {
            assert!(decode(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        /// Any cut or bit flip of a payload decodes to an error or some record: never a panic,
        /// never a huge allocation.
        #[test]
        fn damaged_payloads_never_panic(cut in 0usize..2000, flip in 0usize..2000, bit in 0u8..8) {
            let mut b = encode(&sample_record(9));
            let i = flip % b.len();
            b[i] ^= 1 << bit;
            b.truncate(cut.min(b.len()));
            let _ = decode(&b);
        }
    }
}
