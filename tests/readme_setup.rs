//! README.md's Asterisk setup snippets are the setup-help page's text (issue 13 item 8: the
//! README said `write = system`, `writetimeout = 1000` while the page said `write = reporting`,
//! `writetimeout = 5000`). One source, `cdrbox::web::setup`; this test compares the README's
//! marked blocks with it, and `UPDATE_GOLDEN=1` writes the page's text into the README.

use cdrbox::web::setup;

/// Each marked README block and the text the page shows for the example PBX.
fn blocks() -> Vec<(&'static str, String)> {
    vec![
        (
            "manager.conf",
            setup::manager_conf(&setup::example_pbx(), Some(setup::EXAMPLE_BOX_IP)),
        ),
        ("cdr_manager.conf", setup::cdr_manager_conf()),
        ("cdr.conf", setup::cdr_conf()),
    ]
}

/// A fenced ini block, indented to sit inside the README's numbered list.
fn fenced(text: &str) -> String {
    let mut out = String::from("   ```ini\n");
    for line in text.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("   {line}\n"));
        }
    }
    out.push_str("   ```\n");
    out
}

#[test]
fn readme_setup_snippets_are_the_setup_help_text() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let mut readme = std::fs::read_to_string(path).unwrap();
    let mut stale = Vec::new();
    for (name, text) in blocks() {
        let open = format!("<!-- setup-help: {name} -->\n");
        let start = readme
            .find(&open)
            .unwrap_or_else(|| panic!("README.md has no {open:?} marker"))
            + open.len();
        let end = start
            + readme[start..]
                .find("<!-- /setup-help -->")
                .unwrap_or_else(|| panic!("README.md: {name} block is not closed"));
        let want = fenced(&text);
        if readme[start..end] != want {
            stale.push(format!(
                "{name}:\n--- README.md\n{}\n--- setup help\n{want}",
                &readme[start..end]
            ));
            readme.replace_range(start..end, &want);
        }
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &readme).unwrap();
        return;
    }
    assert!(
        stale.is_empty(),
        "README.md differs from the setup-help page (UPDATE_GOLDEN=1 copies the page's text):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_snippets_carry_what_the_box_needs() {
    let m = setup::manager_conf(&setup::example_pbx(), Some(setup::EXAMPLE_BOX_IP));
    for want in [
        "read = cdr,system",
        "write = reporting",
        "writetimeout = 5000",
        "allowmultiplelogin = yes",
        "permit = 192.168.1.50/255.255.255.255",
        "[cdrbox]",
        "port = 5038",
    ] {
        assert!(m.contains(want), "{want} missing from:\n{m}");
    }
    assert!(
        !m.contains("a-long-random-secret"),
        "no secret is ever shown"
    );
    let c = setup::cdr_manager_conf();
    for want in [
        "linkedid => LinkedID",
        "sequence => Sequence",
        "enabled = yes",
    ] {
        assert!(c.contains(want), "{want} missing from:\n{c}");
    }
    assert!(setup::cdr_conf().contains("batch = no"));
}
