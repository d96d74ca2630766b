//! The page at desktop and phone widths in a real browser: runs `tests/e2e/people.e2e.mjs`
//! against `cdrbox demo` (issue 13, items 1, 4 and 9). Screenshots of every page at 1366 and
//! 390 px go to `target/e2e-people/` — look at them after a change to the page.
//!
//! Needs what `tests/web_e2e_browser.rs` needs (chromium, node, `npm ci --prefix tests/e2e`);
//! SKIPPED locally without them, a failure under CI.

use crate::browser_support;

#[test]
fn supervisor_pages_at_desktop_and_phone_width() {
    browser_support::run_demo("people.e2e.mjs", 2, true, "e2e-people", vec![]);
}
