//! The PRODUCT.md §2 JSON view of a record, as the web API and the placeholder exporter send it.
//!
//! TEMPORARY (lead: swap for the shared view in `crate::record` once it lands, keeping the names):
//! written here so the web layer does not depend on code being written in parallel. Pure code.

use serde_json::{json, Map, Value};

use crate::record::{CallRecord, CdrTime, Direction, Disposition};

/// `ANSWERED`, `NO ANSWER`, … exactly as Asterisk's `ast_cdr_disp2str` spells them.
pub fn disposition_str(d: &Disposition) -> &str {
    match d {
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

/// `inbound`, `outbound`, `internal`, `unknown`.
pub fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Internal => "internal",
        Direction::Unknown => "unknown",
    }
}

/// RFC 3339 with the PBX zone's offset (`2026-11-22T10:04:05+03:00`); the raw PBX string when
/// it did not parse (never lose what the PBX said).
pub fn time_rfc3339(t: &CdrTime) -> String {
    let Some(utc) = t.utc else {
        return t.raw.clone();
    };
    let offset = t.offset_seconds;
    let Ok(ts) = jiff::Timestamp::from_second(utc + i64::from(offset)) else {
        return t.raw.clone();
    };
    // `ts` now shows local wall-clock time in UTC fields; print it and append the offset.
    let local = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    format!("{local}{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
}

/// The record as the §2 JSON object, names in the documented order.
pub fn record_json(r: &CallRecord) -> Value {
    let custom: Map<String, Value> = r
        .custom_fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "uniqueId": r.unique_id,
        "accountCode": r.account_code,
        "source": r.source,
        "destination": r.destination,
        "destinationContext": r.destination_context,
        "callerId": r.caller_id,
        "channel": r.channel,
        "destinationChannel": r.destination_channel,
        "lastApplication": r.last_application,
        "lastData": r.last_data,
        "startTime": time_rfc3339(&r.start),
        "answerTime": r.answer.as_ref().map(time_rfc3339),
        "endTime": time_rfc3339(&r.end),
        "duration": r.duration,
        "billableSeconds": r.billable_seconds,
        "disposition": disposition_str(&r.disposition),
        "amaFlags": r.ama_flags,
        "userField": r.user_field,
        "pbx": r.pbx,
        "direction": direction_str(r.direction),
        "ringSeconds": r.ring_seconds,
        "queue": r.queue,
        "agent": r.agent,
        "linkedId": r.linked_id,
        "sequence": r.sequence,
        "customFields": custom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_keeps_the_pbx_offset() {
        let t = CdrTime {
            raw: "2026-11-22 10:07:37".into(),
            utc: Some(1_795_331_257),
            offset_seconds: 3 * 3600,
        };
        assert_eq!(time_rfc3339(&t), "2026-11-22T10:07:37+03:00");
        let t = CdrTime {
            raw: "2026-11-22 01:37:37".into(),
            utc: Some(1_795_331_257),
            offset_seconds: -(5 * 3600 + 1800),
        };
        assert_eq!(time_rfc3339(&t), "2026-11-22T01:37:37-05:30");
        let t = CdrTime {
            raw: "garbage".into(),
            utc: None,
            offset_seconds: 0,
        };
        assert_eq!(time_rfc3339(&t), "garbage");
    }
}
