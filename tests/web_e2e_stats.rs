//! The stats page's supervisor views in a real browser: runs `tests/e2e/stats.e2e.mjs` against
//! `cdrbox demo` with the real Master.csv capture imported as history (issue 13, item 3): the
//! trend by hour, day, week and month, top callers and destinations, queue abandonment by wait,
//! service level per queue and per-agent answer rates equal `/api/stats` at 1366 and 390 px. Screenshots go to
//! `target/e2e-stats/` — look at them after a change to the page.
//!
//! Needs what `tests/web_e2e_browser.rs` needs (chromium, node, `npm ci --prefix tests/e2e`);
//! SKIPPED locally without them, a failure under CI.

use std::ffi::OsString;
use std::path::Path;

mod browser_support;

#[test]
fn stats_page_equals_the_api_at_desktop_and_phone_width() {
    let Some(browser) = browser_support::browser() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} demo --listen 127.0.0.1:0 --rate 2 --data {}",
        env!("CARGO_BIN_EXE_cdrbox"),
        data.path().display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("target/e2e-stats");
    // Last run's screenshots must not pass for this run's.
    let _ = std::fs::remove_dir_all(&shots);
    let out = browser_support::run_script(
        &browser,
        "stats.e2e.mjs",
        [
            ("CDRBOX_E2E_CMD", OsString::from(cmd)),
            (
                "CDRBOX_E2E_CODE_FILE",
                data.path().join("cdrbox.setup-code").into_os_string(),
            ),
            (
                "CDRBOX_MASTER_CSV",
                root.join("tests/fixtures/ami/meta/cdr-csv-Master.csv")
                    .into_os_string(),
            ),
            ("CDRBOX_E2E_SHOTS", shots.clone().into_os_string()),
        ],
    );
    for step in [
        "ok: history imported",
        "ok: today by hour",
        "days by day",
        "ok: 1366 px",
        "ok: 390 px",
        "ok: trend=week kept",
    ] {
        assert!(out.contains(step), "the script did not say {step:?}");
    }
    for shot in ["1366-stats.png", "390-stats.png", "390-trend-hour.png"] {
        assert!(shots.join(shot).exists(), "no screenshot {shot}");
    }
}
