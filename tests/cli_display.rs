//! `cdrbox display --png` on the real binary (issue 13 item 8): it says which page of how many it
//! wrote and how to get each of the others, refuses a page the screen does not have or a scale
//! out of range, and says that links are drawn as not connected because it does not connect.

use std::path::Path;
use std::process::Command;

use crate::box_process;

use box_process::{BoxConfig, BIN};

fn display(config: &Path, png: &Path, more: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["display", "--config"])
        .arg(config)
        .arg("--png")
        .arg(png)
        .args(more)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One PBX nobody answers for, the journal in `dir`, no display.
fn one_pbx(dir: &Path) -> BoxConfig {
    BoxConfig::new(dir)
        .pbx(
            "office",
            box_process::free_port(),
            ("u", "s"),
            &["timezone = \"UTC\""],
        )
        .storage(&[])
        .web(0, &[])
        .no_display()
}

#[test]
fn display_png_names_the_page_it_wrote_and_refuses_what_it_cannot_draw() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_pbx(dir.path()).write();
    let png = dir.path().join("oled.png");

    let (code, out, err) = display(&config, &png, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "wrote {}: page 1 of 2 (summary); all pages: --page 1 summary, --page 2 PBX link\n\
             links are drawn as not connected: this command reads the journal and does not connect to a PBX\n",
            png.display()
        )
    );
    let first = std::fs::read(&png).unwrap();
    assert!(first.starts_with(b"\x89PNG"));

    let (code, out, err) = display(&config, &png, &["--page", "2", "--scale", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("wrote {}: page 2 of 2 (PBX link)", png.display())),
        "{out}"
    );
    assert_ne!(
        std::fs::read(&png).unwrap(),
        first,
        "another page, another picture"
    );

    let (code, _, err) = display(&config, &png, &["--page", "3"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "cdrbox: --page 3: the screen has 2 page(s) now: --page 1 summary, --page 2 PBX link\n"
    );
    let (code, _, err) = display(&config, &png, &["--scale", "99"]);
    assert_eq!(code, 2, "clap refuses it: {err}");
    assert!(err.contains("99 is not in 1..=16"), "{err}");
}

/// Issue 16 item 4: with `[uplink] url` set the rotation has an uplink page, drawn as offline
/// (the command does not connect), and nothing it prints holds the URL's password.
#[test]
fn display_png_draws_the_uplink_page_when_an_uplink_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_pbx(dir.path())
        .table(
            "[uplink]",
            &["url = \"postgres://cdrbox:pa55word-xyz@127.0.0.1:1/cdr?sslmode=disable\""],
        )
        .write();
    let png = dir.path().join("oled.png");
    let (code, out, err) = display(&config, &png, &["--page", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!(
            "wrote {}: page 3 of 3 (uplink); all pages: --page 1 summary, --page 2 PBX link, --page 3 uplink\n",
            png.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "the uplink is drawn as offline: this command does not connect to the central server"
        ),
        "{out}"
    );
    assert!(
        !out.contains("pa55word") && !err.contains("pa55word"),
        "{out}{err}"
    );
    let uplink_page = std::fs::read(&png).unwrap();
    let (code, _, err) = display(&config, &png, &["--page", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(std::fs::read(&png).unwrap(), uplink_page, "its own picture");
}
