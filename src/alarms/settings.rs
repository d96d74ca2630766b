//! What the alarm service is given, read from `[alarms]`: the channels to send through
//! ([`Sender`]: e-mail, webhook), the box's name for messages, the raise/remind rules, the
//! per-alarm thresholds and the daily report's settings. Config to values only; the threads
//! that use them are in `service`.

use std::path::PathBuf;
use std::time::Duration;

use super::daily::DailySettings;
use super::hours::BusinessHours;
use super::message::{BoxInfo, Message};
use super::outbox::Channel;
use super::policy::Rules;
use super::report::parse_time_of_day;
use super::smtp::SmtpChannel;
use super::thresholds::{Quiet, Thresholds};
use super::webhook::WebhookChannel;
use super::Failure;
use crate::config::Config;
use crate::journal::JournalPaths;

/// A configured way of reaching people.
pub enum Sender {
    // Boxed: an SMTP transport is several times the size of the webhook's agent.
    Email(Box<SmtpChannel>),
    Webhook(WebhookChannel),
}

impl Sender {
    pub fn channel(&self) -> Channel {
        match self {
            Sender::Email(_) => Channel::Email,
            Sender::Webhook(_) => Channel::Webhook,
        }
    }

    /// Where it goes, without secrets.
    pub fn describe(&self) -> String {
        match self {
            Sender::Email(s) => s.describe(),
            Sender::Webhook(w) => w.describe(),
        }
    }

    pub fn send(&self, m: &Message) -> Result<(), Failure> {
        match self {
            Sender::Email(s) => s.send(m),
            Sender::Webhook(w) => w.send(m),
        }
    }
}

/// Everything the service needs, from `[alarms]`.
pub struct Settings {
    /// `<storage>/alarms`: the outboxes and the open incidents.
    pub dir: PathBuf,
    pub info: BoxInfo,
    pub rules: Rules,
    /// The per-alarm thresholds (`link_down_minutes`, `quiet_minutes`, …).
    pub thresholds: Thresholds,
    /// The journal, for GAP OPEN and the daily report (read-only connections).
    pub journal: JournalPaths,
    /// `daily_report`; `None`: no report.
    pub daily: Option<DailySettings>,
    pub senders: Vec<Sender>,
}

/// The channels `[alarms]` configures (none: alarms are only on the page and the display).
pub fn senders_from_config(cfg: &Config) -> Result<Vec<Sender>, String> {
    let a = &cfg.alarms;
    let ca = a.ca_file.as_deref();
    let mut out = Vec::new();
    if !a.smtp_url.0.is_empty() {
        out.push(Sender::Email(Box::new(SmtpChannel::new(
            &a.smtp_url.0,
            &a.from,
            &a.to,
            ca,
        )?)));
    }
    if !a.webhook_url.0.is_empty() {
        out.push(Sender::Webhook(WebhookChannel::new(
            &a.webhook_url.0,
            &a.webhook_token.0,
            ca,
        )?));
    }
    Ok(out)
}

/// The box's name and zone (the first PBX's) as messages show them.
pub fn box_info(cfg: &Config) -> BoxInfo {
    let tz = cfg
        .pbx
        .first()
        .and_then(|p| jiff::tz::TimeZone::get(&p.timezone).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    BoxInfo {
        name: cfg.box_name.clone(),
        tz,
    }
}

/// [`Settings`] from the config; `Ok(None)` when no channel is configured.
pub fn settings_from_config(cfg: &Config) -> Result<Option<Settings>, String> {
    let senders = senders_from_config(cfg)?;
    if senders.is_empty() {
        return Ok(None);
    }
    let a = &cfg.alarms;
    Ok(Some(Settings {
        dir: crate::journal::JournalPaths::from_path(&cfg.storage.path)
            .dir
            .join("alarms"),
        info: box_info(cfg),
        rules: Rules {
            reminder: (a.reminder_minutes > 0)
                .then(|| Duration::from_secs(u64::from(a.reminder_minutes) * 60)),
            ..Rules::default()
        },
        thresholds: thresholds_from_config(cfg)?,
        journal: crate::journal::JournalPaths::from_path(&cfg.storage.path),
        daily: daily_from_config(cfg)?,
        senders,
    }))
}

fn minutes(m: u32) -> Duration {
    Duration::from_secs(u64::from(m) * 60)
}

/// `daily_report` and its keys; `None` when it is empty (no report).
pub fn daily_from_config(cfg: &Config) -> Result<Option<DailySettings>, String> {
    let a = &cfg.alarms;
    if a.daily_report.trim().is_empty() {
        return Ok(None);
    }
    let at = parse_time_of_day(&a.daily_report).ok_or_else(|| {
        format!(
            "[alarms] daily_report {:?} is not a time of day as HH:MM",
            a.daily_report
        )
    })?;
    Ok(Some(DailySettings {
        at,
        tz: box_info(cfg).tz,
        profile: a.daily_report_profile.clone(),
        callback: minutes(a.callback_minutes),
        names: cfg.names.clone(),
    }))
}

/// The per-alarm thresholds of `[alarms]`; each PBX's business hours are in its own zone.
pub fn thresholds_from_config(cfg: &Config) -> Result<Thresholds, String> {
    let a = &cfg.alarms;
    let quiet = if a.quiet_minutes == 0 {
        None
    } else {
        Some(Quiet {
            after: minutes(a.quiet_minutes),
            hours: BusinessHours::parse(&a.business_hours)
                .map_err(|e| format!("[alarms] business_hours: {e}"))?,
            zones: cfg
                .pbx
                .iter()
                .map(|p| {
                    let tz =
                        jiff::tz::TimeZone::get(&p.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
                    (p.name.clone(), tz)
                })
                .collect(),
        })
    };
    Ok(Thresholds {
        link_down_after: minutes(a.link_down_minutes),
        auth_after: minutes(a.auth_failed_minutes),
        quiet,
        usb: a.usb_copy_failed,
        gap_after: (a.gap_unfilled_hours > 0)
            .then(|| Duration::from_secs(u64::from(a.gap_unfilled_hours) * 3600)),
    })
}
