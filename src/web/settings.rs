//! The settings page's model: the config file as JSON for the form (secrets removed), a form's
//! changes written back into the TOML with every comment kept (`toml_edit`), field checks whose
//! messages name the key, and the atomic save.
//!
//! Pure except [`save_atomic`]. The whole-config validation (time zones, regexes, …) stays in
//! `crate::config`: the backend runs it on the text [`apply_changes`] produces.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Map, Value};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

/// A problem with one field, named as the page shows it (`pbx[0].port`, `web.listen`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn ferr(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// The kind of value a key holds, for the form widget and the first check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A whole number within the bounds.
    Int(i64, i64),
    Bool,
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// A list of strings (one per line on the form).
    List,
    /// `host:port`.
    Addr,
    /// Never sent to the page; kept when the form leaves it empty.
    Secret,
}

/// One known key. `help` is shown under the field; the commented default config's own comment
/// wins when it has one (see [`fields_with_help`]).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// `box`, `pbx` (an array of tables), `storage`, `web`, `display`, `usb`, `log`.
    pub table: &'static str,
    pub key: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn f(table: &'static str, key: &'static str, kind: Kind, help: &'static str) -> Field {
    Field {
        table,
        key,
        kind,
        help,
    }
}

/// Every key the page knows (PRODUCT.md §10, `crate::config`). Keys in the file that are not
/// listed still show, as plain text fields.
pub const FIELDS: &[Field] = &[
    f("box", "name", Kind::Text, "The box's name, shown on the page and used in export folder names."),
    f("pbx", "name", Kind::Text, "A short name for this PBX; stored with every record (the `pbx` field)."),
    f("pbx", "host", Kind::Text, "Address of the PBX's Manager Interface (AMI). A change reconnects at once."),
    f("pbx", "port", Kind::Int(1, 65535), "AMI TCP port, 5038 unless manager.conf says otherwise."),
    f("pbx", "username", Kind::Text, "The [section] name in the PBX's manager.conf."),
    f("pbx", "secret", Kind::Secret, "The `secret =` in manager.conf. Never shown; leave empty to keep the current one."),
    f("pbx", "auth", Kind::Choice(&["md5", "plain"]), "Login method: md5 (challenge, secret never sent) or plain."),
    f("pbx", "timezone", Kind::Text, "The PBX's time zone (IANA name, e.g. Europe/Moscow): CDR times carry no zone."),
    f("pbx", "charset", Kind::Text, "Legacy charset for names that are not UTF-8, e.g. windows-1251."),
    f("pbx", "trunk_patterns", Kind::List, "Regular expressions (one per line) for channels on the outside (trunk) side; they decide inbound/outbound."),
    f("pbx", "ping_interval_ms", Kind::Int(1000, 3_600_000), "Keep-alive Ping period, milliseconds."),
    f("pbx", "ping_timeout_ms", Kind::Int(100, 600_000), "How long a Ping may go unanswered before the link is declared dead, milliseconds."),
    f("pbx", "connect_timeout_ms", Kind::Int(100, 600_000), "TCP connect time-out, milliseconds."),
    f("pbx", "login_timeout_ms", Kind::Int(100, 600_000), "Time-out for banner, challenge and login together, milliseconds."),
    f("pbx", "enabled", Kind::Bool, "Untick to stop logging this PBX without deleting its settings."),
    f("storage", "path", Kind::Text, "Directory of the journal (journal.sqlite + journal.ring); may be on a USB stick."),
    f("storage", "flush_interval_ms", Kind::Int(10, 600_000), "Records wait at most this long (ms) in the ring file before the SQLite group commit."),
    f("storage", "flush_records", Kind::Int(1, 100_000), "Commit as soon as this many records wait."),
    f("storage", "retention_days", Kind::Int(0, 36_500), "Delete records older than this many days; 0 keeps them forever."),
    f("storage", "max_size_mb", Kind::Int(0, 10_000_000), "Delete the oldest records when the database grows past this size (MB); 0 = no limit."),
    f("storage", "ring_kb", Kind::Int(4, 1_048_576), "Size of the pre-zeroed ring file, KiB."),
    f("storage", "memory_queue_records", Kind::Int(0, 10_000_000), "Records held in memory while the disk is full, before links pause."),
    f("storage", "keep_uncopied", Kind::Bool, "Never let retention delete a record no USB copy has taken yet."),
    f("web", "listen", Kind::Addr, "Address and port of this page, e.g. 0.0.0.0:8080. A change takes effect after a restart."),
    f("web", "workers", Kind::Int(1, 64), "Threads answering web requests."),
    f("display", "driver", Kind::Choice(&["ssd1306", "none"]), "The OLED: ssd1306, or none."),
    f("display", "i2c_bus", Kind::Text, "I2C device of the OLED, e.g. /dev/i2c-1."),
    f("display", "address", Kind::Int(0x3C, 0x3D), "7-bit I2C address: 60 (0x3C) or 61 (0x3D)."),
    f("display", "contrast", Kind::Int(0, 255), "OLED contrast, 0–255."),
    f("display", "rotation", Kind::Choice(&["0", "180"]), "Rotate the screen: 0 or 180 degrees."),
    f("display", "screensaver_minutes", Kind::Int(0, 1440), "Dim and shift the OLED after this many minutes without change; 0 disables."),
    f("display", "page_seconds", Kind::Int(1, 3600), "Seconds each OLED page shows when pages rotate."),
    f("usb", "mount_root", Kind::Text, "Where USB sticks are mounted (e.g. /media)."),
    f("usb", "mounts_file", Kind::Text, "The mount table to watch, normally /proc/self/mounts."),
    f("usb", "mode", Kind::Choice(&["new", "all"]), "What a stick gets: records not copied before (new), or all."),
    f("usb", "profile", Kind::Choice(&["standard", "excel", "pbxlogger", "asterisk"]), "CSV profile written to the stick."),
    f("log", "level", Kind::Text, "Log filter: error, warn, info, debug, trace (or per target)."),
];

fn kind_name(k: Kind) -> Value {
    match k {
        Kind::Text => json!({"type": "text"}),
        Kind::Int(lo, hi) => json!({"type": "int", "min": lo, "max": hi}),
        Kind::Bool => json!({"type": "bool"}),
        Kind::Choice(c) => json!({"type": "choice", "choices": c}),
        Kind::List => json!({"type": "list"}),
        Kind::Addr => json!({"type": "addr"}),
        Kind::Secret => json!({"type": "secret"}),
    }
}

/// The field list for the page, help text taken from the comments above each key in
/// `default_toml` (the documented default config) when there are any.
pub fn fields_with_help(default_toml: &str) -> Value {
    let doc = default_toml.parse::<DocumentMut>().ok();
    let comment_of = |table: &str, key: &str| -> Option<String> {
        let doc = doc.as_ref()?;
        let t: &Table = match doc.get(table)? {
            Item::Table(t) => t,
            Item::ArrayOfTables(a) => a.get(0)?,
            _ => return None,
        };
        let (k, _) = t.get_key_value(key)?;
        let prefix = k.leaf_decor().prefix()?.as_str()?;
        let text: Vec<&str> = prefix
            .lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix('#'))
            .map(str::trim)
            .collect();
        let text = text.join(" ");
        (!text.trim().is_empty()).then_some(text)
    };
    Value::Array(
        FIELDS
            .iter()
            .map(|f| {
                json!({
                    "table": f.table,
                    "key": f.key,
                    "array": f.table == "pbx",
                    "kind": kind_name(f.kind),
                    "help": comment_of(f.table, f.key).unwrap_or_else(|| f.help.to_string()),
                })
            })
            .collect(),
    )
}

fn field_spec(table: &str, key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.table == table && f.key == key)
}

fn is_secret(key: &str) -> bool {
    key == "secret" || key.ends_with("_secret") || key == "password"
}

fn toml_to_json(v: &toml_edit::Value) -> Value {
    use toml_edit::Value as T;
    match v {
        T::String(s) => Value::String(s.value().clone()),
        T::Integer(i) => json!(*i.value()),
        T::Float(f) => json!(*f.value()),
        T::Boolean(b) => json!(*b.value()),
        T::Datetime(d) => Value::String(d.value().to_string()),
        T::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        T::InlineTable(t) => Value::Object(
            t.iter()
                .filter(|(k, _)| !is_secret(k))
                .map(|(k, v)| (k.to_string(), toml_to_json(v)))
                .collect(),
        ),
    }
}

fn table_to_json(t: &Table) -> Value {
    let mut m = Map::new();
    for (k, item) in t.iter() {
        if is_secret(k) {
            continue;
        }
        match item {
            Item::Value(v) => {
                m.insert(k.to_string(), toml_to_json(v));
            }
            Item::Table(sub) => {
                m.insert(k.to_string(), table_to_json(sub));
            }
            Item::ArrayOfTables(a) => {
                m.insert(
                    k.to_string(),
                    Value::Array(a.iter().map(table_to_json).collect()),
                );
            }
            Item::None => {}
        }
    }
    Value::Object(m)
}

/// `GET /api/config`'s `config` and `secretSet`: the file as nested JSON without any secret,
/// and for each `[[pbx]]` whether a secret is set.
pub fn config_view(text: &str) -> Result<(Value, Vec<bool>), FieldError> {
    let doc = text
        .parse::<DocumentMut>()
        .map_err(|e| ferr("config", format!("the config file is not valid TOML: {e}")))?;
    let secrets = match doc.get("pbx") {
        Some(Item::ArrayOfTables(a)) => a
            .iter()
            .map(|t| {
                t.get("secret")
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| !s.is_empty())
            })
            .collect(),
        _ => vec![],
    };
    Ok((table_to_json(doc.as_table()), secrets))
}

/// Applies a form's `changes` (nested JSON as [`config_view`] gives it, partial allowed) to the
/// config `text`, keeping comments and layout. `null` removes a key (back to its default). For
/// `pbx`, the array given is the whole list: entries are matched by position, extra ones in the
/// file are removed, and an empty or missing `secret` keeps the one at that position.
pub fn apply_changes(text: &str, changes: &Value) -> Result<String, FieldError> {
    let mut doc = text
        .parse::<DocumentMut>()
        .map_err(|e| ferr("config", format!("the config file is not valid TOML: {e}")))?;
    let Value::Object(top) = changes else {
        return Err(ferr("config", "expected a JSON object of tables"));
    };
    for (table, value) in top {
        if table == "pbx" {
            let Value::Array(list) = value else {
                return Err(ferr("pbx", "expected a list of PBX tables"));
            };
            apply_pbx_list(&mut doc, list)?;
            continue;
        }
        let Value::Object(keys) = value else {
            return Err(ferr(table.as_str(), "expected a table of keys"));
        };
        if !matches!(doc.get(table), Some(Item::Table(_))) {
            doc.insert(table, Item::Table(Table::new()));
        }
        let Some(Item::Table(t)) = doc.get_mut(table) else {
            return Err(ferr(table.as_str(), "is not a table in the config file"));
        };
        for (key, v) in keys {
            set_key(t, table, key, v, &format!("{table}.{key}"))?;
        }
    }
    Ok(doc.to_string())
}

fn apply_pbx_list(doc: &mut DocumentMut, list: &[Value]) -> Result<(), FieldError> {
    if !matches!(doc.get("pbx"), Some(Item::ArrayOfTables(_))) {
        doc.insert("pbx", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let Some(Item::ArrayOfTables(arr)) = doc.get_mut("pbx") else {
        return Err(ferr(
            "pbx",
            "is not a list of [[pbx]] tables in the config file",
        ));
    };
    for (i, entry) in list.iter().enumerate() {
        let Value::Object(keys) = entry else {
            return Err(ferr(format!("pbx[{i}]"), "expected a table of keys"));
        };
        if arr.len() <= i {
            arr.push(Table::new());
        }
        let Some(t) = arr.get_mut(i) else {
            return Err(ferr(format!("pbx[{i}]"), "could not be created"));
        };
        for (key, v) in keys {
            let keep_secret =
                is_secret(key) && (v.is_null() || v.as_str().is_some_and(str::is_empty));
            if keep_secret {
                continue;
            }
            set_key(t, "pbx", key, v, &format!("pbx[{i}].{key}"))?;
        }
    }
    while arr.len() > list.len() {
        arr.remove(arr.len() - 1);
    }
    Ok(())
}

/// Checks `v` against the key's kind and writes it, keeping the old value's trailing comment.
fn set_key(t: &mut Table, table: &str, key: &str, v: &Value, name: &str) -> Result<(), FieldError> {
    if v.is_null() {
        t.remove(key);
        return Ok(());
    }
    let mut new = json_to_toml(v, field_spec(table, key).map(|f| f.kind), name)?;
    if let Some(Item::Value(old)) = t.get(key) {
        *new.decor_mut() = old.decor().clone();
    }
    match t.get_mut(key) {
        Some(item @ Item::Value(_)) => *item = Item::Value(new),
        _ => {
            t.insert(key, Item::Value(new));
        }
    }
    Ok(())
}

fn json_to_toml(v: &Value, kind: Option<Kind>, name: &str) -> Result<toml_edit::Value, FieldError> {
    let text = || v.as_str().map(str::trim);
    Ok(match kind {
        Some(Kind::Int(lo, hi)) => {
            let n = v
                .as_i64()
                .or_else(|| text().and_then(|s| s.parse().ok()))
                .ok_or_else(|| ferr(name, format!("{v} is not a whole number")))?;
            if n < lo || n > hi {
                return Err(ferr(name, format!("{n} is out of range {lo}..={hi}")));
            }
            n.into()
        }
        Some(Kind::Bool) => v
            .as_bool()
            .or_else(|| match text() {
                Some("true") => Some(true),
                Some("false") => Some(false),
                _ => None,
            })
            .ok_or_else(|| ferr(name, format!("{v} is not true or false")))?
            .into(),
        Some(Kind::Choice(choices)) => {
            let s = text()
                .map(String::from)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
                .ok_or_else(|| ferr(name, "expected one of the listed values"))?;
            if !choices.contains(&s.as_str()) {
                return Err(ferr(
                    name,
                    format!("{s:?} is not one of {}", choices.join(", ")),
                ));
            }
            // Numeric choices (rotation) stay numbers in the file.
            match s.parse::<i64>() {
                Ok(n) => n.into(),
                Err(_) => s.into(),
            }
        }
        Some(Kind::List) => {
            let items: Vec<String> = match v {
                Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(String::from)
                            .ok_or_else(|| ferr(name, "expected a list of strings"))
                    })
                    .collect::<Result<_, _>>()?,
                Value::String(s) => s
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
                _ => return Err(ferr(name, "expected a list of strings")),
            };
            toml_edit::Value::Array(items.into_iter().collect())
        }
        Some(Kind::Addr) => {
            let s = text().ok_or_else(|| ferr(name, "expected host:port"))?;
            if s.parse::<std::net::SocketAddr>().is_err() {
                return Err(ferr(
                    name,
                    format!("{s:?} is not an address with a port, e.g. 0.0.0.0:8080"),
                ));
            }
            s.into()
        }
        Some(Kind::Text) | Some(Kind::Secret) => {
            let s = v
                .as_str()
                .ok_or_else(|| ferr(name, format!("{v} is not text")))?;
            if s.contains(['\n', '\r', '\0']) {
                return Err(ferr(name, "must be one line"));
            }
            s.into()
        }
        None => match v {
            Value::String(s) => s.as_str().into(),
            Value::Bool(b) => (*b).into(),
            Value::Number(n) => match n.as_i64() {
                Some(i) => i.into(),
                None => n.as_f64().unwrap_or(0.0).into(),
            },
            Value::Array(a) => {
                let mut arr = toml_edit::Array::new();
                for x in a {
                    arr.push(json_to_toml(x, None, name)?);
                }
                toml_edit::Value::Array(arr)
            }
            _ => return Err(ferr(name, "nested tables cannot be set from the form")),
        },
    })
}

/// Saves `text` to `path` so that a power cut leaves either the old or the new file: the current
/// file is copied to `<path>.bak`, the new text goes to a temporary file beside it, is fsynced,
/// then renamed over `path`, and the directory is fsynced.
pub fn save_atomic(path: &Path, text: &str) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    if path.exists() {
        let bak = dir.join(format!("{name}.bak"));
        let old = std::fs::read(path)?;
        let mut b = std::fs::File::create(&bak)?;
        b.write_all(&old)?;
        b.sync_all()?;
    }
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# cdrbox config
[box]
name = "office" # shown on the page

# The PBXs.
[[pbx]]
name = "main"
# AMI address
host = "10.0.0.2"
port = 5038
secret = "s3cret"
trunk_patterns = ["^PJSIP/trunk"]

[[pbx]]
name = "branch"
host = "10.0.1.2"
secret = ""

[web]
listen = "0.0.0.0:8080"
"#;

    #[test]
    fn view_hides_secrets() {
        let (v, set) = config_view(SAMPLE).unwrap();
        let s = v.to_string();
        assert!(!s.contains("s3cret"), "{s}");
        assert!(!s.contains("secret"), "{s}");
        assert_eq!(set, vec![true, false]);
        assert_eq!(v["pbx"][0]["host"], "10.0.0.2");
        assert_eq!(v["web"]["listen"], "0.0.0.0:8080");
    }

    #[test]
    fn changes_keep_comments_and_secrets() {
        let changes = json!({
            "box": {"name": "HQ"},
            "pbx": [{"name": "main", "host": "10.0.0.3", "port": "5039", "secret": ""}],
            "web": {"workers": 3},
        });
        let out = apply_changes(SAMPLE, &changes).unwrap();
        assert!(out.contains("# cdrbox config"));
        assert!(out.contains("# AMI address\nhost = \"10.0.0.3\""), "{out}");
        assert!(out.contains("name = \"HQ\" # shown on the page"), "{out}");
        assert!(out.contains("secret = \"s3cret\""), "secret kept: {out}");
        assert!(out.contains("port = 5039"));
        assert!(!out.contains("branch"), "second PBX removed: {out}");
        assert!(out.contains("workers = 3"));
        assert!(out.contains("trunk_patterns = [\"^PJSIP/trunk\"]"));
        // Setting a new secret replaces it.
        let out = apply_changes(SAMPLE, &json!({"pbx": [{"secret": "new"}, {}]})).unwrap();
        assert!(out.contains("secret = \"new\""));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"pbx": [{"port": 70000}]}), "pbx[0].port"),
            (json!({"pbx": [{}, {"auth": "sha1"}]}), "pbx[1].auth"),
            (json!({"web": {"listen": "nowhere"}}), "web.listen"),
            (json!({"web": {"workers": "many"}}), "web.workers"),
            (
                json!({"storage": {"keep_uncopied": "yes"}}),
                "storage.keep_uncopied",
            ),
            (json!({"box": {"name": "a\nb"}}), "box.name"),
            (json!({"web": 5}), "web"),
        ];
        for (c, field) in cases {
            let e = apply_changes(SAMPLE, &c).unwrap_err();
            assert_eq!(e.field, field, "{c}: {e}");
        }
    }

    #[test]
    fn help_comes_from_the_default_file() {
        let fields =
            fields_with_help("[web]\n# Where the page listens.\nlisten = \"0.0.0.0:80\"\n");
        let listen = fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == "listen")
            .unwrap();
        assert_eq!(listen["help"], "Where the page listens.");
        assert!(fields.as_array().unwrap().len() >= 30);
    }

    #[test]
    fn save_keeps_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cdrbox.toml");
        save_atomic(&p, "a = 1\n").unwrap();
        save_atomic(&p, "a = 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a = 2\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cdrbox.toml.bak")).unwrap(),
            "a = 1\n"
        );
        assert!(!dir.path().join(".cdrbox.toml.tmp").exists());
    }
}

#[cfg(test)]
mod schema_agreement {
    use super::FIELDS;

    /// The settings page may only offer keys the config parser accepts, and must offer all.
    #[test]
    fn fields_match_the_config_schema() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(
                !FIELDS[..i]
                    .iter()
                    .any(|g| g.table == f.table && g.key == f.key),
                "{}.{} is listed twice (the page would render two inputs)",
                f.table,
                f.key
            );
        }
        let schema = crate::config::schema();
        for f in FIELDS {
            let keys = schema
                .iter()
                .find(|(t, _)| *t == f.table)
                .map(|(_, k)| *k)
                .unwrap_or_else(|| panic!("unknown table {}", f.table));
            assert!(
                keys.contains(&f.key),
                "{}.{} is not a config key",
                f.table,
                f.key
            );
        }
        for (table, keys) in &schema {
            for k in *keys {
                assert!(
                    FIELDS.iter().any(|f| f.table == *table && f.key == *k),
                    "config key {table}.{k} is missing from the settings page"
                );
            }
        }
    }
}
