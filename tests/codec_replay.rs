//! Replays every real Asterisk capture in `tests/fixtures/ami/` through the codec, whole and in
//! 1-, 2-, 7-byte, random and the recorded TCP chunkings, and checks the Cdr counts the
//! fixtures README states; plus property tests (no panic, bounded memory, encode→decode
//! identity, chunking-independence).

use crate::support;

use std::collections::BTreeMap;

use bytes::BytesMut;
use cdrbox::ami::{encode_action, Decoder, Frame, Limits};
use proptest::prelude::*;
use support::fake_ami::fixture;

/// Feeds `bytes` in the pieces given by `sizes` (cycled), then signals EOF.
fn decode_chunked(
    bytes: &[u8],
    limits: Limits,
    mut next_size: impl FnMut() -> usize,
) -> Vec<Frame> {
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let n = next_size().max(1).min(bytes.len() - pos);
        buf.extend_from_slice(&bytes[pos..pos + n]);
        pos += n;
        while let Some(f) = dec.decode(&mut buf) {
            out.push(f);
        }
    }
    while let Some(f) = dec.decode_eof(&mut buf) {
        out.push(f);
    }
    out
}

fn decode_whole(bytes: &[u8]) -> Vec<Frame> {
    decode_chunked(bytes, Limits::default(), || usize::MAX)
}

fn bin_fixtures() -> Vec<(String, Vec<u8>)> {
    static CACHE: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    CACHE.get_or_init(read_bin_fixtures).clone()
}

fn read_bin_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 50, "fixtures missing: {}", out.len());
    out
}

fn count_events(frames: &[Frame], name: Option<&str>) -> usize {
    frames
        .iter()
        .filter(|f| match f {
            Frame::Message(m) => match name {
                Some(n) => m.is_event(n),
                None => m.event().is_some(),
            },
            _ => false,
        })
        .count()
}

/// Cdr events per capture (README "Files" table; the `_all_events` and `_originator` listeners
/// saw the same calls).
fn expected_cdrs(name: &str) -> usize {
    let stem = name
        .trim_end_matches(".bin")
        .trim_end_matches("_all_events")
        .trim_end_matches("_originator");
    match stem {
        "cdr_answered" | "cdr_answered_timestampevents_systemname" => 1,
        "cdr_custom_fields" | "cdr_failed_hangup_cause3" | "cel_enabled_cdr_answered" => 1,
        "cdr_no_answer" | "cdr_busy" | "cdr_congestion" | "cdr_failed" => 2,
        "cdr_queue" | "cdr_transfer" | "cdr_simple_answered_both_legs" => 2,
        "cdr_unicode_callerid" => 3,
        "mixed_session" | "mixed_session_cdr_only" => 20,
        "action_before_login"
        | "banner_and_login_ok"
        | "errors_and_misc_actions"
        | "login_bad_secret"
        | "login_bad_user"
        | "login_md5_challenge"
        | "logoff"
        | "ping"
        | "reload_events"
        | "restart"
        | "restart_events_cdr_only"
        | "shutdown"
        | "shutdown_events_cdr_only" => 0,
        other => panic!("new fixture {other}: add its Cdr count here"),
    }
}

#[test]
fn every_fixture_decodes_the_same_in_any_chunking() {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for (name, bytes) in bin_fixtures() {
        let whole = decode_whole(&bytes);
        assert!(
            matches!(whole.first(), Some(Frame::Banner(b)) if b.starts_with(b"Asterisk Call Manager/")),
            "{name}: starts with the banner"
        );
        assert!(
            whole.iter().all(|f| !matches!(f, Frame::Discarded { .. })),
            "{name}: real Asterisk output is never discarded"
        );
        let raw_total: usize = whole
            .iter()
            .map(|f| match f {
                Frame::Banner(b) => b.len() + 2,
                Frame::Message(m) => m.raw().len(),
                Frame::Discarded { bytes, .. } => *bytes,
            })
            .sum();
        assert_eq!(raw_total, bytes.len(), "{name}: every byte accounted for");
        for size in [1usize, 2, 7] {
            let split = decode_chunked(&bytes, Limits::default(), || size);
            assert_eq!(split, whole, "{name} in {size}-byte chunks");
        }
        for _ in 0..3 {
            let split = decode_chunked(&bytes, Limits::default(), || rng.usize(1..300));
            assert_eq!(split, whole, "{name} in random chunks");
        }
        assert_eq!(
            count_events(&whole, Some("Cdr")),
            expected_cdrs(&name),
            "{name}: Cdr count"
        );
    }
}

#[test]
fn readme_facts_about_specific_captures() {
    let frames = decode_whole(&std::fs::read(fixture("cdr_queue.bin")).unwrap());
    let uids: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Message(m) if m.is_event("Cdr") => Some(m.get("UniqueID").unwrap().to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(uids.len(), 2);
    assert_eq!(uids[0], uids[1], "queue ringall: two CDRs, one UniqueID");

    let mixed = decode_whole(&std::fs::read(fixture("mixed_session.bin")).unwrap());
    assert_eq!(count_events(&mixed, None), 543);
    assert_eq!(count_events(&mixed, Some("Cdr")), 20);
    let only = decode_whole(&std::fs::read(fixture("mixed_session_cdr_only.bin")).unwrap());
    assert_eq!(count_events(&only, Some("Cdr")), 20);
    assert_eq!(count_events(&only, None), 20);

    let custom = decode_whole(&std::fs::read(fixture("cdr_custom_fields.bin")).unwrap());
    let cdr = custom
        .iter()
        .find_map(|f| match f {
            Frame::Message(m) if m.is_event("Cdr") => Some(m),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        cdr.get("UserField").unwrap(),
        "ticket=42; note: перезвонить".as_bytes(),
        "split at the first \": \""
    );
    assert_eq!(cdr.get("Department").unwrap(), b"Sales");
}

#[test]
fn mixed_session_with_the_recorded_tcp_segmentation() {
    let bytes = std::fs::read(fixture("mixed_session.bin")).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("meta/mixed_session.json")).unwrap())
            .unwrap();
    let chunks = meta["recv_chunks"].as_array().unwrap();
    let mut dec = Decoder::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut ends_mid_message = 0;
    let mut expected_offset = 0;
    for c in chunks {
        let off = c["offset"].as_u64().unwrap() as usize;
        let len = c["len"].as_u64().unwrap() as usize;
        assert_eq!(off, expected_offset, "chunks are contiguous");
        expected_offset += len;
        buf.extend_from_slice(&bytes[off..off + len]);
        while let Some(f) = dec.decode(&mut buf) {
            frames.push(f);
        }
        if !buf.is_empty() {
            ends_mid_message += 1;
        }
    }
    assert_eq!(expected_offset, bytes.len());
    assert_eq!(
        ends_mid_message, 7,
        "README: 7 recv() chunks end in the middle of a message"
    );
    assert_eq!(frames, decode_whole(&bytes));
    assert!(dec.decode_eof(&mut buf).is_none(), "nothing left over");
}

#[test]
fn listener_cdrs_match_cdr_csv_master() {
    // meta/cdr-csv-Master.csv has the same CDRs as the `Events: cdr` listeners, written by
    // cdr_csv: compare (uniqueid, disposition, billsec) as multisets.
    let mut from_ami: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (name, bytes) in bin_fixtures() {
        let listener = name.starts_with("cdr_")
            || name.starts_with("cel_")
            || name == "mixed_session_cdr_only.bin";
        if !listener || name.contains("_all_events") || name.contains("_originator") {
            continue;
        }
        for f in decode_whole(&bytes) {
            if let Frame::Message(m) = f {
                if m.is_event("Cdr") {
                    let g = |k: &str| m.get_str(k).unwrap().into_owned();
                    *from_ami
                        .entry((g("UniqueID"), g("Disposition"), g("BillableSeconds")))
                        .or_default() += 1;
                }
            }
        }
    }
    let mut from_csv: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(fixture("meta/cdr-csv-Master.csv"))
        .unwrap();
    for row in rdr.records() {
        let row = row.unwrap();
        *from_csv
            .entry((
                row[16].to_string(),
                row[14].to_string(),
                row[13].to_string(),
            ))
            .or_default() += 1;
    }
    assert_eq!(from_csv.values().sum::<usize>(), 42);
    assert_eq!(from_ami, from_csv);
}

/// Key names that are valid headers but do not start a new message.
fn key() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9-]{0,15}".prop_filter("Event/Response start messages", |k| {
        !k.eq_ignore_ascii_case("event") && !k.eq_ignore_ascii_case("response")
    })
}

/// Values: any text without CR/LF (AMI has no escaping), including `: ` and non-ASCII.
fn value() -> impl Strategy<Value = String> {
    "[^\r\n]{0,40}"
}

fn message() -> impl Strategy<Value = Vec<(String, String)>> {
    (value(), prop::collection::vec((key(), value()), 0..8)).prop_map(|(name, mut rest)| {
        rest.insert(0, ("Event".to_string(), name));
        rest
    })
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..64, 1..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_and_memory_stays_bounded(
        bytes in prop::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                2 => Just(b'\n'),
                2 => Just(b'\r'),
                1 => Just(b':'),
                1 => Just(b' '),
            ],
            0..4096,
        ),
        sizes in chunk_sizes(),
    ) {
        let limits = Limits { max_line: 64, max_message: 512 };
        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < bytes.len() {
            let n = sizes[i % sizes.len()].min(bytes.len() - pos);
            i += 1;
            buf.extend_from_slice(&bytes[pos..pos + n]);
            pos += n;
            while let Some(f) = dec.decode(&mut buf) {
                if let Frame::Message(m) = f {
                    prop_assert!(m.raw().len() <= limits.max_message + limits.max_line);
                }
            }
            prop_assert!(buf.len() <= limits.max_message + limits.max_line, "buffer {}", buf.len());
        }
        while dec.decode_eof(&mut buf).is_some() {}
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn encode_then_decode_is_identity(msgs in prop::collection::vec(message(), 1..5)) {
        let mut wire = b"Asterisk Call Manager/11.0.0\r\n".to_vec();
        for m in &msgs {
            let pairs: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            wire.extend(encode_action(&pairs));
        }
        let frames = decode_whole(&wire);
        prop_assert_eq!(frames.len(), msgs.len() + 1);
        for (f, m) in frames[1..].iter().zip(&msgs) {
            let Frame::Message(got) = f else { panic!("{f:?}") };
            let fields: Vec<(String, String)> = got
                .fields()
                .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
                .collect();
            prop_assert_eq!(&fields, m);
        }
    }

    #[test]
    fn chunking_never_changes_the_result(
        msgs in prop::collection::vec(message(), 1..6),
        noise in prop::collection::vec(any::<u8>(), 0..200),
        sizes in chunk_sizes(),
    ) {
        let mut wire = b"Asterisk Call Manager/11.0.0\r\n".to_vec();
        for (i, m) in msgs.iter().enumerate() {
            let pairs: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            wire.extend(encode_action(&pairs));
            if i == 0 {
                wire.extend(&noise); // junk between messages: resync must not depend on chunking
                wire.extend(b"\r\n\r\n");
            }
        }
        let limits = Limits { max_line: 128, max_message: 1024 };
        let whole = decode_chunked(&wire, limits, || usize::MAX);
        let mut i = 0;
        let split = decode_chunked(&wire, limits, || { i += 1; sizes[i % sizes.len()] });
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn arbitrary_bytes_decode_the_same_in_any_chunking(
        bytes in prop::collection::vec(
            prop_oneof![
                3 => any::<u8>(),
                2 => Just(b'\n'),
                1 => Just(b'\r'),
                1 => Just(b':'),
                1 => Just(b' '),
                1 => Just(b'E'),
            ],
            0..2048,
        ),
        sizes in chunk_sizes(),
    ) {
        let mut bytes = bytes;
        // Sprinkle message starts so resync has something to find.
        for (i, chunk) in bytes.chunks_mut(97).enumerate() {
            if i % 3 == 0 && chunk.len() > 12 {
                chunk[..12].copy_from_slice(b"\r\nEvent: X\r\n");
            }
        }
        let limits = Limits { max_line: 64, max_message: 256 };
        let whole = decode_chunked(&bytes, limits, || usize::MAX);
        let mut i = 0;
        let split = decode_chunked(&bytes, limits, || { i += 1; sizes[i % sizes.len()] });
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn fixtures_in_arbitrary_chunkings(idx in 0usize..64, sizes in chunk_sizes()) {
        let all = bin_fixtures();
        let (name, bytes) = &all[idx % all.len()];
        let mut i = 0;
        let split = decode_chunked(bytes, Limits::default(), || { i += 1; sizes[i % sizes.len()] * 13 });
        prop_assert_eq!(split, decode_whole(bytes), "{}", name);
    }
}
