//! For the browser tests (`web_e2e_*.rs`): find what they need — Debian's chromium, node and
//! `tests/e2e/node_modules` (`npm ci --prefix tests/e2e`; `.ci/run` installs all three) — and run
//! one `tests/e2e/*.e2e.mjs` script. Without them a test says SKIPPED locally and fails under CI
//! (`CI=true`), so CI can never pass without having run it.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
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

/// Runs SCRIPT (as [`run_script`]) against a box the test started: `CDRBOX_BASE` its page on
/// 127.0.0.1:`web`, `CDRBOX_PASS` the admin `password`, `E2E_SCREENSHOTS` the directory `shots`
/// (made when missing), `CDRBOX_RESULTS` a file for the script to write what it saw to, then
/// the `more` variables. Returns that file's JSON.
pub fn run_against_box(
    browser: &(PathBuf, String),
    script: &str,
    web: u16,
    password: &str,
    shots: &Path,
    more: Vec<(&str, OsString)>,
) -> serde_json::Value {
    std::fs::create_dir_all(shots).expect("the screenshot directory");
    let dir = tempfile::tempdir().expect("a temp dir for the script's results");
    let results = dir.path().join("results.json");
    let envs: Vec<(&str, OsString)> = vec![
        ("CDRBOX_BASE", format!("http://127.0.0.1:{web}").into()),
        ("CDRBOX_PASS", password.into()),
        ("CDRBOX_RESULTS", results.clone().into()),
        ("E2E_SCREENSHOTS", shots.into()),
    ];
    run_script(browser, script, envs.into_iter().chain(more));
    let text = std::fs::read_to_string(&results).expect("the script wrote its results");
    serde_json::from_str(&text).expect("the script's results are JSON")
}

/// Runs SCRIPT (as [`run_script`]) against `cdrbox demo` at `rate` calls a second on a free
/// port, its data in a temporary directory, with `extra` envs and `CDRBOX_E2E_SHOTS` =
/// `target/SHOTS` (emptied first: last run's screenshots must not pass for this run's). With
/// `code_file` the script is told where the demo writes its one-time setup code, so it need not
/// wait for the banner's. `None` (after saying SKIPPED) where [`browser`] is; else the script's
/// stdout and the screenshot directory.
pub fn run_demo(
    script: &str,
    rate: u32,
    code_file: bool,
    shots: &str,
    extra: Vec<(&'static str, OsString)>,
) -> Option<(String, PathBuf)> {
    let browser = browser()?;
    let data = tempfile::tempdir().expect("temp dir for the demo's data");
    let cmd = format!(
        "{} demo --listen 127.0.0.1:0 --rate {rate} --data {}",
        env!("CARGO_BIN_EXE_cdrbox"),
        data.path().display()
    );
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(shots);
    let _ = std::fs::remove_dir_all(&shots);
    let mut envs = vec![
        ("CDRBOX_E2E_CMD", OsString::from(cmd)),
        ("CDRBOX_E2E_SHOTS", shots.clone().into_os_string()),
    ];
    if code_file {
        let code = data.path().join("cdrbox.setup-code");
        envs.push(("CDRBOX_E2E_CODE_FILE", code.into_os_string()));
    }
    envs.extend(extra);
    Some((run_script(&browser, script, envs), shots))
}

/// `target/NAME`, emptied: last run's screenshots must not pass for this run's.
pub fn fresh_shots(name: &str) -> PathBuf {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    let _ = std::fs::remove_dir_all(&shots);
    shots
}

/// A file under `tests/fixtures/`.
pub fn fixture(path: &str) -> OsString {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
        .into_os_string()
}

/// Fails unless the script's output says every one of `steps` (each step prints its `ok:` line
/// once it has checked what it promises).
pub fn assert_steps(out: &str, steps: &[&str]) {
    for step in steps {
        assert!(out.contains(step), "missing step {step:?}");
    }
}

/// Fails unless each of `names` is a screenshot in `shots` (more than 1000 bytes: a PNG of a
/// page, not an empty or cut-off file).
pub fn assert_shots(shots: &Path, names: &[&str]) {
    for shot in names {
        let len = std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len());
        assert!(len > 1000, "screenshot {shot} written ({len} bytes)");
    }
}
