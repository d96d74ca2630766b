//! The web page in a real browser: runs `tests/e2e/web.e2e.mjs` (playwright-core driving
//! Debian's headless Chromium) against `cdrbox demo`, whose simulated PBX makes the calls.
//!
//! Needs `/usr/bin/chromium`, `node` and `tests/e2e/node_modules` (`npm ci --prefix tests/e2e`);
//! `.ci/run` installs all three. Without them the test says SKIPPED locally, and fails under
//! CI (`CI=true`), so CI can never pass without having run it.

use std::path::Path;
use std::process::Command;

#[test]
fn web_page_end_to_end_in_headless_chromium() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [
        (!Path::new(&chromium).exists()).then_some("chromium (apt-get install chromium)"),
        (!node_ok).then_some("node (apt-get install nodejs npm)"),
        (!e2e.join("node_modules/playwright-core").exists())
            .then_some("playwright-core (npm ci --prefix tests/e2e)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        let msg = format!("browser test needs: {}", missing.join(", "));
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} demo --listen 127.0.0.1:0 --rate 1 --data {}",
        env!("CARGO_BIN_EXE_cdrbox"),
        data.path().display()
    );
    let out = Command::new("node")
        .arg("web.e2e.mjs")
        .current_dir(&e2e)
        .env("CDRBOX_E2E_CMD", cmd)
        .env("CHROMIUM", &chromium)
        .env(
            "CDRBOX_E2E_CODE_FILE",
            data.path().join("cdrbox.setup-code"),
        )
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "browser test failed");
    assert!(
        stdout.contains("e2e: all passed"),
        "the script did not reach its end"
    );
}
