//! `StatusView`: the one snapshot of the box's state that the web page and the OLED both render.
//!
//! Pure data. Producers (AMI clients, journal writer, USB watcher) publish their parts into a
//! [`StatusBoard`], which assembles the snapshot; consumers read it through a `watch` channel.

use serde::Serialize;

/// State of one PBX link, as a person needs to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// TCP connect, banner or login in progress.
    Connecting,
    /// Logged in and receiving events.
    Up,
    /// Not connected; `reason` says why (shown in full on the page, shortened on the OLED).
    Down { reason: String },
    /// The PBX rejected our username/secret; retried slowly.
    AuthFailed,
    /// The PBX said it is shutting down or restarting; we reconnect when it is back.
    PbxShutdown,
}

/// One `[[pbx]]` link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    pub pbx: String,
    pub address: String,
    #[serde(flatten)]
    pub state: LinkState,
    /// Since when the link is in this state (Unix seconds, box clock).
    pub since_utc: i64,
    /// Last Cdr received on this link (Unix seconds, box clock).
    pub last_record_utc: Option<i64>,
    /// The banner's protocol version, e.g. `Asterisk Call Manager/11.0.0`.
    pub banner: Option<String>,
    /// Records received on this link since the box started.
    pub records: u64,
    /// Reconnects since the box started.
    pub reconnects: u64,
    /// Malformed or oversized frames discarded since the box started.
    pub discarded_frames: u64,
    /// The PBX's clock minus the box's in milliseconds (positive: the PBX is ahead), from the
    /// last pong's `Timestamp:`; `None` until one arrived (Asterisk 1.4 sends none).
    pub pbx_clock_skew_ms: Option<i64>,
}

impl LinkStatus {
    /// A link in `state` since `since_utc`, nothing received or counted yet.
    pub fn new(pbx: &str, address: &str, state: LinkState, since_utc: i64) -> LinkStatus {
        LinkStatus {
            pbx: pbx.to_owned(),
            address: address.to_owned(),
            state,
            since_utc,
            last_record_utc: None,
            banner: None,
            records: 0,
            reconnects: 0,
            discarded_frames: 0,
            pbx_clock_skew_ms: None,
        }
    }
}

/// Today's call totals (PBX-local day of the first PBX, or UTC when none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayTotals {
    pub total: u64,
    pub answered: u64,
    pub missed: u64,
}

/// Where the journal stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageStatus {
    pub path: String,
    /// Records committed to SQLite.
    pub committed: u64,
    /// Records durable in the ring file but not yet in SQLite.
    pub pending: u64,
    /// Records held only in memory (ring full or unwritable): lost on power cut.
    pub memory_only: u64,
    pub db_bytes: u64,
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Forecast from the recent growth rate; `None` while there is too little history.
    pub days_until_full: Option<u32>,
    /// OPEN gaps of the ledger: intervals where calls may be missing (a link down, the box
    /// off, records dropped) that no import has filled yet. A gap filled from Master.csv or
    /// the CDR database no longer counts (issue 12; `journal::Gap::is_open`).
    pub gaps: u64,
}

/// What the USB stick is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UsbState {
    #[default]
    NoStick,
    Copying {
        percent: u8,
    },
    SafeToRemove {
        records: u64,
    },
    Error {
        message: String,
    },
}

/// An active alarm: a short code for the OLED and a sentence for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    /// Short, upper-case, fits the OLED (`LINK DOWN`, `AUTH`, `DISK FULL`, `STORAGE 80%`).
    pub code: String,
    /// What the alarm is about when there can be several: the PBX's name for link alarms, the
    /// stick's mount point for USB ones; `None` for the box as a whole. `(code, subject)` names
    /// one incident, so the alarm mailer (`crate::alarms`) tells two PBXs' `LINK DOWN` apart
    /// while their messages (which carry the changing reason) are free to change.
    pub subject: Option<String>,
    /// Full sentence naming what to fix.
    pub message: String,
}

impl Alarm {
    /// An alarm about the box as a whole.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Alarm {
        Alarm {
            code: code.into(),
            subject: None,
            message: message.into(),
        }
    }

    /// An alarm about one thing of several (a PBX by name, a USB stick by mount point).
    pub fn about(
        code: impl Into<String>,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Alarm {
        Alarm {
            code: code.into(),
            subject: Some(subject.into()),
            message: message.into(),
        }
    }
}

/// A PBX clock further than this from the box's is a warning (`PBX CLOCK`): beyond a network
/// round trip and NTP's usual error by far, and enough to move a call into another minute.
pub const PBX_CLOCK_WARN_MS: i64 = 10_000;

/// The `PBX CLOCK` warnings: a PBX whose last pong showed its clock more than
/// [`PBX_CLOCK_WARN_MS`] from the box's. A warning, not an alarm: no call is lost, but call
/// times (the PBX's) and receive times (the box's) disagree, and one of the clocks is wrong.
pub fn pbx_clock_warnings(links: &[LinkStatus]) -> Vec<Alarm> {
    links
        .iter()
        .filter_map(|l| {
            let skew = l.pbx_clock_skew_ms?;
            if skew.abs() <= PBX_CLOCK_WARN_MS {
                return None;
            }
            let secs = skew.unsigned_abs().div_ceil(1000);
            let way = if skew > 0 { "ahead of" } else { "behind" };
            Some(Alarm::about(
                "PBX CLOCK",
                l.pbx.clone(),
                format!(
                    "the clock of PBX {} is {secs} s {way} the box's: call times come from the PBX's clock — point both at the same NTP server (FreePBX: System Admin → Time; the box: see Status → Box health)",
                    l.pbx
                ),
            ))
        })
        .collect()
}

/// The codes of the alarms [`link_alarms`] makes.
pub const LINK_ALARM_CODES: [&str; 3] = ["AUTH", "LINK DOWN", "PBX DOWN"];

/// The alarms of the links at `now` (Unix seconds): AUTH at once, LINK DOWN / PBX DOWN once a
/// link has been down for `down_after_secs`. The status board uses its own threshold for the
/// page; the alarm mailer uses `[alarms] link_down_minutes`. Each names its PBX as subject.
pub fn link_alarms(links: &[LinkStatus], now: i64, down_after_secs: i64) -> Vec<Alarm> {
    let mut alarms = Vec::new();
    for link in links {
        match &link.state {
            LinkState::AuthFailed => alarms.push(Alarm::about(
                "AUTH",
                &link.pbx,
                format!(
                    "PBX '{}' ({}) rejected the login: check [[pbx]] username/secret here and the user in the PBX's manager.conf",
                    link.pbx, link.address
                ),
            )),
            LinkState::Down { reason } if now - link.since_utc >= down_after_secs => {
                alarms.push(Alarm::about(
                    "LINK DOWN",
                    &link.pbx,
                    format!("PBX '{}' ({}) is not connected: {reason}", link.pbx, link.address),
                ))
            }
            LinkState::PbxShutdown if now - link.since_utc >= down_after_secs => {
                alarms.push(Alarm::about(
                    "PBX DOWN",
                    &link.pbx,
                    format!(
                        "PBX '{}' ({}) shut down and has not come back",
                        link.pbx, link.address
                    ),
                ))
            }
            _ => {}
        }
    }
    alarms
}

/// One PBX's CDR database (issue 12): what the status page shows about the pulls that fill
/// its gaps, and the source of its alarm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CdrDbStatus {
    pub pbx: String,
    /// `host:port` of the database.
    pub addr: String,
    /// `ok`, `failing` or `waiting` (nothing pulled yet).
    pub state: String,
    /// The last failure's short code (`DB DOWN`, `DB AUTH`, …) and sentence, while failing.
    pub code: Option<String>,
    pub message: Option<String>,
    /// When the last pull succeeded (box clock, Unix seconds).
    pub last_ok_utc: Option<i64>,
    /// Rows read and records stored by the last successful pull.
    pub last_rows: u64,
    pub last_new: u64,
    /// Records stored from the database since start.
    pub total_new: u64,
    /// Closed gaps waiting for a successful pull.
    pub waiting_gaps: usize,
}

impl CdrDbStatus {
    /// The alarm while failing: the short code for the OLED, the sentence for the page.
    pub fn alarm(&self) -> Option<Alarm> {
        if self.state != "failing" {
            return None;
        }
        Some(Alarm::about(
            self.code.clone().unwrap_or_else(|| "DB DOWN".into()),
            &self.pbx,
            format!(
                "PBX {}: the CDR database cannot fill gaps: {}",
                self.pbx,
                self.message.clone().unwrap_or_default()
            ),
        ))
    }
}

/// The whole snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// Box clock when the snapshot was made (Unix seconds).
    pub now_utc: i64,
    /// Offset of the first PBX's zone at `now_utc`, for showing local times (seconds).
    pub local_offset_seconds: i32,
    pub box_name: String,
    pub ip_address: Option<String>,
    pub links: Vec<LinkStatus>,
    pub today: DayTotals,
    /// Start time of the most recent call (Unix seconds).
    pub last_call_utc: Option<i64>,
    pub storage: StorageStatus,
    pub usb: UsbState,
    pub alarms: Vec<Alarm>,
    /// The CDR databases that fill gaps (`[[pbx]] cdr_db`), one per PBX that has one.
    pub cdr_db: Vec<CdrDbStatus>,
    /// The one-time setup code while no admin password is set: the OLED shows it to the owner.
    /// Never sent over the API (`/api/status` is not where a visitor may read it).
    #[serde(skip)]
    pub setup_code: Option<String>,
    /// SHA-256 fingerprint of the HTTPS certificate (64 hex digits, upper case) when HTTPS is
    /// on, so the owner can check the certificate a browser or script is shown.
    pub tls_fingerprint: Option<String>,
    /// The alarm channels (e-mail, webhook) and their last delivery, when `[alarms]` has any.
    pub alarm_channels: Vec<AlarmChannelStatus>,
    /// The central PostgreSQL uplink, when `[uplink] url` is set.
    pub uplink: Option<UplinkStatus>,
    /// Version, uptime, temperature, memory, clock (issue 13 item 4; `crate::health`).
    pub health: BoxHealth,
    /// Conditions a person should look at that lose no call (the clock not synchronised, a
    /// PBX's clock far from the box's): shown in the page's alarm strip as warnings, but not
    /// mailed and not on the OLED's alarm page — a Pi that boots without network would
    /// otherwise mail an alarm on every start.
    pub warnings: Vec<Alarm>,
}

/// The box's own health (issue 13 item 4). `None` = the box could not read it (no thermal zone
/// on a VM, procfs not readable): the page says "not available", never a guessed number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BoxHealth {
    /// `CARGO_PKG_VERSION` of the running binary.
    pub version: String,
    /// When this box process started (Unix seconds) and for how long it has run.
    pub started_utc: i64,
    pub uptime_seconds: i64,
    /// Since the machine booted (`/proc/uptime`).
    pub system_uptime_seconds: Option<u64>,
    /// CPU temperature in millidegrees Celsius, as the kernel gives it, and the thermal zone's
    /// type it came from (`cpu-thermal` on a Pi).
    pub cpu_temp_millicelsius: Option<i64>,
    pub cpu_temp_zone: Option<String>,
    /// Resident memory of the box process (`VmRSS`).
    pub rss_bytes: Option<u64>,
    /// The machine's memory (`MemTotal`, `MemAvailable` of `/proc/meminfo`).
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    /// Whether the kernel considers the clock synchronised (NTP); a Pi has no real-time clock.
    pub clock: ClockSync,
}

/// The kernel's clock state from `adjtimex(2)` (`crate::health::clock_sync`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClockSync {
    /// NTP (or another daemon) disciplines the clock; the kernel bounds its error.
    Synchronised { max_error_ms: i64 },
    /// Nothing has set the clock since boot (or the daemon lost its servers).
    NotSynchronised { max_error_ms: i64 },
    /// Not measured (yet), or the kernel refused the read.
    Unknown { reason: String },
}

impl Default for ClockSync {
    fn default() -> Self {
        ClockSync::Unknown {
            reason: "not measured yet".into(),
        }
    }
}

impl ClockSync {
    /// The warning while the clock is not synchronised.
    pub fn warning(&self) -> Option<Alarm> {
        match self {
            ClockSync::NotSynchronised { .. } => Some(Alarm::new(
                "CLOCK",
                "the box's clock is not synchronised (no NTP server has answered; a Raspberry Pi has no battery clock): times of calls received now may be wrong — let the box reach an NTP server (network, DNS, firewall UDP 123)",
            )),
            _ => None,
        }
    }
}

/// The uplink on the status page and `/api/status` (`crate::uplink`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UplinkStatus {
    /// `connecting`, `sending`, `up to date` or `retrying`.
    pub state: String,
    /// The server (URL with the password as `***`).
    pub target: String,
    /// Records stored on the box and not yet committed on the server.
    pub lag_records: u64,
    /// Age of the oldest record not yet sent (seconds; `None` when nothing waits).
    pub lag_seconds: Option<i64>,
    /// Records committed on the server since the box started.
    pub sent_records: u64,
    pub last_ok_utc: Option<i64>,
    /// Why the last attempt failed; `None` after a success.
    pub last_error: Option<String>,
}

/// One alarm channel on the status page and `/api/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlarmChannelStatus {
    /// `email` or `webhook`.
    pub channel: String,
    /// Where it goes (password, token and path redacted).
    pub target: String,
    /// Messages waiting in its outbox.
    pub queued: usize,
    pub last_attempt_utc: Option<i64>,
    pub last_ok_utc: Option<i64>,
    /// Why the last attempt failed; `None` after a success.
    pub last_error: Option<String>,
}
