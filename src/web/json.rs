//! The JSON view of a record (field names as VueSIP's `CdrRecord`), as the web API and the live
//! feed send it: the
//! shared view in `crate::record` (one definition for the API, the exports and the USB copy),
//! and its bounded *listing* form.
//!
//! Why a listing form: a PBX decides how big a record is (a hostile one sent 0.94 MB CDRs with
//! 60,000 custom fields, and `/api/calls?limit=1000` then took gigabytes — issue 11). Pages, the
//! live feed and anything else that shows many records use [`listing_json`], which keeps every
//! standard field (values cut to [`LISTING_VALUE_BYTES`]) and as many custom fields as fit in
//! [`LISTING_RECORD_BYTES`], and says what it left out in `truncated`. The whole record is only
//! in the downloads (`/export.*`), which stream one record at a time.

use serde_json::{json, Value};

use crate::record::CallRecord;

/// Budget of one record in a listing (field names and values, bytes).
pub const LISTING_RECORD_BYTES: usize = 16 * 1024;
/// Longest field value in a listing, in bytes (cut at a character boundary).
pub const LISTING_VALUE_BYTES: usize = 1024;

/// The record as the §2 JSON object, names in the documented order.
pub fn record_json(r: &CallRecord) -> Value {
    r.to_json()
}

/// `s` cut to at most `max` bytes at a character boundary; whether it was cut.
fn cut(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_string(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

/// What [`listing_record`] left out of a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cut {
    pub custom_fields_omitted: usize,
    pub values_cut: usize,
    /// Bytes of the record's fields as received (custom fields, `lastData`, `userField`).
    pub bytes: usize,
}

impl Cut {
    pub fn is_empty(&self) -> bool {
        self.custom_fields_omitted == 0 && self.values_cut == 0
    }
}

/// A copy of `r` bounded in bytes whatever the PBX sent: every standard field (values cut to
/// [`LISTING_VALUE_BYTES`]), as many custom fields as fit in [`LISTING_RECORD_BYTES`], no raw
/// bytes; and what was left out.
pub fn listing_record(r: &CallRecord) -> (CallRecord, Cut) {
    let mut values_cut = 0usize;
    let mut c = |s: &str| {
        let (v, was) = cut(s, LISTING_VALUE_BYTES);
        values_cut += usize::from(was);
        v
    };
    let mut small = CallRecord {
        pbx: c(&r.pbx),
        unique_id: c(&r.unique_id),
        account_code: c(&r.account_code),
        source: c(&r.source),
        destination: c(&r.destination),
        destination_context: c(&r.destination_context),
        caller_id: c(&r.caller_id),
        channel: c(&r.channel),
        destination_channel: c(&r.destination_channel),
        last_application: c(&r.last_application),
        last_data: c(&r.last_data),
        ama_flags: c(&r.ama_flags),
        user_field: c(&r.user_field),
        queue: r.queue.as_deref().map(&mut c),
        agent: r.agent.as_deref().map(&mut c),
        linked_id: r.linked_id.as_deref().map(&mut c),
        custom_fields: Vec::new(),
        raw: Vec::new(),
        start: r.start.clone(),
        answer: r.answer.clone(),
        end: r.end.clone(),
        duration: r.duration,
        billable_seconds: r.billable_seconds,
        disposition: r.disposition.clone(),
        direction: r.direction,
        ring_seconds: r.ring_seconds,
        sequence: r.sequence,
        received_utc: r.received_utc,
        identity: r.identity,
        origin: r.origin,
    };
    let mut used = 0usize;
    let mut omitted = 0usize;
    let mut total = r.last_data.len() + r.user_field.len();
    for (k, v) in &r.custom_fields {
        total += k.len() + v.len();
        if omitted > 0 || used + k.len().min(LISTING_VALUE_BYTES) > LISTING_RECORD_BYTES {
            omitted += 1;
            continue;
        }
        let (k2, a) = cut(k, LISTING_VALUE_BYTES);
        let (v2, b) = cut(v, LISTING_VALUE_BYTES);
        used += k2.len() + v2.len();
        values_cut += usize::from(a) + usize::from(b);
        small.custom_fields.push((k2, v2));
    }
    let cut = Cut {
        custom_fields_omitted: omitted,
        values_cut,
        bytes: total,
    };
    (small, cut)
}

/// The record for a listing (see [`listing_record`]). When anything was left out, `truncated`
/// is `{"customFieldsOmitted": n, "valuesCut": m, "bytes": size}` and `download` names the
/// export that holds the whole record (its start second and PBX).
pub fn listing_json(r: &CallRecord) -> Value {
    let (small, c) = listing_record(r);
    let mut j = small.to_json();
    if !c.is_empty() {
        j["truncated"] = json!({
            "customFieldsOmitted": c.custom_fields_omitted,
            "valuesCut": c.values_cut,
            "bytes": c.bytes,
        });
        if let Some(start) = r.start.utc {
            j["download"] = json!(format!(
                "/export.json?from=@{start}&to=@{}&pbx={}",
                start + 1,
                crate::web::query::encode_component(&small.pbx)
            ));
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11, finding 3: 60,000 custom fields in a listing cost a bounded number of bytes.
    #[test]
    fn a_huge_record_is_bounded_in_listings_and_says_so() {
        let mut r = CallRecord::from_json(&json!({
            "uniqueId": "1.1", "pbx": "main", "startTime": "2026-11-22T10:00:00+03:00",
            "endTime": "2026-11-22T10:00:04+03:00", "duration": 4, "billableSeconds": 3,
            "disposition": "ANSWERED", "answerTime": null
        }))
        .unwrap();
        r.custom_fields = (0..60_000)
            .map(|i| (format!("X{i:06}"), "v".repeat(10)))
            .collect();
        r.last_data = "д".repeat(100_000);
        let j = listing_json(&r);
        let text = j.to_string();
        assert!(
            text.len() < LISTING_RECORD_BYTES + 8 * 1024,
            "{}",
            text.len()
        );
        assert!(j["truncated"]["customFieldsOmitted"].as_u64().unwrap() > 59_000);
        assert_eq!(j["truncated"]["valuesCut"], 1);
        assert!(j["lastData"].as_str().unwrap().len() <= LISTING_VALUE_BYTES);
        assert!(j["download"]
            .as_str()
            .unwrap()
            .starts_with("/export.json?from=@"));
        // A normal record is untouched.
        r.custom_fields.truncate(3);
        r.last_data = "PJSIP/2001,20".into();
        assert_eq!(listing_json(&r), r.to_json());
    }
}
