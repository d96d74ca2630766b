//! The daily report end to end, on a hand-moved clock (never a real 07:00): a real journal
//! holding a day of calls, the alarm service mailing through a real SMTP server (Debian's
//! python3-aiosmtpd), and the real `cdrbox export` as the yardstick:
//! - at 07:00 in the PBX's zone exactly one report of yesterday arrives, its CSV attachment is
//!   byte for byte `cdrbox export --from DAY --to DAY` in the configured profile, and its numbers
//!   (records, calls, answered, missed) equal the ones counted from that export;
//! - a restart the same morning sends nothing more; the next morning brings the next day's;
//! - in the `excel` profile the attachment names the people behind the numbers ("Source name",
//!   "Destination name": `[names]` over names learned from CallerID), as `cdrbox export` does.

use crate::alarms_support;
use crate::cli_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alarms_support::{mail_parts, mails, Smtp};
use cdrbox::alarms::service::{settings_from_config, AlarmService, StatusFn, ViewFn};
use cdrbox::clock::ManualClock;
use cdrbox::config::Config;
use cdrbox::journal::{testdata::sample_record, Journal};
use cdrbox::status::StatusView;
use cli_support::wait;

/// 2026-11-30 00:00 in Moscow (21:00 UTC the day before).
const DAY_START: i64 = 1_795_986_000;
const HOUR: i64 = 3600;

/// The box of these tests; `profile` is the attachment's CSV profile, `more` any tables after
/// `[alarms]` (`[names]`).
fn config_text(dir: &Path, smtp_port: u16, profile: &str, more: &str) -> String {
    format!(
        r#"
[box]
name = "front-desk"

[[pbx]]
name = "office"
host = "127.0.0.1"
username = "cdrbox"
secret = "x"
timezone = "Europe/Moscow"

[[pbx]]
name = "branch"
host = "127.0.0.2"
username = "cdrbox"
secret = "x"
timezone = "Europe/Moscow"

[storage]
path = "{}"

[alarms]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
from = "cdrbox <box@example.com>"
to = ["boss@example.com"]
daily_report = "07:00"
daily_report_profile = "{profile}"
callback_minutes = 60
{more}"#,
        dir.join("data").display()
    )
}

/// A day of calls (3 CDRs per call, varied dispositions and directions), plus calls the evening
/// before and the morning after that the report must leave out.
fn fill_journal(cfg: &Config, hand: &ManualClock) {
    let (journal, _) = Journal::open(&cfg.storage, hand.clock()).unwrap();
    let mut records = Vec::new();
    for n in 0..330u64 {
        let mut r = sample_record(n);
        // n 0..300 inside the day (every 280 s from 00:00), 300..315 the evening before,
        // 315..330 the morning after.
        let start = match n {
            0..300 => DAY_START + n as i64 * 280,
            300..315 => DAY_START - 2 * HOUR + (n as i64 - 300) * 60,
            _ => DAY_START + 24 * HOUR + (n as i64 - 315) * 60,
        };
        let shift = start - r.start.utc.unwrap();
        r.start.utc = Some(start);
        r.end.utc = r.end.utc.map(|e| e + shift);
        r.answer = r.answer.map(|mut a| {
            a.utc = a.utc.map(|t| t + shift);
            a
        });
        records.push(r);
    }
    let acks = journal
        .record_batch(records, Duration::from_secs(60))
        .unwrap();
    assert_eq!(acks.len(), 330);
    journal.flush().unwrap();
    journal.shutdown();
}

/// Where each of `names` is among the CSV's columns.
fn columns<R: std::io::Read, const N: usize>(
    rd: &mut csv::Reader<R>,
    names: [&str; N],
) -> [usize; N] {
    let h = rd.headers().unwrap().clone();
    names.map(|name| {
        h.iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {h:?}"))
    })
}

/// Numbers counted from the export CSV (standard profile): records, and calls grouped as the
/// stats page groups them (PBX + linked id, else unique id), answered when any CDR is.
fn counted_from_export(csv: &[u8]) -> (usize, usize, usize) {
    let mut rd = csv::Reader::from_reader(csv);
    let [pbx, linked, unique, disp] =
        columns(&mut rd, ["pbx", "linkedId", "uniqueId", "disposition"]);
    let mut calls: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut rows = 0;
    for rec in rd.records() {
        let rec = rec.unwrap();
        rows += 1;
        let id = if rec[linked].is_empty() {
            &rec[unique]
        } else {
            &rec[linked]
        };
        let answered = calls
            .entry((rec[pbx].to_owned(), id.to_owned()))
            .or_default();
        *answered |= &rec[disp] == "ANSWERED";
    }
    let answered = calls.values().filter(|a| **a).count();
    (rows, calls.len(), answered)
}

/// The number after `label` in the report's text (`Calls        100`).
fn number(text: &str, label: &str) -> usize {
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(label)?;
            rest.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

fn spawn(cfg: &Config, hand: &ManualClock) -> AlarmService {
    let settings = settings_from_config(cfg).unwrap().expect("a mail channel");
    let view: ViewFn = Box::new(StatusView::default);
    let on_status: StatusFn = Arc::new(|_| {});
    AlarmService::spawn(settings, view, on_status, hand.clock()).unwrap()
}

#[test]
fn the_daily_report_equals_the_export_of_its_day_and_comes_once_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("mail"), 0, None);
    let config = dir.path().join("cdrbox.toml");
    std::fs::write(&config, config_text(dir.path(), smtp.port, "standard", "")).unwrap();
    let cfg = Config::load(&config).unwrap();
    let hand = ManualClock::new(DAY_START + 10 * HOUR);
    fill_journal(&cfg, &hand);

    // 06:59:50 on the next day: not yet.
    hand.set_unix(DAY_START + 24 * HOUR + 7 * HOUR - 10);
    let service = spawn(&cfg, &hand);
    std::thread::sleep(Duration::from_secs(3));
    assert!(mails(&smtp.dir).is_empty(), "no report before 07:00");
    hand.set_unix(DAY_START + 31 * HOUR);
    wait("the daily report", Duration::from_secs(60), || {
        !mails(&smtp.dir).is_empty()
    });
    let all = mails(&smtp.dir);
    assert_eq!(all.len(), 1);
    let mail = mail_parts(&all[0]);
    assert!(
        mail.subject
            .starts_with("[front-desk] Daily report 2026-11-30: "),
        "{}",
        mail.subject
    );

    let export = cli_support::box_process::export(
        &config,
        &[
            "--format",
            "csv",
            "--profile",
            "standard",
            "--from",
            "2026-11-30",
            "--to",
            "2026-11-30",
        ],
    );
    assert_eq!(mail.attachments.len(), 1, "{}", mail.text);
    let (name, csv) = &mail.attachments[0];
    assert_eq!(name, "front-desk-calls-2026-11-30.csv");
    assert!(
        csv == &export,
        "the attachment is the export of the day ({} vs {} bytes)",
        csv.len(),
        export.len()
    );
    let (rows, calls, answered) = counted_from_export(&export);
    assert_eq!(rows, 300, "the day's records only");
    assert_eq!(number(&mail.text, "Call records"), rows, "{}", mail.text);
    assert_eq!(number(&mail.text, "Calls"), calls, "{}", mail.text);
    assert_eq!(number(&mail.text, "Answered"), answered, "{}", mail.text);
    assert_eq!(
        number(&mail.text, "Missed  "),
        calls - answered,
        "{}",
        mail.text
    );
    assert!(
        mail.subject
            .contains(&format!("{calls} calls, {answered} answered")),
        "{}",
        mail.subject
    );

    // A restart the same morning: the report was made; nothing more.
    service.stop(Duration::from_secs(5));
    hand.set_unix(DAY_START + 31 * HOUR + 300);
    let service = spawn(&cfg, &hand);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        mails(&smtp.dir).len(),
        1,
        "one report per day across restarts"
    );

    // The next morning: the next day's report (no calls kept that day but the 15 of its morning).
    hand.set_unix(DAY_START + 55 * HOUR);
    wait("the second report", Duration::from_secs(60), || {
        mails(&smtp.dir).len() == 2
    });
    let second = mail_parts(&mails(&smtp.dir)[1]);
    assert!(
        second
            .subject
            .starts_with("[front-desk] Daily report 2026-12-01: "),
        "{}",
        second.subject
    );
    assert_eq!(number(&second.text, "Call records"), 15, "{}", second.text);
    std::thread::sleep(Duration::from_secs(2));
    service.stop(Duration::from_secs(5));
    assert_eq!(mails(&smtp.dir).len(), 2);
    smtp.stop();
}

/// The excel attachment names the people behind the numbers as `cdrbox export --profile excel`
/// does (issue 13 item 5): a `[names]` entry wins over the name learned from the extension's
/// CallerID, for a caller and for a dialled number, and the attachment is that export byte for
/// byte.
#[test]
fn the_excel_daily_report_names_the_people_behind_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("mail"), 0, None);
    let config = dir.path().join("cdrbox.toml");
    // 1000 calls out as "Иван Петров 0" / "Office 50"…: [names] must win; 1001 keeps its
    // learned CallerID name; 79160000005 is a dialled number only [names] can name.
    let names = "\n[names]\n\"1000\" = \"Приёмная\"\n\"79160000005\" = \"Склад, ворота 2\"\n";
    std::fs::write(&config, config_text(dir.path(), smtp.port, "excel", names)).unwrap();
    let cfg = Config::load(&config).unwrap();
    let hand = ManualClock::new(DAY_START + 10 * HOUR);
    fill_journal(&cfg, &hand);
    hand.set_unix(DAY_START + 31 * HOUR);
    let service = spawn(&cfg, &hand);
    wait("the daily report", Duration::from_secs(60), || {
        !mails(&smtp.dir).is_empty()
    });
    service.stop(Duration::from_secs(5));
    let mail = mail_parts(&mails(&smtp.dir)[0]);
    assert_eq!(mail.attachments.len(), 1, "{}", mail.text);
    let (name, csv) = &mail.attachments[0];
    assert_eq!(name, "front-desk-calls-2026-11-30.csv");
    let export = cli_support::box_process::export(
        &config,
        &[
            "--profile",
            "excel",
            "--from",
            "2026-11-30",
            "--to",
            "2026-11-30",
        ],
    );
    assert!(
        csv == &export,
        "the attachment is the excel export of the day ({} vs {} bytes)",
        csv.len(),
        export.len()
    );

    let text = String::from_utf8(csv.clone()).unwrap();
    let mut rd = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.strip_prefix('\u{feff}').expect("a BOM").as_bytes());
    let [number, source_name, dialled, destination_name] = columns(
        &mut rd,
        [
            "Caller number",
            "Source name",
            "Dialled",
            "Destination name",
        ],
    );
    // What a person reads: the invisible mark that keeps a number as typed removed.
    let cell = |r: &csv::StringRecord, i: usize| r[i].replace('\u{2060}', "");
    let (mut reception, mut learned, mut store) = (0, 0, 0);
    for r in rd.records() {
        let r = r.unwrap();
        match cell(&r, number).as_str() {
            "1000" => {
                assert_eq!(cell(&r, source_name), "Приёмная", "{r:?}");
                reception += 1;
            }
            "1001" => {
                // The name 1001's own CallerID gave in one of its calls (learned, no [names]).
                let name = cell(&r, source_name);
                let sent: Vec<String> = (1..330u64)
                    .step_by(50)
                    .map(|n| sample_record(n).caller_name())
                    .collect();
                assert!(
                    sent.contains(&name),
                    "1001 is named {name:?}, not one of {sent:?}"
                );
                learned += 1;
            }
            _ => {}
        }
        if cell(&r, dialled) == "79160000005" {
            assert_eq!(cell(&r, destination_name), "Склад, ворота 2", "{r:?}");
            store += 1;
        } else {
            assert_eq!(
                cell(&r, destination_name),
                "",
                "only [names] names a dialled number: {r:?}"
            );
        }
    }
    assert!(
        reception > 0 && learned > 0 && store == 1,
        "{reception} {learned} {store}"
    );
    smtp.stop();
}
