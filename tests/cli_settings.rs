//! Settings against the real `cdrbox run` binary (issue 10 item 2), with a simulated PBX making
//! calls all along: a save changes the file in the changed key alone and a naive GET→PUT round
//! trip changes nothing; a key that needs a restart is listed until `POST /api/restart`, which
//! restarts the box in the same process (the page moves to its new address and recording goes
//! on); switching a PBX off or removing it raises a standing "logging is off" alarm. Saves leave
//! the file and its backup private (0600), and no error shows a line that holds the secret.

use crate::cli_support;
use crate::settings_support;

use std::time::Duration;

use cli_support::{free_port, http, http_bytes, http_json, total, wait, RunningBox, PASS};
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

/// The OLED's alarm page shows `PBX OFF` among exactly the alarm codes of `/api/status`, read
/// back from the panel's mirror (`GET /display.png`, the frame the panel gets, drawn 3×
/// larger). The pages rotate every `page_seconds` (1 s here), so this is polled.
fn oled_shows_pbx_off(port: u16) -> bool {
    let (_, status) = http_json(port, "GET", "/api/status", "");
    let alarms: Vec<cdrbox::status::Alarm> = status["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| cdrbox::status::Alarm {
            code: a["code"].as_str().unwrap_or("").to_owned(),
            subject: a["subject"].as_str().map(str::to_owned),
            message: a["message"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    if !alarms.iter().any(|a| a.code == "PBX OFF") {
        return false;
    }
    let view = cdrbox::status::StatusView {
        alarms,
        ..Default::default()
    };
    let want = cdrbox::display::render_frame(&view, 0);
    let (code, png) = http_bytes(port, "GET", "/display.png", "");
    if code != 200 {
        return false;
    }
    let Ok(mut reader) = png::Decoder::new(std::io::Cursor::new(png)).read_info() else {
        return false;
    };
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let Ok(info) = reader.next_frame(&mut buf) else {
        return false;
    };
    let scale = info.width / cdrbox::display::frame::WIDTH;
    let stride = info.line_size;
    let lit = |x: u32, y: u32| {
        let (px, py) = ((x * scale) as usize, (y * scale) as usize);
        buf[py * stride + px / 8] & (0x80 >> (px % 8)) != 0
    };
    // Every pixel but the header's right end, which says "1/3" by the box's page count (this
    // view has fewer pages): the inverted "ALARM" header and the codes below it.
    (0..cdrbox::display::frame::HEIGHT).all(|y| {
        (0..cdrbox::display::frame::WIDTH)
            .filter(|x| y > 9 || *x < 90)
            .all(|x| lit(x, y) == want.get(x as i32, y as i32))
    })
}

/// More records arrive (the link keeps recording).
fn keeps_recording(port: u16) {
    let before = total(port);
    wait("new records", LONG, || total(port) > before);
}

#[test]
fn saves_change_one_key_restart_applies_the_rest_and_switching_off_is_never_silent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = rt.block_on(cli_support::steady_pbx("127.0.0.1:0", 4.0));
    let dir = tempfile::tempdir().unwrap();
    let (web1, web2) = (free_port(), free_port());
    let config = dir.path().join("cdrbox.toml");
    let text = format!(
        "# Test box\n[box]\nname = \"settings-test\" # on the page\n\n[[pbx]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"cdrbox\"\nsecret = \"s3cret\"\ntimezone = \"Europe/Moscow\"\n\n[storage]\npath = \"{}\"\nflush_interval_ms = 500\n\n[web]\nlisten = \"127.0.0.1:{web1}\"\n\n[display]\ndriver = \"none\"\npage_seconds = 1\n",
        pbx.local_addr().port(),
        dir.path().join("data").display()
    );
    std::fs::write(&config, &text).unwrap();
    let mut cdrbox = RunningBox::start(&config, PASS);
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
    // A backup opened by hand is warned about too (it holds the secret as well).
    let bak = dir.path().join("cdrbox.toml.bak");
    std::fs::set_permissions(&bak, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let said = check_config_says(&config);
    assert!(
        said.contains(&format!("{} is open to others (mode 0644)", bak.display())),
        "{said}"
    );
    put(web1, json!({"log": {"level": "debug"}}));
    assert_eq!(mode(&bak), 0o600, "the next save closes the backup again");
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

    // Issue 11 item 5: a new address or plain login needs the secret typed again. The API
    // refuses to carry the stored secret over (the file stays as it was and nothing connects
    // to the new address); typed again, it is accepted and the link moves there.
    let other = rt.block_on(cli_support::steady_pbx("127.0.0.2:0", 4.0));
    let moved = json!({"_index": 0, "host": "127.0.0.2", "port": other.local_addr().port()});
    let before = std::fs::read_to_string(&config).unwrap();
    for change in [
        json!([moved.clone()]),
        json!([{"_index": 0, "host": "127.0.0.2", "port": other.local_addr().port(), "secret": ""}]),
        json!([{"_index": 0, "auth": "plain"}]),
        json!([{"_index": 0, "auth": "PLAIN", "secret": null}]),
        // The same PBX twice, the copy moved: still the stored secret going elsewhere.
        json!([{"_index": 0}, {"_index": 0, "name": "copy", "host": "127.0.0.2"}]),
        // No _index: the first entry of the list is the file's first PBX.
        json!([{"name": "office", "host": "127.0.0.2", "username": "cdrbox"}]),
    ] {
        let body = json!({ "config": {"pbx": change} }).to_string();
        let (code, v) = http_json(web2, "PUT", "/api/config", &body);
        assert_eq!(code, 400, "{change}: {v}");
        let param = v["param"].as_str().unwrap_or("");
        assert!(param.ends_with(".secret"), "{change}: {v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("enter the secret again")),
            "{change}: {v}"
        );
        assert_eq!(
            std::fs::read_to_string(&config).unwrap(),
            before,
            "{change}"
        );
    }
    assert_eq!(
        other.stats().connections,
        0,
        "something connected to the new address"
    );
    let mut typed = moved.clone();
    typed["secret"] = json!("s3cret");
    put(web2, json!({ "pbx": [typed] }));
    wait("the PBX at its new address logged in", LONG, || {
        other.logged_in() == 1
    });
    keeps_recording(web2);
    put(
        web2,
        json!({"pbx": [{"_index": 0, "host": "127.0.0.1", "port": pbx.local_addr().port(), "secret": "s3cret"}]}),
    );
    wait("the PBX back at its first address", LONG, || {
        pbx.logged_in() == 1 && other.logged_in() == 0
    });
    rt.block_on(other.stop());

    // Switching the PBX off: a standing alarm, on the page/API and in the OLED's codes.
    put(web2, json!({"pbx": [{"_index": 0, "enabled": false}]}));
    wait("the session closed", LONG, || pbx.logged_in() == 0);
    // The status is republished once a second.
    wait("the logging-is-off alarm", LONG, || {
        alarms(web2).iter().any(|(code, msg)| {
            code == "PBX OFF" && msg.starts_with("logging is off for PBX office:")
        })
    });
    wait("PBX OFF on the OLED", LONG, || oled_shows_pbx_off(web2));
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
    wait("the removal on the OLED", LONG, || oled_shows_pbx_off(web2));
    assert!(!std::fs::read_to_string(&config).unwrap().contains("s3cret"));

    // A file broken by hand so that the broken line holds the secret: neither the page's
    // error, nor check-config, nor (after a restart from the page) the CONFIG alarm quotes it.
    for (broken, line) in [
        ("[[pbx]]\nname = \"office\"\nsecret = \"hunter2\" oops\n", 3),
        // Two keys on one line, the first harmless.
        ("[[pbx]]\nname = \"office\" secret = \"hunter2\"\n", 2),
        ("[[pbx]] secret = \"hunter2\"\nname = \"office\"\n", 1),
        (
            "[[pbx]]\nname = \"office\"\nport = 5038 x # secret hunter2\n",
            3,
        ),
    ] {
        std::fs::write(&config, broken).unwrap();
        let (code, body) = http(web2, "GET", "/api/config", "");
        assert_eq!(code, 500, "{body}");
        assert!(
            body.contains(&format!("line {line}")) && !body.contains("hunter2"),
            "{broken}: {body}"
        );
        let said = check_config_says(&config);
        assert!(
            said.contains(&format!("line {line}")) && !said.contains("hunter2"),
            "{broken}: {said}"
        );
    }
    let (code, body) = http(web2, "POST", "/api/restart", "{}");
    assert_eq!(code, 202, "{body}");
    wait("the CONFIG alarm after the restart", LONG, || {
        alarms(web2).iter().any(|(c, _)| c == "CONFIG")
    });
    let (_, status) = http(web2, "GET", "/api/status", "");
    assert!(!status.contains("hunter2"), "{status}");

    assert!(cdrbox.still_running());
    cdrbox.stop();
    rt.block_on(pbx.stop());
}
