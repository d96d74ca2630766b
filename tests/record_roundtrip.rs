//! Property tests: any record round-trips through its JSON view and through standard/excel CSV.

use cdrbox::export::{write_all, Format, Profile};
use cdrbox::record::{CallRecord, CdrTime, Direction, Disposition, JSON_FIELDS};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9 ,;:\"'=+@\\-]{0,12}",
        any::<String>(),
        "[Иванпетров \"\\\\<>]{0,10}",
    ]
}

fn time() -> impl Strategy<Value = CdrTime> {
    prop_oneof![
        // Parsed: an instant between 1970 and 2100 with a whole-minute offset up to ±14 h.
        (0i64..4_102_444_800, -840i32..=840).prop_map(|(utc, min)| {
            let mut t = CdrTime {
                raw: String::new(),
                utc: Some(utc),
                offset_seconds: min * 60,
            };
            t.raw = t.local();
            t
        }),
        // Unparseable: kept raw.
        text().prop_map(|raw| CdrTime {
            raw,
            utc: None,
            offset_seconds: 0
        }),
    ]
}

fn record() -> impl Strategy<Value = CallRecord> {
    let strings = proptest::collection::vec(text(), 13);
    let times = (time(), proptest::option::of(time()), time());
    let numbers = (
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        proptest::option::of(any::<i64>()),
    );
    let disposition = prop_oneof![
        Just("ANSWERED".to_owned()),
        Just("NO ANSWER".to_owned()),
        Just("BUSY".to_owned()),
        text()
    ];
    let direction = prop::sample::select(Direction::ALL.to_vec());
    let options = proptest::collection::vec(proptest::option::of(text()), 3);
    let custom = proptest::collection::vec((text(), text()), 0..4);
    (
        strings,
        times,
        numbers,
        disposition,
        direction,
        options,
        custom,
    )
        .prop_map(
            |(
                s,
                (start, answer, end),
                (duration, billable, ring, sequence),
                disp,
                direction,
                o,
                custom,
            )| {
                let mut custom_fields: Vec<(String, String)> = Vec::new();
                for (k, v) in custom {
                    // JSON objects cannot hold a name twice.
                    if !custom_fields.iter().any(|(n, _)| *n == k) {
                        custom_fields.push((k, v));
                    }
                }
                CallRecord {
                    pbx: s[0].clone(),
                    unique_id: s[1].clone(),
                    account_code: s[2].clone(),
                    source: s[3].clone(),
                    destination: s[4].clone(),
                    destination_context: s[5].clone(),
                    caller_id: s[6].clone(),
                    channel: s[7].clone(),
                    destination_channel: s[8].clone(),
                    last_application: s[9].clone(),
                    last_data: s[10].clone(),
                    start,
                    answer,
                    end,
                    duration,
                    billable_seconds: billable,
                    disposition: Disposition::parse(&disp),
                    ama_flags: s[11].clone(),
                    user_field: s[12].clone(),
                    direction,
                    ring_seconds: ring,
                    queue: o[0].clone(),
                    agent: o[1].clone(),
                    linked_id: o[2].clone(),
                    sequence,
                    custom_fields,
                    raw: Vec::new(),
                    received_utc: 0,
                    identity: [0; 16],
                    origin: Default::default(),
                }
            },
        )
}

/// The header and the rows of a CSV export whose cells are separated by `delimiter`.
fn header_and_rows(csv: &[u8], delimiter: u8) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut rd = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(csv);
    let header = rd.headers().unwrap().iter().map(String::from).collect();
    let rows = rd.records().collect::<Result<_, _>>().unwrap();
    (header, rows)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_round_trip(r in record()) {
        let j = r.to_json();
        let back = CallRecord::from_json(&j).unwrap();
        prop_assert_eq!(back.to_json(), j.clone());
        // Field by field, the visible values survive.
        prop_assert_eq!(&back.caller_id, &r.caller_id);
        prop_assert_eq!(&back.user_field, &r.user_field);
        prop_assert_eq!(&back.disposition, &r.disposition);
        prop_assert_eq!(back.direction, r.direction);
        prop_assert_eq!(back.duration, r.duration);
        prop_assert_eq!(back.sequence, r.sequence);
        prop_assert_eq!(&back.queue, &r.queue);
        prop_assert_eq!(&back.custom_fields, &r.custom_fields);
        prop_assert_eq!(back.start.utc, r.start.utc);
        prop_assert_eq!(back.answer.as_ref().map(|a| a.utc), r.answer.as_ref().map(|a| a.utc));
        // The serialized text parses back to the same value.
        let text = serde_json::to_string(&cdrbox::record::JsonRecord(&r)).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(parsed, j);
    }

    #[test]
    fn standard_csv_round_trip(rs in proptest::collection::vec(record(), 0..4)) {
        let out = write_all(Format::Csv(Profile::Standard), Vec::new(), &rs).unwrap();
        let (header, rows) = header_and_rows(&out, b',');
        prop_assert_eq!(header, JSON_FIELDS.to_vec());
        prop_assert_eq!(rows.len(), rs.len());
        for (row, r) in rows.iter().zip(&rs) {
            // Issue 11: every profile carries the formula guard; its documented rule (drop one
            // leading ') gives the record's values back exactly.
            let guarded: Vec<&str> = row.iter().collect();
            prop_assert_eq!(guarded, Profile::Standard.cells(r));
            let cells: Vec<&str> = row.iter().map(cdrbox::export::formula_unguard).collect();
            prop_assert_eq!(cells.clone(), Profile::Standard.raw_cells(r));
            prop_assert_eq!(cells[5], r.caller_id.as_str());
            prop_assert_eq!(cells[17], r.user_field.as_str());
            prop_assert_eq!(cells[13].parse::<i64>().unwrap(), r.duration);
            let custom: serde_json::Value = serde_json::from_str(cells[25]).unwrap();
            prop_assert_eq!(custom.as_object().unwrap().len(), r.custom_fields.len());
        }
    }

    #[test]
    fn excel_csv_round_trip(rs in proptest::collection::vec(record(), 0..4)) {
        let out = write_all(Format::Csv(Profile::Excel), Vec::new(), &rs).unwrap();
        let body = out.strip_prefix("\u{FEFF}".as_bytes()).unwrap();
        // The first record's custom fields are the columns of the whole file (issue 13).
        let columns = cdrbox::export::excel::ExcelColumns::of(rs.first());
        let (header, rows) = header_and_rows(body, b';');
        prop_assert_eq!(header, columns.header());
        prop_assert_eq!(rows.len(), rs.len());
        for (row, r) in rows.iter().zip(&rs) {
            let cells: Vec<&str> = row.iter().collect();
            prop_assert_eq!(cells.clone(), columns.cells(r, true, &Default::default()));
            for c in cells {
                prop_assert!(!c.starts_with(['=', '+', '-', '@', '\t', '\r']), "unguarded {:?}", c);
            }
        }
    }
}
