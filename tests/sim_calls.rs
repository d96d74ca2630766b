//! The sim's pure call generator against the real Asterisk captures: every generated Cdr event
//! decodes with `ami::Decoder`, has cdr_manager's field order, consistent times, and each
//! scenario looks like its capture (same keys in order, dispositions, LastApplication and
//! UniqueID-sharing patterns). No sockets here.

use bytes::BytesMut;
use cdrbox::ami::{AmiMessage, Decoder, Frame};
use cdrbox::sim::{default_timezone, CallGenerator, GeneratorOptions, Scenario};

const NOW: i64 = 1_795_331_230;

/// cdr_manager's fixed field order, as the record module defines it.
use cdrbox::record::STANDARD_FIELDS as CDR_KEYS;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/ami/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Decodes a byte stream (banner optional) into its Cdr events, the way the logger will.
fn cdrs_in(stream: &[u8]) -> Vec<AmiMessage> {
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    while let Some(frame) = dec.decode(&mut buf) {
        match frame {
            Frame::Message(m) if m.is_event("Cdr") => {
                assert!(m.terminated());
                out.push(m)
            }
            Frame::Discarded { .. } => panic!("decoder discarded bytes"),
            _ => {}
        }
    }
    assert!(
        buf.is_empty(),
        "left over: {:?}",
        String::from_utf8_lossy(&buf)
    );
    out
}

fn decode_events(events: &[Vec<u8>]) -> Vec<AmiMessage> {
    let mut stream = b"Asterisk Call Manager/11.0.0\r\n".to_vec();
    for e in events {
        stream.extend_from_slice(e);
    }
    let msgs = cdrs_in(&stream);
    assert_eq!(msgs.len(), events.len());
    msgs
}

fn keys(m: &AmiMessage) -> Vec<String> {
    m.fields()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect()
}

fn get(m: &AmiMessage, k: &str) -> String {
    String::from_utf8(m.get(k).unwrap_or_else(|| panic!("no {k}")).to_vec()).unwrap()
}

fn epoch(local: &str) -> i64 {
    let dt: jiff::civil::DateTime = local.replace(' ', "T").parse().unwrap();
    dt.to_zoned(default_timezone())
        .unwrap()
        .timestamp()
        .as_second()
}

/// Options that reproduce the capture PBX's config (Department/Campaign mappings only).
fn capture_like() -> GeneratorOptions {
    GeneratorOptions {
        map_linkedid_sequence: false,
        map_department_campaign: true,
        ..GeneratorOptions::default()
    }
}

#[test]
fn every_event_has_cdr_manager_fields_in_order_and_consistent_times() {
    for opts in [GeneratorOptions::default(), capture_like()] {
        let mappings: Vec<&str> = match (opts.map_linkedid_sequence, opts.map_department_campaign) {
            (true, false) => vec!["LinkedID", "Sequence"],
            (false, true) => vec!["Department", "Campaign"],
            _ => unreachable!(),
        };
        let mut g = CallGenerator::new(opts);
        let mut now = NOW;
        for _ in 0..400 {
            now += 7;
            let events = g.next_call(now);
            for m in decode_events(&events) {
                let mut expected = vec!["Event", "Privilege"];
                expected.extend(CDR_KEYS);
                expected.extend(mappings.iter().copied());
                assert_eq!(keys(&m), expected);
                assert_eq!(get(&m, "Privilege"), "cdr,all");
                let start = epoch(&get(&m, "StartTime"));
                let end = epoch(&get(&m, "EndTime"));
                let duration: i64 = get(&m, "Duration").parse().unwrap();
                let billable: i64 = get(&m, "BillableSeconds").parse().unwrap();
                assert_eq!(duration, end - start);
                match get(&m, "AnswerTime").as_str() {
                    "" => assert_eq!(billable, 0),
                    answer => {
                        assert_eq!(billable, end - epoch(answer));
                        assert_eq!(get(&m, "Disposition"), "ANSWERED");
                    }
                }
                assert!(end <= now, "a CDR is dispatched when its call ended");
                // UniqueID epoch is the (UTC) creation time, before the CDR ended.
                let uid = get(&m, "UniqueID");
                let uid_epoch: i64 = uid.split('.').next().unwrap().parse().unwrap();
                assert!(uid_epoch <= end);
            }
        }
    }
}

#[test]
fn empty_values_keep_the_trailing_space() {
    let mut g = CallGenerator::new(GeneratorOptions::default());
    let events = g.call(Scenario::NoAnswer, NOW).events;
    let text = String::from_utf8(events[1].clone()).unwrap();
    assert!(text.contains("\r\nAnswerTime: \r\n"));
    assert!(text.contains("\r\nDestinationChannel: \r\n"));
    assert!(text.contains("\r\nAccountCode: \r\n"));
    assert!(text.ends_with("\r\n\r\n"));
    assert!(!text.replace("\r\n", "").contains('\n'));
}

/// The pattern of a multi-CDR call that the logger must cope with.
#[derive(Debug, PartialEq)]
struct Shape {
    keys: Vec<String>,
    dispositions: Vec<String>,
    last_apps: Vec<String>,
    answered: Vec<bool>,
    empty_dest_channel: Vec<bool>,
    same_uniqueid_as_first: Vec<bool>,
    same_channel_as_first: Vec<bool>,
}

fn shape(msgs: &[AmiMessage]) -> Shape {
    let first_uid = get(&msgs[0], "UniqueID");
    let first_chan = get(&msgs[0], "Channel");
    Shape {
        keys: keys(&msgs[0]),
        dispositions: msgs.iter().map(|m| get(m, "Disposition")).collect(),
        last_apps: msgs.iter().map(|m| get(m, "LastApplication")).collect(),
        answered: msgs
            .iter()
            .map(|m| !get(m, "AnswerTime").is_empty())
            .collect(),
        empty_dest_channel: msgs
            .iter()
            .map(|m| get(m, "DestinationChannel").is_empty())
            .collect(),
        same_uniqueid_as_first: msgs
            .iter()
            .map(|m| get(m, "UniqueID") == first_uid)
            .collect(),
        same_channel_as_first: msgs
            .iter()
            .map(|m| get(m, "Channel") == first_chan)
            .collect(),
    }
}

#[test]
fn each_scenario_looks_like_its_capture() {
    let cases = [
        (Scenario::Answered, "cdr_answered.bin"),
        (Scenario::NoAnswer, "cdr_no_answer.bin"),
        (Scenario::Busy, "cdr_busy.bin"),
        (Scenario::Congestion, "cdr_congestion.bin"),
        (Scenario::Failed, "cdr_failed.bin"),
        (Scenario::FailedHangup, "cdr_failed_hangup_cause3.bin"),
        (Scenario::Queue, "cdr_queue.bin"),
        (Scenario::BlindTransfer, "cdr_transfer.bin"),
        (Scenario::CustomFields, "cdr_custom_fields.bin"),
    ];
    let mut g = CallGenerator::new(capture_like());
    for (scenario, file) in cases {
        let captured = cdrs_in(&fixture(file));
        for i in 0..25 {
            let call = g.call(scenario, NOW + i);
            let generated = decode_events(&call.events);
            assert_eq!(shape(&generated), shape(&captured), "{scenario} vs {file}");
            for (g_msg, c_msg) in generated.iter().zip(&captured) {
                // Fields whose exact value the logger's derivations depend on.
                assert_eq!(get(g_msg, "AMAFlags"), get(c_msg, "AMAFlags"), "{scenario}");
                assert_eq!(
                    get(g_msg, "LastData").is_empty(),
                    get(c_msg, "LastData").is_empty(),
                    "{scenario}"
                );
            }
        }
    }
}

#[test]
fn queue_custom_fields_and_transfer_values() {
    let mut g = CallGenerator::new(capture_like());
    let q = decode_events(&g.call(Scenario::Queue, NOW).events);
    assert!(get(&q[0], "LastData").ends_with(",rt,,,30"));
    assert_eq!(get(&q[0], "LastData"), get(&q[1], "LastData"));
    assert_ne!(
        get(&q[0], "DestinationChannel"),
        get(&q[1], "DestinationChannel")
    );
    assert!(!get(&q[0], "Department").is_empty());
    // The missed member ended when the other answered (dispatched after, ended earlier).
    assert_eq!(get(&q[1], "EndTime"), get(&q[0], "AnswerTime"));

    let c = decode_events(&g.call(Scenario::CustomFields, NOW).events);
    let uf = get(&c[0], "UserField");
    assert!(uf.contains(": ") && uf.contains("перезвонить"), "{uf}");
    assert!(!get(&c[0], "AccountCode").is_empty());
    assert_eq!(get(&c[0], "Department"), "Sales");

    let t = decode_events(&g.call(Scenario::BlindTransfer, NOW).events);
    assert_ne!(
        get(&t[0], "DestinationChannel"),
        get(&t[1], "DestinationChannel")
    );
    assert_eq!(get(&t[0], "EndTime"), get(&t[1], "StartTime"));
    assert_eq!(get(&t[0], "Destination"), get(&t[1], "Destination"));
}

#[test]
fn caller_ids_match_the_captured_forms() {
    let unicode_capture: Vec<String> = cdrs_in(&fixture("cdr_unicode_callerid.bin"))
        .iter()
        .map(|m| get(m, "CallerID"))
        .collect();
    let mut g = CallGenerator::new(GeneratorOptions::default());
    let mut seen_unicode = std::collections::HashSet::new();
    for i in 0..60 {
        let m = &decode_events(&g.call(Scenario::UnicodeCallerId, NOW + i).events)[0];
        let clid = get(m, "CallerID");
        assert!(unicode_capture.contains(&clid), "{clid}");
        assert!(clid.ends_with(&format!("<{}>", get(m, "Source"))));
        seen_unicode.insert(clid);
    }
    assert_eq!(seen_unicode.len(), unicode_capture.len());

    // mixed_session_cdr_only.bin: `"Anonymous" <>` and `"" <>`, both with an empty Source.
    let mut seen_anon = std::collections::HashSet::new();
    for i in 0..60 {
        let m = &decode_events(&g.call(Scenario::Anonymous, NOW + i).events)[0];
        assert_eq!(get(m, "Source"), "");
        seen_anon.insert(get(m, "CallerID"));
    }
    let expected: std::collections::HashSet<String> =
        ["\"Anonymous\" <>".to_string(), "\"\" <>".to_string()].into();
    assert_eq!(seen_anon, expected);
    let mixed = String::from_utf8(fixture("mixed_session_cdr_only.bin")).unwrap();
    for clid in &expected {
        assert!(mixed.contains(&format!("CallerID: {clid}\r\n")));
    }
}

#[test]
fn timestampevents_and_systemname_like_the_capture() {
    let captured = cdrs_in(&fixture("cdr_answered_timestampevents_systemname.bin"));
    let mut g = CallGenerator::new(GeneratorOptions {
        timestamp_events: true,
        system_name: Some("pbx-msk-01".into()),
        ..capture_like()
    });
    let call = g.call(Scenario::Answered, NOW);
    let m = &decode_events(&call.events)[0];
    assert_eq!(keys(m), keys(&captured[0]));
    assert_eq!(get(m, "SystemName"), "pbx-msk-01");
    assert!(get(m, "UniqueID").starts_with("pbx-msk-01-"));
    let ts = get(m, "Timestamp");
    let (sec, usec) = ts.split_once('.').unwrap();
    assert_eq!(sec, NOW.to_string());
    assert_eq!(usec.len(), 6);
}

#[test]
fn same_seed_same_bytes_and_different_seed_differs() {
    let run = |seed: u64| {
        let mut g = CallGenerator::new(GeneratorOptions {
            seed,
            ..GeneratorOptions::default()
        });
        (0..200)
            .flat_map(|i| g.next_call(NOW + i * 3))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn mix_covers_every_direction_and_sequence_is_unique() {
    let mut g = CallGenerator::new(GeneratorOptions::default());
    let trunk = |s: &str| s.starts_with("PJSIP/trunk-");
    let phone = |s: &str| s.starts_with("PJSIP/1");
    let (mut inbound, mut outbound, mut internal, mut other) = (0, 0, 0, 0);
    let mut sequences = std::collections::HashSet::new();
    for i in 0..500 {
        for m in decode_events(&g.next_call(NOW + i)) {
            let (ch, dst) = (get(&m, "Channel"), get(&m, "DestinationChannel"));
            match (trunk(&ch), trunk(&dst), phone(&ch), phone(&dst)) {
                (true, _, _, true) => inbound += 1,
                (_, true, true, _) => outbound += 1,
                (_, _, true, true) => internal += 1,
                _ => other += 1,
            }
            assert!(sequences.insert(get(&m, "Sequence")), "duplicate Sequence");
            assert!(!get(&m, "LinkedID").is_empty());
        }
    }
    assert!(inbound > 0 && outbound > 0 && internal > 0 && other > 0);
}

#[test]
fn restart_resets_counters_like_asterisk() {
    let mut g = CallGenerator::new(GeneratorOptions::default());
    let first = decode_events(&g.call(Scenario::FailedHangup, NOW).events);
    g.call(Scenario::Answered, NOW);
    g.restart();
    let again = decode_events(&g.call(Scenario::FailedHangup, NOW + 100).events);
    assert_eq!(get(&first[0], "Sequence"), get(&again[0], "Sequence"));
    assert!(get(&first[0], "Channel").ends_with("-00000000"));
    assert!(get(&again[0], "Channel").ends_with("-00000000"));
    assert!(get(&again[0], "UniqueID").ends_with(".1"));
}
