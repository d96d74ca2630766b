//! Box health in `/api/status` on the real `cdrbox run` binary (issue 13 item 4): version,
//! uptime, memory as the kernel reports it for the box's own process, the CPU temperature only
//! when this machine has a thermal zone (never a made-up number), and the clock's state as
//! `adjtimex(2)` says — with the not-synchronised warning in `warnings`, not in `alarms`
//! (which are mailed).

use crate::cli_support;

use std::path::Path;
use std::time::Duration;

use cdrbox::status::ClockSync;
use cli_support::box_process::status_kib;
use cli_support::{free_port, http_json, wait, BoxConfig, RunningBox, PASS};

const LONG: Duration = Duration::from_secs(60);

#[test]
fn api_status_reports_the_box_health_this_machine_has() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = BoxConfig::new(dir.path())
        .storage(&[])
        .web(port, &[])
        .no_display()
        .write();
    let running = RunningBox::start(&config, PASS);
    let pid = running.child.id();
    let mut status = serde_json::Value::Null;
    wait("/api/status with a health sample", LONG, || {
        let (code, v) = http_json(port, "GET", "/api/status", "");
        status = v;
        code == 200 && status["health"]["rss_bytes"].is_u64()
    });
    let h = &status["health"];
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"), "{h}");

    // The box's own resident memory, as /proc/PID/status says it (RSS moves a little between
    // the two reads; a factor of 2 catches reading the wrong process or unit).
    let rss = h["rss_bytes"].as_u64().unwrap();
    let kernel = status_kib(pid, "VmRSS:") * 1024;
    assert!(
        rss > kernel / 2 && rss < kernel * 2,
        "rss_bytes {rss} vs VmRSS {kernel} B of pid {pid}"
    );
    let (total, available) = (
        h["mem_total_bytes"].as_u64().unwrap(),
        h["mem_available_bytes"].as_u64().unwrap(),
    );
    assert!(available > 0 && available <= total, "{h}");

    // Temperature: present exactly when this machine has a readable thermal zone (this VM has
    // none, so the page must say "not available"), and then within a degree of it.
    match cdrbox::health::cpu_temperature(Path::new("/sys")) {
        None => assert!(h["cpu_temp_millicelsius"].is_null(), "{h}"),
        Some((milli, _)) => {
            let shown = h["cpu_temp_millicelsius"].as_i64().unwrap();
            assert!((shown - milli).abs() < 1000, "{shown} vs {milli}");
        }
    }

    // The clock: the same verdict as the kernel's, and its warning stands only while unsynced.
    let here = cdrbox::health::read_clock_sync();
    let want = match here {
        ClockSync::Synchronised { .. } => "synchronised",
        ClockSync::NotSynchronised { .. } => "not_synchronised",
        ClockSync::Unknown { .. } => "unknown",
    };
    assert_eq!(h["clock"]["state"], want, "{h}");
    let codes = |key: &str| -> Vec<String> {
        status[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["code"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        codes("warnings").contains(&"CLOCK".to_string()),
        want == "not_synchronised",
        "{status}"
    );
    assert!(
        !codes("alarms").contains(&"CLOCK".to_string()),
        "the clock is a warning, not a mailed alarm"
    );

    // Uptime counts from the process start and moves on (sampled every 10 s).
    let first = h["uptime_seconds"].as_i64().unwrap();
    assert!((0..60).contains(&first), "{h}");
    wait("uptime to move on", LONG, || {
        let (_, v) = http_json(port, "GET", "/api/status", "");
        v["health"]["uptime_seconds"].as_i64().unwrap_or(0) > first
    });
    running.stop();
}
