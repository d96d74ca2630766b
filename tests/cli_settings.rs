//! Settings against the real `cdrbox run` binary (issue 10 item 2), with a simulated PBX making
//! calls all along: a save changes the file in the changed key alone and a naive GET→PUT round
//! trip changes nothing; a key that needs a restart is listed until `POST /api/restart`, which
//! restarts the box in the same process (the page moves to its new address and recording goes
//! on); switching a PBX off or removing it raises a standing "logging is off" alarm. Saves leave
//! the file and its backup private (0600), and no error shows a line that holds the secret.

mod cli_support;
mod settings_support;

use std::time::Duration;

use cdrbox::sim::{self, SimOptions};
use cli_support::{free_port, http, http_json, total, wait, RunningBox};
use serde_json::{json, Value};
use settings_support::changed_keys;

const LONG: Duration = Duration::from_secs(60);

fn pending(port: u16) -> Vec<String> {
    let (code, v) = http_json(port, "GET", "/api/config", "");
    assert_eq!(code, 200, "{v}");
    v["restart"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap().to_owned())
        .collect()
}

fn put(port: u16, change: Value) {
    let (code, body) = http(
        port,
        "PUT",
        "/api/config",
        &json!({ "config": change }).to_string(),
    );
    assert_eq!(code, 200, "PUT {change}: {body}");
}

fn alarms(port: u16) -> Vec<(String, String)> {
    let (_, v) = http_json(port, "GET", "/api/status", "");
    v["alarms"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["code"].as_str().unwrap_or("").to_owned(),
                        x["message"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Everything `cdrbox check-config` prints for the file.
fn check_config_says(path: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// More records arrive (the link keeps recording).
fn keeps_recording(port: u16) {
    let before = total(port);
    wait("new records", LONG, || total(port) > before);
}

#[test]
fn saves_change_one_key_restart_applies_the_rest_and_switching_off_is_never_silent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = rt
        .block_on(sim::bind(
            "127.0.0.1:0",
            SimOptions {
                username: "cdrbox".into(),
                secret: "s3cret".into(),
                rate_per_sec: 4.0,
                poisson: false,
                ..SimOptions::default()
            },
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (web1, web2) = (free_port(), free_port());
    let config = dir.path().join("cdrbox.toml");
    let text = format!(
        "# Test box\n[box]\nname = \"settings-test\" # on the page\n\n[[pbx]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"cdrbox\"\nsecret = \"s3cret\"\ntimezone = \"Europe/Moscow\"\n\n[storage]\npath = \"{}\"\nflush_interval_ms = 500\n\n[web]\nlisten = \"127.0.0.1:{web1}\"\n\n[display]\ndriver = \"none\"\n",
        pbx.local_addr().port(),
        dir.path().join("data").display()
    );
    std::fs::write(&config, &text).unwrap();
    let mut cdrbox = RunningBox::start(&config);
    let pid = cdrbox.child.id();
    wait("the first records", LONG, || total(web1) > 0);

    // Written by hand with the umask's 0644: check-config warns (the file holds the secret).
    assert!(check_config_says(&config).contains("open to others (mode 0644)"));

    // A script's naive round trip (GET the config, PUT it back) changes nothing.
    let (_, view) = http_json(web1, "GET", "/api/config", "");
    put(web1, view["config"].clone());
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);

    // One key: that line alone; a restart key is listed as pending, a live one is not.
    put(web1, json!({"storage": {"retention_days": 30}}));
    let saved = std::fs::read_to_string(&config).unwrap();
    assert_eq!(changed_keys(&text, &saved), ["storage.retention_days"]);
    // Issue 11 item 5: the file (it holds the secret) and its backup are private now.
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&dir.path().join("cdrbox.toml.bak")), 0o600);
    assert!(!check_config_says(&config).contains("open to others"));
    put(web1, json!({"log": {"level": "debug"}}));
    put(
        web1,
        json!({"web": {"listen": format!("127.0.0.1:{web2}")}}),
    );
    assert_eq!(pending(web1), ["storage.retention_days", "web.listen"]);
    keeps_recording(web1);

    // Restart: same process, the page moves, recording goes on, nothing is pending.
    let (code, body) = http(web1, "POST", "/api/restart", "{}");
    assert_eq!(code, 202, "{body}");
    wait("the page on its new address", LONG, || {
        http(web2, "GET", "/api/status", "").0 == 200
    });
    assert_eq!(
        http(web1, "GET", "/api/status", "").0,
        0,
        "the old address is closed"
    );
    assert!(cdrbox.still_running() && cdrbox.child.id() == pid);
    wait("the PBX logged in again", LONG, || pbx.logged_in() == 1);
    keeps_recording(web2);
    assert!(pending(web2).is_empty());

    // Switching the PBX off: a standing alarm, on the page/API and in the OLED's codes.
    put(web2, json!({"pbx": [{"_index": 0, "enabled": false}]}));
    wait("the session closed", LONG, || pbx.logged_in() == 0);
    // The status is republished once a second.
    wait("the logging-is-off alarm", LONG, || {
        alarms(web2).iter().any(|(code, msg)| {
            code == "PBX OFF" && msg.starts_with("logging is off for PBX office:")
        })
    });
    let saved_off = std::fs::read_to_string(&config).unwrap();
    assert!(saved_off.contains("enabled = false"));
    put(web2, json!({"pbx": [{"_index": 0, "enabled": true}]}));
    wait("the alarm cleared", LONG, || {
        !alarms(web2).iter().any(|(c, _)| c == "PBX OFF")
    });
    keeps_recording(web2);

    // Removing it: the alarm says so until the box restarts.
    put(web2, json!({"pbx": []}));
    wait("the removal alarm", LONG, || {
        alarms(web2)
            .iter()
            .any(|(c, m)| c == "PBX OFF" && m.contains("office") && m.contains("removed"))
    });
    assert!(!std::fs::read_to_string(&config).unwrap().contains("s3cret"));

    // A file broken by hand on a secret's line: the page's error never quotes it.
    std::fs::write(
        &config,
        "[[pbx]]\nname = \"office\"\nsecret = \"hunter2\" oops\n",
    )
    .unwrap();
    let (code, body) = http(web2, "GET", "/api/config", "");
    assert_eq!(code, 500, "{body}");
    assert!(
        body.contains("line 3") && !body.contains("hunter2"),
        "{body}"
    );
    let said = check_config_says(&config);
    assert!(
        said.contains("line 3") && !said.contains("hunter2"),
        "{said}"
    );

    assert!(cdrbox.still_running());
    cdrbox.stop();
    rt.block_on(pbx.stop());
}
