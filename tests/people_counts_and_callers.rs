//! Issue 13 items 1, 2 and 5 on the real binary: `cdrbox run` logged in to a simulated PBX that
//! makes a known set of calls (a no-answer with its leftover, a busy, a failed Dial, a queue with
//! two members, a blind transfer — two records each, one call each — and withheld numbers sent as
//! `"Anonymous" <>` and `"" <>`).
//!
//! - **Calls agree everywhere, the OLED included**: at one moment (nothing arriving), the OLED's
//!   "Calls today" / "Ans" / "Miss" — read back from the panel's mirror `GET /display.png`, cell
//!   by cell against the panel's own font — equal `/api/status` `today` and `/api/calls`
//!   `calls` (and its answered `groups`) and the status page's "Today" card, while `total`
//!   (records) is larger.
//! - **Withheld numbers read as such**: `callerName` is `Anonymous` for `"Anonymous" <>` and
//!   empty for `"" <>` (never the raw quoting); the calls page shows "Anonymous" and
//!   "no caller ID" with "(no number)" (headless Chromium, `tests/e2e/callers.e2e.mjs`; skipped
//!   without a browser like the other `web_e2e_*` tests); the excel download's "Caller name" and
//!   "Caller number" cells say the same.
//! - **The accountant's file from the page** (item 6): the "Today" view's excel download is
//!   named `<box>-<day>.csv` and separated by `,` in an English browser, `;` in a German one.
//! - **Names through the CLI**: `[names]` entries come out as "Source name" / "Destination name"
//!   in `cdrbox export --profile excel` and in the `calls.csv` of `cdrbox usb-export`.
//!
//! Screenshots go to `target/e2e-callers/`.

use crate::browser_support;
use crate::cli_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cdrbox::display::frame::{Frame, HEIGHT, WIDTH};
use cdrbox::display::text::{self, FontSize};
use cdrbox::sim::{Scenario, SimOptions};
use cli_support::box_process::{cli, export, wait};
use cli_support::{free_port, http, http_bytes, http_json, RunningBox, PASS};
use embedded_graphics::pixelcolor::BinaryColor;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

/// Baselines of the four body lines (`BODY` in `src/display/render.rs`), and the body font's
/// cell: 6 px wide, lines 13 px apart, text starting 1 px from the left edge.
const BODY: [i32; 4] = [21, 34, 47, 60];
const CELL: i32 = 6;
const COLS: i32 = 21;

/// Rows of a body line: 10 above its baseline (ascent) to 2 below (descent) — 13 rows, so
/// neighbouring lines never share one.
fn band(baseline: i32) -> std::ops::RangeInclusive<i32> {
    baseline - 10..=baseline + 2
}

/// The pixels of one cell of body line `baseline` starting at `x`, as a comparable key.
fn cell_bits(frame: &Frame, x: i32, baseline: i32) -> Vec<bool> {
    band(baseline)
        .flat_map(|y| (x..x + CELL).map(move |x| (x, y)))
        .map(|(x, y)| frame.get(x, y))
        .collect()
}

/// Reads body line `row` of `frame` back as text: each 6-px cell is compared with every
/// printable ASCII character drawn by the panel's own font; a cell that matches none reads `?`.
fn read_line(frame: &Frame, row: usize) -> String {
    let baseline = BODY[row];
    let glyphs: Vec<(char, Vec<bool>)> = (' '..='~')
        .map(|c| {
            let mut f = Frame::new();
            text::draw(
                &mut f,
                &c.to_string(),
                FontSize::Normal,
                1,
                baseline,
                1,
                BinaryColor::On,
            )
            .unwrap();
            (c, cell_bits(&f, 1, baseline))
        })
        .collect();
    let line: String = (0..COLS)
        .map(|col| {
            let bits = cell_bits(frame, 1 + col * CELL, baseline);
            glyphs
                .iter()
                .find(|(_, g)| *g == bits)
                .map_or('?', |(c, _)| *c)
        })
        .collect();
    line.trim_end().to_owned()
}

/// The panel's mirror (`GET /display.png`, the frame the panel gets, drawn larger) back as
/// the 128×64 frame.
fn oled(web: u16) -> Frame {
    let (code, png) = http_bytes(web, "GET", "/display.png", "");
    assert_eq!(code, 200, "GET /display.png");
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let scale = info.width / WIDTH;
    assert_eq!(info.height, HEIGHT * scale, "a scaled 128×64 picture");
    let mut frame = Frame::new();
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let (px, py) = ((x * scale) as usize, (y * scale) as usize);
            let lit = buf[py * info.line_size + px / 8] & (0x80 >> (px % 8)) != 0;
            frame.set(x as i32, y as i32, lit);
        }
    }
    frame
}

/// The last whole number on a line (`"Calls today        12"` → 12).
fn last_number(line: &str) -> Option<u64> {
    line.split_whitespace().rev().find_map(|w| w.parse().ok())
}

/// `(calls today, answered, missed)` as the OLED's summary page shows them, or `None` while
/// the panel shows another page (they rotate every `page_seconds`).
fn oled_today(frame: &Frame) -> Option<(u64, u64, u64, [String; 3])> {
    let lines = [
        read_line(frame, 1),
        read_line(frame, 2),
        read_line(frame, 0),
    ];
    // "Calls today N", or "N calls … Open gaps n" while the ledger has open gaps.
    let total = if lines[0].starts_with("Calls today") {
        last_number(&lines[0])?
    } else if let Some((n, _)) = lines[0].split_once(" calls") {
        n.trim().parse().ok()?
    } else {
        return None;
    };
    let (ans, miss) = lines[1].split_once("Miss")?;
    let answered = last_number(ans.strip_prefix("Ans")?)?;
    let missed = last_number(miss)?;
    Some((total, answered, missed, lines))
}

/// The CallerID header of one `Event: Cdr` (raw bytes from the simulator).
fn caller_id(event: &[u8]) -> String {
    String::from_utf8_lossy(event)
        .lines()
        .find_map(|l| l.strip_prefix("CallerID: ").map(str::to_owned))
        .unwrap_or_default()
}

/// An excel-profile CSV as header → cell maps (BOM and the invisible U+2060 that keeps
/// numbers as typed removed, so cells compare as a person reads them).
fn excel_rows(bytes: &[u8]) -> Vec<BTreeMap<String, String>> {
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    let text = text
        .strip_prefix('\u{feff}')
        .expect("the excel profile starts with a BOM");
    let sep = if text.lines().next().unwrap_or("").contains(';') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sep)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .cloned()
                .zip(r.iter().map(|c| c.replace('\u{2060}', "")))
                .collect()
        })
        .collect()
}

/// The `[names]` the box is configured with: every simulated phone, none of them the name its
/// own CallerID sends (so a match can only come from the table).
fn configured_names() -> BTreeMap<String, String> {
    (1001..=1008)
        .map(|n| (n.to_string(), format!("Стол {n}")))
        .collect()
}

/// Every row whose number is a configured extension carries that extension's name; at least
/// one row per column, so the check cannot pass on an empty file.
fn assert_names(rows: &[BTreeMap<String, String>], what: &str) {
    let names = configured_names();
    let mut seen = (0, 0);
    for row in rows {
        for (number_col, name_col, count) in [
            ("Caller number", "Source name", &mut seen.0),
            ("Dialled", "Destination name", &mut seen.1),
        ] {
            let number = row
                .get(number_col)
                .unwrap_or_else(|| panic!("{what}: no {number_col:?} column: {row:?}"));
            let name = row
                .get(name_col)
                .unwrap_or_else(|| panic!("{what}: no {name_col:?} column: {row:?}"));
            if let Some(want) = names.get(number) {
                assert_eq!(name, want, "{what}: {name_col} of {number} in {row:?}");
                *count += 1;
            }
        }
    }
    assert!(
        seen.0 > 0 && seen.1 > 0,
        "{what}: no row from and to a named extension ({seen:?} of {})",
        rows.len()
    );
}

/// Every count below is "today" in the PBX's zone: a run that starts in the last two minutes of a
/// Moscow day waits for the next one, so its calls and its checks fall on the same day.
fn wait_out_moscow_midnight() {
    let tz = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
    let now = jiff::Timestamp::now().to_zoned(tz);
    let into_day =
        i64::from(now.hour()) * 3600 + i64::from(now.minute()) * 60 + i64::from(now.second());
    let left = 86_400 - into_day;
    if left <= 120 {
        std::thread::sleep(Duration::from_secs(left.unsigned_abs() + 2));
    }
}

#[test]
fn oled_page_api_and_files_agree_on_calls_callers_and_names() {
    wait_out_moscow_midnight();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = cli_support::start_sim(
        &rt,
        SimOptions {
            // Only the calls this test triggers, so the counts hold still once stored.
            rate_per_sec: 0.0,
            record_events: true,
            ..cli_support::sim_login()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let web = free_port();
    let names: String = configured_names()
        .iter()
        .map(|(n, name)| format!("\"{n}\" = \"{name}\"\n"))
        .collect();
    let config = dir.path().join("cdrbox.toml");
    std::fs::write(
        &config,
        format!(
            r#"[box]
name = "callers-box"

[[pbx]]
name = "office"
host = "127.0.0.1"
port = {port}
username = "cdrbox"
secret = "s3cret"
# The simulator's zone: "today" is the same day for both.
timezone = "Europe/Moscow"

[storage]
path = "{d}/data"
flush_interval_ms = 200

[web]
listen = "127.0.0.1:{web}"

[display]
driver = "none"
page_seconds = 1

[usb]
mount_root = "{d}/media"
profile = "excel"

[names]
{names}"#,
            port = pbx.local_addr().port()
        ),
    )
    .unwrap();
    let mut cdrbox = RunningBox::start(&config, PASS);
    wait("the link to log in", LONG, || pbx.logged_in() == 1);

    // One call each, two records each but the first.
    let mut records = 0;
    for s in [
        Scenario::Answered,
        Scenario::NoAnswer,
        Scenario::Busy,
        Scenario::Failed,
        Scenario::Queue,
        Scenario::BlindTransfer,
    ] {
        records += pbx.trigger_call(s).len();
    }
    assert_eq!(records, 11, "the scenarios' records (see src/sim/calls)");
    let mut calls = 6;
    // Withheld numbers until both of Asterisk's spellings were sent (the simulator picks one of
    // five as `"" <>`).
    let (mut anonymous, mut empty) = (0, 0);
    while anonymous == 0 || empty == 0 {
        assert!(
            calls < 60,
            "the simulator never sent both withheld-number forms"
        );
        for event in pbx.trigger_call(Scenario::Anonymous) {
            match caller_id(&event).as_str() {
                r#""Anonymous" <>"# => anonymous += 1,
                r#""" <>"# => empty += 1,
                other => panic!("an anonymous call sent CallerID {other:?}"),
            }
            records += 1;
        }
        calls += 1;
    }
    wait("every record stored", LONG, || {
        cli_support::total(web) == records as u64
    });

    // 1. The same moment everywhere: nothing is arriving, so poll until the panel shows its
    // summary page and then hold every count against it.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Moscow").unwrap())
        .date();
    let (_, day) = http_json(
        web,
        "GET",
        &format!("/api/calls?from={today}&limit=1000"),
        "",
    );
    assert_eq!(day["total"], records, "records today: {day}");
    assert_eq!(day["calls"], calls, "calls today: {}", day["calls"]);
    let groups = day["groups"].as_array().unwrap();
    assert_eq!(groups.len(), calls, "the page groups every call");
    let answered = groups.iter().filter(|g| g["outcome"] == "answered").count() as u64;
    // The status snapshot (the page's and the panel's) is published about once a second.
    let want = serde_json::json!({"total": calls, "answered": answered, "missed": calls as u64 - answered});
    let started = std::time::Instant::now();
    let status = loop {
        let (_, status) = http_json(web, "GET", "/api/status", "");
        if status["today"] == want || started.elapsed() > Duration::from_secs(10) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        status["today"], want,
        "/api/status today against /api/calls"
    );
    let mut shown = None;
    wait("the OLED's summary page", Duration::from_secs(30), || {
        shown = oled_today(&oled(web));
        shown.is_some()
    });
    let (oled_total, oled_answered, oled_missed, lines) = shown.unwrap();
    eprintln!("the OLED reads {lines:?}");
    assert_eq!(
        (oled_total, oled_answered, oled_missed),
        (calls as u64, answered, calls as u64 - answered),
        "the OLED reads {lines:?}; /api/calls counts {calls} calls ({answered} answered) in {records} records"
    );
    let (_, after) = http_json(web, "GET", "/api/status", "");
    assert_eq!(after["today"], status["today"], "nothing changed meanwhile");

    // 2. Withheld numbers: clean names in the API, never Asterisk's quoting.
    let withheld: Vec<&Value> = day["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "")
        .collect();
    assert_eq!(withheld.len(), anonymous + empty, "{withheld:?}");
    for r in &withheld {
        let want = if r["callerId"] == r#""Anonymous" <>"# {
            "Anonymous"
        } else {
            assert_eq!(
                r["callerId"], r#""" <>"#,
                "the raw CallerID is kept as sent"
            );
            ""
        };
        assert_eq!(r["callerName"], want, "{r}");
    }
    let (grouped_anonymous, grouped_empty) = (
        groups
            .iter()
            .filter(|g| g["callerName"] == "Anonymous" && g["source"] == "")
            .count(),
        groups
            .iter()
            .filter(|g| g["callerName"] == "" && g["source"] == "")
            .count(),
    );
    assert_eq!(
        (grouped_anonymous, grouped_empty),
        (anonymous, empty),
        "groups' callerName"
    );

    // The excel download says the same in its cells.
    let (code, csv) = http(web, "GET", "/export.csv?profile=excel&separator=comma", "");
    assert_eq!(code, 200);
    let rows = excel_rows(csv.as_bytes());
    assert_eq!(rows.len(), records);
    let withheld_cells: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r["Caller number"].is_empty())
        .map(|r| (r["Caller name"].as_str(), r["Caller number"].as_str()))
        .collect();
    assert_eq!(
        withheld_cells.iter().filter(|c| c.0 == "Anonymous").count(),
        anonymous,
        "{withheld_cells:?}"
    );
    assert_eq!(
        withheld_cells.iter().filter(|c| c.0.is_empty()).count(),
        empty,
        "{withheld_cells:?}"
    );
    assert!(
        rows.iter()
            .all(|r| !r["Caller name"].contains('<') && !r["Caller name"].contains('"')),
        "a caller name kept Asterisk's quoting"
    );
    assert_names(&rows, "the page's excel download");

    // The calls page in a browser: what a person reads in the Caller and From columns.
    if let Some(browser) = browser_support::browser() {
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-callers");
        let more = vec![("CDRBOX_CALLS", calls.to_string().into())];
        let page: Value =
            browser_support::run_against_box(&browser, "callers.e2e.mjs", web, PASS, &shots, more);
        // The status page's Today card counts the same calls as the API and the OLED.
        let missed = calls as u64 - answered;
        assert_eq!(
            page["today"],
            serde_json::json!([
                format!("{calls} calls"),
                format!("{answered} answered calls"),
                format!("{missed} missed calls")
            ]),
            "the status page's Today card"
        );
        let rows = page["rows"].as_array().unwrap();
        let count = |name: &str, number: &str| {
            rows.iter()
                .filter(|r| r["name"] == name && r["number"] == number)
                .count()
        };
        assert_eq!(count("Anonymous", "(no number)"), anonymous, "{page}");
        assert_eq!(count("no caller ID", "(no number)"), empty, "{page}");
        assert!(
            rows.iter().all(|r| {
                let name = r["name"].as_str().unwrap_or("");
                !name.contains('<') && !name.contains('"')
            }),
            "the page shows Asterisk's quoting: {page}"
        );
        assert_eq!(
            page["totalText"],
            format!("{calls} calls match ({records} records)"),
            "the page's total"
        );
        // The "Today" view's excel download: named after the box and the day, separated as
        // the browser's locale expects (`,` in English, `;` where the decimal mark is a comma),
        // the same withheld callers in its cells.
        let downloads = page["downloads"].as_array().unwrap();
        assert_eq!(downloads.len(), 2);
        for (d, sep) in downloads.iter().zip([',', ';']) {
            assert_eq!(
                d["filename"],
                format!("callers-box-{today}.csv"),
                "{}",
                d["locale"]
            );
            let text = d["text"].as_str().unwrap();
            assert!(
                text.starts_with(&format!("\u{feff}Start{sep}Answered{sep}")),
                "{} download: {}",
                d["locale"],
                &text[..40.min(text.len())]
            );
            let rows = excel_rows(text.as_bytes());
            assert_eq!(rows.len(), records, "{}", d["locale"]);
            let anonymous_rows = rows
                .iter()
                .filter(|r| r["Caller number"].is_empty() && r["Caller name"] == "Anonymous")
                .count();
            assert_eq!(anonymous_rows, anonymous, "{}", d["locale"]);
        }
    }
    assert!(cdrbox.still_running(), "the box stayed up");
    cdrbox.stop();
    rt.block_on(pbx.stop());

    // 3. Names through the command line: export, and the stick copy's file.
    let rows = excel_rows(&export(&config, &["--profile", "excel"]));
    assert_eq!(rows.len(), records);
    assert_names(&rows, "cdrbox export --profile excel");
    let stick = dir.path().join("stick");
    let (ok, out, err) = cli(&["usb-export", "--to", stick.to_str().unwrap()], &config);
    assert!(ok, "cdrbox usb-export: {out}{err}");
    let copies: Vec<_> = std::fs::read_dir(&stick)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1, "one copy directory: {copies:?}");
    let rows = excel_rows(&std::fs::read(copies[0].join("calls.csv")).unwrap());
    assert_eq!(rows.len(), records);
    assert_names(&rows, "cdrbox usb-export calls.csv");
}
