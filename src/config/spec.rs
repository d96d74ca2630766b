//! What a config key is: the [`Key`] record every entry of the table in [`super::keys`] is made
//! of, and the one check of a value against it ([`check_value`]) that the file parser and the
//! settings form both use, so the two can never disagree about ranges or messages.
//!
//! Pure code: no file or network I/O. Messages are plain words for people (`1–65535`, never
//! `1..=65535`) and never quote the value of a secret key.

use std::fmt::Write as _;

/// Validates one line of text and returns it normalised (trimmed, lower-cased, …), or says in
/// words what is wrong with it. The message must not repeat the key: the caller names it.
pub type Check = fn(&str) -> Result<String, String>;

/// The kind of value a key holds: decides the check, the form widget and the file syntax.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `true` or `false`.
    Bool,
    /// A whole number within `min`–`max` (inclusive).
    Int { min: i64, max: i64 },
    /// A TCP port, 1–65535.
    Port,
    /// One of a few words, case-insensitive in the file. `what` names them in messages
    /// ("a CSV profile"); empty means the generic "is not allowed".
    Choice {
        words: &'static [&'static str],
        what: &'static str,
    },
    /// One of a few whole numbers (`rotation`: 0 or 180).
    IntChoice(&'static [i64]),
    /// One line of text, checked and normalised by the function.
    Text(Check),
    /// A password or key: one line, never sent to the page, never quoted in a message, kept
    /// when the form leaves it empty.
    Secret,
    /// A list of one-line strings, each checked by the function (one per line on the form).
    List(Check),
    /// A file or directory path; must not be empty.
    Path,
    /// `address:port` to listen on (`0.0.0.0:80`, `[::]:80`).
    Listen,
    /// A 7-bit I2C address from the list: `60`, `"60"` or `"0x3C"` in the file.
    I2cAddress(&'static [i64]),
}

/// The value a key has when the file leaves it out.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// No default: the key must be given. The text says what to write (`a short name for this
    /// PBX, e.g. "office"`).
    Required(&'static str),
    Bool(bool),
    Int(i64),
    Str(&'static str),
    List(&'static [&'static str]),
    /// Optional with no value: absent means "not set" (an `Option` field that stays `None`).
    Unset,
}

/// The unit of a number, said in messages, labels and the file's comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Ms,
    Seconds,
    Minutes,
    Hours,
    Days,
    Mb,
    Percent,
    Kib,
}

impl Unit {
    /// The unit as people write it after a number (`ms`, `minutes`); empty for none.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::None => "",
            Unit::Ms => "ms",
            Unit::Seconds => "s",
            Unit::Minutes => "minutes",
            Unit::Hours => "hours",
            Unit::Days => "days",
            Unit::Mb => "MB",
            Unit::Kib => "KiB",
            Unit::Percent => "%",
        }
    }

    fn suffix(self) -> String {
        match self {
            Unit::None => String::new(),
            u => format!(" {}", u.as_str()),
        }
    }
}

/// When a changed value takes effect in the running box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// At once, on save (a PBX link reconnects by itself if its settings changed).
    Live,
    /// After a restart of the logger (the settings page says so and offers it).
    Restart,
}

/// One config key: everything the parser, the messages, the commented default file and the
/// settings form need to know about it. Build entries with [`Key::new`] and the setters.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// `box`, `pbx` (an array of `[[pbx]]` tables), `storage`, `web`, …
    pub table: &'static str,
    pub key: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
    pub unit: Unit,
    /// What the setting is, in words, for the form (`Group commit period`).
    pub label: &'static str,
    /// Heading the form groups the field under, inside its table (`Connection`).
    pub group: &'static str,
    /// Full explanation: the file's comment above the key and the form's help line. Plain
    /// sentences; the allowed range, unit and default are added from the other columns.
    pub help: &'static str,
    pub apply: Apply,
    /// Never sent to the page, redacted in `Debug`, never quoted in an error message.
    pub secret: bool,
    /// TOML text the default file shows instead of the default (`"office"` for a required
    /// name, `"change-me"` for a secret).
    pub example: Option<&'static str>,
    /// The form shows the field folded away under "Advanced" (rarely changed).
    pub advanced: bool,
}

impl Key {
    /// A live, non-secret key with an empty label and help; chain the setters below.
    pub const fn new(
        table: &'static str,
        key: &'static str,
        kind: Kind,
        default: DefaultValue,
    ) -> Key {
        Key {
            table,
            key,
            kind,
            default,
            unit: Unit::None,
            label: key,
            group: "",
            help: "",
            apply: Apply::Live,
            secret: matches!(kind, Kind::Secret),
            example: None,
            advanced: false,
        }
    }
    pub const fn label(mut self, label: &'static str) -> Key {
        self.label = label;
        self
    }
    pub const fn group(mut self, group: &'static str) -> Key {
        self.group = group;
        self
    }
    pub const fn help(mut self, help: &'static str) -> Key {
        self.help = help;
        self
    }
    pub const fn unit(mut self, unit: Unit) -> Key {
        self.unit = unit;
        self
    }
    /// Takes effect only after a restart.
    pub const fn restart(mut self) -> Key {
        self.apply = Apply::Restart;
        self
    }
    /// Holds a secret (a password inside a URL, say) even though its kind is not `Secret`.
    pub const fn secret(mut self) -> Key {
        self.secret = true;
        self
    }
    pub const fn example(mut self, toml: &'static str) -> Key {
        self.example = Some(toml);
        self
    }
    pub const fn advanced(mut self) -> Key {
        self.advanced = true;
        self
    }

    /// `pbx[0].port`, `storage.ring_kb`.
    pub fn path(&self, index: Option<usize>) -> String {
        match index {
            Some(i) => format!("{}[{i}].{}", self.table, self.key),
            None => format!("{}.{}", self.table, self.key),
        }
    }

    /// The allowed values in words (`100–3600000 ms`, `"md5" or "plain"`), for the file's
    /// comments and the form; `None` for free text.
    pub fn allowed(&self) -> Option<String> {
        let unit = self.unit.suffix();
        Some(match self.kind {
            Kind::Bool => "true or false".to_owned(),
            Kind::Int { min, max } => format!("{min}–{max}{unit}"),
            Kind::Port => "1–65535".to_owned(),
            Kind::Choice { words, .. } => or_list(words.iter().map(|w| format!("\"{w}\""))),
            Kind::IntChoice(v) => or_list(v.iter().map(|n| format!("{n}{unit}"))),
            Kind::I2cAddress(v) => or_list(v.iter().map(|n| format!("0x{n:02X}"))),
            Kind::Text(_) | Kind::Secret | Kind::List(_) | Kind::Path | Kind::Listen => {
                return None
            }
        })
    }

    /// The default as TOML text (`60000`, `"0x3C"`, `["^…"]`); `None` when there is none.
    pub fn default_toml(&self) -> Option<String> {
        Some(match self.default {
            DefaultValue::Required(_) | DefaultValue::Unset => return None,
            DefaultValue::Bool(b) => b.to_string(),
            DefaultValue::Int(n) => match self.kind {
                Kind::I2cAddress(_) => format!("\"0x{n:02X}\""),
                _ => n.to_string(),
            },
            DefaultValue::Str(s) => toml_string(s),
            DefaultValue::List(l) => {
                let items: Vec<String> = l.iter().map(|s| toml_string(s)).collect();
                format!("[{}]", items.join(", "))
            }
        })
    }

    /// The default as the normalised value the parser produces for it.
    pub fn default_value(&self) -> Option<toml::Value> {
        Some(match self.default {
            DefaultValue::Required(_) | DefaultValue::Unset => return None,
            DefaultValue::Bool(b) => toml::Value::Boolean(b),
            DefaultValue::Int(n) => toml::Value::Integer(n),
            DefaultValue::Str(s) => toml::Value::String(s.to_owned()),
            DefaultValue::List(l) => toml::Value::Array(
                l.iter()
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
        })
    }
}

/// `"a", "b" or "c"`.
fn or_list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A TOML basic string literal.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A table of free keys, every entry checked alike: `[names]` maps an extension or number to a
/// person's name (`"101" = "Анна Петрова"`). Its keys are the user's, so it has no [`Key`]
/// entries; this record is its one definition for the parser, the default file and the form.
#[derive(Debug, Clone, Copy)]
pub struct MapSpec {
    /// What a key is, for messages and the form's column (`Number`).
    pub key_label: &'static str,
    /// What a value is (`Name`).
    pub value_label: &'static str,
    /// Checks and normalises one key (a number written with spaces or dashes → digits).
    pub key_check: Check,
    /// Checks and normalises one value.
    pub value_check: Check,
    /// Most entries the table may hold (its memory is bounded like everything else).
    pub max_entries: usize,
    /// The file's comment above the table and the form's help line.
    pub help: &'static str,
    /// Commented example lines of the default file, `(key, value)`.
    pub example: &'static [(&'static str, &'static str)],
    pub apply: Apply,
}

/// One problem with an entry of a [`MapSpec`] table: `entry` is its place (0-based, in the
/// order given), `in_key` whether the key (not the value) is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    pub entry: usize,
    pub in_key: bool,
    pub detail: String,
}

/// Checks the entries of a [`MapSpec`] table, in the order given, and returns them normalised,
/// or every problem: a bad key or value, a key given twice once normalised (`"101"` and
/// `" 101"`, `"+7 499 123-45-67"` and `"+74991234567"`), too many entries. The file parser and
/// the settings form both call this, so they say the same thing.
pub fn check_entries(
    spec: &MapSpec,
    entries: &[(&str, Input<'_>)],
) -> Result<Vec<(String, String)>, Vec<EntryProblem>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut problems = Vec::new();
    let mut seen: std::collections::HashSet<String> = Default::default();
    for (i, (k, v)) in entries.iter().enumerate() {
        let key = match (spec.key_check)(k) {
            Ok(key) => key,
            Err(detail) => {
                problems.push(EntryProblem {
                    entry: i,
                    in_key: true,
                    detail,
                });
                continue;
            }
        };
        if seen.contains(&key) {
            problems.push(EntryProblem {
                entry: i,
                in_key: true,
                detail: format!(
                    "{} {key:?} is given twice: keep one",
                    spec.key_label.to_lowercase()
                ),
            });
            continue;
        }
        seen.insert(key.clone());
        let value = match v {
            Input::Str(s) => one_line(s)
                .map_err(|p| p[0].detail.clone())
                .and_then(|()| (spec.value_check)(s)),
            other => Err(format!(
                "expected text in quotes, not {}",
                other.type_words()
            )),
        };
        match value {
            Ok(value) => out.push((key, value)),
            Err(detail) => problems.push(EntryProblem {
                entry: i,
                in_key: false,
                detail,
            }),
        }
    }
    if entries.len() > spec.max_entries {
        problems.push(EntryProblem {
            entry: spec.max_entries,
            in_key: true,
            detail: format!(
                "too many entries: {} given, at most {} allowed",
                entries.len(),
                spec.max_entries
            ),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A value as it arrives, from the file or from the form, before it is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    Bool(bool),
    Int(i64),
    Str(&'a str),
    List(Vec<Input<'a>>),
    /// Anything else (a float, a date, a table), named for the message.
    Other(&'static str),
}

impl Input<'_> {
    fn type_words(&self) -> &'static str {
        match self {
            Input::Bool(_) => "true/false",
            Input::Int(_) => "a number",
            Input::Str(_) => "text",
            Input::List(_) => "a list",
            Input::Other(t) => t,
        }
    }
}

/// One thing wrong with a value: `item` is the list index when one element is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueProblem {
    pub item: Option<usize>,
    pub detail: String,
}

fn bad(detail: impl Into<String>) -> Vec<ValueProblem> {
    vec![ValueProblem {
        item: None,
        detail: detail.into(),
    }]
}

/// Checks `v` against `key` and returns the normalised value the validated config is built
/// from (choices lower-cased, text trimmed, I2C address as a number), or every problem found.
pub fn check_value(key: &Key, v: &Input<'_>) -> Result<toml::Value, Vec<ValueProblem>> {
    // A secret's value is never quoted; neither is its type beyond a word.
    let shown = |s: &str| -> String {
        if key.secret {
            "this value".to_owned()
        } else {
            format!("{s:?}")
        }
    };
    let wrong_type = |want: &str| bad(format!("expected {want}, not {}", v.type_words()));
    let unit = key.unit.suffix();
    match key.kind {
        Kind::Bool => match v {
            Input::Bool(b) => Ok(toml::Value::Boolean(*b)),
            _ => Err(wrong_type("true or false")),
        },
        Kind::Int { min, max } => match v {
            Input::Int(n) if (min..=max).contains(n) => Ok(toml::Value::Integer(*n)),
            Input::Int(n) => Err(bad(format!(
                "{n} is out of range (allowed {min}–{max}{unit})"
            ))),
            _ => Err(wrong_type(&format!("a whole number ({min}–{max}{unit})"))),
        },
        Kind::Port => match v {
            Input::Int(n) if (1..=65535).contains(n) => Ok(toml::Value::Integer(*n)),
            Input::Int(n) => Err(bad(format!("{n} is not a port number (1–65535)"))),
            _ => Err(wrong_type("a port number (1–65535)")),
        },
        Kind::Choice { words, what } => {
            let Input::Str(s) = v else {
                return Err(wrong_type(&key.allowed().unwrap_or_default()));
            };
            if let Some(w) = words.iter().find(|w| w.eq_ignore_ascii_case(s.trim())) {
                return Ok(toml::Value::String((*w).to_owned()));
            }
            let names: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
            let hint = super::did_you_mean(s, words.iter().copied())
                .map(|c| format!("; did you mean {c:?}?"))
                .unwrap_or_default();
            let is = if what.is_empty() {
                "is not allowed".to_owned()
            } else {
                format!("is not {what}")
            };
            Err(bad(format!(
                "{} {is} (allowed: {}{hint})",
                shown(s),
                names.join(", ")
            )))
        }
        Kind::IntChoice(allowed) => match v {
            Input::Int(n) if allowed.contains(n) => Ok(toml::Value::Integer(*n)),
            Input::Int(n) => {
                let names: Vec<String> = allowed.iter().map(i64::to_string).collect();
                Err(bad(format!(
                    "{n} is not allowed (allowed: {})",
                    names.join(", ")
                )))
            }
            _ => Err(wrong_type(&key.allowed().unwrap_or_default())),
        },
        Kind::I2cAddress(allowed) => {
            let n = match v {
                Input::Int(n) => Some(*n),
                Input::Str(s) => {
                    let s = s.trim();
                    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                        Some(hex) => i64::from_str_radix(hex, 16).ok(),
                        None => s.parse().ok(),
                    }
                }
                _ => None,
            };
            let names: Vec<String> = allowed.iter().map(|n| format!("0x{n:02X}")).collect();
            match n {
                Some(n) if allowed.contains(&n) => Ok(toml::Value::Integer(n)),
                Some(n) => Err(bad(format!(
                    "{n:#04X} ({n}) is not an SSD1306 address (allowed: {})",
                    names.join(", ")
                ))),
                None => Err(bad(match v {
                    Input::Str(s) => format!("{s:?} is not an I2C address (write 0x3C or 60)"),
                    _ => "is not an I2C address (write 0x3C or 60)".to_owned(),
                })),
            }
        }
        Kind::Text(check) => match v {
            Input::Str(s) => {
                one_line(s)?;
                check(s).map(toml::Value::String).map_err(bad)
            }
            _ => Err(wrong_type("text")),
        },
        Kind::Secret => match v {
            Input::Str(s) => {
                if s.contains(['\r', '\n']) {
                    return Err(bad("must not contain line breaks"));
                }
                if s.contains('\0') {
                    return Err(bad("must not contain a NUL character"));
                }
                Ok(toml::Value::String((*s).to_owned()))
            }
            _ => Err(wrong_type("text in quotes")),
        },
        Kind::List(check) => {
            let Input::List(items) = v else {
                return Err(wrong_type("a list of texts in quotes, e.g. [\"a\", \"b\"]"));
            };
            let mut out = Vec::new();
            let mut problems = Vec::new();
            for (j, item) in items.iter().enumerate() {
                let r = match item {
                    Input::Str(s) => one_line(s).and_then(|()| check(s).map_err(bad)),
                    other => Err(bad(format!("expected text, not {}", other.type_words()))),
                };
                match r {
                    Ok(s) => out.push(toml::Value::String(s)),
                    Err(ps) => problems.extend(ps.into_iter().map(|p| ValueProblem {
                        item: Some(j),
                        detail: p.detail,
                    })),
                }
            }
            if problems.is_empty() {
                Ok(toml::Value::Array(out))
            } else {
                Err(problems)
            }
        }
        Kind::Path => match v {
            Input::Str(s) if s.trim().is_empty() => Err(bad("must not be empty")),
            Input::Str(s) => {
                one_line(s)?;
                Ok(toml::Value::String((*s).to_owned()))
            }
            _ => Err(wrong_type("a path in quotes")),
        },
        Kind::Listen => match v {
            Input::Str(s) => match s.trim().parse::<std::net::SocketAddr>() {
                Ok(a) => Ok(toml::Value::String(a.to_string())),
                Err(_) => Err(bad(format!(
                    "{s:?} is not an address:port (e.g. \"0.0.0.0:80\", \"127.0.0.1:8080\", \"[::]:80\")"
                ))),
            },
            _ => Err(wrong_type("an address:port in quotes")),
        },
    }
}

fn one_line(s: &str) -> Result<(), Vec<ValueProblem>> {
    if s.contains(['\r', '\n', '\0']) {
        Err(bad("must be one line"))
    } else {
        Ok(())
    }
}

/// The message for a required key that is missing or empty.
pub fn required_problem(key: &Key, present_but_empty: bool) -> Option<String> {
    let DefaultValue::Required(hint) = key.default else {
        return None;
    };
    Some(if present_but_empty {
        format!("must not be empty ({hint})")
    } else {
        format!("missing ({hint})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_check(s: &str) -> Result<String, String> {
        Ok(s.to_owned())
    }

    const INT: Key = Key::new(
        "t",
        "n",
        Kind::Int { min: 1, max: 10 },
        DefaultValue::Int(5),
    )
    .unit(Unit::Ms);
    const PASS: Key = Key::new("t", "secret", Kind::Secret, DefaultValue::Str(""));
    const WORD: Key = Key::new(
        "t",
        "w",
        Kind::Choice {
            words: &["md5", "plain"],
            what: "",
        },
        DefaultValue::Str("md5"),
    );

    #[test]
    fn table_of_checks() {
        let cases: Vec<(&Key, Input<'_>, Result<toml::Value, &str>)> = vec![
            (&INT, Input::Int(3), Ok(toml::Value::Integer(3))),
            (&INT, Input::Int(0), Err("0 is out of range (allowed 1–10 ms)")),
            (&INT, Input::Str("3"), Err("expected a whole number (1–10 ms), not text")),
            (&WORD, Input::Str(" MD5 "), Ok(toml::Value::String("md5".into()))),
            (&WORD, Input::Str("sha1"), Err("\"sha1\" is not allowed (allowed: \"md5\", \"plain\")")),
            (&WORD, Input::Str("plian"), Err("\"plian\" is not allowed (allowed: \"md5\", \"plain\"; did you mean \"plain\"?)")),
            (&PASS, Input::Str("a\nb"), Err("must not contain line breaks")),
            (&PASS, Input::Int(5), Err("expected text in quotes, not a number")),
        ];
        for (key, input, want) in cases {
            let got = check_value(key, &input).map_err(|p| p[0].detail.clone());
            assert_eq!(got, want.map_err(str::to_owned), "{input:?}");
        }
    }

    #[test]
    fn secrets_are_never_quoted() {
        let k = Key::new(
            "t",
            "secret",
            Kind::Choice {
                words: &["a"],
                what: "",
            },
            DefaultValue::Str("a"),
        )
        .secret();
        let e = check_value(&k, &Input::Str("hunter2")).unwrap_err();
        assert!(!e[0].detail.contains("hunter2"), "{e:?}");
    }

    #[test]
    fn list_items_are_named_by_index() {
        fn short(s: &str) -> Result<String, String> {
            if s.len() < 3 {
                Ok(s.into())
            } else {
                Err("too long".into())
            }
        }
        let k = Key::new("t", "l", Kind::List(short), DefaultValue::List(&[]));
        let e = check_value(
            &k,
            &Input::List(vec![Input::Str("ok"), Input::Str("long"), Input::Int(1)]),
        )
        .unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].item, e[0].detail.as_str()), (Some(1), "too long"));
        assert_eq!(e[1].item, Some(2));
        let ok = check_value(
            &Key::new("t", "l", Kind::List(no_check), DefaultValue::List(&[])),
            &Input::List(vec![]),
        );
        assert_eq!(ok, Ok(toml::Value::Array(vec![])));
    }

    #[test]
    fn allowed_and_defaults_in_words() {
        assert_eq!(INT.allowed().as_deref(), Some("1–10 ms"));
        assert_eq!(WORD.allowed().as_deref(), Some("\"md5\" or \"plain\""));
        let addr = Key::new(
            "d",
            "address",
            Kind::I2cAddress(&[0x3C, 0x3D]),
            DefaultValue::Int(0x3C),
        );
        assert_eq!(addr.allowed().as_deref(), Some("0x3C or 0x3D"));
        assert_eq!(addr.default_toml().as_deref(), Some("\"0x3C\""));
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
