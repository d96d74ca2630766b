//! Configuration: raw TOML → validated [`Config`] (PRODUCT.md §10). Pure code, no file I/O here
//! except [`Config::load`], which only reads the file and hands the text to [`Config::parse`].
//!
//! `config/cdrbox.toml` is the documented default and is embedded in the binary
//! ([`DEFAULT_TOML`]). Key names are a contract: outside tools write config files with them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The commented default configuration, shipped inside the binary.
pub const DEFAULT_TOML: &str = include_str!("../config/cdrbox.toml");

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// AMI login method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Action: Challenge` then `Login` with `Key: md5(challenge + secret)`.
    Md5,
    /// `Login` with `Secret:` in clear text.
    Plain,
}

/// One `[[pbx]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbxConfig {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub secret: Secret,
    pub auth: AuthMethod,
    /// IANA zone name of the PBX's clock (`Europe/Moscow`).
    pub timezone: String,
    /// WHATWG label of the legacy charset for non-UTF-8 bytes (`windows-1251`).
    pub charset: String,
    /// Regular expressions over channel names that mark the trunk side.
    pub trunk_patterns: Vec<String>,
    /// Keep-alive `Ping` period.
    pub ping_interval: Duration,
    /// How long a `Ping` may go unanswered before the link is declared dead.
    pub ping_timeout: Duration,
    /// TCP connect time-out.
    pub connect_timeout: Duration,
    /// Time-out for the banner, the challenge and the login response together.
    pub login_timeout: Duration,
    /// `false` disables this PBX without deleting its settings.
    pub enabled: bool,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Directory holding `journal.sqlite` and `journal.ring`; a path ending in `.db`,
    /// `.sqlite` or `.sqlite3` names the database file itself (the ring goes beside it).
    pub path: PathBuf,
    /// Group-commit period: records wait at most this long in the ring before SQLite.
    pub flush_interval: Duration,
    /// Group-commit size: commit as soon as this many records wait.
    pub flush_records: usize,
    /// Delete records older than this many days; 0 keeps them forever.
    pub retention_days: u32,
    /// Delete the oldest records when the database grows past this size; 0 means no limit.
    pub max_size_mb: u64,
    /// Size of the pre-zeroed ring file in KiB.
    pub ring_kb: u32,
    /// Records held in memory while the disk is full before links are paused.
    pub memory_queue_records: usize,
    /// Never let retention delete a record that no USB export has copied yet.
    pub keep_uncopied: bool,
}

/// `[web]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Worker threads serving requests (bounded pool).
    pub workers: usize,
}

/// Which display driver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayDriver {
    Ssd1306,
    None,
}

/// `[display]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayConfig {
    pub driver: DisplayDriver,
    pub i2c_bus: PathBuf,
    /// 7-bit I2C address, 0x3C or 0x3D.
    pub address: u8,
    /// 0–255.
    pub contrast: u8,
    /// 0 or 180 degrees.
    pub rotation: u16,
    /// Pixel-shift/dim after this long without change; zero disables.
    pub screensaver: Duration,
    /// How long each page shows when they rotate.
    pub page_interval: Duration,
}

/// What a USB copy contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsbMode {
    /// Records not copied before.
    New,
    /// Every record.
    All,
}

/// `[usb]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbConfig {
    pub mount_root: PathBuf,
    pub mounts_file: PathBuf,
    pub mode: UsbMode,
    /// CSV profile name written to the stick (`standard`, `excel`, `pbxlogger`, `asterisk`).
    pub profile: String,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter directive: `error`, `warn`, `info`, `debug`, `trace`, or per-target.
    pub level: String,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The box's name, used in export folder names and on the page (`[box] name`).
    pub box_name: String,
    pub pbx: Vec<PbxConfig>,
    pub storage: StorageConfig,
    pub web: WebConfig,
    pub display: DisplayConfig,
    pub usb: UsbConfig,
    pub log: LogConfig,
}

// ---------------------------------------------------------------------------------------------
// Raw TOML shape. Field names here ARE the key names of the file format (a contract); a test
// checks that every one of them is documented in `config/cdrbox.toml`. Everything is optional
// here; defaults and checks live in the validation below, so messages can name key and value.
// Numbers are read as i64 so an out-of-range value gets our message rather than serde's.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "box")]
    box_: Option<RawBox>,
    pbx: Option<Vec<RawPbx>>,
    storage: Option<RawStorage>,
    web: Option<RawWeb>,
    display: Option<RawDisplay>,
    usb: Option<RawUsb>,
    log: Option<RawLog>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBox {
    name: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPbx {
    name: Option<String>,
    host: Option<String>,
    port: Option<i64>,
    username: Option<String>,
    secret: Option<String>,
    auth: Option<String>,
    timezone: Option<String>,
    charset: Option<String>,
    trunk_patterns: Option<Vec<String>>,
    ping_interval_ms: Option<i64>,
    ping_timeout_ms: Option<i64>,
    connect_timeout_ms: Option<i64>,
    login_timeout_ms: Option<i64>,
    enabled: Option<bool>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: Option<String>,
    flush_interval_ms: Option<i64>,
    flush_records: Option<i64>,
    retention_days: Option<i64>,
    max_size_mb: Option<i64>,
    ring_kb: Option<i64>,
    memory_queue_records: Option<i64>,
    keep_uncopied: Option<bool>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<String>,
    workers: Option<i64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisplay {
    driver: Option<String>,
    i2c_bus: Option<String>,
    /// An integer (60) or a string ("0x3C").
    address: Option<toml::Value>,
    contrast: Option<i64>,
    rotation: Option<i64>,
    screensaver_minutes: Option<i64>,
    page_seconds: Option<i64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsb {
    mount_root: Option<String>,
    mounts_file: Option<String>,
    mode: Option<String>,
    profile: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
}

/// Asks serde for a struct's field names (the derive passes them to `deserialize_struct`), so
/// the list of allowed keys is defined once, by the raw structs above.
struct FieldNames(&'static [&'static str]);

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("field names only"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(serde::de::Error::custom("field names only"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn keys_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    let mut f = FieldNames(&[]);
    let _ = T::deserialize(&mut f);
    f.0
}

/// Every table of the file with its allowed keys: `("storage", ["path", …])`. `pbx` is an
/// array of tables (`[[pbx]]`). Used by the unknown-key check and the documentation test.
pub fn schema() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("box", keys_of::<RawBox>()),
        ("pbx", keys_of::<RawPbx>()),
        ("storage", keys_of::<RawStorage>()),
        ("web", keys_of::<RawWeb>()),
        ("display", keys_of::<RawDisplay>()),
        ("usb", keys_of::<RawUsb>()),
        ("log", keys_of::<RawLog>()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Defaults (documented in config/cdrbox.toml; a test checks the file says the same).
// ---------------------------------------------------------------------------------------------

/// AMI's standard TCP port.
pub const DEFAULT_PORT: u16 = 5038;
/// Zone used when a PBX has none configured; set the PBX's real zone, or times are off.
pub const DEFAULT_TIMEZONE: &str = "UTC";
/// Legacy charset for bytes that are not UTF-8. windows-1252 (Western European) is what a
/// Windows-configured PBX or phone most often sends; Russian/Ukrainian offices set windows-1251.
pub const DEFAULT_CHARSET: &str = "windows-1252";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One thing wrong in a config file. `path` is the key path (`pbx[1].timezone`) so the web page
/// can point at the field; `message` is the full sentence shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(l) = self.line {
            write!(f, " at line {l}")?;
        }
        Ok(())
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a value of the wrong type. `message` is the parser's own, with line,
    /// column and the offending line.
    #[error("{origin}: {message}")]
    Syntax {
        origin: String,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// Valid TOML with unknown keys or bad values; every problem found is listed.
    #[error("{origin}: {}", format_problems(problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

fn format_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} problems:", many.len());
            for p in many {
                s.push_str("\n  - ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

impl ConfigError {
    /// The individual problems (one for syntax and read errors).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { problems, .. } => {
                problems.iter().map(ToString::to_string).collect()
            }
            ConfigError::Syntax { message, .. } => vec![message.clone()],
            ConfigError::Read { .. } => vec![self.to_string()],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word` by edit distance (case-insensitive), if close enough to be
/// a plausible typo.
pub fn did_you_mean<'a, I: IntoIterator<Item = &'a str>>(
    word: &str,
    candidates: I,
) -> Option<&'a str> {
    let w = word.to_lowercase();
    let limit = (w.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&w, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn bad(&mut self, path: &str, detail: impl std::fmt::Display) {
        self.problems.push(Problem {
            path: path.to_owned(),
            message: format!("{path}: {detail}"),
            line: None,
        });
    }

    /// An integer setting within `min..=max`.
    fn int(
        &mut self,
        path: &str,
        v: Option<i64>,
        default: i64,
        min: i64,
        max: i64,
        unit: &str,
    ) -> i64 {
        match v {
            None => default,
            Some(x) if (min..=max).contains(&x) => x,
            Some(x) => {
                self.bad(
                    path,
                    format!("{x} is out of range (allowed {min}–{max}{unit})"),
                );
                default
            }
        }
    }

    fn millis(&mut self, path: &str, v: Option<i64>, default: i64, min: i64, max: i64) -> Duration {
        let ms = self.int(path, v, default, min, max, " ms");
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// A string from a fixed list.
    fn choice<T: Copy>(
        &mut self,
        path: &str,
        v: Option<&str>,
        default: T,
        allowed: &[(&'static str, T)],
    ) -> T {
        let Some(s) = v else { return default };
        if let Some((_, t)) = allowed
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s.trim()))
        {
            return *t;
        }
        let names: Vec<String> = allowed.iter().map(|(n, _)| format!("{n:?}")).collect();
        let hint = did_you_mean(s, allowed.iter().map(|(n, _)| *n))
            .map(|c| format!("; did you mean {c:?}?"))
            .unwrap_or_default();
        self.bad(
            path,
            format!("{s:?} is not allowed (allowed: {}{hint})", names.join(", ")),
        );
        default
    }

    /// A name shown on the page and used in folder names.
    fn name(&mut self, path: &str, v: &str) {
        let ok = !v.trim().is_empty()
            && v.chars().count() <= 64
            && !v.chars().any(|c| c.is_control() || c == '/' || c == '\\')
            && v != "."
            && v != "..";
        if !ok {
            self.bad(path, format!("{v:?} is not allowed (1–64 characters, no \"/\", \"\\\" or control characters)"));
        }
    }

    /// A value sent inside an AMI header: a line break would inject headers.
    fn header_safe(&mut self, path: &str, v: &str) {
        if v.contains(['\r', '\n']) {
            self.bad(path, "must not contain line breaks");
        }
    }

    fn path(&mut self, path: &str, v: Option<String>, default: &str) -> PathBuf {
        match v {
            None => PathBuf::from(default),
            Some(s) if s.trim().is_empty() => {
                self.bad(path, "must not be empty");
                PathBuf::from(default)
            }
            Some(s) => PathBuf::from(s),
        }
    }
}

/// `display.address`: 60, "60", "0x3C" or "0x3c".
fn parse_i2c_address(v: &toml::Value) -> Option<i64> {
    match v {
        toml::Value::Integer(i) => Some(*i),
        toml::Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => i64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

/// A `tracing` filter: comma-separated `level` or `target=level` directives.
fn valid_log_filter(s: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let is_level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l.trim()));
    !s.trim().is_empty()
        && s.split(',').all(|d| match d.split_once('=') {
            None => is_level(d),
            Some((target, level)) => {
                !target.trim().is_empty()
                    && target
                        .trim()
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '-')
                    && is_level(level)
            }
        })
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------------

/// Unknown keys anywhere, with the closest allowed key and the line.
fn unknown_keys(text: &str, root: &toml::de::DeTable<'_>) -> Vec<Problem> {
    let schema = schema();
    let tables: Vec<&str> = schema.iter().map(|(t, _)| *t).collect();
    let mut out = Vec::new();
    let check_table = |out: &mut Vec<Problem>,
                       t: &toml::de::DeTable<'_>,
                       allowed: &[&str],
                       path: &str,
                       shown: &str| {
        for (k, _) in t.iter() {
            let key: &str = k.get_ref();
            if allowed.contains(&key) {
                continue;
            }
            let hint = did_you_mean(key, allowed.iter().copied())
                .map(|c| format!(" (did you mean {c:?}?)"))
                .unwrap_or_default();
            out.push(Problem {
                path: format!("{path}.{key}"),
                message: format!("unknown key {key:?} in {shown}{hint}"),
                line: Some(line_of(text, k.span().start)),
            });
        }
    };
    for (k, v) in root.iter() {
        let key: &str = k.get_ref();
        match schema.iter().find(|(t, _)| *t == key) {
            None => {
                let is_table = matches!(v.get_ref(), toml::de::DeValue::Table(_))
                    || matches!(v.get_ref(), toml::de::DeValue::Array(a) if a.iter().all(|e| matches!(e.get_ref(), toml::de::DeValue::Table(_))) && !a.is_empty());
                let hint = did_you_mean(key, tables.iter().copied());
                let message = if is_table {
                    format!(
                        "unknown table [{key}]{}",
                        hint.map(|c| format!(" (did you mean [{c}]?)"))
                            .unwrap_or_default()
                    )
                } else {
                    format!(
                        "unknown key {key:?} at the top level (settings belong in a table such as [box] or [storage]){}",
                        hint.map(|c| format!(" (did you mean [{c}]?)")).unwrap_or_default()
                    )
                };
                out.push(Problem {
                    path: key.to_owned(),
                    message,
                    line: Some(line_of(text, k.span().start)),
                });
            }
            Some((name, allowed)) => match v.get_ref() {
                toml::de::DeValue::Table(t) if *name != "pbx" => {
                    check_table(&mut out, t, allowed, name, &format!("[{name}]"));
                }
                toml::de::DeValue::Array(a) if *name == "pbx" => {
                    for (i, e) in a.iter().enumerate() {
                        if let toml::de::DeValue::Table(t) = e.get_ref() {
                            let p = format!("pbx[{i}]");
                            check_table(&mut out, t, allowed, &p, &p);
                        }
                    }
                }
                // Wrong shapes ([pbx] instead of [[pbx]]) are reported by the typed parse.
                _ => {}
            },
        }
    }
    out
}

impl Config {
    /// Parses and validates config text. `origin` names it in messages (a path, or
    /// `"settings form"`). Every problem found is reported at once.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let syntax = |e: toml::de::Error| {
            let (line, column) = match e.span() {
                Some(s) => {
                    let (l, c) = line_col(text, s.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            ConfigError::Syntax {
                origin: origin.to_owned(),
                message: e.to_string().trim_end().to_owned(),
                line,
                column,
            }
        };
        let doc = toml::de::DeTable::parse(text).map_err(|_| {
            // Re-parse through the full deserializer, whose error renders line, column and
            // the offending line.
            match toml::from_str::<toml::Table>(text) {
                Err(e) => syntax(e),
                Ok(_) => ConfigError::Syntax {
                    origin: origin.to_owned(),
                    message: "not a valid TOML document".to_owned(),
                    line: None,
                    column: None,
                },
            }
        })?;
        let unknown = unknown_keys(text, doc.get_ref());
        if !unknown.is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems: unknown,
            });
        }
        let raw: RawConfig = toml::from_str(text).map_err(syntax)?;
        let mut c = Checker {
            problems: Vec::new(),
        };
        let config = Config::validate(raw, &mut c);
        if c.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems: c.problems,
            })
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The documented default ([`DEFAULT_TOML`]).
    pub fn default_config() -> Config {
        match Config::parse(DEFAULT_TOML, "built-in default config") {
            Ok(c) => c,
            // The embedded file is part of the binary and checked by tests, not user input.
            Err(e) => panic!("the built-in default config is invalid: {e}"),
        }
    }

    /// Things that are allowed but probably not what the user wants (for `check-config` and
    /// the settings page).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.pbx.is_empty() {
            w.push(
                "no [[pbx]] is configured: the box records nothing until one is added (settings page, or a [[pbx]] table in the config file)"
                    .to_owned(),
            );
        } else if self.pbx.iter().all(|p| !p.enabled) {
            w.push("every [[pbx]] has enabled = false: the box records nothing".to_owned());
        }
        for (i, p) in self.pbx.iter().enumerate() {
            if p.secret.0.is_empty() {
                w.push(format!(
                    "pbx[{i}].secret is empty: Asterisk will refuse the login"
                ));
            }
            if p.auth == AuthMethod::Plain {
                w.push(format!(
                    "pbx[{i}].auth = \"plain\" sends the secret in clear text; \"md5\" does not"
                ));
            }
            if p.ping_timeout >= p.ping_interval {
                w.push(format!(
                    "pbx[{i}].ping_timeout_ms ({}) is not shorter than ping_interval_ms ({}): a dead link is noticed late",
                    p.ping_timeout.as_millis(),
                    p.ping_interval.as_millis()
                ));
            }
            if p.timezone == DEFAULT_TIMEZONE {
                w.push(format!(
                    "pbx[{i}].timezone is \"UTC\": CDR times are the PBX's local clock, so set its real zone (e.g. \"Europe/Moscow\")"
                ));
            }
        }
        w
    }

    fn validate(raw: RawConfig, c: &mut Checker) -> Config {
        let b = raw.box_.unwrap_or_default();
        let box_name = b.name.unwrap_or_else(|| "cdrbox".to_owned());
        c.name("box.name", &box_name);

        let mut pbx: Vec<PbxConfig> = Vec::new();
        for (i, p) in raw.pbx.unwrap_or_default().into_iter().enumerate() {
            let cfg = validate_pbx(i, p, c);
            if let Some(j) = pbx
                .iter()
                .position(|q| q.name.eq_ignore_ascii_case(&cfg.name))
            {
                c.bad(
                    &format!("pbx[{i}].name"),
                    format!(
                        "{:?} is already used by pbx[{j}] (names must be unique)",
                        cfg.name
                    ),
                );
            }
            pbx.push(cfg);
        }

        let s = raw.storage.unwrap_or_default();
        let storage = StorageConfig {
            path: c.path("storage.path", s.path, "/var/lib/cdrbox"),
            flush_interval: c.millis(
                "storage.flush_interval_ms",
                s.flush_interval_ms,
                60_000,
                100,
                3_600_000,
            ),
            flush_records: c.int(
                "storage.flush_records",
                s.flush_records,
                500,
                1,
                100_000,
                "",
            ) as usize,
            retention_days: c.int(
                "storage.retention_days",
                s.retention_days,
                0,
                0,
                36_500,
                " days",
            ) as u32,
            max_size_mb: c.int(
                "storage.max_size_mb",
                s.max_size_mb,
                0,
                0,
                10_000_000,
                " MB",
            ) as u64,
            ring_kb: c.int("storage.ring_kb", s.ring_kb, 1024, 16, 1_048_576, " KiB") as u32,
            memory_queue_records: c.int(
                "storage.memory_queue_records",
                s.memory_queue_records,
                100_000,
                1_000,
                10_000_000,
                "",
            ) as usize,
            keep_uncopied: s.keep_uncopied.unwrap_or(true),
        };

        let wr = raw.web.unwrap_or_default();
        let listen_text = wr.listen.unwrap_or_else(|| "0.0.0.0:80".to_owned());
        let listen = match listen_text.trim().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                c.bad(
                    "web.listen",
                    format!("{listen_text:?} is not an address:port (e.g. \"0.0.0.0:80\", \"127.0.0.1:8080\", \"[::]:80\")"),
                );
                SocketAddr::from(([0, 0, 0, 0], 80))
            }
        };
        let web = WebConfig {
            listen,
            workers: c.int("web.workers", wr.workers, 4, 1, 64, "") as usize,
        };

        let d = raw.display.unwrap_or_default();
        let driver = c.choice(
            "display.driver",
            d.driver.as_deref(),
            DisplayDriver::Ssd1306,
            &[
                ("ssd1306", DisplayDriver::Ssd1306),
                ("none", DisplayDriver::None),
            ],
        );
        let address = match &d.address {
            None => 0x3C,
            Some(v) => match parse_i2c_address(v) {
                Some(a @ (0x3C | 0x3D)) => a as u8,
                Some(a) => {
                    c.bad(
                        "display.address",
                        format!("{a:#04X} ({a}) is not an SSD1306 address (allowed: 0x3C, 0x3D)"),
                    );
                    0x3C
                }
                None => {
                    c.bad(
                        "display.address",
                        format!("{v} is not an I2C address (write 0x3C or 60)"),
                    );
                    0x3C
                }
            },
        };
        let rotation = match d.rotation {
            None => 0,
            Some(r @ (0 | 180)) => r as u16,
            Some(r) => {
                c.bad(
                    "display.rotation",
                    format!("{r} is not allowed (allowed: 0, 180)"),
                );
                0
            }
        };
        let display = DisplayConfig {
            driver,
            i2c_bus: c.path("display.i2c_bus", d.i2c_bus, "/dev/i2c-1"),
            address,
            contrast: c.int("display.contrast", d.contrast, 128, 0, 255, "") as u8,
            rotation,
            screensaver: Duration::from_secs(
                60 * c.int(
                    "display.screensaver_minutes",
                    d.screensaver_minutes,
                    10,
                    0,
                    1440,
                    " minutes",
                ) as u64,
            ),
            page_interval: Duration::from_secs(c.int(
                "display.page_seconds",
                d.page_seconds,
                5,
                1,
                3600,
                " s",
            ) as u64),
        };

        let u = raw.usb.unwrap_or_default();
        let profile = u.profile.unwrap_or_else(|| "excel".to_owned());
        if profile.parse::<crate::export::Profile>().is_err() {
            let names = crate::export::Profile::ALL.map(|p| p.as_str());
            let hint = did_you_mean(&profile, names)
                .map(|c| format!("; did you mean {c:?}?"))
                .unwrap_or_default();
            c.bad(
                "usb.profile",
                format!("{profile:?} is not a CSV profile (allowed: \"standard\", \"excel\", \"pbxlogger\", \"asterisk\"{hint})"),
            );
        }
        let usb = UsbConfig {
            mount_root: c.path("usb.mount_root", u.mount_root, "/media/cdrbox"),
            mounts_file: c.path("usb.mounts_file", u.mounts_file, "/proc/self/mounts"),
            mode: c.choice(
                "usb.mode",
                u.mode.as_deref(),
                UsbMode::New,
                &[("new", UsbMode::New), ("all", UsbMode::All)],
            ),
            profile: profile.trim().to_ascii_lowercase(),
        };

        let level = raw
            .log
            .unwrap_or_default()
            .level
            .unwrap_or_else(|| "info".to_owned());
        if !valid_log_filter(&level) {
            c.bad(
                "log.level",
                format!("{level:?} is not a log filter (allowed: error, warn, info, debug, trace, off, or target=level, comma-separated)"),
            );
        }

        Config {
            box_name,
            pbx,
            storage,
            web,
            display,
            usb,
            log: LogConfig { level },
        }
    }
}

fn validate_pbx(i: usize, p: RawPbx, c: &mut Checker) -> PbxConfig {
    let at = |k: &str| format!("pbx[{i}].{k}");
    let required = |c: &mut Checker, k: &str, v: Option<String>, example: &str| -> String {
        match v {
            None => {
                c.bad(&at(k), format!("missing ({example})"));
                String::new()
            }
            Some(s) if s.trim().is_empty() => {
                c.bad(&at(k), format!("must not be empty ({example})"));
                s
            }
            Some(s) => s,
        }
    };
    let name = required(
        c,
        "name",
        p.name,
        "a short name for this PBX, e.g. \"office\"",
    );
    if !name.trim().is_empty() {
        c.name(&at("name"), &name);
    }
    let host = required(
        c,
        "host",
        p.host,
        "the PBX's address, e.g. \"192.168.1.10\"",
    );
    if host.trim().chars().any(char::is_whitespace) || host.contains('/') {
        c.bad(
            &at("host"),
            format!("{host:?} is not a host name or IP address"),
        );
    }
    let port = match p.port {
        None => DEFAULT_PORT,
        Some(x) => match u16::try_from(x) {
            Ok(v) if v > 0 => v,
            _ => {
                c.bad(&at("port"), format!("{x} is not a port number (1–65535)"));
                DEFAULT_PORT
            }
        },
    };
    let username = required(
        c,
        "username",
        p.username,
        "the user of a [section] in the PBX's manager.conf",
    );
    c.header_safe(&at("username"), &username);
    let secret = p.secret.unwrap_or_default();
    c.header_safe(&at("secret"), &secret);
    let auth = c.choice(
        &at("auth"),
        p.auth.as_deref(),
        AuthMethod::Md5,
        &[("md5", AuthMethod::Md5), ("plain", AuthMethod::Plain)],
    );

    let timezone = p.timezone.unwrap_or_else(|| DEFAULT_TIMEZONE.to_owned());
    if jiff::tz::TimeZone::get(timezone.trim()).is_err() {
        let names: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_owned())
            .collect();
        let hint = match did_you_mean(&timezone, names.iter().map(String::as_str)) {
            Some(s) => format!("did you mean {s:?}?"),
            None => "e.g. \"Europe/Moscow\", \"America/New_York\", \"UTC\"".to_owned(),
        };
        c.bad(
            &at("timezone"),
            format!("{timezone:?} is not an IANA time zone ({hint})"),
        );
    }
    let charset = p.charset.unwrap_or_else(|| DEFAULT_CHARSET.to_owned());
    match encoding_rs::Encoding::for_label(charset.trim().as_bytes()) {
        Some(e) if e != encoding_rs::REPLACEMENT && e != encoding_rs::UTF_16LE && e != encoding_rs::UTF_16BE => {}
        _ => c.bad(
            &at("charset"),
            format!("{charset:?} is not a usable charset label (e.g. \"windows-1251\", \"windows-1252\", \"koi8-r\", \"iso-8859-2\", \"utf-8\")"),
        ),
    }
    let trunk_patterns = p
        .trunk_patterns
        .unwrap_or_else(|| vec![crate::record::DEFAULT_TRUNK_PATTERN.to_owned()]);
    for (j, pat) in trunk_patterns.iter().enumerate() {
        if let Err(e) = regex_lite::Regex::new(pat) {
            let reason = e.to_string().replace('\n', " ");
            c.bad(
                &format!("pbx[{i}].trunk_patterns[{j}]"),
                format!("{pat:?} is not a valid regular expression: {reason}"),
            );
        }
    }
    PbxConfig {
        name,
        host: host.trim().to_owned(),
        port,
        username,
        secret: Secret(secret),
        auth,
        timezone: timezone.trim().to_owned(),
        charset: charset.trim().to_owned(),
        trunk_patterns,
        ping_interval: c.millis(
            &at("ping_interval_ms"),
            p.ping_interval_ms,
            20_000,
            1_000,
            3_600_000,
        ),
        ping_timeout: c.millis(
            &at("ping_timeout_ms"),
            p.ping_timeout_ms,
            10_000,
            1_000,
            600_000,
        ),
        connect_timeout: c.millis(
            &at("connect_timeout_ms"),
            p.connect_timeout_ms,
            10_000,
            100,
            600_000,
        ),
        login_timeout: c.millis(
            &at("login_timeout_ms"),
            p.login_timeout_ms,
            10_000,
            100,
            600_000,
        ),
        enabled: p.enabled.unwrap_or(true),
    }
}
