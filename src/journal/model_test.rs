//! Model-based property test of the journal's durability rules: the real [`Ring`] (over a
//! [`MemStore`] that can tear a write like a power cut) and the real [`Durability`] state, driven
//! by random arrivals, commits, crashes (clean or in the middle of a ring write) and reopens,
//! checked against a trivial model — a map of what was acknowledged durable and a map standing
//! in for SQLite.
//!
//! What must hold, whatever the sequence of operations:
//! - everything acknowledged as durable and not yet committed is found again, byte for byte, by
//!   the scan after a crash (so a release or a wrap never overwrote an unreleased entry, and a
//!   torn write damaged only the batch being written);
//! - nothing appears that was not written under that seq (no garbage, no stale entry read as
//!   new), and a seq is never handed out twice, across reopens too;
//! - `durable` never covers a record that is only in memory; `committed` is exactly what the
//!   stand-in SQLite holds;
//! - an empty ring always takes a record that fits.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::ring::{self, EntryLoc, MemStore, Ring, Tear, BLOCK};
use super::state::{Durability, Place};

/// The ring used by the test: small, so it wraps and fills often.
const RING_BLOCKS: usize = 16;
/// Batch cap, as the ring thread uses (a quarter of the ring here).
const MAX_BATCH: usize = 4 * BLOCK;

#[derive(Debug, Clone)]
enum Op {
    /// Records arriving together (payload lengths).
    Arrive(Vec<usize>),
    /// SQLite commits the oldest `n` pending records.
    Commit(usize),
    /// Power cut now, then reopen.
    Crash,
    /// Power cut while these records are being written to the ring (only part of the write
    /// reaches the device), then reopen.
    CrashDuringWrite(Vec<usize>, Tear),
}

fn op() -> impl Strategy<Value = Op> {
    // Payloads from tiny to nearly three blocks: several per block, or one spanning blocks.
    let len = prop_oneof![1usize..300, 300usize..3000, 3000usize..11_000];
    prop_oneof![
        5 => prop::collection::vec(len.clone(), 1..6).prop_map(Op::Arrive),
        3 => (1usize..8).prop_map(Op::Commit),
        1 => Just(Op::Crash),
        1 => (prop::collection::vec(len, 1..4), tear()).prop_map(|(v, t)| Op::CrashDuringWrite(v, t)),
    ]
}

fn tear() -> impl Strategy<Value = Tear> {
    prop_oneof![
        (0usize..(3 * BLOCK)).prop_map(Tear::Prefix),
        any::<u64>().prop_map(Tear::Sectors),
    ]
}

/// The payload written for `seq`: its bytes depend on seq and length, so a stale or misplaced
/// entry can't pass for the right one.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

/// A pending record as the commit thread holds it.
#[derive(Debug, Clone)]
struct Item {
    seq: u64,
    loc: Option<EntryLoc>,
    memory: Option<Vec<u8>>,
}

/// The system under test: ring, state, pending list, and a stand-in for SQLite.
struct System {
    ring: Ring<MemStore>,
    state: Durability,
    pending: Vec<Item>,
    /// SQLite: seq → payload, and its committed point (durable at commit).
    db: BTreeMap<u64, Vec<u8>>,
    db_committed: u64,
}

/// The model: what must survive.
#[derive(Default)]
struct Model {
    /// Acknowledged durable (in the ring), not yet committed.
    acked: BTreeMap<u64, Vec<u8>>,
    /// Every payload ever written under a seq, latest last (torn ones included: a seq whose
    /// write never became durable may be handed out again after a restart).
    written: BTreeMap<u64, Vec<Vec<u8>>>,
}

impl System {
    fn new() -> System {
        System {
            ring: Ring::open(MemStore::zeroed(RING_BLOCKS * BLOCK), &[], None).unwrap(),
            state: Durability::new(0, 0),
            pending: Vec::new(),
            db: BTreeMap::new(),
            db_committed: 0,
        }
    }

    /// The ring thread's path for records arriving together: a prefix into the ring (possibly
    /// in several batches), the rest in memory. Returns false when a torn write "killed" it.
    fn arrive(&mut self, model: &mut Model, lens: &[usize]) -> bool {
        self.ring.release(self.state.releasable());
        let first = self.state.next_seq();
        let records: Vec<(u64, Vec<u8>)> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| (first + i as u64, payload(first + i as u64, len)))
            .collect();
        for (seq, p) in &records {
            model.written.entry(*seq).or_default().push(p.clone());
        }
        let mut next = 0;
        let mut placed: Vec<(Place, Option<EntryLoc>)> = Vec::new();
        while next < records.len() {
            let entries: Vec<(u64, &[u8])> = records[next..]
                .iter()
                .map(|(s, p)| (*s, p.as_slice()))
                .collect();
            match self.ring.append(&entries, MAX_BATCH) {
                Ok(locs) if locs.is_empty() => break,
                Ok(locs) => {
                    next += locs.len();
                    placed.extend(locs.into_iter().map(|l| (Place::Ring, Some(l))));
                }
                Err(_) => return false,
            }
        }
        placed.resize(records.len(), (Place::Memory, None));
        for ((seq, p), (place, loc)) in records.into_iter().zip(placed) {
            assert_eq!(self.state.assign(place), seq);
            if place == Place::Ring {
                model.acked.insert(seq, p.clone());
            }
            self.pending.push(Item {
                seq,
                loc,
                memory: (place == Place::Memory).then_some(p),
            });
        }
        true
    }

    /// The commit thread: the oldest `n` pending, read back from the ring or memory.
    fn commit(&mut self, model: &mut Model, n: usize) {
        let n = n.min(self.pending.len());
        if n == 0 {
            return;
        }
        let batch: Vec<Item> = self.pending.drain(..n).collect();
        for it in &batch {
            let bytes = match (&it.memory, &it.loc) {
                (Some(m), _) => m.clone(),
                (None, Some(loc)) => ring::read_payload(self.ring.store(), loc)
                    .unwrap_or_else(|e| panic!("pending seq {} unreadable: {e}", it.seq)),
                (None, None) => unreachable!("an item is in the ring or in memory"),
            };
            if it.memory.is_none() {
                assert_eq!(
                    Some(&bytes),
                    model.acked.get(&it.seq),
                    "seq {} read back from the ring",
                    it.seq
                );
            }
            self.db.insert(it.seq, bytes);
            model.acked.remove(&it.seq);
        }
        let upto = batch.last().map(|i| i.seq).unwrap_or(0);
        self.db_committed = upto;
        self.state.committed_upto(upto);
    }

    /// A restart after a power cut: only the device contents and SQLite survive.
    fn reopen(&mut self, model: &mut Model) {
        let store = self.ring.store().crash();
        let scan = ring::scan(&store).unwrap();
        for e in &scan.entries {
            let got = ring::read_payload(&store, e).unwrap();
            assert!(
                model.written.get(&e.seq).is_some_and(|w| w.contains(&got)),
                "seq {} in the ring is not what was written under it",
                e.seq
            );
        }
        let uncommitted: Vec<EntryLoc> = scan
            .entries
            .iter()
            .copied()
            .filter(|e| e.seq > self.db_committed)
            .collect();
        for (seq, want) in &model.acked {
            let found = uncommitted.iter().find(|e| e.seq == *seq);
            assert!(
                found.is_some_and(|e| ring::read_payload(&store, e).ok().as_ref() == Some(want)),
                "acknowledged seq {seq} lost by a crash; ring now holds {:?}; committed {}",
                scan.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
                self.db_committed
            );
        }
        let highest = scan.newest().map_or(0, |e| e.seq);
        let db_highest = self.db.keys().next_back().copied().unwrap_or(0);
        self.state = Durability::new(self.db_committed, highest.max(db_highest));
        for e in &uncommitted {
            assert!(self.state.replayed(e.seq, Place::Ring));
        }
        self.ring = Ring::open(store, &uncommitted, scan.newest()).unwrap();
        self.pending = uncommitted
            .iter()
            .map(|e| Item {
                seq: e.seq,
                loc: Some(*e),
                memory: None,
            })
            .collect();
        // What the replay holds is durable again; what was only in memory is gone.
        model.acked = uncommitted
            .iter()
            .map(|e| (e.seq, ring::read_payload(self.ring.store(), e).unwrap()))
            .collect();
        assert!(
            self.state.next_seq() > db_highest && self.state.next_seq() > highest,
            "next seq {} would reuse a stored one",
            self.state.next_seq()
        );
        // A seq that was only in memory when the power went may be handed out again: nothing
        // ever referred to it durably. Everything durable or committed is below next_seq.
    }

    fn check(&self, model: &Model) {
        assert_eq!(self.state.committed(), self.db_committed);
        assert_eq!(self.state.pending(), self.pending.len());
        let durable = self.state.durable();
        for it in &self.pending {
            if it.seq <= durable {
                assert!(
                    model.acked.contains_key(&it.seq),
                    "durable point {durable} covers seq {} that is only in memory",
                    it.seq
                );
            }
        }
    }
}

proptest! {
    #[test]
    fn ring_and_state_keep_every_acknowledged_record(ops in prop::collection::vec(op(), 1..60)) {
        let mut sys = System::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Arrive(lens) => {
                    let empty_before = sys.state.pending() == 0;
                    let first = sys.state.next_seq();
                    assert!(sys.arrive(&mut model, &lens));
                    if empty_before {
                        // Liveness: with nothing unreleased, a record that fits goes to the ring.
                        let it = sys.pending.iter().find(|i| i.seq == first);
                        assert!(it.is_some_and(|i| i.loc.is_some()), "an empty ring refused a record");
                    }
                }
                Op::Commit(n) => sys.commit(&mut model, n),
                Op::Crash => sys.reopen(&mut model),
                Op::CrashDuringWrite(lens, tear) => {
                    // The tear hits the first ring write of this arrival (if the ring is full
                    // there is no write and this is a plain crash).
                    sys.ring.store_mut_for_test().tear_next_write(tear);
                    let _ = sys.arrive(&mut model, &lens);
                    sys.reopen(&mut model);
                }
            }
            sys.check(&model);
        }
    }
}
