//! Retention on the writer thread: by age (`retention_days`) and by size (`max_size_mb`), oldest
//! first, in small batches so commits never wait long behind a delete; with `keep_uncopied`,
//! never a record the USB copy has not taken; with `keep_unsent` (the uplink is on), never one
//! the central server has not confirmed.
//!
//! Runs only while commits work (a failing database is left alone) and reschedules itself:
//! again at once while a batch deleted something, else after [`RETENTION_EVERY`].

use std::time::Duration;

use rusqlite::Connection;

use super::super::store;

/// Retention runs at start and then at most this often.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The limits retention enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub retention_days: u32,
    pub max_size_mb: u64,
    pub keep_uncopied: bool,
    pub keep_unsent: bool,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Deleted this many records; run again soon.
    Deleted(usize),
    /// Nothing (more) to delete.
    Done,
}

/// One retention batch at box time `now_utc`, in one transaction that also updates the row
/// count in meta (`rows` before the step). With `keep_uncopied`, rows above the USB watermark
/// are kept, with `keep_unsent` rows above the uplink's: both are read inside the transaction,
/// so a copy by `cdrbox usb-export` beside the box counts at once. Returns the step and the USB
/// watermark it saw.
pub(crate) fn step(
    conn: &Connection,
    policy: &Policy,
    now_utc: i64,
    rows: u64,
) -> rusqlite::Result<(Step, i64)> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let copied_upto = store::meta_get(&tx, store::META_USB_COPIED_ID)?.unwrap_or(0);
    let sent_upto = store::meta_get(&tx, store::META_UPLINK_SENT_ID)?.unwrap_or(0);
    let step = delete_batch(
        &tx,
        policy,
        now_utc,
        keep_upto(policy, copied_upto, sent_upto),
    )?;
    if let Step::Deleted(n) = step {
        store::meta_set(&tx, store::META_ROWS, rows.saturating_sub(n as u64) as i64)?;
    }
    tx.commit()?;
    Ok((step, copied_upto))
}

/// The highest id retention may delete (`None`: any), the lower of the watermarks it must keep.
fn keep_upto(policy: &Policy, copied_upto: i64, sent_upto: i64) -> Option<i64> {
    let usb = policy.keep_uncopied.then_some(copied_upto);
    let uplink = policy.keep_unsent.then_some(sent_upto);
    match (usb, uplink) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn delete_batch(
    conn: &Connection,
    policy: &Policy,
    now_utc: i64,
    max_id: Option<i64>,
) -> rusqlite::Result<Step> {
    if policy.retention_days > 0 {
        let cutoff = now_utc - i64::from(policy.retention_days) * 86_400;
        let n = store::delete_older_than(conn, cutoff, max_id)?;
        if n > 0 {
            return Ok(Step::Deleted(n));
        }
        store::delete_gaps_before(conn, cutoff)?;
    }
    if policy.max_size_mb > 0 {
        let limit = policy.max_size_mb.saturating_mul(1024 * 1024);
        if store::used_bytes(conn)? > limit {
            let n = store::delete_oldest(conn, max_id)?;
            if n > 0 {
                return Ok(Step::Deleted(n));
            }
        }
    }
    Ok(Step::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(keep_uncopied: bool, keep_unsent: bool) -> Policy {
        Policy {
            retention_days: 1,
            max_size_mb: 0,
            keep_uncopied,
            keep_unsent,
        }
    }

    #[test]
    fn retention_keeps_above_the_lower_watermark_it_must_respect() {
        assert_eq!(keep_upto(&policy(false, false), 20, 30), None);
        assert_eq!(keep_upto(&policy(true, false), 20, 30), Some(20));
        assert_eq!(keep_upto(&policy(false, true), 20, 30), Some(30));
        assert_eq!(keep_upto(&policy(true, true), 20, 30), Some(20));
        assert_eq!(keep_upto(&policy(true, true), 40, 30), Some(30));
        // Nothing sent yet: nothing may go.
        assert_eq!(keep_upto(&policy(false, true), 20, 0), Some(0));
    }
}
