//! When to pull from FreePBX's CDR database, and which rows to ask for: a pure schedule fed
//! the link's gap closings and the clock, answering with the next [`PullJob`]. The adapter
//! task (runtime) runs the jobs with [`super::cdr_db::CdrDb`] and stores the rows with
//! [`super::store::Store`]; nothing here does I/O or reads a clock by itself.
//!
//! Two kinds of pull:
//! - **gap**: when a link-down interval closes, the rows whose call may have ended in it —
//!   `calldate` is the start, so the window reaches back by `lookback` (the longest call);
//! - **reconcile**: every `reconcile_every`, the last `reconcile_window`, which catches what a
//!   gap pull could not (the database was down too, a gap the box never saw).
//!
//! A pull waits `settle` after a gap closes, and leaves out calls that ended less than `settle`
//! ago: those the AMI link is delivering right now, and taking them from the database first
//! would only race it. A failed pull is retried with a doubling delay (capped), and the gap
//! stays open in the ledger until a pull covering it succeeds.

use std::time::Duration;

/// The `[[pbx]]` keys that drive pulls (validated by the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullSettings {
    /// The longest call: how far before a gap's start a row's `calldate` may be.
    pub lookback: Duration,
    /// How often the reconciliation runs (zero: never).
    pub reconcile_every: Duration,
    /// How far back a reconciliation looks.
    pub reconcile_window: Duration,
    /// How long after a call ended the database is asked about it.
    pub settle: Duration,
}

impl Default for PullSettings {
    fn default() -> PullSettings {
        PullSettings {
            lookback: Duration::from_secs(6 * 3600),
            reconcile_every: Duration::from_secs(3600),
            reconcile_window: Duration::from_secs(24 * 3600),
            settle: Duration::from_secs(120),
        }
    }
}

/// Why a pull runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullReason {
    /// To fill the link-down interval `[down_utc, up_utc]`.
    Gap {
        down_utc: i64,
        up_utc: i64,
    },
    Reconcile,
}

/// One pull to run: rows whose call ended in `[from_utc, to_utc]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullJob {
    pub reason: PullReason,
    pub from_utc: i64,
    pub to_utc: i64,
}

const FIRST_RETRY: i64 = 60;
const MAX_RETRY: i64 = 15 * 60;

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// The schedule of one PBX's database.
#[derive(Debug, Clone)]
pub struct PullSchedule {
    settings: PullSettings,
    /// Closed gaps not yet filled, oldest first.
    gaps: Vec<(i64, i64)>,
    next_reconcile: i64,
    /// After a failure: nothing runs before this, and the delay doubles.
    retry_at: Option<i64>,
    retry_delay: i64,
}

impl PullSchedule {
    /// A schedule starting at `now_utc`: the first reconciliation runs once `settle` has passed
    /// (a box that was off catches up at start).
    pub fn new(settings: PullSettings, now_utc: i64) -> PullSchedule {
        PullSchedule {
            settings,
            gaps: Vec::new(),
            next_reconcile: now_utc + secs(settings.settle),
            retry_at: None,
            retry_delay: FIRST_RETRY,
        }
    }

    pub fn settings(&self) -> PullSettings {
        self.settings
    }

    /// A link-down interval closed.
    pub fn gap_closed(&mut self, down_utc: i64, up_utc: i64) {
        if up_utc >= down_utc && !self.gaps.contains(&(down_utc, up_utc)) {
            self.gaps.push((down_utc, up_utc));
        }
    }

    /// Gaps waiting for a successful pull.
    pub fn waiting_gaps(&self) -> &[(i64, i64)] {
        &self.gaps
    }

    /// The job to run now, if any.
    pub fn due(&self, now_utc: i64) -> Option<PullJob> {
        if self.retry_at.is_some_and(|t| now_utc < t) {
            return None;
        }
        let settle = secs(self.settings.settle);
        let newest_ended = now_utc - settle;
        if let Some(&(down, up)) = self.gaps.iter().find(|(_, up)| *up + settle <= now_utc) {
            return Some(PullJob {
                reason: PullReason::Gap {
                    down_utc: down,
                    up_utc: up,
                },
                from_utc: down,
                to_utc: up.min(newest_ended).max(down),
            });
        }
        if !self.settings.reconcile_every.is_zero() && now_utc >= self.next_reconcile {
            return Some(PullJob {
                reason: PullReason::Reconcile,
                from_utc: now_utc - secs(self.settings.reconcile_window),
                to_utc: newest_ended,
            });
        }
        None
    }

    /// When [`due`](Self::due) may next answer something (for the task's sleep).
    pub fn next_wake(&self, now_utc: i64) -> i64 {
        let settle = secs(self.settings.settle);
        let mut t = if self.settings.reconcile_every.is_zero() {
            i64::MAX
        } else {
            self.next_reconcile
        };
        if let Some(up) = self.gaps.iter().map(|(_, up)| *up).min() {
            t = t.min(up + settle);
        }
        if let Some(r) = self.retry_at {
            t = t.max(r);
        }
        t.max(now_utc)
    }

    /// Reports how a job ended.
    pub fn finished(&mut self, job: &PullJob, ok: bool, now_utc: i64) {
        if !ok {
            self.retry_at = Some(now_utc + self.retry_delay);
            self.retry_delay = (self.retry_delay * 2).min(MAX_RETRY);
            return;
        }
        self.retry_at = None;
        self.retry_delay = FIRST_RETRY;
        match job.reason {
            PullReason::Gap { down_utc, up_utc } => {
                self.gaps.retain(|g| *g != (down_utc, up_utc));
            }
            PullReason::Reconcile => {
                self.next_reconcile = now_utc + secs(self.settings.reconcile_every);
                // A reconciliation covers every waiting gap it reached back to.
                let from = job.from_utc;
                let to = job.to_utc;
                self.gaps.retain(|(down, up)| !(*down >= from && *up <= to));
            }
        }
    }
}

/// The `calldate` window a job needs: see [`super::cdr_db::Window`].
pub fn window(job: &PullJob, settings: &PullSettings) -> super::cdr_db::Window {
    super::cdr_db::Window {
        from_utc: job.from_utc,
        to_utc: job.to_utc,
        lookback: settings.lookback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_331_000;

    fn schedule() -> PullSchedule {
        PullSchedule::new(PullSettings::default(), T0)
    }

    #[test]
    fn a_closed_gap_is_pulled_after_it_settles() {
        let mut s = schedule();
        // The start-up reconciliation first.
        let first = s.due(T0 + 120).unwrap();
        assert_eq!(first.reason, PullReason::Reconcile);
        assert_eq!(first.from_utc, T0 + 120 - 24 * 3600);
        s.finished(&first, true, T0 + 130);
        assert_eq!(s.due(T0 + 131), None);
        s.gap_closed(T0 + 500, T0 + 900);
        assert_eq!(s.due(T0 + 1000), None, "settling");
        assert_eq!(s.next_wake(T0 + 1000), T0 + 1020);
        let job = s.due(T0 + 1020).unwrap();
        assert_eq!(
            job,
            PullJob {
                reason: PullReason::Gap {
                    down_utc: T0 + 500,
                    up_utc: T0 + 900
                },
                from_utc: T0 + 500,
                to_utc: T0 + 900,
            }
        );
        s.finished(&job, true, T0 + 1030);
        assert!(s.waiting_gaps().is_empty());
        assert_eq!(
            s.next_wake(T0 + 1030),
            T0 + 130 + 3600,
            "next reconciliation"
        );
    }

    #[test]
    fn failures_back_off_and_keep_the_gap() {
        let mut s = schedule();
        let first = s.due(T0 + 120).unwrap();
        s.finished(&first, true, T0 + 120);
        s.gap_closed(T0 + 200, T0 + 300);
        let job = s.due(T0 + 420).unwrap();
        s.finished(&job, false, T0 + 420);
        assert_eq!(s.due(T0 + 479), None);
        assert!(s.due(T0 + 480).is_some(), "retried after 60 s");
        s.finished(&job, false, T0 + 480);
        assert_eq!(s.due(T0 + 599), None, "then 120 s");
        assert_eq!(s.waiting_gaps(), &[(T0 + 200, T0 + 300)]);
        s.finished(&job, true, T0 + 600);
        assert!(s.waiting_gaps().is_empty());
        for _ in 0..20 {
            s.finished(&job, false, T0);
        }
        assert_eq!(s.retry_delay, MAX_RETRY);
    }

    #[test]
    fn reconciliation_can_be_off_and_covers_gaps_it_reaches() {
        let s = PullSchedule::new(
            PullSettings {
                reconcile_every: Duration::ZERO,
                ..PullSettings::default()
            },
            T0,
        );
        assert_eq!(s.due(T0 + 10_000), None);
        assert_eq!(s.next_wake(T0), i64::MAX);
        let mut r = schedule();
        r.gap_closed(T0 - 500, T0 - 400);
        let job = PullJob {
            reason: PullReason::Reconcile,
            from_utc: T0 - 1000,
            to_utc: T0,
        };
        r.finished(&job, true, T0);
        assert!(r.waiting_gaps().is_empty());
    }
}
