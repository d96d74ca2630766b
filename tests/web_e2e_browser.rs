//! The web page in a real browser: runs `tests/e2e/web.e2e.mjs` (playwright-core driving
//! Debian's headless Chromium) against `cdrbox demo`, whose simulated PBX makes the calls.
//!
//! Needs `/usr/bin/chromium`, `node` and `tests/e2e/node_modules` (`npm ci --prefix tests/e2e`);
//! `.ci/run` installs all three. Without them the test says SKIPPED locally, and fails under
//! CI (`CI=true`), so CI can never pass without having run it.

mod browser_support;

#[test]
fn web_page_end_to_end_in_headless_chromium() {
    let Some(browser) = browser_support::browser() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} demo --listen 127.0.0.1:0 --rate 1 --data {}",
        env!("CARGO_BIN_EXE_cdrbox"),
        data.path().display()
    );
    let code_file = data.path().join("cdrbox.setup-code");
    browser_support::run_script(
        &browser,
        "web.e2e.mjs",
        [
            ("CDRBOX_E2E_CMD", std::ffi::OsString::from(cmd)),
            ("CDRBOX_E2E_CODE_FILE", code_file.into_os_string()),
        ],
    );
}
