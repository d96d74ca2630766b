//! The gap ledger's in-memory side: link-down intervals still open per PBX, closed ones not yet
//! stored, and records dropped at the memory bound; written to the `gaps` table inside the
//! commit thread's next commit.
//!
//! A PBX's first word in a run also opens a gap from when the previous run was last alive
//! ([`BOX_OFF_REASON`]). Drops at the memory bound make one entry per episode and PBX, with
//! the count in `lost`; the episode ends at the first commit without new drops. Pure
//! bookkeeping plus the SQL to store it; the writer decides when.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;

use crate::sink::LinkEvent;

use super::super::{Coverage, Dropped, FilledGap};

/// Reason written for the interval the box itself was not running.
pub const BOX_OFF_REASON: &str = "cdrbox was not running";

/// A link-down interval not yet closed.
#[derive(Debug, Clone)]
pub(crate) struct OpenGap {
    /// Row id once stored (with `up_utc` NULL).
    pub rowid: Option<i64>,
    pub down_utc: i64,
    pub reason: String,
}

/// A closed interval waiting for the next commit.
#[derive(Debug, Clone)]
struct ClosedGap {
    rowid: Option<i64>,
    pbx: String,
    down_utc: i64,
    up_utc: i64,
    reason: String,
}

/// One episode of records dropped at the memory bound, for one PBX.
#[derive(Debug, Clone)]
struct DropGap {
    rowid: Option<i64>,
    down_utc: i64,
    up_utc: i64,
    count: u64,
    /// Grew since the last commit (else the episode is over once stored).
    touched: bool,
}

/// The `reason` of a drop entry.
pub fn dropped_reason(count: u64) -> String {
    format!(
        "the journal could not keep up (storage too slow or full): {count} records dropped at \
         the memory bound ([storage] memory_queue_records, memory_queue_kb)"
    )
}

/// Open gaps per PBX, closed ones not yet stored, drop episodes.
pub(crate) struct GapLedger<T> {
    open: HashMap<String, OpenGap>,
    drops: HashMap<String, DropGap>,
    closed: Vec<ClosedGap>,
    /// PBXs that reported a link event since start.
    seen: HashSet<String>,
    /// From meta at start: when the previous run was last known alive.
    last_alive: Option<i64>,
    /// When there became something to store (the writer's clock).
    dirty_since: Option<T>,
}

impl<T: Copy> GapLedger<T> {
    /// The ledger at start: gaps the previous run left open, and when it was last alive.
    pub fn new(open: HashMap<String, OpenGap>, last_alive: Option<i64>) -> GapLedger<T> {
        GapLedger {
            open,
            drops: HashMap::new(),
            closed: Vec::new(),
            seen: HashSet::new(),
            last_alive,
            dirty_since: None,
        }
    }

    /// A new open gap of `pbx` from `down_utc`, to be stored.
    fn open_gap(&mut self, pbx: &str, down_utc: i64, reason: String, now: T) {
        self.open.insert(
            pbx.to_string(),
            OpenGap {
                rowid: None,
                down_utc,
                reason,
            },
        );
        self.dirty_since.get_or_insert(now);
    }

    /// Applies a link event at box time `at_utc` (`now` on the writer's clock); returns true
    /// when a new gap opened.
    pub fn event(&mut self, pbx: &str, at_utc: i64, event: &LinkEvent, now: T) -> bool {
        let mut opened = false;
        if self.seen.insert(pbx.to_string()) && !self.open.contains_key(pbx) {
            // First word from this PBX in this run: the time the box was off is a gap too.
            if let Some(t) = self.last_alive.filter(|t| *t < at_utc) {
                self.open_gap(pbx, t, BOX_OFF_REASON.into(), now);
                opened = true;
            }
        }
        match event {
            LinkEvent::Down { reason, .. } => {
                if !self.open.contains_key(pbx) {
                    self.open_gap(pbx, at_utc, reason.clone(), now);
                    opened = true;
                }
            }
            LinkEvent::Up { .. } => {
                if let Some(g) = self.open.remove(pbx) {
                    self.closed.push(ClosedGap {
                        rowid: g.rowid,
                        pbx: pbx.to_string(),
                        down_utc: g.down_utc,
                        up_utc: at_utc.max(g.down_utc),
                        reason: g.reason,
                    });
                    self.dirty_since.get_or_insert(now);
                }
            }
            LinkEvent::Connecting { .. }
            | LinkEvent::Discarded { .. }
            | LinkEvent::PbxClock { .. } => {}
        }
        opened
    }

    /// `d` records of `pbx` were dropped at the memory bound; returns true when this starts a
    /// new ledger entry.
    pub fn dropped(&mut self, pbx: &str, d: &Dropped, now: T) -> bool {
        self.dirty_since.get_or_insert(now);
        match self.drops.get_mut(pbx) {
            Some(g) => {
                g.up_utc = g.up_utc.max(d.last_utc);
                g.count += d.count;
                g.touched = true;
                false
            }
            None => {
                self.drops.insert(
                    pbx.to_string(),
                    DropGap {
                        rowid: None,
                        down_utc: d.first_utc,
                        up_utc: d.last_utc.max(d.first_utc),
                        count: d.count,
                        touched: true,
                    },
                );
                true
            }
        }
    }

    /// The database was replaced by a fresh one: every entry still in memory is stored again
    /// at the next commit.
    pub fn forget_stored(&mut self, now: T) {
        for g in self.open.values_mut() {
            g.rowid = None;
        }
        for c in &mut self.closed {
            c.rowid = None;
        }
        for d in self.drops.values_mut() {
            d.rowid = None;
            d.touched = true;
        }
        self.dirty_since.get_or_insert(now);
    }

    /// Entries not yet in the table (they count as open gaps already).
    pub fn unstored(&self) -> u64 {
        let open = self.open.values().filter(|g| g.rowid.is_none()).count();
        let closed = self.closed.iter().filter(|g| g.rowid.is_none()).count();
        let drops = self.drops.values().filter(|g| g.rowid.is_none()).count();
        (open + closed + drops) as u64
    }

    /// When the oldest change not yet stored happened.
    pub fn dirty_since(&self) -> Option<T> {
        self.dirty_since
    }

    /// Writes pending gap changes in `tx`; returns the row ids of newly stored open gaps and
    /// drop entries, to be applied by [`GapLedger::stored`] once the transaction commits.
    pub fn store(&self, tx: &Connection) -> rusqlite::Result<Stored> {
        for c in &self.closed {
            match c.rowid {
                Some(id) => {
                    tx.prepare_cached("UPDATE gaps SET up_utc = ?1 WHERE id = ?2")?
                        .execute(rusqlite::params![c.up_utc, id])?;
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO gaps (pbx, down_utc, up_utc, reason) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(rusqlite::params![c.pbx, c.down_utc, c.up_utc, c.reason])?;
                }
            }
        }
        let mut ids = Stored::default();
        for (pbx, g) in &self.open {
            if g.rowid.is_none() {
                tx.prepare_cached(
                    "INSERT INTO gaps (pbx, down_utc, up_utc, reason) VALUES (?1, ?2, NULL, ?3)",
                )?
                .execute(rusqlite::params![pbx, g.down_utc, g.reason])?;
                ids.open.push((pbx.clone(), tx.last_insert_rowid()));
            }
        }
        for (pbx, g) in self.drops.iter().filter(|(_, g)| g.touched) {
            let reason = dropped_reason(g.count);
            let lost = g.count as i64;
            match g.rowid {
                Some(id) => {
                    tx.prepare_cached(
                        "UPDATE gaps SET up_utc = ?1, reason = ?2, lost = ?3 WHERE id = ?4",
                    )?
                    .execute(rusqlite::params![g.up_utc, reason, lost, id])?;
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO gaps (pbx, down_utc, up_utc, reason, lost)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(rusqlite::params![pbx, g.down_utc, g.up_utc, reason, lost])?;
                    ids.drops.push((pbx.clone(), tx.last_insert_rowid()));
                }
            }
        }
        Ok(ids)
    }

    /// The transaction that ran [`store`](Self::store) committed.
    pub fn stored(&mut self, ids: Stored) {
        self.closed.clear();
        for (pbx, id) in ids.open {
            if let Some(g) = self.open.get_mut(&pbx) {
                g.rowid = Some(id);
            }
        }
        for (pbx, id) in ids.drops {
            if let Some(g) = self.drops.get_mut(&pbx) {
                g.rowid = Some(id);
            }
        }
        // An episode that did not grow since the previous commit is over.
        self.drops.retain(|_, g| std::mem::take(&mut g.touched));
        self.dirty_since = None;
    }
}

/// Row ids a commit gave to new ledger entries.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    open: Vec<(String, i64)>,
    drops: Vec<(String, i64)>,
}

/// Gaps no import has filled (the status's count).
pub(crate) fn count_open(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM gaps WHERE filled_utc IS NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// Marks the stored, closed gaps of `c.pbx` inside `[c.from_utc, c.to_utc]` as filled at
/// `now_utc`, in one transaction. Only a gap wholly inside counts: for part of a gap the
/// source says nothing about the rest. The first filler stays named; the count adds up.
pub(crate) fn fill(
    conn: &mut Connection,
    c: &Coverage,
    now_utc: i64,
) -> rusqlite::Result<Vec<FilledGap>> {
    let tx = conn.transaction()?;
    let mut out = Vec::new();
    {
        let mut q = tx.prepare_cached(
            "SELECT id, down_utc, up_utc FROM gaps
             WHERE pbx = ?1 AND up_utc IS NOT NULL AND down_utc >= ?2 AND up_utc <= ?3
             ORDER BY down_utc, id",
        )?;
        let rows = q.query_map(rusqlite::params![c.pbx, c.from_utc, c.to_utc], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (id, down_utc, up_utc) = row?;
            let records = c
                .stored_at
                .iter()
                .filter(|t| (down_utc..=up_utc).contains(*t))
                .count() as u64;
            out.push(FilledGap {
                id,
                pbx: c.pbx.clone(),
                down_utc,
                up_utc,
                records,
            });
        }
    }
    for g in &out {
        tx.prepare_cached(
            "UPDATE gaps SET filled_from = COALESCE(filled_from, ?1),
                             filled_records = filled_records + ?2,
                             filled_utc = COALESCE(filled_utc, ?3)
             WHERE id = ?4",
        )?
        .execute(rusqlite::params![
            c.origin.as_str(),
            g.records as i64,
            now_utc,
            g.id
        ])?;
    }
    tx.commit()?;
    Ok(out)
}

/// The gaps a previous run left open (`up_utc` NULL), per PBX, oldest first.
pub(crate) fn open_gaps(conn: &Connection) -> rusqlite::Result<HashMap<String, OpenGap>> {
    let mut stmt = conn
        .prepare("SELECT id, pbx, down_utc, reason FROM gaps WHERE up_utc IS NULL ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get(2)?,
            r.get(3)?,
        ))
    })?;
    let mut open = HashMap::new();
    for row in rows {
        let (id, pbx, down_utc, reason) = row?;
        open.entry(pbx).or_insert(OpenGap {
            rowid: Some(id),
            down_utc,
            reason,
        });
    }
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::DownKind;

    fn down() -> LinkEvent {
        LinkEvent::Down {
            reason: "reset".into(),
            kind: DownKind::Transient,
        }
    }

    fn up() -> LinkEvent {
        LinkEvent::Up {
            banner: None,
            pbx_restarted: false,
        }
    }

    #[test]
    fn first_word_after_a_restart_opens_a_box_off_gap() {
        let mut g: GapLedger<u32> = GapLedger::new(HashMap::new(), Some(100));
        assert!(g.event("a", 150, &up(), 1), "box-off gap opened");
        assert_eq!(g.dirty_since(), Some(1));
        assert_eq!(g.closed.len(), 1, "and closed by the Up");
        assert_eq!(
            (
                g.closed[0].down_utc,
                g.closed[0].up_utc,
                g.closed[0].reason.as_str()
            ),
            (100, 150, BOX_OFF_REASON)
        );
        // A second PBX's first word is a box-off gap of its own; a repeated Down is not new.
        assert!(g.event("b", 160, &down(), 2));
        assert!(!g.event("b", 170, &down(), 3));
        assert_eq!(g.dirty_since(), Some(1), "oldest change kept");
    }

    #[test]
    fn drops_make_one_entry_per_episode_with_the_count() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE gaps (id INTEGER PRIMARY KEY, pbx TEXT NOT NULL, down_utc INTEGER \
             NOT NULL, up_utc INTEGER, reason TEXT NOT NULL, lost INTEGER NOT NULL DEFAULT 0)",
        )
        .unwrap();
        let rows = |c: &Connection| -> Vec<(String, i64, Option<i64>, i64)> {
            let mut st = c
                .prepare("SELECT pbx, down_utc, up_utc, lost FROM gaps ORDER BY id")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let mut g: GapLedger<u32> = GapLedger::new(HashMap::new(), None);
        let d = |a, b, n| Dropped {
            first_utc: a,
            last_utc: b,
            count: n,
        };
        assert!(g.dropped("a", &d(100, 105, 7), 0));
        let ids = g.store(&conn).unwrap();
        g.stored(ids);
        // More drops before the next commit: the same entry grows.
        assert!(!g.dropped("a", &d(106, 110, 3), 1));
        let ids = g.store(&conn).unwrap();
        g.stored(ids);
        assert_eq!(rows(&conn), vec![("a".into(), 100, Some(110), 10)]);
        // A commit without drops ends the episode; the next drops are a new entry.
        let ids = g.store(&conn).unwrap();
        g.stored(ids);
        assert!(g.dropped("a", &d(500, 500, 1), 2));
        let ids = g.store(&conn).unwrap();
        g.stored(ids);
        assert_eq!(rows(&conn).len(), 2);
        assert_eq!(rows(&conn)[1].3, 1);
    }

    #[test]
    fn a_gap_closes_at_its_down_time_at_the_earliest() {
        let mut g: GapLedger<u32> = GapLedger::new(HashMap::new(), None);
        g.event("a", 200, &down(), 0);
        g.event("a", 150, &up(), 0);
        assert_eq!((g.closed[0].down_utc, g.closed[0].up_utc), (200, 200));
    }
}
