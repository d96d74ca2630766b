//! The daily report's adapter: reads yesterday from the journal, builds the [`report`] message
//! with the CSV attached, and remembers the last day reported in `<storage>/alarms/report.json`
//! so there is exactly one report per day, across restarts too.
//!
//! Exactly once: the watcher queues the report in every outbox, then saves the day here, and
//! only then tells the delivery threads. A crash between the two leaves the report in an outbox
//! but the day unsaved; at start [`Daily::new`] therefore also counts a report found queued in an
//! outbox as made (its id carries its day, [`report::report_id`]), so it is neither made twice
//! nor lost.
//!
//! Must not: run on a thread that records calls (it reads a day of the journal).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::message::{Attachment, BoxInfo, Message};
use super::report::{self, Leg, Report};
use crate::export::{ExportWriter, Format};
use crate::filter::{Filter, Sort};
use crate::fsio::{write_atomic, AtomicOptions};
use crate::journal::{JournalError, JournalPaths, JournalReader};
use crate::status::StatusView;
use crate::web::stats::{StatsBuilder, DEFAULT_SLA_SECONDS};

/// `[alarms] daily_report*` and `callback_minutes`.
#[derive(Debug, Clone)]
pub struct DailySettings {
    /// Local time of day it is made.
    pub at: (i8, i8),
    /// The day's zone (the first PBX's, as the page's "today").
    pub tz: jiff::tz::TimeZone,
    /// CSV profile of the attachment (`excel`, …).
    pub profile: String,
    pub callback: Duration,
    /// `[names]`: with the names learned from the journal, the `excel` profile's name columns.
    pub names: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The last day a report was queued for, `YYYY-MM-DD`.
    last_day: Option<String>,
}

/// The scheduler and builder of daily reports.
pub struct Daily {
    settings: DailySettings,
    journal: JournalPaths,
    state_path: PathBuf,
    last_day: Option<Date>,
}

/// Why a report could not be made (it is tried again a minute later).
#[derive(Debug, thiserror::Error)]
pub enum DailyError {
    #[error("daily report: cannot read the journal: {0}")]
    Journal(#[from] JournalError),
    #[error("daily report: cannot write the CSV ({0})")]
    Csv(std::io::Error),
    #[error("daily report: [alarms] daily_report_profile {0:?} is not a CSV profile")]
    Profile(String),
    #[error("daily report: the day {0} has no bounds in the zone")]
    Day(Date),
}

impl From<std::io::Error> for DailyError {
    fn from(e: std::io::Error) -> Self {
        DailyError::Csv(e)
    }
}

impl Daily {
    /// Loads the last day reported from `<dir>/report.json`, raised to the newest report still
    /// queued in `outboxes` (see the module documentation).
    pub fn new(
        settings: DailySettings,
        journal: JournalPaths,
        dir: &Path,
        outboxes: &[&Path],
    ) -> Daily {
        let state_path = dir.join("report.json");
        let saved = std::fs::read(&state_path)
            .ok()
            .and_then(|b| match serde_json::from_slice::<State>(&b) {
                Ok(s) => s.last_day.and_then(|d| d.parse::<Date>().ok()),
                Err(e) => {
                    tracing::warn!(target: "cdrbox::alarms", error = %e, path = %state_path.display(), "report state unreadable; the outbox decides");
                    None
                }
            });
        let queued = outboxes
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|d| d.filter_map(|e| e.ok()))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                report::day_of_report_id(name.strip_suffix(".json")?)
            })
            .max();
        Daily {
            settings,
            journal,
            state_path,
            last_day: saved.max(queued),
        }
    }

    /// The day whose report is due now, if any.
    pub fn due(&self, now_utc: i64) -> Option<Date> {
        report::due_day(now_utc, &self.settings.tz, self.settings.at, self.last_day)
    }

    /// Saves `day` as reported (after its message is queued, before it is sent).
    pub fn mark(&mut self, day: Date) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&State {
            last_day: Some(day.to_string()),
        })
        .map_err(std::io::Error::other)?;
        write_atomic(&self.state_path, &bytes, AtomicOptions::SECRET)?;
        self.last_day = Some(day);
        Ok(())
    }

    /// The report of `day`: its calls as `cdrbox export --from DAY --to DAY` (a whole day) in the
    /// configured profile, attached; numbers from the same records; `health` as the box is now.
    pub fn build(
        &self,
        day: Date,
        info: &BoxInfo,
        health: &StatusView,
    ) -> Result<Message, DailyError> {
        let s = &self.settings;
        let (from, to) = report::day_bounds(day, &s.tz).ok_or(DailyError::Day(day))?;
        let format = Format::parse("csv", Some(&s.profile))
            .map_err(|_| DailyError::Profile(s.profile.clone()))?;
        let reader = JournalReader::open(&self.journal)?;
        // The excel profile's name columns, resolved as the page resolves them.
        let names = crate::names::Directory::new(s.names.clone(), crate::names::LEARNED_CAP);
        reader.learn_names(&names)?;
        let mut csv = ExportWriter::new(format, Vec::new())?.with_names(names.snapshot());
        let mut stats = StatsBuilder::new(DEFAULT_SLA_SECONDS);
        let mut legs = Vec::new();
        let day_filter = Filter {
            from_utc: Some(from),
            to_utc: Some(to),
            ..Filter::default()
        };
        let records =
            reader.for_each(&day_filter, Sort::StartAsc, |r| -> Result<(), DailyError> {
                stats.add(&r);
                legs.push(Leg::of(&r));
                csv.write(&r)?;
                Ok(())
            })?;
        // Calls returned after midnight count too: read the callback window after the day.
        let window = i64::try_from(s.callback.as_secs()).unwrap_or(i64::MAX);
        let after = Filter {
            from_utc: Some(to),
            to_utc: Some(to.saturating_add(window)),
            ..Filter::default()
        };
        reader.for_each(&after, Sort::StartAsc, |r| -> Result<(), DailyError> {
            legs.push(Leg::of(&r));
            Ok(())
        })?;
        let open_gaps = reader
            .gaps(Some(from), None)?
            .into_iter()
            .filter(|g| g.filled_utc.is_none())
            .collect();
        let csv = csv.finish()?;
        let attachment = Attachment {
            filename: format!(
                "{}-calls-{}.{}",
                file_safe(&info.name),
                day.strftime("%Y-%m-%d"),
                format.file_extension()
            ),
            content_type: format.content_type().to_owned(),
            data: String::from_utf8_lossy(&csv).into_owned(),
        };
        let report = Report {
            day,
            records,
            stats: stats.finish(),
            missed: report::missed_not_called_back(&legs, from, to, window),
            callback_minutes: u32::try_from(s.callback.as_secs() / 60).unwrap_or(u32::MAX),
            open_gaps,
            health: health.clone(),
        };
        let created = report::scheduled_utc(day, &s.tz, s.at).unwrap_or(to);
        Ok(report::render(
            report::report_id(day, &s.tz, s.at),
            info,
            created,
            &report,
            Some(attachment),
        ))
    }
}

/// The box's name as part of a file name: letters, digits, `-`, `_` and `.`, the rest `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DailySettings {
        DailySettings {
            at: (7, 0),
            tz: jiff::tz::TimeZone::get("Europe/Moscow").unwrap(),
            profile: "excel".into(),
            callback: Duration::from_secs(3600),
            names: Default::default(),
        }
    }

    // 2026-12-01 07:00 in Moscow.
    const AT_0700: i64 = 1_796_097_600;

    /// The crash between "queued" and "day saved": the queued report counts as made.
    #[test]
    fn a_report_found_queued_counts_as_made() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox/email");
        std::fs::create_dir_all(&outbox).unwrap();
        let journal = JournalPaths::from_path(dir.path());
        let fresh = Daily::new(settings(), journal.clone(), dir.path(), &[outbox.as_path()]);
        let day: Date = "2026-11-30".parse().unwrap();
        assert_eq!(fresh.due(AT_0700), Some(day));

        let id = report::report_id(day, &settings().tz, (7, 0));
        std::fs::write(outbox.join(format!("{id}.json")), b"{}").unwrap();
        let after_crash = Daily::new(settings(), journal.clone(), dir.path(), &[outbox.as_path()]);
        assert_eq!(after_crash.due(AT_0700), None, "not made twice");
        assert_eq!(
            after_crash.due(AT_0700 + 86_400),
            Some(day.tomorrow().unwrap())
        );

        // Delivered (file gone) and saved: still made.
        std::fs::remove_file(outbox.join(format!("{id}.json"))).unwrap();
        let mut d = Daily::new(settings(), journal.clone(), dir.path(), &[outbox.as_path()]);
        d.mark(day).unwrap();
        let restarted = Daily::new(settings(), journal, dir.path(), &[outbox.as_path()]);
        assert_eq!(restarted.due(AT_0700), None);
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_safe("front desk/1"), "front_desk_1");
        assert_eq!(file_safe("офис-2"), "офис-2");
    }
}
