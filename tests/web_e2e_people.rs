//! The page at desktop and phone widths in a real browser: runs `tests/e2e/people.e2e.mjs`
//! against `cdrbox demo` (issue 13, items 1, 4 and 9). Screenshots of every page at 1366 and
//! 390 px go to `target/e2e-people/` — look at them after a change to the page.
//!
//! Needs what `tests/web_e2e_browser.rs` needs (chromium, node, `npm ci --prefix tests/e2e`);
//! SKIPPED locally without them, a failure under CI.

mod browser_support;

#[test]
fn supervisor_pages_at_desktop_and_phone_width() {
    let Some(browser) = browser_support::browser() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} demo --listen 127.0.0.1:0 --rate 2 --data {}",
        env!("CARGO_BIN_EXE_cdrbox"),
        data.path().display()
    );
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-people");
    let code_file = data.path().join("cdrbox.setup-code");
    browser_support::run_script(
        &browser,
        "people.e2e.mjs",
        [
            ("CDRBOX_E2E_CMD", std::ffi::OsString::from(cmd)),
            ("CDRBOX_E2E_CODE_FILE", code_file.into_os_string()),
            ("CDRBOX_E2E_SHOTS", shots.into_os_string()),
        ],
    );
}
