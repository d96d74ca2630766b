//! Fuzz target: the export round-trip. A record — built from arbitrary field values, or derived
//! from arbitrary event bytes the way the logger derives it — must survive JSON (value and text),
//! NDJSON and standard CSV unchanged, and Excel CSV must guard every formula-like cell.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use cdrbox::export::{write_all, Format, Profile};
use cdrbox::record::{CallRecord, CdrTime, Direction, Disposition, PbxContext, JSON_FIELDS};
use libfuzzer_sys::fuzz_target;

fn time(u: &mut Unstructured) -> arbitrary::Result<CdrTime> {
    if bool::arbitrary(u)? {
        // A parsed time: 1970..2100 with a whole-minute offset up to ±14 h, raw as rendered.
        let utc = i64::from(u.int_in_range(0u32..=4_102_444_799)?);
        let min = u.int_in_range(-840i32..=840)?;
        let mut t = CdrTime {
            raw: String::new(),
            utc: Some(utc),
            offset_seconds: min * 60,
        };
        t.raw = t.local();
        Ok(t)
    } else {
        Ok(CdrTime {
            raw: String::arbitrary(u)?,
            utc: None,
            offset_seconds: 0,
        })
    }
}

fn record(u: &mut Unstructured) -> arbitrary::Result<CallRecord> {
    let mut s = Vec::new();
    for _ in 0..13 {
        s.push(String::arbitrary(u)?);
    }
    let mut custom_fields: Vec<(String, String)> = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let (k, v) = (String::arbitrary(u)?, String::arbitrary(u)?);
        // A JSON object cannot hold a name twice.
        if !custom_fields.iter().any(|(n, _)| *n == k) {
            custom_fields.push((k, v));
        }
    }
    Ok(CallRecord {
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
        start: time(u)?,
        answer: if bool::arbitrary(u)? {
            Some(time(u)?)
        } else {
            None
        },
        end: time(u)?,
        duration: i64::arbitrary(u)?,
        billable_seconds: i64::arbitrary(u)?,
        disposition: Disposition::parse(&String::arbitrary(u)?),
        ama_flags: s[11].clone(),
        user_field: s[12].clone(),
        direction: *u.choose(&Direction::ALL)?,
        ring_seconds: i64::arbitrary(u)?,
        queue: Option::<String>::arbitrary(u)?,
        agent: Option::<String>::arbitrary(u)?,
        linked_id: Option::<String>::arbitrary(u)?,
        sequence: Option::<i64>::arbitrary(u)?,
        custom_fields,
        raw: Vec::new(),
        received_utc: 0,
        identity: [0; 16],
        origin: Default::default(),
    })
}

fn last_wins(fields: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in fields {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

fn check(r: &CallRecord) {
    // JSON value and text.
    let j = r.to_json();
    let back = CallRecord::from_json(&j).expect("our own JSON reads back");
    assert_eq!(back.to_json(), j, "JSON round trip changed the record");
    // A header name sent twice (a `[mappings]` entry named like a standard field) is written
    // twice in the JSON text, and a JSON reader keeps the last value at the first position:
    // documented in `JsonRecord`; the journal itself stores the pairs losslessly. Found by
    // this target (regression seed `seeds/export_roundtrip/duplicate_custom_name`).
    assert_eq!(back.custom_fields, last_wins(&r.custom_fields));
    assert_eq!(back.sequence, r.sequence);
    let text = serde_json::to_string(&cdrbox::record::JsonRecord(r)).expect("serializes");
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("our JSON text parses");
    assert_eq!(parsed, j);

    let rs = std::slice::from_ref(r);
    // JSON array and NDJSON exports.
    let out = write_all(Format::Json, Vec::new(), rs).expect("json export");
    let arr: serde_json::Value = serde_json::from_slice(&out).expect("json export parses");
    assert_eq!(arr, serde_json::Value::Array(vec![j.clone()]));
    let out = write_all(Format::Ndjson, Vec::new(), rs).expect("ndjson export");
    let lines: Vec<&[u8]> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one NDJSON line per record");
    let line: serde_json::Value = serde_json::from_slice(lines[0]).expect("ndjson line parses");
    assert_eq!(line, j);

    // Standard CSV: header, then exactly the record's cells.
    let out = write_all(Format::Csv(Profile::Standard), Vec::new(), rs).expect("csv export");
    let mut rd = csv::ReaderBuilder::new().from_reader(&out[..]);
    let header: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, JSON_FIELDS.to_vec());
    let rows: Vec<csv::StringRecord> = rd.records().collect::<Result<_, _>>().expect("csv rows");
    assert_eq!(rows.len(), 1);
    let cells: Vec<&str> = rows[0].iter().collect();
    assert_eq!(cells, Profile::Standard.cells(r));

    // Excel CSV: BOM, `;`, no cell that a spreadsheet would run as a formula.
    let out = write_all(Format::Csv(Profile::Excel), Vec::new(), rs).expect("excel export");
    let body = out.strip_prefix("\u{FEFF}".as_bytes()).expect("BOM");
    let mut rd = csv::ReaderBuilder::new().delimiter(b';').from_reader(body);
    let rows: Vec<csv::StringRecord> = rd.records().collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows.len(), 1);
    let cells: Vec<&str> = rows[0].iter().collect();
    assert_eq!(cells, Profile::Excel.cells(r));
    for c in cells {
        assert!(
            !c.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "unguarded {c:?}"
        );
    }

    // The other profiles only need to write without failing.
    for p in [Profile::PbxLogger, Profile::Asterisk] {
        write_all(Format::Csv(p), Vec::new(), rs).expect("profile export");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        // Event bytes, derived the way the logger derives them.
        let charset = if mode & 2 == 0 {
            "windows-1252"
        } else {
            "utf-8"
        };
        let Ok(ctx) = PbxContext::new(
            "fuzz",
            "Europe/Moscow",
            charset,
            &[cdrbox::record::DEFAULT_TRUNK_PATTERN],
        ) else {
            return;
        };
        if let Some(r) = CallRecord::from_raw(rest, &ctx, 1_795_331_257) {
            check(&r);
        }
    } else if let Ok(r) = record(&mut Unstructured::new(rest)) {
        check(&r);
    }
});
