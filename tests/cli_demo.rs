//! `cdrbox demo` on the real binary (issue 13 item 7): when its web page cannot listen it stops
//! at once with a message naming the address and the way out (non-zero exit), instead of logging
//! one line and running on without its page; `--listen 127.0.0.1:0` takes a free port and
//! prints it.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cdrbox");

/// `cdrbox demo ARGS --data DIR`, DIR a fresh temporary directory, run to its end.
fn demo(args: &[&str]) -> std::process::Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .arg("demo")
        .args(args)
        .arg("--data")
        .arg(data.path())
        .output()
        .unwrap()
}

#[test]
fn a_taken_port_is_refused_with_the_way_out() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = demo(&["--seconds", "30", "--listen", &addr.to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("the demo's web page cannot listen on {addr}:")),
        "{stderr}"
    );
    assert!(
        stderr.contains("another program has that port; pass --listen 127.0.0.1:0"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one message, no log noise:\n{stderr}"
    );
    drop(taken);
}

#[test]
fn port_zero_picks_a_free_port_and_says_which() {
    let out = demo(&["--seconds", "2", "--rate", "0", "--listen", "127.0.0.1:0"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port: u16 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("web page:"))
        .and_then(|rest| rest.trim().strip_prefix("http://127.0.0.1:"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no web page line in:\n{stdout}"));
    assert_ne!(port, 0, "{stdout}");
}
