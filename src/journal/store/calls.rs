//! The calls summary: which calls had records on each summarised UTC day, so the calls count
//! of a month, a year or everything reads a few hundred summary rows instead of computing the
//! call key of every record (issue 14 item 3). Blocking SQLite calls, plus the pure mapping of
//! a record's direction and disposition to its bit in a group mask.
//!
//! A call counts once however many of its records match a filter, so records per day (the
//! `cdr_day` summary) cannot give it; per summarised day this keeps:
//! - `cdr_call`: one row per (day, call key): the call's PBX, the groups (direction ×
//!   disposition, [`group_bit`]) of its records that day, and `multi` when the same call also
//!   has rows on other summarised days (a call over midnight; rare);
//! - `cdr_call_day`: calls per (day, PBX, groups) — what a count sums.
//!
//! A count over whole days then is the sum of the matching `cdr_call_day` rows, less the extra
//! days of the `multi` calls, plus the calls of the edges (partial days, days not summarised
//! yet or changed since) not already counted in the days (the reader, `query.rs`).
//!
//! Why the writer, not triggers, keeps it: the call key is Rust ([`crate::calls::call_key_of`])
//! and a call's groups are an OR over its records. Live records start after the span, so the
//! summary costs the ordinary commit nothing (the wear budget); a row inserted, deleted or
//! changed inside the span (an import, retention, an edit) marks its day in `cdr_call_dirty`
//! from a trigger in the same transaction, readers scan that day, and the writer redoes it in
//! its next step.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection};

use super::days::{immediate, step_span};
use super::{meta_get, meta_set, DAY, SUMMARY_STEP_DAYS};
use crate::record::{Direction, Disposition};

/// `meta` key: starts in `[0, this)` (Unix seconds, whole days) are in the calls summary, but
/// for the days in `cdr_call_dirty`. Absent: nothing is (a journal just migrated to v4).
pub const META_CALL_SUMMARY_UPTO: &str = "call_summary_upto";

/// Disposition slots in a group mask: the seven Asterisk spells, then any other text (the
/// payload's tags).
const DISPOSITION_SLOTS: u32 = crate::journal::payload::OTHER_DISPOSITION as u32 + 1;
/// Direction slots: the four of [`Direction::ALL`], then any other text (none is written).
const DIRECTION_SLOTS: u32 = 5;

/// The bit of a record's group: its direction and disposition as stored.
pub fn group_bit(direction: &str, disposition: &str) -> i64 {
    let dir = Direction::ALL
        .iter()
        .position(|d| d.as_str() == direction)
        .unwrap_or(Direction::ALL.len()) as u32;
    let disp = disposition_slot(&Disposition::parse(disposition)).unwrap_or(DISPOSITION_SLOTS - 1);
    1i64 << (dir * DISPOSITION_SLOTS + disp)
}

/// The slot of a disposition a filter can name (its payload tag); `None` for `Other` (a filter
/// on it is answered by a scan).
fn disposition_slot(d: &Disposition) -> Option<u32> {
    let tag = crate::journal::payload::disposition_tag(d);
    (tag != crate::journal::payload::OTHER_DISPOSITION).then_some(u32::from(tag))
}

/// The groups a filter on these directions and dispositions matches (empty: any); `None` when
/// a disposition has no slot of its own.
pub fn group_mask(directions: &[Direction], dispositions: &[Disposition]) -> Option<i64> {
    let dirs: Vec<u32> = if directions.is_empty() {
        (0..DIRECTION_SLOTS).collect()
    } else {
        directions
            .iter()
            .filter_map(|d| Direction::ALL.iter().position(|a| a == d))
            .map(|i| i as u32)
            .collect()
    };
    let disps: Vec<u32> = if dispositions.is_empty() {
        (0..DISPOSITION_SLOTS).collect()
    } else {
        dispositions
            .iter()
            .map(disposition_slot)
            .collect::<Option<_>>()?
    };
    let mut mask = 0i64;
    for d in &dirs {
        for p in &disps {
            mask |= 1i64 << (d * DISPOSITION_SLOTS + p);
        }
    }
    Some(mask)
}

/// What the calls summary covers: `[0, upto)` but the dirty days.
pub fn call_summary_upto(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(meta_get(conn, META_CALL_SUMMARY_UPTO)?.unwrap_or(0).max(0))
}

/// The summarised days (day numbers) changed since they were summarised.
pub fn dirty_call_days(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut s = conn.prepare_cached("SELECT day FROM cdr_call_dirty ORDER BY day")?;
    let days = s.query_map([], |r| r.get(0))?.collect();
    days
}

/// One step of the calls summary, in one transaction: first up to [`SUMMARY_STEP_DAYS`] dirty
/// days redone, else the span moved towards `target_utc` (rounded down to a day) by at most
/// that many days. Returns true when more remains. Writes nothing when there is nothing to do.
pub fn summarise_calls_step(conn: &Connection, target_utc: i64) -> rusqlite::Result<bool> {
    let (target, upto, from) = step_span(conn, META_CALL_SUMMARY_UPTO, target_utc)?;
    let dirty: Vec<i64> = conn
        .prepare_cached("SELECT day FROM cdr_call_dirty ORDER BY day LIMIT ?1")?
        .query_map([SUMMARY_STEP_DAYS], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if dirty.is_empty() && from >= target && upto.is_some() {
        return Ok(false);
    }
    let to = if dirty.is_empty() {
        (from + SUMMARY_STEP_DAYS * DAY).min(target).max(from)
    } else {
        from
    };
    immediate(conn, || {
        let mut keys = HashSet::new();
        for &day in &dirty {
            keys.extend(forget_day(conn, day)?);
            keys.extend(add_days(conn, day, day + 1)?);
            conn.execute("DELETE FROM cdr_call_dirty WHERE day = ?1", [day])?;
        }
        if to > from {
            keys.extend(add_days(conn, from / DAY, to / DAY)?);
        }
        refresh_multi(conn, &keys)?;
        meta_set(conn, META_CALL_SUMMARY_UPTO, to)
    })?;
    let more_dirty: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM cdr_call_dirty)", [], |r| {
            r.get(0)
        })?;
    Ok(more_dirty || to < target)
}

/// Removes a day's rows; returns the calls it had.
fn forget_day(conn: &Connection, day: i64) -> rusqlite::Result<Vec<Vec<u8>>> {
    let keys = conn
        .prepare_cached("SELECT key FROM cdr_call WHERE day = ?1")?
        .query_map([day], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<Vec<u8>>>>()?;
    conn.execute("DELETE FROM cdr_call WHERE day = ?1", [day])?;
    conn.execute("DELETE FROM cdr_call_day WHERE day = ?1", [day])?;
    Ok(keys)
}

/// Summarises the records starting on days `[lo, hi)` (day numbers); returns their calls.
fn add_days(conn: &Connection, lo: i64, hi: i64) -> rusqlite::Result<Vec<Vec<u8>>> {
    // (day, key) → (PBX, groups).
    let mut calls: HashMap<(i64, Vec<u8>), (String, i64)> = HashMap::new();
    {
        let mut s = conn.prepare_cached(
            "SELECT start_utc, pbx, linked_id, unique_id, channel, direction, disposition \
             FROM cdr WHERE start_utc >= ?1 AND start_utc < ?2",
        )?;
        let mut rows = s.query(params![lo * DAY, hi * DAY])?;
        while let Some(r) = rows.next()? {
            let start: i64 = r.get(0)?;
            let pbx: String = r.get(1)?;
            let linked: Option<String> = r.get(2)?;
            let unique_id: String = r.get(3)?;
            let channel: String = r.get(4)?;
            let bit = group_bit(&r.get::<_, String>(5)?, &r.get::<_, String>(6)?);
            let key = crate::calls::call_key_of(&pbx, linked.as_deref(), &unique_id, &channel);
            let e = calls
                .entry((start.div_euclid(DAY), key.into_bytes()))
                .or_insert((pbx, 0));
            e.1 |= bit;
        }
    }
    let mut per_group: HashMap<(i64, &str, i64), i64> = HashMap::new();
    let mut insert =
        conn.prepare_cached("INSERT INTO cdr_call (day, key, pbx, mask) VALUES (?1, ?2, ?3, ?4)")?;
    for ((day, key), (pbx, mask)) in &calls {
        insert.execute(params![day, key, pbx, mask])?;
        *per_group.entry((*day, pbx.as_str(), *mask)).or_default() += 1;
    }
    let mut group = conn.prepare_cached(
        "INSERT INTO cdr_call_day (day, pbx, mask, calls) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO UPDATE SET calls = calls + excluded.calls",
    )?;
    for ((day, pbx, mask), n) in per_group {
        group.execute(params![day, pbx, mask, n])?;
    }
    Ok(calls.into_keys().map(|(_, k)| k).collect())
}

/// Sets `multi` on every row of these calls from whether each has rows on several days.
fn refresh_multi(conn: &Connection, keys: &HashSet<Vec<u8>>) -> rusqlite::Result<()> {
    let mut count = conn
        .prepare_cached("SELECT count(*), coalesce(sum(multi), 0) FROM cdr_call WHERE key = ?1")?;
    let mut set = conn.prepare_cached("UPDATE cdr_call SET multi = ?2 WHERE key = ?1")?;
    for key in keys {
        let (rows, flagged): (i64, i64) = count.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let multi = rows > 1;
        let want = if multi { rows } else { 0 };
        if flagged != want {
            set.execute(params![key, multi])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_has_its_own_bit_and_filters_cover_theirs() {
        let mut seen = HashSet::new();
        for d in Direction::ALL {
            for p in crate::filter::input::DISPOSITIONS {
                assert!(seen.insert(group_bit(d.as_str(), p)), "{d:?} {p}");
            }
            assert!(seen.insert(group_bit(d.as_str(), "SOMETHING ELSE")));
        }
        assert!(seen.insert(group_bit("sideways", "ANSWERED")));
        let answered_in = group_mask(&[Direction::Inbound], &[Disposition::Answered]).unwrap();
        assert_eq!(answered_in, group_bit("inbound", "ANSWERED"));
        let any = group_mask(&[], &[]).unwrap();
        assert!(
            seen.iter().all(|b| any & b != 0),
            "no filter matches every group"
        );
        let inbound = group_mask(&[Direction::Inbound], &[]).unwrap();
        assert_ne!(inbound & group_bit("inbound", "ODD"), 0);
        assert_eq!(inbound & group_bit("outbound", "ANSWERED"), 0);
        assert_eq!(group_mask(&[], &[Disposition::Other("X".into())]), None);
    }
}
