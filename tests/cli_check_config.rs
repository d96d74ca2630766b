//! `cdrbox check-config` on the real binary (issue 13 item 7): every problem of a file in one
//! run, each once, with its line; error chains that say each thing once.

use crate::box_process;

fn check(path: &std::path::Path) -> (bool, String, String) {
    box_process::command("check-config", path)
}

/// `check-config` on a file holding `text` (in a temporary directory): the file as the messages
/// name it, and the outcome.
fn check_text(text: &str) -> (String, (bool, String, String)) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, text).unwrap();
    (file.display().to_string(), check(&file))
}

#[test]
fn every_problem_in_one_run_and_nothing_said_twice() {
    let (name, (ok, stdout, stderr)) = check_text(
        "[web]\nworkers = 0\nlisten = 0.0.0.0:80\n\n[[pbx]]\nname = \"office\"\nhots = \"10.0.0.1\"\nusername = \"u\"\nsecret = \"hunter2\" x\ntimezone = \"Europe/Moskow\"\n\n[stoarge]\npath = \"/x\"\n",
    );
    assert!(!ok, "{stdout}{stderr}");
    assert_eq!(
        stderr.matches(&name).count(),
        1,
        "the file is named once:\n{stderr}"
    );
    assert!(stderr.contains("6 problems:"), "{stderr}");
    for want in [
        "web.workers: 0 is out of range (allowed 1–64) at line 2",
        "invalid TOML",
        "at line 3",
        "unknown key \"hots\" in pbx[0] (did you mean \"host\"?) at line 7",
        "at line 9",
        "pbx[0].timezone: \"Europe/Moskow\" is not an IANA time zone (did you mean \"Europe/Moscow\"?) at line 10",
        "unknown table [stoarge] (did you mean [storage]?) at line 12",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    // The secret's line is never quoted; no key is named twice in one message.
    assert!(!stderr.contains("hunter2"), "{stderr}");
    for line in stderr.lines().filter(|l| l.trim_start().starts_with("- ")) {
        if let Some((key, rest)) = line.trim_start_matches([' ', '-']).split_once(": ") {
            assert!(!rest.starts_with(key), "key repeated: {line}");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let (ok, _, stderr) = check(&missing);
    assert!(!ok);
    assert_eq!(stderr.matches("nope.toml").count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[[pbx]]\nname = \"office\"\nhost = \"10.0.0.1\"\nusername = \"u\"\nsecret = \"s\"\ntimezone = \"Europe/Moscow\"\n").unwrap();
    let (ok, stdout, stderr) = check(&good);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(": OK — 1 PBX link(s)"), "{stdout}");
}

/// Issue 13 item 7: a broken table header (`[[pbx]`) is one problem; the keys under it are not
/// blamed on another table, and the rest of the file is still checked.
#[test]
fn a_broken_header_is_one_problem_and_the_rest_is_still_checked() {
    let (_, (ok, _, stderr)) = check_text(
        "[[pbx]\nname = \"x\"\nport = 99999\n[web]\nworkerz = 3\n[storag\npath = 5\n[box]\nnme = \"a\"\n",
    );
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().skip(1).map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "- invalid TOML: unclosed array table, expected `]`; the keys below it are checked once this line is fixed at line 1, column 7",
            "- unknown key \"workerz\" in [web] (did you mean \"workers\"?) at line 5",
            "- invalid TOML: unclosed table, expected `]`; the keys below it are checked once this line is fixed at line 6, column 8",
            "- unknown key \"nme\" in [box] (did you mean \"name\"?) at line 9",
        ],
        "{stderr}"
    );
}
