//! The journal's sequence numbers and the rules between them, in one small type
//! ([`Durability`]) that the ring thread, the commit thread and the status page share.
//!
//! - Every record accepted gets the next `seq`, in arrival order; a seq is never handed out
//!   twice, also across restarts (the next one is above everything SQLite, its meta row and the
//!   ring have seen).
//! - A record is *pending* from its seq until SQLite has committed it. Pending records are
//!   kept in seq order, each with where it waits: in the ring (durable) or in memory only (the
//!   ring was full or failing; lost on a power cut).
//! - `committed`: every seq ≤ it is in SQLite (commits take the oldest pending first).
//! - `durable`: every seq ≤ it is in SQLite or the ring — it stops below the oldest pending
//!   record that is not in the ring. An acknowledgement of durability is never sent for a seq
//!   above it.
//! - The ring may reuse the blocks of seqs ≤ `releasable`: normally `committed`, but while the
//!   database's integrity check runs, records committed since start stay in the ring too (if the
//!   file turns out damaged they are replayed into a fresh one).
//!
//! Pure bookkeeping: no I/O, no clock. The model test in `model_test.rs` runs it together with
//! the ring against a trivial in-memory model.

use std::collections::VecDeque;

/// Where a pending record waits for SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the ring file: durable.
    Ring,
    /// Only in memory (ring full or failing): lost on a power cut until committed.
    Memory,
}

/// Seq, durable and committed points and the pending list between them.
#[derive(Debug, Clone)]
pub struct Durability {
    next: u64,
    pending: VecDeque<(u64, Place)>,
    committed: u64,
    memory_only: usize,
    /// While set, ring blocks of seqs above it are kept even once committed.
    hold: Option<u64>,
}

impl Durability {
    /// State at open: SQLite holds every seq ≤ `committed`; `highest` is the highest seq known
    /// anywhere (SQLite rows, meta, the ring), so new seqs start above it.
    pub fn new(committed: u64, highest: u64) -> Durability {
        Durability {
            next: highest.max(committed) + 1,
            pending: VecDeque::new(),
            committed,
            memory_only: 0,
            hold: None,
        }
    }

    /// A ring entry found uncommitted at open: pending again, at `place` (the ring, or memory
    /// when the ring file could not be kept). Entries must come in increasing seq order, above
    /// `committed`; others are ignored (returns false).
    pub fn replayed(&mut self, seq: u64, place: Place) -> bool {
        let after_last = self.pending.back().is_none_or(|&(s, _)| seq > s);
        if seq <= self.committed || !after_last {
            return false;
        }
        self.pending.push_back((seq, place));
        if place == Place::Memory {
            self.memory_only += 1;
        }
        self.next = self.next.max(seq + 1);
        true
    }

    /// The seq the next [`assign`](Self::assign) hands out.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Hands out the next seq for a record waiting at `place`.
    pub fn assign(&mut self, place: Place) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.pending.push_back((seq, place));
        if place == Place::Memory {
            self.memory_only += 1;
        }
        seq
    }

    /// SQLite committed every pending record with seq ≤ `upto` (commits take the oldest first).
    /// Returns how many memory-only records that freed. A smaller `upto` than already committed
    /// changes nothing.
    pub fn committed_upto(&mut self, upto: u64) -> usize {
        let mut freed = 0;
        while let Some(&(seq, place)) = self.pending.front() {
            if seq > upto {
                break;
            }
            self.pending.pop_front();
            if place == Place::Memory {
                freed += 1;
            }
        }
        self.memory_only -= freed;
        // Never beyond what was handed out: a commit can only cover assigned seqs.
        self.committed = self.committed.max(upto.min(self.next - 1));
        freed
    }

    /// Every seq ≤ this is in SQLite.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Every seq ≤ this is in SQLite or in the ring.
    pub fn durable(&self) -> u64 {
        self.pending
            .iter()
            .find(|(_, p)| *p == Place::Memory)
            .map_or(self.next - 1, |(seq, _)| seq - 1)
    }

    /// Records waiting for SQLite (in the ring or in memory).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Of those, records only in memory.
    pub fn memory_only(&self) -> usize {
        self.memory_only
    }

    /// The ring may reuse blocks of seqs ≤ this.
    pub fn releasable(&self) -> u64 {
        match self.hold {
            Some(h) => self.committed.min(h),
            None => self.committed,
        }
    }

    /// Keeps ring blocks of every seq above `floor` until [`end_hold`](Self::end_hold).
    pub fn hold_ring_above(&mut self, floor: u64) {
        self.hold = Some(floor);
    }

    /// Lets the ring reuse committed blocks again.
    pub fn end_hold(&mut self) {
        self.hold = None;
    }

    /// True while ring blocks are held beyond `committed`.
    pub fn holding(&self) -> bool {
        self.hold.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_continue_above_everything_known() {
        let d = Durability::new(10, 25);
        assert_eq!(d.next_seq(), 26);
        assert_eq!(d.durable(), 25);
        assert_eq!(d.committed(), 10);
        let d = Durability::new(30, 0);
        assert_eq!(d.next_seq(), 31);
    }

    #[test]
    fn durable_stops_below_the_oldest_record_not_in_the_ring() {
        let mut d = Durability::new(0, 0);
        assert_eq!(d.assign(Place::Ring), 1);
        assert_eq!(d.assign(Place::Memory), 2);
        assert_eq!(d.assign(Place::Ring), 3);
        assert_eq!(d.durable(), 1);
        assert_eq!(d.memory_only(), 1);
        assert_eq!(d.committed_upto(2), 1, "one memory-only record freed");
        assert_eq!(d.durable(), 3);
        assert_eq!(d.committed(), 2);
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn commits_never_go_back_or_beyond_what_was_assigned() {
        let mut d = Durability::new(5, 5);
        d.assign(Place::Ring);
        d.committed_upto(3);
        assert_eq!(d.committed(), 5);
        d.committed_upto(100);
        assert_eq!(d.committed(), 6);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn replay_keeps_order_and_skips_committed_entries() {
        let mut d = Durability::new(10, 10);
        assert!(!d.replayed(9, Place::Ring));
        assert!(d.replayed(12, Place::Ring));
        assert!(!d.replayed(11, Place::Ring), "out of order");
        assert!(d.replayed(14, Place::Ring));
        assert_eq!(d.next_seq(), 15);
        assert_eq!(d.pending(), 2);
        assert_eq!(d.durable(), 14);
    }

    #[test]
    fn a_hold_keeps_committed_blocks_until_it_ends() {
        let mut d = Durability::new(4, 4);
        d.hold_ring_above(4);
        d.assign(Place::Ring);
        d.assign(Place::Ring);
        d.committed_upto(6);
        assert_eq!(d.releasable(), 4);
        d.end_hold();
        assert_eq!(d.releasable(), 6);
    }
}
