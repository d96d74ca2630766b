//! The web page in a real browser: runs `tests/e2e/web.e2e.mjs` (playwright-core driving
//! Debian's headless Chromium) against `cdrbox demo`, whose simulated PBX makes the calls.
//!
//! Needs `/usr/bin/chromium`, `node` and `tests/e2e/node_modules` (`npm ci --prefix tests/e2e`);
//! `.ci/run` installs all three. Without them the test says SKIPPED locally, and fails under
//! CI (`CI=true`), so CI can never pass without having run it.

use crate::browser_support;

#[test]
fn web_page_end_to_end_in_headless_chromium() {
    // The script takes no CDRBOX_E2E_SHOTS (it screenshots only when E2E_SCREENSHOTS is set).
    browser_support::run_demo("web.e2e.mjs", 1, true, "e2e-web", vec![]);
}
