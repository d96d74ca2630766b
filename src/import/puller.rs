//! The CDR-database pulls of one `[[pbx]]`: an async task that learns closed gaps from the
//! journal's ledger, runs the [`PullSchedule`]'s jobs against FreePBX's database
//! ([`CdrDb`]), and stores the rows the journal lacks ([`Store`], on a blocking thread). It runs
//! on its own tokio task, never on the AMI link's, and a database that is down or refuses the
//! login only changes its [`PullStatus`] (a status line and an alarm), never the link.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cdr_db::{CdrDb, DbRow};
use super::pull::{window, PullJob, PullSchedule, PullSettings};
use super::store::{end_utc, Store};
use super::{db_record, ImportReport};
use crate::clock::Clock;
use crate::journal::{JournalHandle, JournalReader};
use crate::record::PbxContext;

/// How often the journal's gap ledger is read for newly closed gaps.
pub const GAP_POLL: Duration = Duration::from_secs(15);

/// Most rows one pull takes (a reconciliation window of a very busy PBX is split over
/// several pulls: the rest comes next time).
pub const MAX_ROWS_PER_PULL: usize = 200_000;

/// What the status page and the alarms show about one PBX's database.
pub use crate::status::CdrDbStatus as PullStatus;

/// One PBX's puller.
pub struct Puller {
    pbx: String,
    ctx: PbxContext,
    db: CdrDb,
    journal: JournalHandle,
    clock: Clock,
    schedule: PullSchedule,
    status: Arc<Mutex<PullStatus>>,
    seen_gaps: HashSet<(i64, i64)>,
    /// Gaps closed before this are covered by the start-up reconciliation instead.
    gaps_since: i64,
    /// Kept between gap polls (opening one every 15 s would be waste).
    reader: Option<JournalReader>,
}

impl Puller {
    pub fn new(
        ctx: PbxContext,
        db: CdrDb,
        settings: PullSettings,
        journal: JournalHandle,
        clock: Clock,
    ) -> Puller {
        let now = clock.unix();
        let status = PullStatus {
            pbx: ctx.name.clone(),
            addr: db.addr().to_owned(),
            state: "waiting".into(),
            ..PullStatus::default()
        };
        Puller {
            pbx: ctx.name.clone(),
            ctx,
            db,
            journal,
            schedule: PullSchedule::new(settings, now),
            status: Arc::new(Mutex::new(status)),
            seen_gaps: HashSet::new(),
            gaps_since: now - i64::try_from(settings.reconcile_window.as_secs()).unwrap_or(0),
            reader: None,
            clock,
        }
    }

    /// The status, shared with whoever shows it.
    pub fn status(&self) -> Arc<Mutex<PullStatus>> {
        self.status.clone()
    }

    fn set_status(&self, f: impl FnOnce(&mut PullStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
        s.waiting_gaps = self.schedule.waiting_gaps().len();
    }

    /// Reads closed gaps of this PBX from the journal's ledger into the schedule.
    fn poll_gaps(&mut self) {
        if self.reader.is_none() {
            self.reader = self.journal.reader().ok();
        }
        let Some(reader) = &self.reader else {
            return;
        };
        let gaps = match reader.gaps(Some(self.gaps_since), None) {
            Ok(g) => g,
            Err(e) => {
                self.reader = None;
                tracing::debug!(target: "import::puller", pbx = %self.pbx, error = %e,
                    "cannot read the gap ledger");
                return;
            }
        };
        for g in gaps {
            // A gap already filled (by Master.csv, or a pull before a restart) needs no pull.
            if g.pbx != self.pbx || !g.is_open() {
                continue;
            }
            if let Some(up) = g.up_utc {
                if self.seen_gaps.insert((g.down_utc, up)) {
                    self.schedule.gap_closed(g.down_utc, up);
                }
            }
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            self.poll_gaps();
            let now = self.clock.unix();
            if let Some(job) = self.schedule.due(now) {
                let ok = self.pull(&job).await;
                let after = self.clock.unix();
                self.schedule.finished(&job, ok, after);
                self.set_status(|_| {});
                continue;
            }
            let wait_s = (self.schedule.next_wake(now) - now).clamp(1, GAP_POLL.as_secs() as i64);
            let deadline = self.clock.now() + Duration::from_secs(wait_s as u64);
            tokio::select! {
                _ = self.clock.sleep_until(deadline) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Runs one job now; true when it completed.
    pub async fn pull(&mut self, job: &PullJob) -> bool {
        let settings = self.schedule.settings();
        let w = window(job, &settings);
        let mut rows: Vec<DbRow> = Vec::new();
        let mut truncated = false;
        let fetched = self
            .db
            .fetch(&w, &self.ctx.timezone, |r| {
                if rows.len() < MAX_ROWS_PER_PULL {
                    rows.push(r);
                } else {
                    truncated = true;
                }
            })
            .await;
        // Rows read before a failure are complete rows: store them either way.
        // Only a complete answer covers the window (and fills the gaps inside it).
        let covered = (fetched.is_ok() && !truncated).then_some((job.from_utc, job.to_utc));
        let report = store_rows(
            self.journal.clone(),
            self.ctx.clone(),
            self.clock.unix(),
            job.to_utc,
            rows,
            covered,
        )
        .await;
        match (&fetched, report) {
            (Ok(_), Ok(report)) => {
                let now = self.clock.unix();
                tracing::info!(target: "import::puller", pbx = %self.pbx, ?job.reason,
                    rows = report.lines, new = report.new, "CDR database pull");
                self.set_status(|s| {
                    s.state = "ok".into();
                    s.code = None;
                    s.message = None;
                    s.last_ok_utc = Some(now);
                    s.last_rows = report.lines;
                    s.last_new = report.new;
                    s.total_new += report.new;
                });
                true
            }
            (Err(e), report) => {
                let new = report.as_ref().map_or(0, |r| r.new);
                self.failed(e.code(), e.to_string(), new);
                false
            }
            (Ok(_), Err(e)) => {
                self.failed("DB IMPORT", e, 0);
                false
            }
        }
    }

    fn failed(&self, code: &str, message: String, new: u64) {
        tracing::warn!(target: "import::puller", pbx = %self.pbx, code, %message,
            "CDR database pull failed");
        self.set_status(|s| {
            s.state = "failing".into();
            s.code = Some(code.to_owned());
            s.message = Some(message);
            s.total_new += new;
        });
    }
}

/// Converts and stores rows on a blocking thread (journal reads and acks block). Calls that
/// ended after `newest` are left out: they are the AMI link's to deliver.
async fn store_rows(
    journal: JournalHandle,
    ctx: PbxContext,
    received: i64,
    newest: i64,
    rows: Vec<DbRow>,
    covered: Option<(i64, i64)>,
) -> Result<ImportReport, String> {
    tokio::task::spawn_blocking(move || {
        let mut store = Store::new(&journal, &ctx.name).map_err(|e| e.to_string())?;
        let n = rows.len() as u64;
        for (i, row) in rows.iter().enumerate() {
            match db_record(row, &ctx, received) {
                Ok(rec) => {
                    if end_utc(&rec).is_some_and(|e| e > newest) {
                        continue;
                    }
                    store.add(rec).map_err(|e| e.to_string())?;
                }
                Err(e) => store.report.reject(super::Rejected {
                    line: i as u64 + 1,
                    reason: e.to_string(),
                }),
            }
        }
        store.finish().map_err(|e| e.to_string())?;
        if let Some((from, to)) = covered {
            store
                .cover(crate::record::Origin::CdrDb, from, to)
                .map_err(|e| e.to_string())?;
        }
        store.report.lines = n;
        Ok(store.report.clone())
    })
    .await
    .map_err(|e| format!("the import thread failed: {e}"))?
}

/// An alarm line for a failing database, for the status page and the OLED.
pub fn alarm(pbx: &str, s: &PullStatus) -> Option<(String, String)> {
    let s = PullStatus {
        pbx: pbx.to_owned(),
        ..s.clone()
    };
    s.alarm().map(|a| (a.code, a.message))
}
