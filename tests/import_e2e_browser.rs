//! The Master.csv upload on the status page in a real browser: runs `tests/e2e/import.e2e.mjs`
//! (playwright-core driving Debian's headless Chromium) against `cdrbox demo` without simulated
//! calls, uploading the real Asterisk 22 Master.csv through the gap card's form.
//!
//! Needs what `tests/web_e2e_browser.rs` needs (chromium, node, `npm ci --prefix tests/e2e`);
//! skipped locally without them, a failure under CI (`CI=true`).

use std::path::Path;
use std::process::Command;

#[test]
fn master_csv_upload_on_the_status_page() {
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
        "{} demo --listen 127.0.0.1:0 --rate 0 --data {}",
        env!("CARGO_BIN_EXE_cdrbox"),
        data.path().display()
    );
    let csv =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ami/meta/cdr-csv-Master.csv");
    let out = Command::new("node")
        .arg("import.e2e.mjs")
        .current_dir(&e2e)
        .env("CDRBOX_E2E_CMD", cmd)
        .env("CDRBOX_MASTER_CSV", &csv)
        .env("CHROMIUM", &chromium)
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
