//! The settings page's model: the config file as JSON for the form (secrets removed), the form's
//! field list (straight from the key table in `crate::config::keys`), a form's changes written
//! back into the TOML with every comment kept (`toml_edit`), and the atomic save.
//!
//! Saving changes exactly what the user changed: a value equal to what the file already means
//! (its own value, or the default for a key it leaves out) is not written, so a key absent
//! from the file stays absent unless the user set it. Values are checked by the same
//! `check_value` as the file parser, so the form and the file agree on ranges and messages.
//! The whole-config validation still runs on the resulting text (the backend does that).
//!
//! Pure except [`save_atomic`].

use std::io;
use std::path::Path;

use serde_json::{json, Map, Value};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

use crate::config::keys::{self, is_secret, KEYS, TABLES};
use crate::config::spec::{
    check_entries, check_value, required_problem, Apply, DefaultValue, Input, Key, Kind, MapSpec,
};

/// A problem with one field, named as the page shows it (`pbx[0].port`, `web.listen`).
/// `message` does not repeat the field; `Display` names it once.
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

/// The config text is not TOML: say where, without quoting a line that may hold a secret.
fn not_toml(text: &str, e: &toml_edit::TomlError) -> FieldError {
    let p = crate::config::parse::syntax_problem(text, e.span(), e.message());
    ferr("config", format!("the config file is {p}"))
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => json!(*i),
        toml::Value::Float(f) => json!(*f),
        toml::Value::Boolean(b) => json!(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// The form's view of a key's kind: widget type and its bounds or choices.
fn kind_json(k: &Key) -> Value {
    let unit = k.unit.as_str();
    match k.kind {
        Kind::Bool => json!({"type": "bool"}),
        Kind::Int { min, max } => json!({"type": "int", "min": min, "max": max, "unit": unit}),
        Kind::Port => json!({"type": "int", "min": 1, "max": 65535, "unit": unit}),
        Kind::Choice { words, .. } => json!({"type": "choice", "choices": words}),
        Kind::IntChoice(v) => {
            json!({"type": "choice", "choices": v.iter().map(i64::to_string).collect::<Vec<_>>()})
        }
        Kind::I2cAddress(v) => json!({
            "type": "choice",
            "choices": v.iter().map(|n| format!("0x{n:02X}")).collect::<Vec<_>>(),
        }),
        Kind::Text(_) | Kind::Path => json!({"type": "text"}),
        Kind::Secret => json!({"type": "secret"}),
        Kind::List(_) => json!({"type": "list"}),
        Kind::Listen => json!({"type": "addr"}),
    }
}

/// A default in the form's terms (an I2C address as its choice `"0x3C"`).
fn default_json(k: &Key) -> Value {
    match (k.kind, k.default) {
        (Kind::I2cAddress(_), DefaultValue::Int(n)) => json!(format!("0x{n:02X}")),
        (Kind::IntChoice(_), DefaultValue::Int(n)) => json!(n.to_string()),
        _ => k.default_value().as_ref().map_or(Value::Null, toml_to_json),
    }
}

/// `GET /api/config`'s `fields`: every key of the table, in order, as the form renders it.
pub fn fields() -> Value {
    Value::Array(
        KEYS.iter()
            .map(|k| {
                json!({
                    "table": k.table,
                    "key": k.key,
                    "array": keys::table(k.table).is_some_and(|t| t.array),
                    "kind": kind_json(k),
                    "label": k.label,
                    "group": k.group,
                    "help": k.help,
                    "allowed": k.allowed(),
                    "default": default_json(k),
                    "required": matches!(k.default, DefaultValue::Required(_)),
                    "apply": match k.apply { Apply::Live => "live", Apply::Restart => "restart" },
                    "secret": k.secret,
                    "advanced": k.advanced,
                })
            })
            .collect(),
    )
}

/// `GET /api/config`'s `tables`: the sections of the form, in order.
pub fn tables() -> Value {
    Value::Array(
        TABLES
            .iter()
            .map(|t| {
                let mut j = json!({"name": t.name, "title": t.title, "array": t.array});
                // A table of free keys (`[names]`): the form edits it as rows.
                if let Some(m) = t.map {
                    j["map"] = json!({
                        "keyLabel": m.key_label,
                        "valueLabel": m.value_label,
                        "help": m.help,
                        "maxEntries": m.max_entries,
                        "apply": match m.apply { Apply::Live => "live", Apply::Restart => "restart" },
                    });
                }
                j
            })
            .collect(),
    )
}

fn item_to_json(table: &str, item: &Item) -> Option<Value> {
    match item {
        Item::Value(v) => Some(edit_to_json(table, v)),
        Item::Table(t) => Some(table_to_json(table, t)),
        Item::ArrayOfTables(a) => Some(Value::Array(
            a.iter().map(|t| table_to_json(table, t)).collect(),
        )),
        Item::None => None,
    }
}

fn edit_to_json(table: &str, v: &toml_edit::Value) -> Value {
    use toml_edit::Value as T;
    match v {
        T::String(s) => Value::String(s.value().clone()),
        T::Integer(i) => json!(*i.value()),
        T::Float(f) => json!(*f.value()),
        T::Boolean(b) => json!(*b.value()),
        T::Datetime(d) => Value::String(d.value().to_string()),
        T::Array(a) => Value::Array(a.iter().map(|x| edit_to_json(table, x)).collect()),
        T::InlineTable(t) => Value::Object(
            t.iter()
                .filter(|(k, _)| !is_secret(table, k))
                .map(|(k, v)| (k.to_string(), edit_to_json(table, v)))
                .collect(),
        ),
    }
}

fn table_to_json(table: &str, t: &Table) -> Value {
    let mut m = Map::new();
    for (k, item) in t.iter() {
        if is_secret(table, k) {
            continue;
        }
        // A sub-table's keys are judged by its own name.
        let inner = if table.is_empty() { k } else { table };
        if let Some(v) = item_to_json(inner, item) {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

/// `GET /api/config`'s `config` and `secretSet`: the file as nested JSON without any secret
/// (only the keys the file itself has; the form shows defaults from [`fields`]), and for each
/// `[[pbx]]` whether a secret is set.
pub fn config_view(text: &str) -> Result<(Value, Vec<bool>), FieldError> {
    let doc = text
        .parse::<DocumentMut>()
        .map_err(|e| not_toml(text, &e))?;
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
    Ok((table_to_json("", doc.as_table()), secrets))
}

/// A form value as the checker's input. The form sends numbers as text and lists as lines, so
/// those are read by the key's kind; anything else is taken as it is.
fn input_of<'a>(v: &'a Value, kind: Kind) -> Input<'a> {
    let wants_int = matches!(kind, Kind::Int { .. } | Kind::Port | Kind::IntChoice(_));
    match v {
        Value::Bool(b) => Input::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Input::Int(i),
            None => Input::Other("a decimal number"),
        },
        Value::String(s) if wants_int => match s.trim().parse::<i64>() {
            Ok(i) => Input::Int(i),
            Err(_) => Input::Str(s),
        },
        Value::String(s) if matches!(kind, Kind::Bool) => match s.trim() {
            "true" => Input::Bool(true),
            "false" => Input::Bool(false),
            _ => Input::Str(s),
        },
        Value::String(s) if matches!(kind, Kind::List(_)) => Input::List(
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(Input::Str)
                .collect(),
        ),
        Value::String(s) => Input::Str(s),
        Value::Array(a) => Input::List(a.iter().map(|x| input_of(x, Kind::Secret)).collect()),
        Value::Null => Input::Other("nothing"),
        Value::Object(_) => Input::Other("a table"),
    }
}

/// What a value in the file means, normalised (`None` when it is not valid: any new value is a
/// change then).
fn file_meaning(spec: &Key, item: Option<&Item>) -> Option<toml::Value> {
    let Some(item) = item else {
        return spec.default_value();
    };
    let text = item.as_value()?.to_string();
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()?
        .remove("v")?;
    let json = toml_to_json(&parsed);
    check_value(spec, &input_of(&json, spec.kind)).ok()
}

/// The normalised value as it is written to the file (an I2C address in hex, as the default
/// file writes it).
fn file_value(spec: &Key, v: &toml::Value) -> toml_edit::Value {
    match (spec.kind, v) {
        (Kind::I2cAddress(_), toml::Value::Integer(n)) => format!("0x{n:02X}").into(),
        (_, toml::Value::String(s)) => s.as_str().into(),
        (_, toml::Value::Integer(n)) => (*n).into(),
        (_, toml::Value::Boolean(b)) => (*b).into(),
        (_, toml::Value::Array(a)) => toml_edit::Value::Array(
            a.iter()
                .map(|x| match x {
                    toml::Value::String(s) => toml_edit::Value::from(s.as_str()),
                    other => toml_edit::Value::from(other.to_string()),
                })
                .collect(),
        ),
        (_, other) => other.to_string().into(),
    }
}

/// Checks a form value for `spec` and writes it into `t` when it changes what the file means.
/// `null` removes the key (back to its default).
fn set_key(t: &mut Table, spec: &Key, v: &Value, path: &str) -> Result<(), FieldError> {
    if v.is_null() {
        t.remove(spec.key);
        return Ok(());
    }
    let input = input_of(v, spec.kind);
    if matches!(&input, Input::Str(s) if s.trim().is_empty()) {
        if let Some(msg) = required_problem(spec, true) {
            return Err(ferr(path, msg));
        }
    }
    let new = check_value(spec, &input).map_err(|problems| {
        let p = &problems[0];
        match p.item {
            Some(j) => ferr(format!("{path}[{j}]"), p.detail.clone()),
            None => ferr(path, p.detail.clone()),
        }
    })?;
    if file_meaning(spec, t.get(spec.key)).as_ref() == Some(&new) {
        // Unchanged: the file keeps its own spelling, and a key it leaves out stays out.
        return Ok(());
    }
    let mut value = file_value(spec, &new);
    if let Some(Item::Value(old)) = t.get(spec.key) {
        *value.decor_mut() = old.decor().clone();
    }
    match t.get_mut(spec.key) {
        Some(item @ Item::Value(_)) => *item = Item::Value(value),
        _ => {
            t.insert(spec.key, Item::Value(value));
        }
    }
    Ok(())
}

fn unknown_key(table: &str, key: &str, path: &str) -> FieldError {
    let names: Vec<&str> = keys::keys_of(table).map(|k| k.key).collect();
    let hint = crate::config::did_you_mean(key, names)
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default();
    ferr(path, format!("is not a setting of [{table}]{hint}"))
}

/// Applies a form's `changes` (nested JSON as [`config_view`] gives it, partial allowed) to the
/// config `text`, keeping comments and layout, and writing only values that change what the
/// file means. `null` removes a key (back to its default). For `pbx`, see [`apply_pbx_list`].
pub fn apply_changes(text: &str, changes: &Value) -> Result<String, FieldError> {
    let mut doc = text
        .parse::<DocumentMut>()
        .map_err(|e| not_toml(text, &e))?;
    let Value::Object(top) = changes else {
        return Err(ferr("config", "expected a JSON object of tables"));
    };
    for (table, value) in top {
        let Some(spec_table) = keys::table(table) else {
            let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
            let hint = crate::config::did_you_mean(table, names)
                .map(|c| format!(" (did you mean {c:?}?)"))
                .unwrap_or_default();
            return Err(ferr(
                table.as_str(),
                format!("is not a settings table{hint}"),
            ));
        };
        if let Some(map) = spec_table.map {
            let Value::Array(rows) = value else {
                return Err(ferr(
                    table.as_str(),
                    "expected the whole list of rows, each {\"number\": …, \"name\": …}",
                ));
            };
            apply_map(&mut doc, table, map, rows)?;
            continue;
        }
        if spec_table.array {
            let Value::Array(list) = value else {
                return Err(ferr(table.as_str(), "expected a list of PBX tables"));
            };
            apply_pbx_list(&mut doc, list)?;
            continue;
        }
        let Value::Object(keys_given) = value else {
            return Err(ferr(table.as_str(), "expected a table of keys"));
        };
        let mut t = match doc.get(table) {
            Some(Item::Table(t)) => t.clone(),
            None => Table::new(),
            Some(_) => return Err(ferr(table.as_str(), "is not a table in the config file")),
        };
        for (key, v) in keys_given {
            let path = format!("{table}.{key}");
            let spec = keys::find(table, key).ok_or_else(|| unknown_key(table, key, &path))?;
            set_key(&mut t, spec, v, &path)?;
        }
        // A table the file did not have is added only when something was set in it.
        if doc.get(table).is_some() || !t.is_empty() {
            doc.insert(table, Item::Table(t));
        }
    }
    Ok(doc.to_string())
}

/// A table of free keys (`[names]`): `rows` is the whole new list, `[{"number", "name"}]` (the
/// form's column names; a [`MapSpec`] names them in words). Checked like the file
/// ([`check_entries`]: empty name, a number twice, too long, too many), then written so that
/// only what changed changes: a kept entry keeps its spelling and comment, a removed one goes,
/// a new one is added at the end. Errors name the row: `names[2].name`.
fn apply_map(
    doc: &mut DocumentMut,
    table: &str,
    spec: &MapSpec,
    rows: &[Value],
) -> Result<(), FieldError> {
    let mut given: Vec<(&str, Input<'_>)> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let text = |k: &str| match row.get(k) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(Value::Number(_)) | None | Some(Value::Null) if k == "number" => Err(ferr(
                format!("{table}[{i}].number"),
                "expected the number as text",
            )),
            _ => Err(ferr(format!("{table}[{i}].{k}"), "expected text")),
        };
        given.push((text("number")?, Input::Str(text("name")?)));
    }
    let new = check_entries(spec, &given).map_err(|problems| {
        let p = &problems[0];
        let column = if p.in_key { "number" } else { "name" };
        let row = p.entry.min(rows.len().saturating_sub(1));
        ferr(format!("{table}[{row}].{column}"), p.detail.clone())
    })?;
    let mut t = match doc.get(table) {
        Some(Item::Table(t)) => t.clone(),
        None => Table::new(),
        Some(_) => return Err(ferr(table, "is not a table in the config file")),
    };
    // What each key of the file means (normalised), to match the rows to the file's lines.
    let meaning = |k: &str| (spec.key_check)(k).ok();
    let old_keys: Vec<String> = t.iter().map(|(k, _)| k.to_owned()).collect();
    for k in &old_keys {
        let keep = meaning(k).is_some_and(|m| new.iter().any(|(n, _)| *n == m));
        if !keep {
            t.remove(k);
        }
    }
    for (number, name) in &new {
        let existing = t
            .iter()
            .map(|(k, _)| k.to_owned())
            .find(|k| meaning(k).as_deref() == Some(number.as_str()));
        match existing {
            Some(k) => {
                let same = t.get(&k).and_then(Item::as_str) == Some(name.as_str());
                if !same {
                    let mut value = toml_edit::Value::from(name.as_str());
                    if let Some(Item::Value(old)) = t.get(&k) {
                        *value.decor_mut() = old.decor().clone();
                    }
                    // In place: the key keeps its own decor (the comment above the line).
                    if let Some(item) = t.get_mut(&k) {
                        *item = Item::Value(value);
                    }
                }
            }
            None => {
                t.insert(number, Item::Value(name.as_str().into()));
            }
        }
    }
    // A table the file did not have is added only when it gets a row.
    if doc.get(table).is_some() || !t.is_empty() {
        doc.insert(table, Item::Table(t));
    }
    Ok(())
}

/// The `[[pbx]]` list: `list` is the whole new list. Each entry may say which table of the file
/// it is with `"_index"` (a number; `null` for a new PBX), else entries match the file's by
/// position. Entries left out are removed. An empty or missing `secret` keeps the stored one.
pub fn apply_pbx_list(doc: &mut DocumentMut, list: &[Value]) -> Result<(), FieldError> {
    let old: ArrayOfTables = match doc.get("pbx") {
        Some(Item::ArrayOfTables(a)) => a.clone(),
        None => ArrayOfTables::new(),
        Some(_) => {
            return Err(ferr(
                "pbx",
                "is not a list of [[pbx]] tables in the config file",
            ))
        }
    };
    let mut new = ArrayOfTables::new();
    for (i, entry) in list.iter().enumerate() {
        let Value::Object(keys_given) = entry else {
            return Err(ferr(format!("pbx[{i}]"), "expected a table of keys"));
        };
        let origin = match keys_given.get("_index") {
            None => Some(i),
            Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n < old.len())
                    .ok_or_else(|| ferr(format!("pbx[{i}]"), "_index names no PBX of the file"))?,
            ),
        };
        let base = origin.and_then(|j| old.get(j));
        let mut t = base.cloned().unwrap_or_else(Table::new);
        let mut secret_given = false;
        for (key, v) in keys_given {
            if key == "_index" {
                continue;
            }
            let path = format!("pbx[{i}].{key}");
            let spec = keys::find("pbx", key).ok_or_else(|| unknown_key("pbx", key, &path))?;
            let keep_secret = spec.secret && (v.is_null() || v.as_str().is_some_and(str::is_empty));
            if keep_secret {
                continue;
            }
            // Only the AMI secret answers the re-entry rule: a new cdr_db URL (also secret,
            // it holds the database's password) says nothing about the AMI login.
            secret_given |= key == "secret";
            set_key(&mut t, spec, v, &path)?;
        }
        if let Some(base) = base {
            if !secret_given {
                stored_secret_may_stay(base, &t, i)?;
            }
        }
        new.push(t);
    }
    let same = new.len() == old.len()
        && new
            .iter()
            .zip(old.iter())
            .all(|(a, b)| a.to_string() == b.to_string());
    if same {
        return Ok(());
    }
    if new.is_empty() {
        doc.remove("pbx");
    } else {
        doc.insert("pbx", Item::ArrayOfTables(new));
    }
    Ok(())
}

/// A stored secret goes only where it was entered for (issue 11 item 5): when the address
/// changes, or the login switches to plain text, the secret must be typed again.
fn stored_secret_may_stay(old: &Table, new: &Table, i: usize) -> Result<(), FieldError> {
    let has_secret = old
        .get("secret")
        .and_then(Item::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_secret {
        return Ok(());
    }
    let meaning =
        |t: &Table, key: &str| keys::find("pbx", key).and_then(|k| file_meaning(k, t.get(key)));
    let field = format!("pbx[{i}].secret");
    if meaning(old, "host") != meaning(new, "host") {
        return Err(ferr(
            field,
            "enter the secret again: the address changed, and the stored secret is only sent to the PBX it was entered for",
        ));
    }
    let plain = Some(toml::Value::String("plain".into()));
    if meaning(new, "auth") == plain && meaning(old, "auth") != plain {
        return Err(ferr(
            field,
            "enter the secret again: \"plain\" sends it in clear text, which the stored secret was not entered for",
        ));
    }
    Ok(())
}

/// The mode a saved config gets: owner read/write only (it holds the AMI secret), or 0640 when
/// the file was already private to its owner and group (a root-owned file the service's group
/// reads). A looser file (0644, 0666) becomes 0600: never more open, whatever the file had or
/// the umask says (issue 11 item 5).
pub fn private_mode(existing: Option<u32>) -> u32 {
    match existing {
        Some(m) if !mode_is_loose(m) && m & 0o040 != 0 => 0o640,
        _ => 0o600,
    }
}

/// Whether a config file's mode lets anyone but its owner (and the owner's group, reading) at
/// the secret — what `cdrbox run` and `check-config` warn about.
pub fn mode_is_loose(mode: u32) -> bool {
    mode & 0o037 != 0
}

/// Saves `text` to `path` so that a power cut leaves either the old or the new file: the current
/// file is kept as `<path>.bak`, the new text goes to a temporary file beside it, is fsynced,
/// then renamed over `path`, and the directory is fsynced (`crate::fsio`). The file and its
/// backup get [`private_mode`] on every save, set explicitly so the umask cannot open them.
pub fn save_atomic(path: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let existing = std::fs::metadata(path).ok().map(|m| m.permissions().mode());
    let opts = crate::fsio::AtomicOptions::default()
        .mode(private_mode(existing))
        .backup(true);
    crate::fsio::write_atomic(path, text.as_bytes(), opts)
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
            "pbx": [{"name": "main", "host": "10.0.0.2", "port": "5039", "secret": ""}],
            "web": {"workers": 3},
        });
        let out = apply_changes(SAMPLE, &changes).unwrap();
        assert!(out.contains("# cdrbox config"));
        assert!(out.contains("# AMI address\nhost = \"10.0.0.2\""), "{out}");
        assert!(out.contains("name = \"HQ\" # shown on the page"), "{out}");
        assert!(out.contains("secret = \"s3cret\""), "secret kept: {out}");
        assert!(out.contains("port = 5039"));
        assert!(!out.contains("branch"), "second PBX removed: {out}");
        assert!(out.contains("workers = 3"));
        assert!(out.contains("trunk_patterns = [\"^PJSIP/trunk\"]"));
        // A changed value keeps the comment above it (a new host needs the secret again).
        let out = apply_changes(
            SAMPLE,
            &json!({"pbx": [{"host": "10.0.0.3", "secret": "x"}, {}]}),
        )
        .unwrap();
        assert!(out.contains("# AMI address\nhost = \"10.0.0.3\""), "{out}");
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
            (json!({"web": {"listne": "0.0.0.0:1"}}), "web.listne"),
            (
                json!({"pbx": [{"trunk_patterns": ["ok", "("]}]}),
                "pbx[0].trunk_patterns[1]",
            ),
        ];
        for (c, field) in cases {
            let e = apply_changes(SAMPLE, &c).unwrap_err();
            assert_eq!(e.field, field, "{c}: {e}");
            // The key is named once, in plain words.
            assert_eq!(e.to_string().matches(field).count(), 1, "{e}");
            assert!(!e.to_string().contains("..="), "{e}");
        }
        let e = apply_changes(SAMPLE, &json!({"pbx": [{"port": 70000}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pbx[0].port: 70000 is not a port number (1–65535)"
        );
    }

    /// The form and the parser share one check: every int key's bounds come from the table.
    #[test]
    fn form_ranges_are_the_parser_ranges() {
        // 15 minutes was refused by the old form (10–600000) though the file allows it.
        let out = apply_changes("", &json!({"storage": {"flush_interval_ms": 900_000}})).unwrap();
        assert!(out.contains("flush_interval_ms = 900000"), "{out}");
        crate::config::Config::parse(&out, "t").unwrap();
        for (key, bad) in [
            ("ring_kb", 4),
            ("memory_queue_records", 0),
            ("flush_interval_ms", 10),
        ] {
            let e = apply_changes("", &json!({"storage": {key: bad}})).unwrap_err();
            let parsed = crate::config::Config::parse(&format!("[storage]\n{key} = {bad}\n"), "t")
                .unwrap_err()
                .problems();
            assert_eq!(format!("{e} at line 2"), parsed[0], "{key}");
        }
        let f = fields();
        let ring = f
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == "ring_kb")
            .unwrap();
        assert_eq!(
            (ring["kind"]["min"].as_i64(), ring["kind"]["max"].as_i64()),
            (Some(16), Some(1_048_576))
        );
        assert_eq!(ring["label"], "Ring file size");
        assert_eq!(ring["apply"], "restart");
    }

    #[test]
    fn unchanged_and_default_values_are_not_written() {
        let text =
            "[storage]\n# hex on purpose\nflush_records = 0x1F4\n\n[display]\naddress = \"0x3C\"\n";
        // Everything the form shows, at what the file means: no change at all.
        let all = json!({
            "storage": {"flush_records": 500, "retention_days": 0, "keep_uncopied": true, "path": "/var/lib/cdrbox"},
            "display": {"address": "0x3C", "rotation": "0", "driver": "ssd1306"},
            "box": {"name": "cdrbox"},
        });
        assert_eq!(apply_changes(text, &all).unwrap(), text);
        // One change writes that key alone.
        let out = apply_changes(
            text,
            &json!({"storage": {"retention_days": 30, "keep_uncopied": true}}),
        )
        .unwrap();
        assert_eq!(out, "[storage]\n# hex on purpose\nflush_records = 0x1F4\nretention_days = 30\n\n[display]\naddress = \"0x3C\"\n");
        let out = apply_changes(text, &json!({"display": {"address": "0x3D"}})).unwrap();
        assert!(out.contains("address = \"0x3D\""), "{out}");
    }

    /// Issue 13 item 2: the form's rows change the [names] lines they touch, nothing else.
    #[test]
    fn names_rows_change_only_their_lines() {
        let text = format!("{SAMPLE}\n[names]\n# reception\n101 = \"Анна\" # desk\n\"+7 499 123-45-67\" = \"Бухгалтерия\"\n");
        let rows = |r: &[(&str, &str)]| json!({"names": r.iter().map(|(n, v)| json!({"number": n, "name": v})).collect::<Vec<_>>()});
        // The same rows (another spelling of the number): no change at all.
        let same = apply_changes(
            &text,
            &rows(&[("101", "Анна"), ("+74991234567", "Бухгалтерия")]),
        )
        .unwrap();
        assert_eq!(same, text);
        // Change one, remove one, add one: the comment and the rest of the file stay.
        let out =
            apply_changes(&text, &rows(&[("101", "Анна Петрова"), ("102", "Борис")])).unwrap();
        assert!(out.starts_with(SAMPLE), "{out}");
        assert!(
            out.ends_with("[names]\n# reception\n101 = \"Анна Петрова\" # desk\n102 = \"Борис\"\n"),
            "{out}"
        );
        let n = crate::config::parse::normalize(&out);
        assert_eq!(n.root["names"]["102"].as_str(), Some("Борис"));
        // A file without [names] gets one only when a row is added.
        assert_eq!(apply_changes(SAMPLE, &rows(&[])).unwrap(), SAMPLE);
        let out = apply_changes(SAMPLE, &rows(&[("+7 (499) 1", "Офис")])).unwrap();
        assert!(out.ends_with("\n[names]\n\"+74991\" = \"Офис\"\n"), "{out}");
        // Plain words, the row named once.
        for (r, field, says) in [
            (vec![("101", " ")], "names[0].name", "the name is empty"),
            (
                vec![("101", "a"), ("1-01", "b")],
                "names[1].number",
                "is given twice",
            ),
            (vec![("", "a")], "names[0].number", "the number is empty"),
            (
                vec![("101", &"я".repeat(65)[..])],
                "names[0].name",
                "too long (65 characters, at most 64)",
            ),
        ] {
            let e = apply_changes(SAMPLE, &rows(&r)).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(says), "{e}");
            assert_eq!(e.to_string().matches(field).count(), 1, "{e}");
        }
    }

    #[test]
    fn pbx_entries_follow_their_index() {
        // Remove the first PBX: the second keeps its secret and comments.
        let out = apply_changes(SAMPLE, &json!({"pbx": [{"_index": 1, "port": 5040}]})).unwrap();
        assert!(!out.contains("\"main\""), "{out}");
        assert!(
            out.contains("name = \"branch\"\nhost = \"10.0.1.2\"\nsecret = \"\"\nport = 5040"),
            "{out}"
        );
        // A new PBX has no secret of another.
        let out = apply_changes(
            SAMPLE,
            &json!({"pbx": [{"_index": 0}, {"_index": 1}, {"_index": null, "name": "new", "host": "h", "username": "u"}]}),
        )
        .unwrap();
        assert_eq!(out.matches("s3cret").count(), 1, "{out}");
        assert!(
            out.contains("[[pbx]]\nname = \"new\"\nhost = \"h\"\nusername = \"u\"\n"),
            "{out}"
        );
        assert!(apply_changes(SAMPLE, &json!({"pbx": [{"_index": 7}]})).is_err());
        // The same list is no change.
        let same = apply_changes(
            SAMPLE,
            &json!({"pbx": [{"_index": 0, "port": 5038}, {"_index": 1}]}),
        )
        .unwrap();
        assert_eq!(same, SAMPLE);
    }

    /// Issue 11 item 5: the stored secret is never sent to a new host or in clear text.
    #[test]
    fn a_new_host_or_plain_login_needs_the_secret_again() {
        for change in [json!({"host": "10.9.9.9"}), json!({"auth": "plain"})] {
            let mut entry = change.clone();
            entry["_index"] = json!(0);
            let e =
                apply_changes(SAMPLE, &json!({"pbx": [entry.clone(), {"_index": 1}]})).unwrap_err();
            assert_eq!(e.field, "pbx[0].secret", "{change}");
            assert!(e.message.starts_with("enter the secret again"), "{e}");
            // A new CDR-database URL (secret-like too) is not the AMI secret typed again.
            entry["cdr_db"] = json!("mysql://ro:pw@10.9.9.9:3306/asteriskcdrdb");
            let e =
                apply_changes(SAMPLE, &json!({"pbx": [entry.clone(), {"_index": 1}]})).unwrap_err();
            assert_eq!(e.field, "pbx[0].secret", "{change} with cdr_db");
            // An empty secret box is "keep the stored one": still refused.
            entry["secret"] = json!("");
            assert!(
                apply_changes(SAMPLE, &json!({"pbx": [entry.clone(), {"_index": 1}]})).is_err()
            );
            entry["secret"] = json!("typed-again");
            let out = apply_changes(SAMPLE, &json!({"pbx": [entry, {"_index": 1}]})).unwrap();
            assert!(
                out.contains("secret = \"typed-again\"") && !out.contains("s3cret"),
                "{out}"
            );
        }
        // The same host (in other spelling) or a PBX with no stored secret: no question.
        apply_changes(
            SAMPLE,
            &json!({"pbx": [{"_index": 0, "host": " 10.0.0.2 "}, {"_index": 1}]}),
        )
        .unwrap();
        apply_changes(
            SAMPLE,
            &json!({"pbx": [{"_index": 0}, {"_index": 1, "host": "elsewhere"}]}),
        )
        .unwrap();
    }

    #[test]
    fn a_broken_file_is_not_quoted_where_a_secret_is() {
        let text = "[[pbx]]\nname = \"a\"\nsecret = \"hunter2\" oops\n";
        let e = config_view(text).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = apply_changes(text, &json!({})).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    /// Issue 11 item 5: the file and its backup are private after every save, whatever they
    /// were before (a 0666 file, an 0640 one for the service group stays 0640).
    #[test]
    fn saves_are_private_and_so_is_the_backup() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cdrbox.toml");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        std::fs::write(&p, "a = 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        save_atomic(&p, "a = 1\n").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&dir.path().join("cdrbox.toml.bak")), 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        save_atomic(&p, "a = 2\n").unwrap();
        assert_eq!(
            (mode(&p), mode(&dir.path().join("cdrbox.toml.bak"))),
            (0o640, 0o640)
        );
        assert!(
            mode_is_loose(0o644)
                && mode_is_loose(0o660)
                && !mode_is_loose(0o640)
                && !mode_is_loose(0o600)
        );
        assert_eq!(
            private_mode(Some(0o644)),
            0o600,
            "a world-readable file is not kept group-readable"
        );
        assert_eq!(private_mode(None), 0o600);
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
        assert!(!dir.path().join("cdrbox.toml.partial").exists());
    }
}
