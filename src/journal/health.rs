//! What the journal tells the user: the storage part of the status snapshot and the alarms, each
//! with a short code for the OLED and a sentence naming what to do; plus the days-until-full
//! forecast. Reads shared counters only: never waits for the journal's threads.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::status::{Alarm, StorageStatus};

use super::{FailKind, JournalHandle};

impl JournalHandle {
    /// The storage part of the status snapshot.
    pub fn status(&self) -> StorageStatus {
        let s = self.shared();
        let file_len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = s.paths.db.as_os_str().to_owned();
        wal.push("-wal");
        let db_bytes = file_len(&s.paths.db) + file_len(Path::new(&wal));
        let (free_bytes, total_bytes) = fs_space(&s.paths.dir).unwrap_or((0, 0));
        let committed = s.committed_rows.load(Ordering::SeqCst);
        let (pending, memory_only) = {
            let st = s.state();
            (st.pending() as u64, st.memory_only() as u64)
        };
        let inserted = s.counters().inserted;
        let days_until_full = forecast_days(&Forecast {
            elapsed_seconds: s.clock.unix() - s.started_utc,
            inserted_since_start: inserted,
            rows: committed,
            db_bytes,
            free_bytes,
            max_size_bytes: s.max_size_mb.saturating_mul(1024 * 1024),
        });
        StorageStatus {
            path: s.paths.db.display().to_string(),
            committed,
            pending: pending.saturating_sub(memory_only),
            memory_only,
            db_bytes,
            free_bytes,
            total_bytes,
            days_until_full,
            gaps: s.gaps.load(Ordering::SeqCst),
        }
    }

    /// Active journal alarms, each with a short code and a sentence naming what to do.
    pub fn alarms(&self) -> Vec<Alarm> {
        let s = self.shared();
        let mut out = Vec::new();
        let (waiting, memory_only) = {
            let st = s.state();
            (st.pending(), st.memory_only())
        };
        let dropped = s.counters().dropped;
        let problems = s.problems();
        if !s.writer_running.load(Ordering::SeqCst) {
            out.push(Alarm {
                code: "JOURNAL STOPPED".into(),
                subject: None,
                message: "The journal writer has stopped; new calls are not being recorded. \
                          Restart cdrbox."
                    .into(),
            });
        }
        if let Some((kind, msg)) = &problems.commit {
            let code = match kind {
                FailKind::DiskFull => "DISK FULL",
                FailKind::Locked => "JOURNAL STALL",
                FailKind::Other => "JOURNAL ERROR",
            };
            out.push(Alarm {
                code: code.into(),
                subject: None,
                message: format!(
                    "{msg} {waiting} records are waiting; they are written automatically when \
                     this is fixed."
                ),
            });
        }
        if let Some(msg) = &problems.ring {
            out.push(Alarm {
                code: "RING ERROR".into(),
                subject: None,
                message: msg.clone(),
            });
        }
        if memory_only > 0 {
            out.push(Alarm {
                code: "RING FULL".into(),
                subject: None,
                message: format!(
                    "{memory_only} records are held only in memory because the ring file is \
                     full or unwritable; they would be lost on a power cut. Up to {} records \
                     or {} KiB are kept ([storage] memory_queue_records, memory_queue_kb); \
                     beyond that new calls are dropped and counted in the gap ledger.",
                    s.held.max_records(),
                    s.held.max_bytes() / 1024
                ),
            });
        }
        if dropped > 0 {
            out.push(Alarm {
                code: "RECORDS DROPPED".into(),
                subject: None,
                message: format!(
                    "{dropped} records were dropped since cdrbox started because the journal \
                     could not keep up (storage too slow or full, and {} records or {} KiB \
                     already held in memory, [storage] memory_queue_records, memory_queue_kb); \
                     the gap ledger lists when and how many per PBX.",
                    s.held.max_records(),
                    s.held.max_bytes() / 1024
                ),
            });
        }
        if let Some(p) = &problems.damaged {
            out.push(Alarm {
                code: "DB REPLACED".into(),
                subject: None,
                message: format!(
                    "The journal database was damaged and was moved to {}; a new one was \
                     started and refilled from the ring file. Older records are in the moved \
                     file.",
                    p.display()
                ),
            });
        }
        if let Some((free, total)) = fs_space(&s.paths.dir) {
            let (warn, crit) = unpack(s.storage_percents.load(Ordering::Relaxed));
            if let Some(a) = storage_alarm(&s.paths.dir, free, total, warn, crit) {
                out.push(a);
            }
        }
        if s.lost.load(Ordering::SeqCst) > 0 {
            out.push(Alarm {
                code: "RECORDS LOST".into(),
                subject: None,
                message: format!(
                    "{} records arrived after the journal writer stopped and were not stored.",
                    s.lost.load(Ordering::SeqCst)
                ),
            });
        }
        out
    }
}

/// The two thresholds in one atomic word: warning in the high byte, critical in the low.
pub(crate) fn percents(warning: u8, critical: u8) -> u16 {
    u16::from(warning) << 8 | u16::from(critical)
}

fn unpack(p: u16) -> (u8, u8) {
    ((p >> 8) as u8, (p & 0xff) as u8)
}

/// STORAGE `warn`% or, at `crit`% and above, the critical STORAGE `crit`% alarm (one code per
/// threshold, so the mailer treats the step up as a new incident and the warning as over).
fn storage_alarm(dir: &Path, free: u64, total: u64, warn: u8, crit: u8) -> Option<Alarm> {
    if total == 0 {
        return None;
    }
    let used = (total - free.min(total)).saturating_mul(100) / total;
    if used >= u64::from(crit) {
        Some(Alarm::new(
            format!("STORAGE {crit}%"),
            format!(
                "The storage holding {} is {used} % full (critical at {crit} %, [alarms] storage_critical_percent): recording stops when it is full. Free space now or lower [storage] retention_days / max_size_mb.",
                dir.display()
            ),
        ))
    } else if used >= u64::from(warn) {
        Some(Alarm::new(
            format!("STORAGE {warn}%"),
            format!(
                "The storage holding {} is {used} % full (warning at {warn} %, [alarms] storage_warning_percent); free space or lower [storage] retention_days / max_size_mb.",
                dir.display()
            ),
        ))
    } else {
        None
    }
}

impl JournalHandle {
    /// The STORAGE alarms' thresholds (`[alarms] storage_warning_percent` /
    /// `storage_critical_percent`); until called, 80 and 95.
    pub fn set_storage_alarm_percents(&self, warning: u8, critical: u8) {
        self.shared()
            .storage_percents
            .store(percents(warning, critical), Ordering::Relaxed);
    }
}

/// Free and total bytes of the filesystem holding `dir` (the shared `statvfs` helper).
fn fs_space(dir: &Path) -> Option<(u64, u64)> {
    crate::fsio::fs_space(dir)
        .ok()
        .map(|s| (s.available, s.total))
}

/// Inputs of the days-until-full forecast.
#[derive(Debug, Clone, Copy)]
pub struct Forecast {
    pub elapsed_seconds: i64,
    pub inserted_since_start: u64,
    pub rows: u64,
    pub db_bytes: u64,
    pub free_bytes: u64,
    /// `max_size_mb` in bytes, 0 for no limit (at the limit retention starts deleting).
    pub max_size_bytes: u64,
}

/// Days until the disk (or `max_size_mb`) is full at the growth rate seen since start: rows
/// inserted per second × bytes per row. `None` before an hour of history or without growth.
pub fn forecast_days(f: &Forecast) -> Option<u32> {
    if f.elapsed_seconds < 3600 || f.inserted_since_start == 0 || f.rows == 0 {
        return None;
    }
    let bytes_per_row = f.db_bytes as f64 / f.rows as f64;
    let rate = f.inserted_since_start as f64 * bytes_per_row / f.elapsed_seconds as f64;
    if rate <= 0.0 {
        return None;
    }
    let mut room = f.free_bytes as f64;
    if f.max_size_bytes > 0 {
        room = room.min(f.max_size_bytes.saturating_sub(f.db_bytes) as f64);
    }
    let days = room / rate / 86_400.0;
    Some(days.clamp(0.0, 99_999.0) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_alarm_uses_the_configured_percents() {
        let d = Path::new("/data");
        let code = |free, w, c| storage_alarm(d, free, 1000, w, c).map(|a| a.code);
        assert_eq!(code(201, 80, 95), None);
        assert_eq!(code(200, 80, 95).as_deref(), Some("STORAGE 80%"));
        assert_eq!(code(51, 80, 95).as_deref(), Some("STORAGE 80%"));
        assert_eq!(code(50, 80, 95).as_deref(), Some("STORAGE 95%"));
        assert_eq!(code(300, 70, 90).as_deref(), Some("STORAGE 70%"));
        assert_eq!(code(0, 70, 90).as_deref(), Some("STORAGE 90%"));
        assert_eq!(storage_alarm(d, 0, 0, 80, 95), None, "no size known");
        let a = storage_alarm(d, 50, 1000, 80, 95).unwrap();
        assert!(
            a.message.contains("95 % full") && a.message.contains("storage_critical_percent"),
            "{}",
            a.message
        );
        assert_eq!(unpack(percents(80, 95)), (80, 95));
    }

    #[test]
    fn forecast_needs_history_and_uses_the_tighter_limit() {
        let base = Forecast {
            elapsed_seconds: 86_400,
            inserted_since_start: 1000,
            rows: 1000,
            db_bytes: 1_000_000,
            free_bytes: 100_000_000,
            max_size_bytes: 0,
        };
        // 1 MB/day growth, 100 MB free → 100 days.
        assert_eq!(forecast_days(&base), Some(100));
        assert_eq!(
            forecast_days(&Forecast {
                elapsed_seconds: 60,
                ..base
            }),
            None
        );
        assert_eq!(
            forecast_days(&Forecast {
                max_size_bytes: 11_000_000,
                ..base
            }),
            Some(10)
        );
    }
}
