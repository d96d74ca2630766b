//! For the browser tests (`web_e2e_*.rs`): find what they need — Debian's chromium, node and
//! `tests/e2e/node_modules` (`npm ci --prefix tests/e2e`; `.ci/run` installs all three) — and run
//! one `tests/e2e/*.e2e.mjs` script. Without them a test says SKIPPED locally and fails under CI
//! (`CI=true`), so CI can never pass without having run it.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/e2e` and the chromium binary, or `None` (after saying SKIPPED) when something is
/// missing outside CI.
pub fn browser() -> Option<(PathBuf, String)> {
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
    if missing.is_empty() {
        return Some((e2e, chromium));
    }
    let msg = format!("browser test needs: {}", missing.join(", "));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Runs `node SCRIPT` in `tests/e2e` with `envs` (and `CHROMIUM`); fails the test unless it
/// exits 0 having printed `e2e: all passed`. Returns its stdout.
pub fn run_script<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    (e2e, chromium): &(PathBuf, String),
    script: &str,
    envs: impl IntoIterator<Item = (K, V)>,
) -> String {
    let out = Command::new("node")
        .arg(script)
        .current_dir(e2e)
        .env("CHROMIUM", chromium)
        .envs(envs)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "browser test {script} failed");
    assert!(
        stdout.contains("e2e: all passed"),
        "the script {script} did not reach its end"
    );
    stdout
}
