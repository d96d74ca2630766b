//! The `excel` profile as a spreadsheet sees it (issue 13, item 6): the real captures exported
//! with each separator (`;` and `,`), opened by LibreOffice headless (`soffice --convert-to
//! fods`, one conversion per file) and read back cell by cell — dates are dates, durations are
//! times, seconds are numbers, `+7…` is text with no apostrophe, Cyrillic is intact, custom
//! fields have their own columns, a formula stays text, and the people behind the numbers
//! ("Source name", "Destination name": `[names]` > learned > empty) are text cells with their
//! Cyrillic intact.
//!
//! Needs `soffice` (Debian `libreoffice-calc-nogui`; `.ci/run` installs it). Without it the
//! test says SKIPPED locally and fails under CI (`CI=true`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use crate::capture_support;

use capture_support::office_records as decode;
use cdrbox::export::{ExportWriter, Format, Profile};
use cdrbox::names::Names;

/// One cell of the converted sheet: its type (`string`, `float`, `date`, `time`), its typed
/// value (`office:value`, `date-value`, `time-value`) and the text shown.
#[derive(Debug, Clone, Default, PartialEq)]
struct Cell {
    kind: String,
    value: String,
    shown: String,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The rows of the first table of a flat ODS file (repeated cells expanded; only what this
/// test needs of ODF: cells, their `text:p` and `text:s` spaces).
fn rows(fods: &str) -> Vec<Vec<Cell>> {
    let body = &fods[fods.find("<office:body>").expect("fods body")..];
    let mut out = Vec::new();
    for row in body.split("<table:table-row").skip(1) {
        let row = &row[..row.find("</table:table-row>").unwrap_or(row.len())];
        let mut cells = Vec::new();
        for piece in row.split("<table:table-cell").skip(1) {
            let end_tag = piece.find('>').unwrap_or(piece.len());
            let tag = &piece[..end_tag];
            let inner = if tag.ends_with('/') {
                ""
            } else {
                &piece[end_tag + 1..piece.find("</table:table-cell>").unwrap_or(piece.len())]
            };
            let mut shown = String::new();
            for p in inner.split("<text:p>").skip(1) {
                let p = &p[..p.find("</text:p>").unwrap_or(p.len())];
                let p = p.replace("<text:s/>", " ");
                shown.push_str(&unescape(&p));
            }
            let cell = Cell {
                kind: attr(tag, "office:value-type").unwrap_or_default(),
                value: attr(tag, "office:date-value")
                    .or_else(|| attr(tag, "office:time-value"))
                    .or_else(|| attr(tag, "office:value"))
                    .unwrap_or_default(),
                shown,
            };
            let n = attr(tag, "table:number-columns-repeated")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(1);
            // A sheet ends in one huge repeat of empty cells; it carries nothing.
            cells.extend(std::iter::repeat_n(cell, n.min(64)));
        }
        out.push(cells);
    }
    out
}

fn soffice() -> Option<String> {
    let found = ["soffice", "libreoffice"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        let msg = "excel test needs soffice (apt-get install libreoffice-calc-nogui)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found.map(String::from)
}

fn convert(soffice: &str, dir: &Path, csv: &Path, separator: u8) -> String {
    // Its own profile directory: a shared one is locked by any other running soffice.
    let profile = format!("-env:UserInstallation=file://{}", dir.join("lo").display());
    // CSV import: the file's separator (`;` 59 or `,` 44), quote `"` (34), UTF-8 (76), from
    // line 1 — what a user picks in the import dialog, or what Excel does with the BOM and the
    // separator its locale expects.
    let filter = format!("--infilter=CSV:{separator},34,76,1");
    let out = Command::new(soffice)
        .args([
            profile.as_str(),
            "--headless",
            "--norestore",
            filter.as_str(),
            "--convert-to",
            "fods",
            "--outdir",
        ])
        .arg(dir)
        .arg(csv)
        .output()
        .expect("run soffice");
    let fods = dir.join("calls.fods");
    assert!(
        fods.exists(),
        "soffice made no fods: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(fods).unwrap()
}

/// The default `;` file (locales with a decimal comma).
#[test]
fn a_spreadsheet_reads_dates_durations_numbers_and_names_as_people_expect() {
    spreadsheet_reads(b';');
}

/// The `,` file (`?separator=comma`, English locales): the same cells, cell by cell — names
/// and a formula holding `,` or `;` stay whole in their cells.
#[test]
fn the_comma_separated_file_reads_the_same() {
    spreadsheet_reads(b',');
}

fn spreadsheet_reads(separator: u8) {
    let Some(soffice) = soffice() else {
        return;
    };
    let mut records = Vec::new();
    for f in [
        "cdr_custom_fields",
        "cdr_unicode_callerid",
        "cdr_queue",
        "cdr_no_answer",
    ] {
        records.extend(decode(f));
    }
    // A caller ID a PBX user controls, written as a formula: must stay text.
    let mut evil = records[0].clone();
    evil.user_field = "=HYPERLINK(\"http://evil\";\"click\")".into();
    evil.source = "+7 (499) 123-45-67".into();
    records.push(evil);
    // Who is behind the numbers: a configured name, a learned one (hidden where [names] has the
    // number), one that looks like a number, and a learned CallerID name written as a formula.
    let names = Names::new(
        BTreeMap::from([
            (records[0].source.clone(), "Анна Петрова".to_string()),
            (
                records[1].destination.clone(),
                "Бухгалтерия, каб. 2".to_string(),
            ),
        ]),
        HashMap::from([
            (records[0].source.clone(), "hidden by [names]".to_string()),
            (records[2].source.clone(), "Ёжик «Ё» 007".to_string()),
            (records[3].destination.clone(), "0049".to_string()),
            ("+7 (499) 123-45-67".to_string(), "=1+1".to_string()),
        ]),
    );
    let mut w = ExportWriter::with_separator(
        Format::Csv(Profile::Excel),
        true,
        Some(separator),
        Vec::new(),
    )
    .unwrap()
    .with_names(names.clone());
    for r in &records {
        w.write(r).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("calls.csv");
    let bytes = w.finish().unwrap();
    let sep = char::from(separator);
    assert!(
        bytes.starts_with(format!("\u{feff}Start{sep}Answered{sep}End{sep}").as_bytes()),
        "the file is {sep}-separated: {}",
        String::from_utf8_lossy(&bytes[..80])
    );
    std::fs::write(&csv, bytes).unwrap();
    let sheet = rows(&convert(&soffice, dir.path(), &csv, separator));
    assert_eq!(sheet.len(), records.len() + 1, "{sheet:?}");
    let header: Vec<&str> = sheet[0].iter().map(|c| c.shown.as_str()).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name:?} in {header:?}"))
    };
    // Headers in words; the custom fields of cdr_custom_fields are columns of their own.
    for name in [
        "Start",
        "Duration",
        "Duration (s)",
        "Caller name",
        "Source name",
        "Destination name",
        "Department",
        "Campaign",
    ] {
        col(name);
    }
    for (row, r) in sheet[1..].iter().zip(&records) {
        let cell = |name: &str| row[col(name)].clone();
        // The PBX's wall clock, as a date-time (no zone shift, no text).
        let start = cell("Start");
        assert_eq!(start.kind, "date", "{start:?}");
        assert_eq!(start.value, r.start.local().replace(' ', "T"));
        let end = cell("End");
        assert_eq!(end.kind, "date", "{end:?}");
        // Durations: a time beside a number of seconds.
        let d = cell("Duration");
        assert_eq!(d.kind, "time", "{d:?}");
        let (m, s) = (r.duration / 60 % 60, r.duration % 60);
        assert_eq!(d.value, format!("PT00H{m:02}M{s:02}S"), "{d:?}");
        let secs = cell("Duration (s)");
        assert_eq!(
            (secs.kind.as_str(), secs.value.clone()),
            ("float", r.duration.to_string())
        );
        let talk = cell("Talk (s)");
        assert_eq!(talk.value, r.billable_seconds.to_string());
        // An unanswered call has no answer time (an empty cell, not "0").
        if r.answer.is_none() {
            assert_eq!(cell("Answered"), Cell::default());
        }
        // Names as the PBX sent them, Cyrillic included, without Asterisk's quoting.
        assert_eq!(cell("Caller name").shown, r.caller_name());
        // The number as typed: text, no apostrophe, nothing visible before it.
        let number = cell("Caller number");
        assert_eq!(number.shown.trim_start_matches('\u{2060}'), r.source);
        assert!(!number.shown.contains('\''), "{number:?}");
        if r.source.starts_with('+') {
            assert_eq!(number.kind, "string", "{number:?}");
        }
        // The people behind the numbers: text as resolved, Cyrillic intact; empty when unknown.
        for (column, number) in [
            ("Source name", &r.source),
            ("Destination name", &r.destination),
        ] {
            let name = cell(column);
            let want = names.name_of(number).unwrap_or("");
            if want.is_empty() {
                assert_eq!(name, Cell::default(), "{column} of {number:?}");
            } else {
                assert_eq!(name.kind, "string", "{column} of {number:?}: {name:?}");
                let shown = name.shown.trim_start_matches(['\u{2060}', '\'']);
                assert_eq!(shown, want, "{column} of {number:?}: {name:?}");
            }
        }
        // UniqueIDs are not rounded as decimals.
        assert_eq!(
            cell("Unique ID").shown.trim_start_matches('\u{2060}'),
            r.unique_id
        );
    }
    let names: Vec<String> = sheet[1..]
        .iter()
        .map(|row| row[col("Caller name")].shown.clone())
        .collect();
    assert!(
        names.contains(&"Петров, Иван \"Ваня\"".to_string()),
        "{names:?}"
    );
    let first = &sheet[1];
    assert_eq!(first[col("Source name")].shown, "Анна Петрова");
    let people: Vec<&str> = sheet[1..]
        .iter()
        .flat_map(|row| [&row[col("Source name")], &row[col("Destination name")]])
        .map(|c| c.shown.as_str())
        .collect();
    for want in ["Бухгалтерия, каб. 2", "Ёжик «Ё» 007"] {
        assert!(people.contains(&want), "{want:?} not in {people:?}");
    }
    assert!(!people.contains(&"hidden by [names]"), "{people:?}");
    // A name that looks like a number stays as typed (no leading zero dropped).
    assert!(people.contains(&"\u{2060}0049"), "{people:?}");
    assert_eq!(first[col("Department")].shown, "Sales");
    assert_eq!(first[col("Campaign")].shown, "Spring-2025");
    assert_eq!(
        first[col("User field")].shown,
        "ticket=42; note: перезвонить"
    );
    let plus = sheet
        .iter()
        .find(|row| row[col("Caller number")].shown.ends_with("+79161234567"))
        .expect("the +7 caller");
    assert_eq!(plus[col("Caller number")].kind, "string");
    // The formula stays text (shown with the guard's apostrophe), never a formula result.
    let evil = sheet.last().unwrap();
    let uf = &evil[col("User field")];
    assert_eq!(uf.kind, "string");
    assert_eq!(uf.shown, "'=HYPERLINK(\"http://evil\";\"click\")");
    assert_eq!(
        evil[col("Caller number")].shown,
        "\u{2060}+7 (499) 123-45-67"
    );
    // A CallerID name written as a formula is text, never its result.
    let formula = &evil[col("Source name")];
    assert_eq!(
        (formula.kind.as_str(), formula.shown.as_str()),
        ("string", "'=1+1")
    );
}
