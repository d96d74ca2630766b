//! The real `cdrbox run` binary, with an OLED configured on an I2C bus that does not exist:
//! it records anyway (issue 4: a missing or failing display never stops the logger), and a PBX
//! address changed through `PUT /api/config` makes the link reconnect to the new PBX without a
//! restart (issue 3: settings applied live), with the secret never sent back. Then `export
//! --output` and `display --png` over the same journal.

use crate::cli_support;

use std::process::Command;
use std::time::Duration;

use cdrbox::sim::{self, Scenario, SimOptions};
use cli_support::{http, total, wait, BoxConfig, RunningBox, PASS};

#[test]
fn records_without_its_display_and_applies_a_new_pbx_address_live() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = || SimOptions {
        username: "cdrbox".into(),
        secret: "live-secret".into(),
        rate_per_sec: 0.0,
        ..SimOptions::default()
    };
    let (a, b) = rt.block_on(async {
        let a = sim::bind("127.0.0.1:0", opts()).await.unwrap();
        let b = sim::bind("127.0.0.1:0", opts()).await.unwrap();
        (a, b)
    });
    let dir = tempfile::tempdir().unwrap();
    let web = cli_support::free_port();
    let no_bus = format!(
        "i2c_bus = \"{}\"",
        dir.path().join("no-such-i2c-bus").display()
    );
    let config = BoxConfig::new(dir.path())
        .pbx(
            "office",
            a.local_addr().port(),
            ("cdrbox", "live-secret"),
            &["timezone = \"Europe/Moscow\""],
        )
        .storage(&[])
        .web(web, &[])
        .table("[display]", &["driver = \"ssd1306\"", &no_bus])
        .write();
    let mut child = RunningBox::start(&config, PASS);

    // Recording works although the OLED's bus does not exist.
    wait("login on PBX A", Duration::from_secs(30), || {
        a.logged_in() == 1
    });
    a.trigger_call(Scenario::Answered);
    wait(
        "the call from PBX A on the page",
        Duration::from_secs(30),
        || total(web) >= 1,
    );
    // The status snapshot is republished once a second.
    wait(
        "the link shown up on the status page",
        Duration::from_secs(10),
        || {
            http(web, "GET", "/api/status", "")
                .1
                .contains("\"state\":\"up\"")
        },
    );

    // Move the link to PBX B through the API; no restart.
    let body = format!(
        r#"{{"pbx":[{{"name":"office","host":"127.0.0.1","port":{}}}]}}"#,
        b.local_addr().port()
    );
    let (code, resp) = http(web, "PUT", "/api/config", &body);
    assert_eq!(code, 200, "PUT /api/config: {resp}");
    assert!(
        !resp.contains("live-secret"),
        "the AMI secret is never sent back"
    );
    wait("login on PBX B", Duration::from_secs(30), || {
        b.logged_in() == 1
    });
    wait("PBX A's session closed", Duration::from_secs(30), || {
        a.logged_in() == 0
    });
    let before = total(web);
    b.trigger_call(Scenario::Busy);
    wait("the call from PBX B", Duration::from_secs(30), || {
        total(web) > before
    });
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(
        saved.contains(&format!("port = {}", b.local_addr().port())),
        "saved to the file:\n{saved}"
    );
    assert!(child.still_running(), "the logger never restarted");
    child.stop();

    // The one-shot commands over the same journal write their files atomically: complete, and
    // no temporary file left beside them.
    let out = dir.path().join("calls.csv");
    let export = Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(["export", "--format", "csv", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(export.status.success(), "{export:?}");
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.lines().count() >= 3, "header and both calls:\n{csv}");
    assert!(csv.contains("BUSY") && csv.contains("ANSWERED"), "{csv}");
    let png = dir.path().join("oled.png");
    let display = Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(["display", "--config"])
        .arg(&config)
        .arg("--png")
        .arg(&png)
        .output()
        .unwrap();
    assert!(display.status.success(), "{display:?}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    rt.block_on(async {
        a.stop().await;
        b.stop().await;
    });
}
