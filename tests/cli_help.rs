//! `cdrbox --help` on the real binary (issue 13 item 7): every command and every option of every
//! command says what it is for; an option listed without a sentence is a failure.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The entries of the `Commands:`, `Arguments:` and `Options:` sections: (name, help text).
/// clap prints one entry per line (no `wrap_help`), the help two or more spaces after the name.
fn entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in text.lines() {
        if matches!(line, "Commands:" | "Arguments:" | "Options:") {
            in_section = true;
            continue;
        }
        if line.is_empty() || !line.starts_with("  ") {
            in_section = false;
            continue;
        }
        if in_section {
            let item = line.trim_start();
            let (name, text) = item.split_once("  ").unwrap_or((item, ""));
            out.push((name.to_string(), text.trim().to_string()));
        }
    }
    out
}

#[test]
fn every_option_of_every_command_has_help() {
    let top = help(&[]);
    let commands: Vec<String> = entries(&top)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| !n.starts_with('-') && n != "help")
        .collect();
    assert!(
        commands.len() >= 11 && commands.iter().any(|c| c == "export"),
        "{top}"
    );
    let mut checked = 0;
    for (name, text) in entries(&top) {
        assert!(!text.is_empty(), "cdrbox --help: {name} has no help");
    }
    for command in &commands {
        let text = help(&[command]);
        for (name, about) in entries(&text) {
            assert!(
                !about.is_empty(),
                "cdrbox {command} --help: {name} has no help:\n{text}"
            );
            checked += 1;
        }
    }
    // export alone has 18 options; a parser that found nothing would pass vacuously.
    assert!(checked > 50, "only {checked} options seen");
}
