//! Every page and view of the web UI at 1366 and 390 px in a real browser: runs
//! `tests/e2e/all-pages.e2e.mjs` against `cdrbox demo` (issue 13, item 9: no horizontal overflow
//! on any page, every calls-table column reachable on a phone). One screenshot per view per width
//! goes to `target/e2e-all-pages/` — look at them after a change to the page.
//!
//! Needs what `tests/web_e2e_browser.rs` needs (chromium, node, `npm ci --prefix tests/e2e`);
//! SKIPPED locally without them, a failure under CI.

use crate::browser_support;

#[test]
fn every_page_fits_a_phone_and_a_desktop() {
    // A brisk rate: the script needs only the first finished call, not a day's worth.
    browser_support::run_demo("all-pages.e2e.mjs", 4, true, "e2e-all-pages", vec![]);
}
