//! Golden screens: every OLED state rendered to a 128×64 `Frame` and compared, as an ASCII dump
//! (`#` lit, `.` dark), with `tests/fixtures/display/<state>.txt`.
//!
//! `UPDATE_GOLDEN=1 cargo test --test integration -- display_render::` rewrites the files; review
//! the diff like code. A mismatch prints the expected and the actual page so the difference is
//! visible.

use std::path::PathBuf;

use cdrbox::display::{page_list, pages, render_frame, render_png, Frame, Page};
use cdrbox::status::{
    Alarm, ClockSync, DayTotals, LinkState, LinkStatus, StatusView, StorageStatus, UplinkStatus,
    UsbState,
};

/// 2026-11-28 10:00:00 UTC = 13:00 in Moscow (+03:00).
const NOW: i64 = 1_795_860_000;
const OFFSET: i32 = 3 * 3600;
/// 14:05 local yesterday is not "14:05": times before today show as a date.
const MIN: i64 = 60;
const HOUR: i64 = 3600;

fn link(name: &str, state: LinkState, since_ago: i64) -> LinkStatus {
    LinkStatus {
        pbx: name.into(),
        address: "10.0.0.5:5038".into(),
        state,
        since_utc: NOW - since_ago,
        last_record_utc: Some(NOW - 25 * MIN),
        banner: Some("Asterisk Call Manager/11.0.0".into()),
        records: 1234,
        reconnects: 2,
        discarded_frames: 0,
        pbx_clock_skew_ms: None,
    }
}

fn uplink(state: &str, lag: u64, lag_secs: Option<i64>, error: Option<&str>) -> UplinkStatus {
    UplinkStatus {
        state: state.into(),
        target: "postgres://cdrbox:***@db.example.com:5432/cdr".into(),
        lag_records: lag,
        lag_seconds: lag_secs,
        sent_records: 48_210,
        last_ok_utc: Some(NOW - 2 * MIN - 3 * HOUR * i64::from(error.is_some())),
        last_error: error.map(str::to_string),
    }
}

fn alarm(code: &str) -> Alarm {
    Alarm::new(
        code,
        format!("{code}: the full sentence is on the web page"),
    )
}

fn base() -> StatusView {
    StatusView {
        now_utc: NOW,
        local_offset_seconds: OFFSET,
        box_name: "cdrbox".into(),
        ip_address: Some("192.168.100.200".into()),
        links: vec![link("FreePBX", LinkState::Up, 5 * HOUR)],
        today: DayTotals {
            total: 128,
            answered: 101,
            missed: 27,
        },
        last_call_utc: Some(NOW - 55 * MIN), // 12:05 local
        storage: StorageStatus {
            path: "/var/lib/cdrbox".into(),
            committed: 50_000,
            db_bytes: 40 << 20,
            free_bytes: 3_435_973_837, // 3.2G
            total_bytes: 15 << 30,
            days_until_full: Some(900),
            ..Default::default()
        },
        usb: UsbState::NoStick,
        alarms: vec![],
        ..Default::default()
    }
}

/// Every screen state the issue lists, by fixture name.
fn states() -> Vec<(&'static str, StatusView)> {
    let mut out = Vec::new();
    out.push(("link_up", base()));

    // Issue 11: the setup code before the first visit; the HTTPS fingerprint when HTTPS is on.
    let mut v = base();
    v.setup_code = Some("K7QM-3XWP".into());
    out.push(("setup_code", v));
    let mut v = base();
    v.tls_fingerprint =
        Some("3F9A0C17B2E4D6581A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F7081".into());
    out.push(("https_fingerprint", v));

    let mut v = base();
    v.links[0].state = LinkState::Down {
        reason: "connection refused by 10.0.0.5:5038".into(),
    };
    v.links[0].since_utc = NOW - 55 * MIN; // 12:05 local
    v.alarms.push(alarm("LINK DOWN"));
    out.push(("link_down", v));

    let mut v = base();
    v.links[0].state = LinkState::Down {
        reason: "no route to host".into(),
    };
    v.links[0].since_utc = NOW - 2 * 24 * HOUR; // two days ago: shows the date
    out.push(("link_down_since_days", v));

    let mut v = base();
    v.links[0].state = LinkState::AuthFailed;
    v.alarms.push(alarm("AUTH"));
    out.push(("auth_failed", v));

    let mut v = base();
    v.links[0].state = LinkState::Connecting;
    v.links[0].last_record_utc = None;
    v.today = DayTotals::default();
    v.last_call_utc = None;
    out.push(("connecting", v));

    let mut v = base();
    v.today = DayTotals {
        total: 99_999,
        answered: 88_888,
        missed: 11_111,
    };
    out.push(("busy_day", v));

    let mut v = base();
    v.links = vec![link(
        "Главная АТС — офис на Ленинском проспекте",
        LinkState::Up,
        HOUR,
    )];
    out.push(("long_cyrillic_name", v));

    // Issue 13 item 8: dots (the header's IP, an address), colons, commas, Cyrillic (one
    // decomposed й) and characters no font has, which must show as `?`, never vanish.
    let mut v = base();
    v.ip_address = Some("10.0.0.1".into());
    v.links = vec![link(
        "АТС «Центр», к.2",
        LinkState::Down {
            reason: "Зои\u{306}: 电📞 10.0.0.5".into(),
        },
        20 * MIN,
    )];
    v.alarms.push(alarm("LINK DOWN"));
    out.push(("punctuation", v));

    let mut v = base();
    v.usb = UsbState::Copying { percent: 40 };
    out.push(("usb_copying", v));

    let mut v = base();
    v.usb = UsbState::SafeToRemove { records: 50_000 };
    out.push(("usb_safe_to_remove", v));

    let mut v = base();
    v.usb = UsbState::Error {
        message: "stick is read-only; copy not verified, try another stick".into(),
    };
    v.alarms.push(alarm("USB ERROR"));
    out.push(("usb_error", v));

    let mut v = base();
    v.storage.free_bytes = 0;
    v.storage.memory_only = 17;
    v.storage.days_until_full = Some(0);
    v.alarms.push(alarm("DISK FULL"));
    out.push(("disk_full", v));

    let mut v = base();
    v.links = vec![
        link("Москва", LinkState::Up, HOUR),
        link("Café Zürich", LinkState::Up, HOUR),
        link("Łódź branch", LinkState::AuthFailed, HOUR),
        link(
            "Київ",
            LinkState::Down {
                reason: "timeout".into(),
            },
            20 * MIN,
        ),
        link("Warehouse", LinkState::Connecting, MIN),
        link("Lab", LinkState::PbxShutdown, MIN),
    ];
    v.alarms = vec![alarm("LINK DOWN"), alarm("AUTH")];
    out.push(("several_pbxs", v));

    let mut v = base();
    v.alarms = [
        "LINK DOWN",
        "AUTH",
        "STORAGE 80%",
        "PBX QUIET",
        "CLOCK SKEW",
        "DISPLAY ERROR",
    ]
    .into_iter()
    .map(alarm)
    .collect();
    out.push(("many_alarms", v));

    // Issue 12: gaps no import has filled are counted on the summary.
    let mut v = base();
    v.storage.gaps = 2;
    out.push(("open_gaps", v));

    // Issue 13 item 4: the clock not synchronised and the CPU temperature beside the address
    // where they fit; with the widest address and a page counter only the clock tag fits.
    let mut v = base();
    v.health.clock = ClockSync::NotSynchronised {
        max_error_ms: 16_000,
    };
    v.health.cpu_temp_millicelsius = Some(51_499);
    out.push(("health_in_header", v.clone()));
    v.links.push(link("Second", LinkState::Up, HOUR));
    out.push(("health_beside_page_counter", v));

    // Issue 16 item 4: the uplink's page while all is sent, while it catches up, and while the
    // server cannot be reached (the error wraps onto two lines).
    let mut v = base();
    v.uplink = Some(uplink("up to date", 0, None, None));
    out.push(("uplink_up_to_date", v));
    let mut v = base();
    v.uplink = Some(uplink("sending", 312, Some(4 * MIN + 10), None));
    out.push(("uplink_sending", v));
    let mut v = base();
    v.uplink = Some(uplink(
        "retrying",
        10_000,
        Some(3 * HOUR),
        Some("cannot connect: error connecting to server: Connection refused (os error 111)"),
    ));
    v.alarms.push(alarm("UPLINK"));
    out.push(("uplink_unreachable", v));

    let mut v = base();
    v.ip_address = None;
    v.links.clear();
    v.storage = StorageStatus::default();
    out.push(("no_network_no_pbx", v));
    out
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/display")
}

fn dump(view: &StatusView) -> String {
    let list = page_list(view);
    let mut s = String::new();
    for (i, page) in list.iter().enumerate() {
        s.push_str(&format!("# page {}/{}: {:?}\n", i + 1, list.len(), page));
        s.push_str(&render_frame(view, i).to_ascii());
    }
    s
}

#[test]
fn golden_screens() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let dir = fixture_dir();
    let mut failed = Vec::new();
    for (name, view) in states() {
        let actual = dump(&view);
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
        if expected != actual {
            let exp: Vec<&str> = expected.split("# page ").collect();
            let act: Vec<&str> = actual.split("# page ").collect();
            for i in 0..exp.len().max(act.len()) {
                let (e, a) = (exp.get(i).unwrap_or(&""), act.get(i).unwrap_or(&""));
                if e != a {
                    eprintln!(
                        "=== {name}: expected ===\n# page {e}\n=== {name}: actual ===\n# page {a}"
                    );
                }
            }
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "screens differ from their golden files: {failed:?} (UPDATE_GOLDEN=1 to accept)"
    );
}

#[test]
fn goldens_parse_back_into_frames() {
    // The fixture files are real frames, not free text: every page parses back and matches.
    for (name, view) in states() {
        let path = fixture_dir().join(format!("{name}.txt"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // golden_screens reports missing files
        };
        for (i, chunk) in text.split("# page ").skip(1).enumerate() {
            let body = chunk.split_once('\n').unwrap().1;
            let frame = Frame::from_ascii(body).unwrap_or_else(|| panic!("{name} page {i}"));
            assert_eq!(frame, render_frame(&view, i), "{name} page {i}");
        }
    }
}

#[test]
fn every_page_of_every_state_draws_something_inside_the_margins() {
    for (name, view) in states() {
        for i in 0..pages(&view) {
            let f = render_frame(&view, i);
            assert!(f.lit() > 150, "{name} page {i} is nearly empty");
            // One pixel of margin left/right/bottom is kept for the screen saver's shift.
            for y in 0..64 {
                let alarm_header = i < view.alarms.len().div_ceil(4) && y < 9;
                if !(y == 9 || alarm_header) {
                    assert!(
                        !f.get(0, y) && !f.get(127, y),
                        "{name} page {i}: edge lit at y={y}"
                    );
                }
            }
            assert!(
                (0..128).all(|x| !f.get(x, 63)),
                "{name} page {i}: bottom row lit"
            );
        }
    }
}

#[test]
fn alarm_page_comes_first_and_is_inverted() {
    for (name, view) in states() {
        let list = page_list(&view);
        assert_eq!(
            list[0] == Page::Alarms { first: 0 },
            !view.alarms.is_empty(),
            "{name}: alarms first iff any"
        );
        let alarm_pages = list
            .iter()
            .filter(|p| matches!(p, Page::Alarms { .. }))
            .count();
        assert_eq!(
            alarm_pages,
            view.alarms.len().div_ceil(4),
            "{name}: every alarm shown"
        );
        for i in 0..alarm_pages {
            let f = render_frame(&view, i);
            let lit_header = (0..128).filter(|&x| f.get(x, 0)).count();
            assert_eq!(lit_header, 128, "{name}: the alarm header bar is solid");
        }
    }
}

#[test]
fn counts_and_states_change_the_picture() {
    // A golden file can be accepted blindly; these cannot: the things a user reads must
    // change pixels when they change.
    let v = base();
    let f = render_frame(&v, 0);
    let mut w = v.clone();
    w.today.missed += 1;
    assert_ne!(render_frame(&w, 0), f, "missed count");
    let mut w = v.clone();
    w.last_call_utc = Some(NOW - 54 * MIN);
    assert_ne!(render_frame(&w, 0), f, "last call time");
    let mut w = v.clone();
    w.links[0].state = LinkState::AuthFailed;
    assert_ne!(render_frame(&w, 0), f, "link state");
    let mut w = v.clone();
    w.ip_address = Some("192.168.100.201".into());
    assert_ne!(render_frame(&w, 0), f, "ip address");
    let mut w = v.clone();
    w.usb = UsbState::Copying { percent: 41 };
    let mut x = v.clone();
    x.usb = UsbState::Copying { percent: 40 };
    assert_ne!(render_frame(&w, 0), render_frame(&x, 0), "copy progress");
    // Issue 12: the open-gap count is drawn, and a filled gap (count down) changes it.
    let mut w = v.clone();
    w.storage.gaps = 3;
    let mut x = v.clone();
    x.storage.gaps = 2;
    assert_ne!(render_frame(&w, 0), render_frame(&x, 0), "open gap count");
    assert_ne!(render_frame(&x, 0), f, "open gaps shown at all");
    // Issue 13 item 4: the temperature and the clock's state are drawn.
    let mut w = v.clone();
    w.health.cpu_temp_millicelsius = Some(51_000);
    let mut x = v.clone();
    x.health.cpu_temp_millicelsius = Some(52_000);
    assert_ne!(render_frame(&w, 0), f, "temperature shown");
    assert_ne!(
        render_frame(&w, 0),
        render_frame(&x, 0),
        "temperature value"
    );
    let mut w = v.clone();
    w.health.clock = ClockSync::NotSynchronised {
        max_error_ms: 16_000,
    };
    assert_ne!(render_frame(&w, 0), f, "clock not synchronised");
    let mut w = v.clone();
    w.now_utc += 59;
    assert_eq!(render_frame(&w, 0), f, "the clock alone draws nothing new");
    // Issue 16 item 4: the uplink's lag (count and age) and its state are drawn.
    let mut w = v.clone();
    w.uplink = Some(uplink("sending", 312, Some(4 * MIN), None));
    let at = page_list(&w)
        .iter()
        .position(|p| *p == Page::Uplink)
        .expect("an uplink page");
    let mut x = w.clone();
    x.uplink = Some(uplink("sending", 313, Some(4 * MIN), None));
    assert_ne!(render_frame(&w, at), render_frame(&x, at), "unsent count");
    x.uplink = Some(uplink("sending", 312, Some(9 * MIN), None));
    assert_ne!(render_frame(&w, at), render_frame(&x, at), "unsent age");
    x.uplink = Some(uplink("up to date", 312, Some(4 * MIN), None));
    assert_ne!(render_frame(&w, at), render_frame(&x, at), "uplink state");
    assert!(
        !page_list(&v).contains(&Page::Uplink),
        "no uplink page without [uplink] url"
    );
    // Issue 11: the setup code is the first page, and every letter of it is drawn.
    let mut w = v.clone();
    w.setup_code = Some("K7QM-3XWP".into());
    let mut x = w.clone();
    x.setup_code = Some("K7QM-3XWR".into());
    assert_eq!(page_list(&w)[0], cdrbox::display::Page::Setup);
    assert_ne!(render_frame(&w, 0), render_frame(&x, 0), "setup code");
    // The fingerprint page shows all 64 digits: changing the last one changes pixels.
    let mut w = v;
    w.tls_fingerprint = Some("AB".repeat(32));
    let mut x = w.clone();
    x.tls_fingerprint = Some(format!("{}AC", "AB".repeat(31)));
    let tls = page_list(&w)
        .iter()
        .position(|p| *p == cdrbox::display::Page::Tls)
        .expect("a fingerprint page");
    assert_ne!(render_frame(&w, tls), render_frame(&x, tls), "fingerprint");
}

#[test]
fn png_mirror_of_a_screen() {
    let v = base();
    let frame = render_frame(&v, 0);
    let png = render_png(&frame, 3);
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (384, 192));
    let lit = buf.iter().map(|b| b.count_ones()).sum::<u32>();
    assert_eq!(lit, frame.lit() * 9);
}
