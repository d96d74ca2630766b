//! Configuration: TOML text → validated [`Config`] (`config/cdrbox.toml`, README "Configuration
//! reference"). Pure code, no file I/O here
//! except [`Config::load`], which only reads the file and hands the text to [`Config::parse`].
//!
//! Every key is defined once, in the table in [`keys`] (type, default, range, unit, label,
//! group, help, live or restart, secret). [`parse`] checks a text against that table and fills
//! in defaults; the typed structs below are then built from the normalised values by serde, so
//! a struct field and its table entry are the only two places a key appears. The commented
//! `config/cdrbox.toml` ([`DEFAULT_TOML`], embedded in the binary) is generated from the table
//! by [`doc`] and a test checks the shipped file is exactly that. Key names are a contract:
//! outside tools write config files with them.

pub mod checks;
pub mod doc;
pub mod keys;
pub mod parse;
pub mod spec;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use parse::{did_you_mean, Normalized, Problem, ProblemKind};

/// The commented default configuration, shipped inside the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/cdrbox.toml");

/// AMI's standard TCP port.
pub const DEFAULT_PORT: u16 = 5038;
/// Zone used when a PBX has none configured; set the PBX's real zone, or times are off.
pub const DEFAULT_TIMEZONE: &str = "UTC";
/// Legacy charset for bytes that are not UTF-8. windows-1252 (Western European) is what a
/// Windows-configured PBX or phone most often sends; Russian/Ukrainian offices set windows-1251.
pub const DEFAULT_CHARSET: &str = "windows-1252";

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// AMI login method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// `Action: Challenge` then `Login` with `Key: md5(challenge + secret)`.
    Md5,
    /// `Login` with `Secret:` in clear text.
    Plain,
}

/// Whole-number keys with a unit, read into `Duration` fields.
mod units {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
    pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
    pub fn minutes<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(|m| Duration::from_secs(m.saturating_mul(60)))
    }
    pub fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(|h| Duration::from_secs(h.saturating_mul(3600)))
    }
}

/// One `[[pbx]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(rename = "ping_interval_ms", deserialize_with = "units::millis")]
    pub ping_interval: Duration,
    /// How long a `Ping` may go unanswered before the link is declared dead.
    #[serde(rename = "ping_timeout_ms", deserialize_with = "units::millis")]
    pub ping_timeout: Duration,
    /// TCP connect time-out.
    #[serde(rename = "connect_timeout_ms", deserialize_with = "units::millis")]
    pub connect_timeout: Duration,
    /// Time-out for the banner, the challenge and the login response together.
    #[serde(rename = "login_timeout_ms", deserialize_with = "units::millis")]
    pub login_timeout: Duration,
    /// Spacing of the quick reconnects after a logged-in link dropped (the first is immediate).
    #[serde(rename = "reconnect_quick_ms", deserialize_with = "units::millis")]
    pub reconnect_quick: Duration,
    /// Quick reconnects after the immediate one, before the growing spacing.
    pub reconnect_quick_retries: u32,
    /// `false` disables this PBX without deleting its settings.
    pub enabled: bool,
    /// FreePBX's CDR database (`mysql://user:password@host:3306/asteriskcdrdb`), to fill gaps
    /// from (issue 12). Holds a password: redacted in `Debug`.
    #[serde(default)]
    pub cdr_db: Option<Secret>,
    /// Table of the CDRs in that database (`cdr`, or `database.table`).
    pub cdr_db_table: String,
    /// The longest call: how far before a gap a row's `calldate` (the start) may be.
    #[serde(
        rename = "cdr_db_lookback_minutes",
        deserialize_with = "units::minutes"
    )]
    pub cdr_db_lookback: Duration,
    /// How often the database is reconciled with the journal; zero: never.
    #[serde(
        rename = "cdr_db_reconcile_minutes",
        deserialize_with = "units::minutes"
    )]
    pub cdr_db_reconcile_every: Duration,
    /// How far back a reconciliation looks.
    #[serde(rename = "cdr_db_reconcile_hours", deserialize_with = "units::hours")]
    pub cdr_db_reconcile_window: Duration,
    /// How long after a call ended the database is asked about it.
    #[serde(rename = "cdr_db_settle_seconds", deserialize_with = "units::seconds")]
    pub cdr_db_settle: Duration,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory holding `journal.sqlite` and `journal.ring`; a path ending in `.db`,
    /// `.sqlite` or `.sqlite3` names the database file itself (the ring goes beside it).
    pub path: PathBuf,
    /// Group-commit period: records wait at most this long in the ring before SQLite.
    #[serde(rename = "flush_interval_ms", deserialize_with = "units::millis")]
    pub flush_interval: Duration,
    /// Group-commit size: commit as soon as this many records wait.
    pub flush_records: usize,
    /// Delete records older than this many days; 0 keeps them forever.
    pub retention_days: u32,
    /// Delete the oldest records when the database grows past this size; 0 means no limit.
    pub max_size_mb: u64,
    /// Size of the pre-zeroed ring file in KiB.
    pub ring_kb: u32,
    /// Records held only in memory (ring full or failing) before new ones are dropped.
    pub memory_queue_records: usize,
    /// Bytes (KiB) those records may take in memory before new ones are dropped.
    pub memory_queue_kb: u32,
    /// Never let retention delete a record that no USB export has copied yet.
    pub keep_uncopied: bool,
    /// Never let retention delete a record the uplink has not sent. Not a `[storage]` key: set
    /// from `[uplink]` (url not empty and `keep_unsent`) when the config is read.
    #[serde(skip)]
    pub keep_unsent: bool,
}

/// `[web]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Worker threads serving requests (bounded pool).
    pub workers: usize,
    /// Serve over HTTPS on `https_listen`; plain HTTP then redirects.
    pub https: bool,
    pub https_listen: SocketAddr,
    /// Names the `Host` check accepts besides IP literals, `localhost` and the hostname.
    pub hostnames: Vec<String>,
}

/// Which display driver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisplayDriver {
    Ssd1306,
    None,
}

/// `[display]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(rename = "screensaver_minutes", deserialize_with = "units::minutes")]
    pub screensaver: Duration,
    /// How long each page shows when they rotate.
    #[serde(rename = "page_seconds", deserialize_with = "units::seconds")]
    pub page_interval: Duration,
}

/// What a USB copy contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsbMode {
    /// Records not copied before.
    New,
    /// Every record.
    All,
}

/// `[usb]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbConfig {
    pub mount_root: PathBuf,
    pub mounts_file: PathBuf,
    pub mode: UsbMode,
    /// CSV profile name written to the stick (`standard`, `excel`, `pbxlogger`, `asterisk`).
    pub profile: String,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter directive: `error`, `warn`, `info`, `debug`, `trace`, or per-target.
    pub level: String,
}

/// `[alarms]`: who is told about alarms, how and when (`crate::alarms`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsConfig {
    /// `smtp://user:password@host:587`, `…?tls=required`, `smtps://…:465`; empty: no e-mail.
    pub smtp_url: Secret,
    pub from: String,
    pub to: Vec<String>,
    /// Empty: no webhook.
    pub webhook_url: Secret,
    pub webhook_token: Secret,
    /// Extra trusted CAs (PEM) for the mail server and the webhook.
    pub ca_file: Option<PathBuf>,
    /// A link must be down this long before it is an alarm; 0: at once.
    pub link_down_minutes: u32,
    /// Reminder period while an alarm stands; 0: never.
    pub reminder_minutes: u32,
    /// The PBX must refuse the login this long before AUTH is mailed; 0: at once.
    pub auth_failed_minutes: u32,
    /// PBX QUIET after this long without a call during `business_hours`; 0: off.
    pub quiet_minutes: u32,
    /// Canonical `alarms::hours::BusinessHours` text, in each PBX's zone.
    pub business_hours: String,
    /// The journal's STORAGE warning and critical alarms (percent of the filesystem used).
    pub storage_warning_percent: u8,
    pub storage_critical_percent: u8,
    /// Mail USB ERROR.
    pub usb_copy_failed: bool,
    /// GAP OPEN for gaps not filled this many hours after they ended; 0: off.
    pub gap_unfilled_hours: u32,
    /// `HH:MM` of the daily report in the first PBX's zone; empty: no report.
    pub daily_report: String,
    /// The CSV profile attached to the report.
    pub daily_report_profile: String,
    /// A missed call is called back when a call follows within this many minutes.
    pub callback_minutes: u32,
}

/// `[uplink]`: the central PostgreSQL every record is forwarded to (`crate::uplink`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// `postgres://user:password@host:5432/db?sslmode=…`; empty: the uplink is off.
    pub url: Secret,
    /// Empty: the box name.
    pub box_id: String,
    pub batch_records: u32,
    pub interval_ms: u32,
    /// A connect or batch without an answer for this long is given up and retried.
    pub batch_timeout_ms: u32,
    /// Extra trusted CAs (PEM) for the central server.
    pub ca_file: Option<PathBuf>,
    /// Retention keeps what the central server has not confirmed.
    pub keep_unsent: bool,
}

/// `[box]`, read into [`Config::box_name`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoxConfig {
    name: String,
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
    pub alarms: AlarmsConfig,
    pub uplink: UplinkConfig,
    /// `[names]`: a person's name by extension or number (normalised as
    /// [`checks::phone_number`] writes it), applied live (`crate::names`).
    pub names: std::collections::BTreeMap<String, String>,
}

/// Every table of the file with its allowed keys: `("storage", ["path", …])`. `pbx` is an
/// array of tables (`[[pbx]]`). From the key table.
pub fn schema() -> Vec<(&'static str, Vec<&'static str>)> {
    keys::TABLES
        .iter()
        .map(|t| (t.name, keys::keys_of(t.name).map(|k| k.key).collect()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. The message names the file; the OS error is the source
    /// (so a printed chain says it once).
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax errors, unknown keys and bad values: every problem found, in file order.
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
    /// The individual problems as sentences (one for a read error).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { problems, .. } => {
                problems.iter().map(ToString::to_string).collect()
            }
            ConfigError::Read { path, source } => {
                vec![format!(
                    "cannot read config file {}: {source}",
                    path.display()
                )]
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------------

/// One section of the normalised values as its typed struct. Every key is present (defaults
/// filled in) and checked, so this fails only if the table and the struct disagree — a bug
/// the unit tests catch.
fn section<T: serde::de::DeserializeOwned>(value: Option<&toml::Value>) -> Result<T, String> {
    let value = value
        .cloned()
        .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
    value.try_into().map_err(|e: toml::de::Error| e.to_string())
}

impl Config {
    /// Parses and validates config text. `origin` names it in messages (a path, or
    /// `"settings form"`). Every problem found is reported at once.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let n = parse::normalize(text);
        let mut problems = n.problems;
        let built = Config::from_normalized(&n.root);
        match built {
            Ok(config) => {
                cross_checks(&config, &n.lines, &mut problems);
                if problems.is_empty() {
                    return Ok(config);
                }
            }
            Err(e) if problems.is_empty() => {
                problems.push(Problem::value(
                    "config".into(),
                    format!("internal error building the configuration: {e}"),
                    None,
                ));
            }
            // The placeholders of a broken file may not build; its problems say why.
            Err(_) => {}
        }
        problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
        Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        })
    }

    /// The typed config from normalised values ([`parse::normalize`]'s `root`).
    pub fn from_normalized(root: &toml::Table) -> Result<Config, String> {
        let b: BoxConfig = section(root.get("box"))?;
        let pbx = match root.get("pbx") {
            Some(toml::Value::Array(list)) => list
                .iter()
                .map(|p| section::<PbxConfig>(Some(p)))
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        let uplink: UplinkConfig = section(root.get("uplink"))?;
        let mut storage: StorageConfig = section(root.get("storage"))?;
        storage.keep_unsent = !uplink.url.0.is_empty() && uplink.keep_unsent;
        Ok(Config {
            box_name: b.name,
            pbx,
            storage,
            web: section(root.get("web"))?,
            display: section(root.get("display"))?,
            usb: section(root.get("usb"))?,
            log: section(root.get("log"))?,
            alarms: section(root.get("alarms"))?,
            uplink,
            names: match root.get("names") {
                Some(toml::Value::Table(t)) => t
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect(),
                _ => Default::default(),
            },
        })
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
}

/// The keys that differ between two configs (normalised, as [`parse::normalize`] gives them)
/// and take effect only after a restart, as `(key path, entry)` — what the settings page lists
/// under "Saved, not yet in effect" while `running` is what the box started with.
pub fn restart_pending(
    running: &toml::Table,
    saved: &toml::Table,
) -> Vec<(String, &'static spec::Key)> {
    let mut out = Vec::new();
    for t in keys::TABLES {
        let restart_keys = keys::keys_of(t.name).filter(|k| k.apply == spec::Apply::Restart);
        if t.array {
            let list = |root: &toml::Table| -> Vec<toml::Value> {
                root.get(t.name)
                    .and_then(toml::Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let (a, b) = (list(running), list(saved));
            for k in restart_keys {
                for i in 0..a.len().max(b.len()) {
                    if a.get(i).and_then(|e| e.get(k.key)) != b.get(i).and_then(|e| e.get(k.key)) {
                        out.push((k.path(Some(i)), k));
                    }
                }
            }
        } else {
            let (a, b) = (running.get(t.name), saved.get(t.name));
            for k in restart_keys {
                if a.and_then(|t| t.get(k.key)) != b.and_then(|t| t.get(k.key)) {
                    out.push((k.path(None), k));
                }
            }
        }
    }
    out
}

/// Rules over more than one key.
fn cross_checks(
    c: &Config,
    lines: &std::collections::HashMap<String, usize>,
    problems: &mut Vec<Problem>,
) {
    let a = &c.alarms;
    if a.storage_warning_percent >= a.storage_critical_percent {
        let path = "alarms.storage_critical_percent".to_owned();
        let line = lines.get(&path).copied();
        problems.push(Problem::value(
            path,
            format!(
                "{} is not above storage_warning_percent ({}): raise it or lower the warning",
                a.storage_critical_percent, a.storage_warning_percent
            ),
            line,
        ));
    }
    for (i, p) in c.pbx.iter().enumerate() {
        if p.name.trim().is_empty() {
            continue;
        }
        if let Some(j) = c.pbx[..i]
            .iter()
            .position(|q| q.name.eq_ignore_ascii_case(&p.name))
        {
            let path = format!("pbx[{i}].name");
            let line = lines.get(&path).copied();
            problems.push(Problem::value(
                path,
                format!(
                    "{:?} is already used by pbx[{j}] (names must be unique)",
                    p.name
                ),
                line,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each table's defaults build its struct: a table entry without a struct field (or a
    /// field without an entry) fails here.
    #[test]
    fn table_and_structs_agree() {
        let n = parse::normalize("[[pbx]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\n");
        assert!(n.problems.is_empty(), "{:?}", n.problems);
        let c = Config::from_normalized(&n.root).unwrap();
        assert_eq!(c.pbx.len(), 1);
        // A key the struct does not know is refused by deny_unknown_fields.
        let mut root = n.root.clone();
        if let Some(toml::Value::Table(t)) = root.get_mut("web") {
            t.insert("no_such_field".into(), toml::Value::Integer(1));
        }
        assert!(Config::from_normalized(&root).is_err());
    }

    #[test]
    fn retention_keeps_unsent_records_only_while_the_uplink_is_set() {
        let keep = |extra: &str| {
            let n = parse::normalize(&format!(
                "[[pbx]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\n{extra}"
            ));
            assert!(n.problems.is_empty(), "{:?}", n.problems);
            Config::from_normalized(&n.root)
                .unwrap()
                .storage
                .keep_unsent
        };
        assert!(!keep(""), "no uplink: nothing to wait for");
        assert!(keep("[uplink]\nurl = \"postgres://u:p@db:5432/cdr\"\n"));
        assert!(!keep(
            "[uplink]\nurl = \"postgres://u:p@db:5432/cdr\"\nkeep_unsent = false\n"
        ));
    }

    #[test]
    fn restart_pending_lists_changed_restart_keys_only() {
        let run = parse::normalize("[web]\nlisten = \"0.0.0.0:80\"\n[box]\nname = \"a\"\n").root;
        let saved = parse::normalize(
            "[web]\nlisten = \"0.0.0.0:8080\"\n[box]\nname = \"b\"\n[storage]\nring_kb = 32768\nretention_days = 7\n",
        )
        .root;
        let got: Vec<String> = restart_pending(&run, &saved)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        // box.name is live; ring_kb = 32768 is its default, so no change.
        assert_eq!(got, ["storage.retention_days", "web.listen"]);
        assert!(restart_pending(&saved, &saved).is_empty());
    }

    #[test]
    fn every_required_or_unset_key_has_an_example() {
        for k in keys::KEYS {
            if k.default_toml().is_none() && !matches!(k.default, spec::DefaultValue::Str("")) {
                assert!(
                    k.example.is_some(),
                    "{}.{} needs an example for the default file",
                    k.table,
                    k.key
                );
            }
        }
    }
}
