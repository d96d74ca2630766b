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
