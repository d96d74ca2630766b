//! Synthetic call records for tests and the write-cost benchmark, and the `Event: Cdr` messages
//! of the AMI captures the tests replay. Not used by the product.
//!
//! Fields vary with `n` so filters have something to select, and the raw bytes look like a real
//! `Event: Cdr` of about 600 bytes (the size that drives bytes-per-record on flash).

use crate::ami::{AmiMessage, Decoder, Frame};
use crate::record::{
    CallRecord, CdrTime, Direction, Disposition, PbxContext, DEFAULT_TRUNK_PATTERN,
};

/// Base start time of sample records: 2026-01-05 09:00:00 UTC.
pub const BASE_UTC: i64 = 1_767_603_600;

/// A deterministic, realistic record; different `n` give different identities.
pub fn sample_record(n: u64) -> CallRecord {
    let dispositions = [
        Disposition::Answered,
        Disposition::NoAnswer,
        Disposition::Busy,
        Disposition::Failed,
        Disposition::Congestion,
        Disposition::Other("WEIRD".into()),
    ];
    let directions = [
        Direction::Inbound,
        Direction::Outbound,
        Direction::Internal,
        Direction::Unknown,
    ];
    let start = BASE_UTC + (n as i64) * 37;
    let duration = (n % 300) as i64;
    let billable = duration * 2 / 3;
    let answered = n.is_multiple_of(6);
    let src = format!("{}", 1000 + n % 50);
    let dst = format!("7916{:07}", n % 9_999_991);
    let caller = if n.is_multiple_of(3) {
        format!("\"Иван Петров {n}\" <{src}>")
    } else {
        format!("\"Office {n}\" <{src}>")
    };
    let unique_id = format!("{}.{}", 1_767_000_000 + n / 3, n % 3);
    let tm = |t: i64| CdrTime {
        raw: format!("T{t}"),
        utc: Some(t),
        offset_seconds: 10_800,
    };
    let raw = format!(
        "Event: Cdr\r\nPrivilege: cdr,all\r\nAccountCode: acc{a}\r\nSource: {src}\r\n\
         Destination: {dst}\r\nDestinationContext: from-internal\r\nCallerID: {caller}\r\n\
         Channel: PJSIP/{src}-0000{n:04x}\r\nDestinationChannel: PJSIP/trunk-0000{n:04x}\r\n\
         LastApplication: Dial\r\nLastData: PJSIP/{dst}@trunk,300,Tt\r\nStartTime: T{start}\r\n\
         AnswerTime: \r\nEndTime: T{end}\r\nDuration: {duration}\r\nBillableSeconds: {billable}\r\n\
         Disposition: ANSWERED\r\nAMAFlags: DOCUMENTATION\r\nUniqueID: {unique_id}\r\n\
         UserField: \r\nSequence: {n}\r\nLinkedID: {unique_id}\r\n\r\n",
        a = n % 4,
        end = start + duration,
    );
    let mut identity = [0u8; 16];
    identity[..8].copy_from_slice(&n.to_be_bytes());
    identity[8..].copy_from_slice(b"cdrboxid");
    CallRecord {
        pbx: if n.is_multiple_of(5) {
            "branch"
        } else {
            "main"
        }
        .into(),
        unique_id: unique_id.clone(),
        account_code: format!("acc{}", n % 4),
        source: src.clone(),
        destination: dst,
        destination_context: "from-internal".into(),
        caller_id: caller,
        channel: format!("PJSIP/{src}-0000{n:04x}"),
        destination_channel: format!("PJSIP/trunk-0000{n:04x}"),
        last_application: if n.is_multiple_of(7) { "Queue" } else { "Dial" }.into(),
        last_data: "PJSIP/trunk,300,Tt".into(),
        start: tm(start),
        answer: answered.then(|| tm(start + duration - billable)),
        end: tm(start + duration),
        duration,
        billable_seconds: billable,
        disposition: dispositions[(n % 6) as usize].clone(),
        ama_flags: "DOCUMENTATION".into(),
        user_field: String::new(),
        direction: directions[(n % 4) as usize],
        ring_seconds: duration - billable,
        queue: n.is_multiple_of(7).then(|| format!("q{}", n % 2)),
        agent: n.is_multiple_of(2).then(|| format!("{}", 2000 + n % 10)),
        linked_id: Some(unique_id),
        sequence: Some(n as i64),
        custom_fields: vec![("X-Tag".into(), format!("t{}", n % 3))],
        raw: raw.into_bytes(),
        received_utc: start + duration + 1,
        identity,
        origin: Default::default(),
    }
}

/// The `Event: Cdr` messages of a capture (`tests/fixtures/ami/*.bin`), in order; every other
/// frame is skipped.
pub fn cdr_events(capture: &[u8]) -> Vec<AmiMessage> {
    let mut buf = bytes::BytesMut::from(capture);
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

/// The PBX the captures were recorded on (Moscow time, windows-1251 caller names, the default
/// trunk pattern), under the name `name`.
pub fn moscow_pbx(name: &str) -> PbxContext {
    PbxContext::new(
        name,
        "Europe/Moscow",
        "windows-1251",
        &[DEFAULT_TRUNK_PATTERN],
    )
    .expect("the captures' PBX settings are valid")
}
