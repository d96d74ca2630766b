//! Master.csv import, pure part, against the golden file: `tests/fixtures/ami/meta/cdr-csv-Master.csv`
//! was written by a real Asterisk 22 (`cdr_csv`, loguniqueid + loguserfield, local time) from
//! the same calls as the AMI captures. Every line must read back as a record with the match key
//! of its AMI twin, export back byte for byte, and decode the same in any chunking; arbitrary
//! bytes never panic; anything written the way `cdr_csv.c` writes it reads back equal.

use crate::import_support;

use cdrbox::export::{ExportWriter, Format, Profile};
use cdrbox::import::master_csv::{Columns, CsvLayout, MasterCsvReader};
use cdrbox::import::{read_csv, CsvImport};
use cdrbox::record::{match_key, Origin};
use import_support::{ami_records, master_csv, match_keys, moscow};
use proptest::prelude::*;

#[test]
fn the_golden_file_reads_without_a_rejection() {
    let (records, report) = read_csv(&master_csv(), &moscow(), CsvLayout::default(), 7);
    assert_eq!(report.lines, 42);
    assert_eq!(report.rejected, 0, "{:?}", report.rejections);
    assert_eq!(records.len(), 42);
    let first = &records[0];
    assert_eq!(first.unique_id, "1795331226.1");
    assert_eq!(first.caller_id, "\"Alice Smith\" <1001>");
    assert_eq!(first.start.rfc3339(), "2026-11-22T10:07:06+03:00");
    assert_eq!(first.answer.as_ref().unwrap().raw, "2026-11-22 10:07:07");
    assert_eq!(first.duration, 4);
    assert_eq!(first.billable_seconds, 3);
    assert_eq!(first.received_utc, 7);
    assert!(
        first.custom_fields.is_empty(),
        "Master.csv has no [mappings]"
    );
    assert_eq!(first.origin, Origin::MasterCsv);
    assert_eq!(first.to_json()["origin"], "master-csv");
    assert!(first.raw.starts_with(b"\"\",\"1001\",\"2001\""));
    // Escaped quotes inside the escaped caller ID, and UTF-8 Cyrillic.
    let petrov = records.iter().find(|r| r.source == "+79161234567").unwrap();
    assert_eq!(
        petrov.caller_id,
        "\"Петров, Иван \\\"Ваня\\\"\" <+79161234567>"
    );
    assert_eq!(petrov.caller_name(), "Петров, Иван \"Ваня\"");
    let backslash = records.iter().find(|r| r.destination == "2018").unwrap();
    assert_eq!(backslash.caller_name(), "Back\\slash, \"Q\" Ltd");
    let unanswered = &records[1];
    assert_eq!(unanswered.answer, None);
    assert_eq!(unanswered.disposition.as_str(), "NO ANSWER");
    let custom = records
        .iter()
        .find(|r| r.account_code == "ACC-778")
        .unwrap();
    assert_eq!(custom.user_field, "ticket=42; note: перезвонить");
    assert_eq!(custom.ama_flags, "BILLING");
}

#[test]
fn each_line_has_the_match_key_of_its_ami_twin() {
    let ctx = moscow();
    let (csv, _) = read_csv(&master_csv(), &ctx, CsvLayout::default(), 7);
    let ami = ami_records(&ctx);
    assert_eq!(ami.len(), 42, "the captures hold the same 42 CDRs");
    let c = match_keys(&csv);
    let mut distinct = c.clone();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        42,
        "no two CDRs of a call share a match key"
    );
    assert_eq!(
        match_keys(&ami),
        c,
        "same match keys from AMI and from Master.csv"
    );
    // And the fields agree where both sources carry them.
    for r in &csv {
        let twin = ami.iter().find(|x| match_key(x) == match_key(r)).unwrap();
        assert_eq!(
            r.standard_values(),
            twin.standard_values(),
            "{}",
            r.unique_id
        );
        assert_eq!(r.start, twin.start);
        assert_eq!(r.end, twin.end);
        assert_eq!(r.direction, twin.direction);
        assert_eq!(r.queue, twin.queue);
        assert_eq!(r.agent, twin.agent);
    }
}

#[test]
fn asterisk_export_of_the_import_is_the_file_again() {
    let (records, _) = read_csv(&master_csv(), &moscow(), CsvLayout::default(), 7);
    let format = Format::Csv(Profile::Asterisk);
    // Byte for byte needs the formula guard off, by explicit choice (issue 11: it is on in
    // every CSV profile by default and would put a ' before "+79161234567").
    let mut w = ExportWriter::unguarded(format, Vec::new()).unwrap();
    for r in &records {
        w.write(r).unwrap();
    }
    let out = w.finish().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&master_csv())
    );
}

#[test]
fn chunking_does_not_change_what_is_read() {
    let ctx = moscow();
    let whole = read_csv(&master_csv(), &ctx, CsvLayout::default(), 7).0;
    for chunk in [1, 2, 7, 100, 4096] {
        let mut imp = CsvImport::new(ctx.clone(), CsvLayout::default(), 7);
        let mut got = Vec::new();
        for c in master_csv().chunks(chunk) {
            imp.feed(c);
            while let Some(r) = imp.next_record() {
                got.push(r.unwrap());
            }
        }
        imp.finish();
        while let Some(r) = imp.next_record() {
            got.push(r.unwrap());
        }
        assert_eq!(got, whole, "chunk {chunk}");
        assert_eq!(imp.lines_read(), 42);
    }
}

#[test]
fn usegmtime_files_match_local_ones() {
    let ctx = moscow();
    let local = read_csv(&master_csv(), &ctx, CsvLayout::default(), 7).0;
    // The same file as written with usegmtime=yes: every time 3 hours earlier.
    let text = String::from_utf8(master_csv()).unwrap();
    let re = regex_lite::Regex::new(r#""2026-11-22 (\d\d):(\d\d):(\d\d)""#).unwrap();
    let gmt = re.replace_all(&text, |c: &regex_lite::Captures| {
        let h: u32 = c[1].parse().unwrap();
        format!("\"2026-11-22 {:02}:{}:{}\"", h - 3, &c[2], &c[3])
    });
    let layout = CsvLayout {
        columns: None,
        gmt: true,
    };
    let (from_gmt, report) = read_csv(gmt.as_bytes(), &ctx, layout, 7);
    assert_eq!(report.rejected, 0);
    for (g, l) in from_gmt.iter().zip(&local) {
        assert_eq!(match_key(g), match_key(l));
        assert_eq!(g.start, l.start);
        assert_eq!(g.answer, l.answer);
    }
}

#[test]
fn legacy_charset_and_fewer_columns() {
    let ctx = moscow();
    // windows-1251 "Петров", loguniqueid=no, loguserfield=no: 16 columns.
    let mut line = b"\"\",\"1001\",\"2001\",\"internal\",\"\"\"".to_vec();
    line.extend_from_slice(&[0xcf, 0xe5, 0xf2, 0xf0, 0xee, 0xe2]);
    line.extend_from_slice(
        b"\"\" <1001>\",\"SIP/1001-1\",\"\",\"Dial\",\"\",\"2026-11-22 10:00:00\",,\
          \"2026-11-22 10:00:05\",5,0,\"NO ANSWER\",\"DOCUMENTATION\"\n",
    );
    let (recs, report) = read_csv(&line, &ctx, CsvLayout::default(), 7);
    assert_eq!(report.rejected, 0, "{:?}", report.rejections);
    assert_eq!(recs[0].caller_name(), "Петров");
    assert_eq!(recs[0].unique_id, "", "no uniqueid column: left empty");
    assert_eq!(recs[0].raw, line[..line.len() - 1]);
}

#[test]
fn malformed_lines_are_reported_by_number_and_the_rest_is_read() {
    let ctx = moscow();
    let good = master_csv();
    let lines: Vec<&[u8]> = good.split_inclusive(|b| *b == b'\n').collect();
    let mut input = Vec::new();
    input.extend_from_slice(lines[0]);
    input.extend_from_slice(b"garbage without commas\n");
    input.extend_from_slice(&lines[1][..40]); // cut mid-field, quote left open
    input.push(b'\n');
    input.extend_from_slice(lines[2]);
    input.extend_from_slice(b"\"a\",\"b\",\"c\"\n");
    input.extend_from_slice(lines[3]);
    let (recs, report) = read_csv(&input, &ctx, CsvLayout::default(), 7);
    assert_eq!(recs.len(), 3, "{:?}", report.rejections);
    assert_eq!(report.lines, 6);
    let got: Vec<(u64, String)> = report
        .rejections
        .iter()
        .map(|r| (r.line, r.reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                2,
                "1 columns; cdr_csv writes 16 to 21 (18 with loguniqueid and loguserfield)".into()
            ),
            (3, "a quoted field is not closed".into()),
            (
                5,
                "3 columns; cdr_csv writes 16 to 21 (18 with loguniqueid and loguserfield)".into()
            ),
        ]
    );
    assert_eq!(recs[1].unique_id, "1795331234.6");
}

/// Writes fields the way `cdr_csv.c`'s `append_string` / `append_date` / `append_int` do.
fn cdr_csv_line(fields: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (kind, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match kind {
            b'i' => out.extend_from_slice(v),
            b'd' if v.is_empty() => {}
            _ => {
                out.push(b'"');
                for &b in v {
                    if b == b'"' {
                        out.push(b'"');
                    }
                    out.push(b);
                }
                out.push(b'"');
            }
        }
    }
    out.push(b'\n');
    out
}

fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        "[a-zA-Z0-9 ,;:\"'\\\\<>]{0,20}".prop_map(String::into_bytes),
        "[Иван \"\\\\,]{0,10}".prop_map(String::into_bytes),
    ]
}

fn time_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        2000u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| {
            format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}").into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_never_matters(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), any::<u8>()], 0..600),
        chunk in 1usize..64,
    ) {
        let ctx = moscow();
        let once = read_csv(&bytes, &ctx, CsvLayout::default(), 1);
        let mut imp = CsvImport::new(ctx.clone(), CsvLayout::default(), 1);
        let mut recs = Vec::new();
        let mut rejected = Vec::new();
        for c in bytes.chunks(chunk) {
            imp.feed(c);
            while let Some(r) = imp.next_record() {
                match r { Ok(x) => recs.push(x), Err(e) => rejected.push(e) }
            }
        }
        imp.finish();
        while let Some(r) = imp.next_record() {
            match r { Ok(x) => recs.push(x), Err(e) => rejected.push(e) }
        }
        prop_assert_eq!(&recs, &once.0);
        prop_assert_eq!(rejected.len() as u64, once.1.rejected);
        prop_assert_eq!(imp.lines_read(), once.1.lines);
        let newlines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        let tail = u64::from(!bytes.is_empty() && bytes.last() != Some(&b'\n'));
        prop_assert_eq!(once.1.lines, newlines + tail, "every physical line is counted");
    }

    #[test]
    fn what_cdr_csv_writes_reads_back_equal(
        texts in proptest::collection::vec(text_bytes(), 12),
        start in time_bytes(),
        answer in proptest::option::of(time_bytes()),
        end in time_bytes(),
        duration in 0i64..100_000,
        billsec in 0i64..100_000,
        uid in proptest::option::of("[0-9]{10}\\.[0-9]{1,4}"),
        userfield in proptest::option::of(text_bytes()),
        sequence in proptest::option::of(0i64..1_000_000),
    ) {
        let t = |i: usize| (b's', texts[i].clone());
        let mut fields = vec![t(0), t(1), t(2), t(3), t(4), t(5), t(6), t(7), t(8),
            (b'd', start.clone()), (b'd', answer.clone().unwrap_or_default()), (b'd', end.clone()),
            (b'i', duration.to_string().into_bytes()), (b'i', billsec.to_string().into_bytes()),
            t(9), t(10)];
        let columns = Columns {
            unique_id: uid.is_some(),
            user_field: userfield.is_some(),
            new_columns: sequence.is_some(),
        };
        if let Some(u) = &uid { fields.push((b's', u.clone().into_bytes())); }
        if let Some(u) = &userfield { fields.push((b's', u.clone())); }
        if let Some(s) = sequence {
            fields.push(t(11));
            fields.push((b's', b"1700000000.5".to_vec()));
            fields.push((b'i', s.to_string().into_bytes()));
        }
        let line = cdr_csv_line(&fields);
        let mut reader = MasterCsvReader::new();
        reader.feed(&line);
        reader.finish();
        let row = reader.next_row().unwrap().unwrap();
        prop_assert!(reader.next_row().is_none());
        let got: Vec<Vec<u8>> = row.fields.iter().map(|f| f.value.clone()).collect();
        let want: Vec<Vec<u8>> = fields.iter().map(|(_, v)| v.clone()).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(&row.raw[..], &line[..line.len() - 1]);
        // With the layout given, it is a record whose values are the written ones.
        let layout = CsvLayout { columns: Some(columns), gmt: false };
        let named = layout.fields(&row, &jiff::tz::TimeZone::UTC).unwrap();
        prop_assert_eq!(named.len(), columns.count());
        prop_assert_eq!(&named[12].1, &duration.to_string().into_bytes());
    }
}
