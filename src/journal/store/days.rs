//! The day summary `cdr_day`: records per (UTC day of the start, PBX, direction, disposition),
//! so a count over a month or a year reads a few hundred summary rows instead of scanning the
//! table (issue 14 item 3). Blocking SQLite calls, plus the pure split of a time range into
//! summarised days and the edges still counted from `cdr`.
//!
//! Why "closed days" and triggers: the summary covers starts in `[0, day_summary_upto)` (a
//! `meta` key, whole UTC days). Triggers on `cdr` (schema v3) keep it exact for every insert,
//! delete and update of a row inside that span, in the same transaction — an import of an old
//! CSV, a late record, a retention delete. Live records start today, after the span, so the
//! triggers do nothing for them and the summary adds no page to the ordinary commit (the wear
//! budget, BENCHMARKS.md §). The writer moves the span forward over days that ended, in small
//! steps when it has nothing to commit ([`summarise_step`]): once a day on a running box, and
//! in chunks on an old journal after the v2 → v3 migration. A reader counts the rest (today,
//! yesterday, a journal not summarised yet) from `cdr` through the `start_utc` index.
//! Must not decide anything about schedules (the writer does) or about filters (`query`).

use rusqlite::{params, Connection};

use super::{meta_get, meta_set};

/// `meta` key: starts in `[0, this)` (Unix seconds, a multiple of [`DAY`]) are in `cdr_day`.
/// Absent: nothing is (a journal just migrated to v3).
pub const META_DAY_SUMMARY_UPTO: &str = "day_summary_upto";
pub const DAY: i64 = 86_400;
/// Days summarised in one step: one writer transaction of a few tens of thousands of rows at a
/// busy office's rate, so records arriving meanwhile wait in the ring for a moment only.
pub const SUMMARY_STEP_DAYS: i64 = 16;

/// What the summary covers: `[0, upto)`.
pub fn summary_upto(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(meta_get(conn, META_DAY_SUMMARY_UPTO)?.unwrap_or(0).max(0))
}

/// Moves the summary's span towards `target_utc` (rounded down to a day) by at most
/// [`SUMMARY_STEP_DAYS`], in one transaction: the days' rows counted from `cdr`, then the span
/// moved, so the triggers take over those days from the same commit on. Returns true when
/// more days remain. Writes nothing when the span is already there.
pub fn summarise_step(conn: &Connection, target_utc: i64) -> rusqlite::Result<bool> {
    let (target, upto, from) = step_span(conn, META_DAY_SUMMARY_UPTO, target_utc)?;
    if from >= target && upto.is_some() {
        return Ok(false);
    }
    let to = (from + SUMMARY_STEP_DAYS * DAY).min(target).max(from);
    immediate(conn, || {
        conn.execute(
            "INSERT INTO cdr_day (day, pbx, direction, disposition, records)
             SELECT start_utc / 86400, pbx, direction, disposition, count(*) FROM cdr
             WHERE start_utc >= ?1 AND start_utc < ?2
             GROUP BY 1, 2, 3, 4
             ON CONFLICT DO UPDATE SET records = records + excluded.records",
            params![from, to],
        )?;
        meta_set(conn, META_DAY_SUMMARY_UPTO, to)
    })?;
    Ok(to < target)
}

/// Runs `step` in one `BEGIN IMMEDIATE` transaction: committed when it succeeds, rolled back
/// when it fails.
pub(crate) fn immediate(
    conn: &Connection,
    step: impl FnOnce() -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match step() {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Where the summary whose span is the `meta` key `key` stands, for a step towards
/// `target_utc`: the target rounded down to a day, the span's end (`None`: never summarised),
/// and where the step starts — the span's end, or the first stored day (nothing before it to
/// count).
pub(crate) fn step_span(
    conn: &Connection,
    key: &str,
    target_utc: i64,
) -> rusqlite::Result<(i64, Option<i64>, i64)> {
    let target = target_utc.div_euclid(DAY).max(0) * DAY;
    let upto = meta_get(conn, key)?;
    let from = match upto {
        Some(u) => u.max(0),
        None => {
            let first: Option<i64> = conn.query_row(
                "SELECT min(start_utc) FROM cdr WHERE start_utc >= 0",
                [],
                |r| r.get(0),
            )?;
            first.map_or(target, |t| (t.div_euclid(DAY) * DAY).min(target))
        }
    };
    Ok((target, upto, from))
}

/// A half-open range of starts (`None`: unbounded at that end), as `Filter` has it.
pub type Span = (Option<i64>, Option<i64>);

/// How a count over `[from, to)` splits when the summary covers `[0, upto)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySplit {
    /// Whole days `[lo, hi)` (Unix seconds) read from `cdr_day`; `None`: none.
    pub days: Option<(i64, i64)>,
    /// Ranges still counted from `cdr`: everything of `[from, to)` outside `days`.
    pub edges: Vec<Span>,
    /// Also count the rows without a start time (an unbounded range includes them).
    pub no_start: bool,
}

/// Splits `[from, to)` into the whole summarised days inside it and the edges around them.
/// Pure; exact by construction: the days and the edges partition the range.
pub fn split_days(from: Option<i64>, to: Option<i64>, upto: i64) -> DaySplit {
    let no_start = from.is_none() && to.is_none();
    // The first whole day at or after `from`.
    let lo = from.map_or(0, |f| {
        f.max(0).saturating_add(DAY - 1).div_euclid(DAY) * DAY
    });
    let hi = to.map_or(upto, |t| t.min(upto)).div_euclid(DAY) * DAY;
    if lo >= hi {
        // The one edge is the whole range: an unbounded one already counts the rows without
        // a start, so they are not added again.
        return DaySplit {
            days: None,
            edges: vec![(from, to)],
            no_start: false,
        };
    }
    let mut edges = Vec::new();
    if from.is_none_or(|f| f < lo) {
        edges.push((from, Some(lo)));
    }
    if to.is_none_or(|t| t > hi) {
        edges.push((Some(hi), to));
    }
    DaySplit {
        days: Some((lo, hi)),
        edges,
        no_start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_days_inside_the_range_and_the_summary_are_summarised() {
        let upto = 100 * DAY;
        // 2.5 days in, to 10.5 days: days 3..10 whole, the halves at each end scanned.
        let s = split_days(Some(2 * DAY + DAY / 2), Some(10 * DAY + DAY / 2), upto);
        assert_eq!(s.days, Some((3 * DAY, 10 * DAY)));
        assert_eq!(
            s.edges,
            vec![
                (Some(2 * DAY + DAY / 2), Some(3 * DAY)),
                (Some(10 * DAY), Some(10 * DAY + DAY / 2))
            ]
        );
        assert!(!s.no_start);
        // Aligned ends leave no edge.
        let s = split_days(Some(3 * DAY), Some(10 * DAY), upto);
        assert_eq!(s.edges, vec![]);
    }

    #[test]
    fn what_the_summary_does_not_cover_is_scanned() {
        let upto = 50 * DAY;
        let s = split_days(Some(40 * DAY), None, upto);
        assert_eq!(s.days, Some((40 * DAY, 50 * DAY)));
        assert_eq!(s.edges, vec![(Some(50 * DAY), None)]);
        let s = split_days(None, None, upto);
        assert_eq!(s.days, Some((0, 50 * DAY)));
        assert_eq!(s.edges, vec![(None, Some(0)), (Some(50 * DAY), None)]);
        assert!(s.no_start, "an unbounded range counts rows without a start");
        // Nothing summarised yet, or a range inside one day: all scanned.
        let s = split_days(None, None, 0);
        assert_eq!((s.days, s.edges), (None, vec![(None, None)]));
        assert!(
            !s.no_start,
            "the whole-range edge counts them already (600 records counted 601)"
        );
        let s = split_days(Some(DAY + 5), Some(DAY + 50), upto);
        assert_eq!(
            (s.days, s.edges),
            (None, vec![(Some(DAY + 5), Some(DAY + 50))])
        );
        // Before 1970 is never summarised.
        let s = split_days(Some(-3 * DAY), Some(2 * DAY), upto);
        assert_eq!(s.days, Some((0, 2 * DAY)));
        assert_eq!(s.edges, vec![(Some(-3 * DAY), Some(0))]);
    }
}
