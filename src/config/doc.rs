//! The commented default configuration, generated from the key table: `config/cdrbox.toml` is
//! this function's output, checked by a test (`UPDATE_GOLDEN=1` rewrites the file), so the file
//! and the parser can never disagree about a key, its default or its range.

use super::keys::{self, TABLES};
use super::spec::{DefaultValue, Key};

const WIDTH: usize = 95;

const HEADER: &str = "\
# cdrbox configuration — the documented default, embedded in the binary.
#
# Every key is shown with its default value; delete a line or leave it as it is to keep the
# default. Key names are a contract: scripts and the settings page write them. Unknown keys
# are refused with a \"did you mean\" hint, so typos cannot silently do nothing.
# Check a file with:  cdrbox check-config --config /etc/cdrbox/cdrbox.toml
# (Generated from the key table in src/config/keys.rs; edit there, not here.)
";

const RULE: &str =
    "# ---------------------------------------------------------------------------------------------";

/// `text` as `# ` comment lines of at most [`WIDTH`] characters.
fn comment(text: &str, out: &mut String) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.chars().count() + 1 + word.chars().count() > WIDTH && line != "#" {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line != "#" {
        out.push_str(&line);
        out.push('\n');
    }
}

/// The sentence after the help: allowed values and the default.
fn facts(k: &Key) -> String {
    let mut s = String::new();
    if let Some(a) = k.allowed() {
        s.push_str(&format!("Allowed: {a}."));
    }
    let default = match k.default {
        DefaultValue::Required(_) => Some("Required.".to_owned()),
        DefaultValue::Unset => Some("Not set by default.".to_owned()),
        DefaultValue::Str("") => None,
        _ => k.default_toml().map(|d| format!("Default {d}.")),
    };
    if let Some(d) = default {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&d);
    }
    s
}

/// The whole default file.
pub fn default_file() -> String {
    let mut out = String::from(HEADER);
    for t in TABLES {
        out.push('\n');
        if !t.doc.is_empty() {
            out.push_str(RULE);
            out.push('\n');
            comment(t.doc, &mut out);
            out.push_str(RULE);
            out.push('\n');
        }
        if let Some(map) = t.map {
            // A table of free keys: empty by default, its entries shown as commented examples.
            out.push_str(&format!("[{}]\n", t.name));
            comment(map.help, &mut out);
            for (k, v) in map.example {
                out.push_str(&format!(
                    "#{} = {}\n",
                    super::spec::toml_string(k),
                    super::spec::toml_string(v)
                ));
            }
            continue;
        }
        // An array table has no entry by default: its keys are shown as a commented example.
        let off = if t.array { "#" } else { "" };
        if t.array {
            out.push_str(&format!("#[[{}]]\n", t.name));
        } else {
            out.push_str(&format!("[{}]\n", t.name));
        }
        for k in keys::keys_of(t.name) {
            let mut text = k.help.to_owned();
            let f = facts(k);
            if !f.is_empty() {
                text.push(' ');
                text.push_str(&f);
            }
            comment(&text, &mut out);
            let value = k.example.map(str::to_owned).or_else(|| k.default_toml());
            let hidden = t.array || k.example.is_some() && k.default_toml().is_none();
            match value {
                Some(v) => out.push_str(&format!(
                    "{}{} = {v}\n",
                    if hidden { "#" } else { off },
                    k.key
                )),
                None => out.push_str(&format!("#{} = \n", k.key)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped file is exactly the generated one. `UPDATE_GOLDEN=1` rewrites it.
    #[test]
    fn default_file_is_generated_from_the_table() {
        let want = default_file();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cdrbox.toml");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap();
        if have != want {
            let first = have
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(have.lines().count().min(want.lines().count()));
            panic!(
                "config/cdrbox.toml is not what src/config/keys.rs generates (first difference at line {}):\n  file: {:?}\n table: {:?}\nRun UPDATE_GOLDEN=1 cargo test --release --lib config:: to regenerate it.",
                first + 1,
                have.lines().nth(first).unwrap_or(""),
                want.lines().nth(first).unwrap_or("")
            );
        }
    }

    #[test]
    fn comments_wrap_at_the_width() {
        let mut out = String::new();
        comment(&"word ".repeat(60), &mut out);
        assert!(out
            .lines()
            .all(|l| l.chars().count() <= WIDTH && l.starts_with("# ")));
        assert_eq!(out.split_whitespace().filter(|w| *w == "word").count(), 60);
    }
}
