//! The gap ledger's in-memory side: link-down intervals still open per PBX and closed ones not
//! yet stored; written to the `gaps` table inside the writer's next commit.
//!
//! A PBX's first word in a run also opens a gap from when the previous run was last alive
//! ([`BOX_OFF_REASON`]). Pure bookkeeping plus the SQL to store it; the writer decides when.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;

use crate::sink::LinkEvent;

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

/// Open gaps per PBX and closed ones not yet stored.
pub(crate) struct GapLedger<T> {
    open: HashMap<String, OpenGap>,
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
            closed: Vec::new(),
            seen: HashSet::new(),
            last_alive,
            dirty_since: None,
        }
    }

    /// Applies a link event at box time `at_utc` (`now` on the writer's clock); returns true
    /// when a new gap opened.
    pub fn event(&mut self, pbx: &str, at_utc: i64, event: &LinkEvent, now: T) -> bool {
        let mut opened = false;
        if self.seen.insert(pbx.to_string()) && !self.open.contains_key(pbx) {
            // First word from this PBX in this run: the time the box was off is a gap too.
            if let Some(t) = self.last_alive.filter(|t| *t < at_utc) {
                self.open.insert(
                    pbx.to_string(),
                    OpenGap {
                        rowid: None,
                        down_utc: t,
                        reason: BOX_OFF_REASON.into(),
                    },
                );
                opened = true;
                self.dirty_since.get_or_insert(now);
            }
        }
        match event {
            LinkEvent::Down { reason, .. } => {
                if !self.open.contains_key(pbx) {
                    self.open.insert(
                        pbx.to_string(),
                        OpenGap {
                            rowid: None,
                            down_utc: at_utc,
                            reason: reason.clone(),
                        },
                    );
                    opened = true;
                    self.dirty_since.get_or_insert(now);
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
            LinkEvent::Connecting { .. } | LinkEvent::Discarded { .. } => {}
        }
        opened
    }

    /// When the oldest change not yet stored happened.
    pub fn dirty_since(&self) -> Option<T> {
        self.dirty_since
    }

    /// Writes pending gap changes in `tx`; returns the row ids of newly stored open gaps, to be
    /// applied by [`GapLedger::stored`] once the transaction commits.
    pub fn store(&self, tx: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
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
        let mut ids = Vec::new();
        for (pbx, g) in &self.open {
            if g.rowid.is_none() {
                tx.prepare_cached(
                    "INSERT INTO gaps (pbx, down_utc, up_utc, reason) VALUES (?1, ?2, NULL, ?3)",
                )?
                .execute(rusqlite::params![pbx, g.down_utc, g.reason])?;
                ids.push((pbx.clone(), tx.last_insert_rowid()));
            }
        }
        Ok(ids)
    }

    /// The transaction that ran [`store`](Self::store) committed.
    pub fn stored(&mut self, ids: Vec<(String, i64)>) {
        self.closed.clear();
        for (pbx, id) in ids {
            if let Some(g) = self.open.get_mut(&pbx) {
                g.rowid = Some(id);
            }
        }
        self.dirty_since = None;
    }
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
    fn a_gap_closes_at_its_down_time_at_the_earliest() {
        let mut g: GapLedger<u32> = GapLedger::new(HashMap::new(), None);
        g.event("a", 200, &down(), 0);
        g.event("a", 150, &up(), 0);
        assert_eq!((g.closed[0].down_utc, g.closed[0].up_utc), (200, 200));
    }
}
