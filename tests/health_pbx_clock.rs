//! The PBX-vs-box clock skew on the real `cdrbox run` binary (issue 13 item 4): each link's
//! `pbx_clock_skew_ms` in `/api/status` comes from the pongs' `Timestamp:`, and a PBX whose
//! clock is more than 10 s off stands as a `PBX CLOCK` warning (not an alarm: nothing is lost,
//! but call times are the PBX's). Two simulated PBXs: one 42 s ahead, one on time.

use crate::cli_support;

use std::time::Duration;

use cdrbox::clock::Clock;
use cdrbox::sim::{self, SimOptions};
use cli_support::{free_port, http_json, wait, BoxConfig, RunningBox, PASS};

const LONG: Duration = Duration::from_secs(60);

fn skew_of(status: &serde_json::Value, pbx: &str) -> Option<i64> {
    status["links"]
        .as_array()?
        .iter()
        .find(|l| l["pbx"] == pbx)?["pbx_clock_skew_ms"]
        .as_i64()
}

fn codes_about(list: &serde_json::Value, code: &str) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter(|w| w["code"] == code)
                .map(|w| w["subject"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_pbx_clock_42_s_ahead_is_measured_and_warned_about_one_on_time_is_not() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = |offset_ms| SimOptions {
        username: "cdrbox".into(),
        secret: "clock-secret".into(),
        rate_per_sec: 0.0,
        clock: Clock::system_offset(offset_ms),
        ..SimOptions::default()
    };
    let (ahead, on_time) = rt.block_on(async {
        (
            sim::bind("127.0.0.1:0", opts(42_000)).await.unwrap(),
            sim::bind("127.0.0.1:0", opts(0)).await.unwrap(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let login = ("cdrbox", "clock-secret");
    let fast_ping = ["ping_interval_ms = 1000"];
    let config = BoxConfig::new(dir.path())
        .pbx("office", ahead.local_addr().port(), login, &fast_ping)
        .pbx("depot", on_time.local_addr().port(), login, &fast_ping)
        .storage(&[])
        .web(port, &[])
        .no_display()
        .write();
    let running = RunningBox::start(&config, PASS);

    let mut status = serde_json::Value::Null;
    wait("both links' clock skew in /api/status", LONG, || {
        let (code, v) = http_json(port, "GET", "/api/status", "");
        status = v;
        code == 200
            && skew_of(&status, "office").is_some()
            && skew_of(&status, "depot").is_some()
            && !codes_about(&status["warnings"], "PBX CLOCK").is_empty()
    });
    // On loopback the round trip is well under a millisecond; the slack is for a loaded
    // machine between the PBX's reading and the box's, not for the method.
    let office = skew_of(&status, "office").unwrap();
    let depot = skew_of(&status, "depot").unwrap();
    assert!(
        (40_500..43_500).contains(&office),
        "office skew {office} ms"
    );
    assert!(depot.abs() < 1_500, "depot skew {depot} ms");

    assert_eq!(
        codes_about(&status["warnings"], "PBX CLOCK"),
        vec!["office".to_string()],
        "{}",
        status["warnings"]
    );
    let msg = status["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "PBX CLOCK")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("PBX office") && msg.contains("s ahead of the box"),
        "{msg}"
    );
    // A warning, not an alarm: it is not mailed and not on the OLED's alarm page.
    assert!(
        codes_about(&status["alarms"], "PBX CLOCK").is_empty(),
        "{}",
        status["alarms"]
    );
    running.stop();
    rt.block_on(async {
        ahead.stop().await;
        on_time.stop().await;
    });
}
