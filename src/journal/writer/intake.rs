//! The ring thread: takes records from producers, gives each the next seq, makes it durable with
//! one `pwrite` + `fdatasync` per batch into the ring, acknowledges it, and hands it to the
//! commit thread. It never touches SQLite, so a slow commit, a checkpoint or a locked database
//! never delays durability.
//!
//! Per turn it takes everything available (up to [`MAX_DRAIN`] messages) and writes it as few
//! batches as the ring allows; what does not fit (ring full or failing) stays in memory only
//! and is acknowledged once committed. A record repeated within the recent window
//! ([`RECENT_IDS`] identities) is answered `Duplicate` at once; older repeats are refused by the
//! UNIQUE key at commit. Messages that are not records are forwarded in order, after the records
//! that came before them (so a flush covers everything sent before it).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::record::CallRecord;

use super::super::ring::{EntryLoc, Ring};
use super::super::state::Place;
use super::super::{payload, Ack, AckTo, Msg, Shared};
use super::{Item, ToCommit};

/// Messages taken off the channel per turn.
pub const MAX_DRAIN: usize = 512;
/// Identities remembered for answering repeats at once.
pub const RECENT_IDS: usize = 8192;
/// Ring records the commit thread keeps in memory as well; beyond this it reads them back from
/// the ring when their commit comes (memory stays flat in a burst or a long stall).
pub const CACHE_RECORDS: u64 = 2048;
/// Largest single ring write.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// With the ring full and SQLite working, how long to wait for the commit thread to free blocks
/// before holding records in memory instead. Real time on purpose: it bounds waiting for
/// another thread's I/O, not a timer of the journal's own.
pub const RING_WAIT: Duration = Duration::from_secs(1);

/// Identities seen lately, oldest evicted first.
struct RecentIds {
    set: HashSet<[u8; 16]>,
    order: VecDeque<[u8; 16]>,
}

impl RecentIds {
    fn new() -> RecentIds {
        RecentIds {
            set: HashSet::with_capacity(RECENT_IDS),
            order: VecDeque::with_capacity(RECENT_IDS),
        }
    }

    /// Remembers `id`; false when it was already there.
    fn insert(&mut self, id: [u8; 16]) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// A control message waiting for the records of its turn to be accepted first.
enum Forward {
    Now(ToCommit),
    /// A flush: covers every seq handed out up to the end of the turn.
    Flush(mpsc::Sender<Result<(), String>>),
}

/// Sends `Shutdown` to the commit thread if the ring thread ends without saying so (a panic),
/// so the commit thread still commits what it has and the handle's join never hangs.
struct EndGuard {
    out: mpsc::Sender<ToCommit>,
    shared: Arc<Shared>,
    said: bool,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.shared.writer_running.store(false, Ordering::SeqCst);
        if !self.said {
            let _ = self.out.send(ToCommit::Shutdown);
        }
    }
}

pub(crate) struct Intake {
    shared: Arc<Shared>,
    ring: Option<Ring>,
    rx: mpsc::Receiver<Msg>,
    out: mpsc::Sender<ToCommit>,
    recent: RecentIds,
    max_batch: usize,
}

impl Intake {
    pub(crate) fn new(
        shared: Arc<Shared>,
        ring: Option<Ring>,
        rx: mpsc::Receiver<Msg>,
        out: mpsc::Sender<ToCommit>,
    ) -> Intake {
        let max_batch = ring.as_ref().map_or(MAX_BATCH_BYTES, |r| {
            (r.bytes() as usize / 2).min(MAX_BATCH_BYTES)
        });
        if let Some(r) = &ring {
            shared.ring_blocks.store(r.blocks(), Ordering::SeqCst);
            shared
                .ring_used_blocks
                .store(r.used_blocks(), Ordering::SeqCst);
        }
        Intake {
            shared,
            ring,
            rx,
            out,
            recent: RecentIds::new(),
            max_batch,
        }
    }

    pub(crate) fn run(mut self) {
        let mut guard = EndGuard {
            out: self.out.clone(),
            shared: self.shared.clone(),
            said: false,
        };
        loop {
            // Every handle gone without a Shutdown: stop as if asked.
            let Ok(first) = self.rx.recv() else {
                break;
            };
            let mut msgs = vec![first];
            while msgs.len() < MAX_DRAIN {
                match self.rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
            let mut arrivals = Vec::new();
            let mut forward = Vec::new();
            let mut end = None;
            for m in msgs {
                match m {
                    Msg::Record { record, ack } => {
                        if self.recent.insert(record.identity) {
                            arrivals.push((record, ack));
                        } else {
                            self.shared.held.fetch_sub(1, Ordering::SeqCst);
                            self.shared.counters().duplicates += 1;
                            if let Some(a) = ack {
                                a.send(Ack::Duplicate);
                            }
                        }
                    }
                    Msg::Link { pbx, at_utc, event } => {
                        forward.push(Forward::Now(ToCommit::Link { pbx, at_utc, event }))
                    }
                    Msg::Flush(reply) => forward.push(Forward::Flush(reply)),
                    Msg::Control(c) => forward.push(Forward::Now(ToCommit::Control(c))),
                    Msg::Shutdown => end = Some(ToCommit::Shutdown),
                    #[cfg(any(test, feature = "testing"))]
                    Msg::Crash => {
                        // A crash writes nothing more: not even the records of this turn.
                        guard.said = true;
                        let _ = self.out.send(ToCommit::Crash);
                        return;
                    }
                }
            }
            self.accept(arrivals);
            let upto = self.shared.state().next_seq() - 1;
            for f in forward {
                let msg = match f {
                    Forward::Now(m) => m,
                    Forward::Flush(reply) => ToCommit::Flush { upto, reply },
                };
                let _ = self.out.send(msg);
            }
            if let Some(e) = end {
                guard.said = true;
                let _ = self.out.send(e);
                return;
            }
        }
        guard.said = true;
        let _ = self.out.send(ToCommit::Shutdown);
    }

    /// Durable in the ring (or held in memory), seqs assigned, acknowledged, handed on — batch
    /// by batch, so the commit thread can already commit (and free ring blocks) while the rest
    /// of a burst is still being written.
    fn accept(&mut self, arrivals: Vec<(Box<CallRecord>, Option<AckTo>)>) {
        if arrivals.is_empty() {
            return;
        }
        self.notify(&arrivals);
        let n = arrivals.len() as u64;
        let mut rest: VecDeque<(Box<CallRecord>, Option<AckTo>, Vec<u8>)> = arrivals
            .into_iter()
            .map(|(r, a)| {
                let p = payload::encode(&r);
                (r, a, p)
            })
            .collect();
        while !rest.is_empty() {
            let Some(locs) = self.append_some(&rest) else {
                break;
            };
            let batch: Vec<_> = rest.drain(..locs.len()).collect();
            self.hand_on(batch.into_iter().zip(locs.into_iter().map(Some)));
        }
        let memory_only = rest.len() as u64;
        if memory_only > 0 {
            self.hand_on(rest.into_iter().zip(std::iter::repeat(None)));
        }
        let mut c = self.shared.counters();
        c.records += n;
        c.memory_only_records += memory_only;
    }

    /// Writes a prefix of `rest` to the ring as one batch, with the next seqs. `None` when the
    /// ring is absent, failing, or full for longer than a commit takes.
    fn append_some(
        &mut self,
        rest: &VecDeque<(Box<CallRecord>, Option<AckTo>, Vec<u8>)>,
    ) -> Option<Vec<EntryLoc>> {
        let ring = self.ring.as_mut()?;
        let max = ring.max_payload();
        let first_seq = self.shared.state().next_seq();
        let entries: Vec<(u64, &[u8])> = rest
            .iter()
            .take_while(|(_, _, p)| p.len() <= max)
            .enumerate()
            .map(|(i, (_, _, p))| (first_seq + i as u64, p.as_slice()))
            .collect();
        if entries.is_empty() {
            return None;
        }
        ring.release(self.shared.state().releasable());
        let result = loop {
            match ring.append(&entries, self.max_batch) {
                // Full. While commits work, blocks free up within a commit: wait for that
                // rather than keep these records in memory only.
                Ok(written) if written.is_empty() => match wait_for_release(&self.shared) {
                    Some(upto) => ring.release(upto),
                    None => break None,
                },
                Ok(written) => {
                    let mut c = self.shared.counters();
                    c.ring_writes = ring.writes;
                    c.ring_bytes = ring.bytes_written;
                    break Some(written);
                }
                Err(e) => {
                    tracing::error!(target: "journal", error = %e, "ring write failed");
                    self.shared.problems().ring = Some(format!(
                        "Writing the ring file {} failed ({e}); new records are held in \
                         memory until committed. Check the storage device.",
                        self.shared.paths.ring.display()
                    ));
                    break None;
                }
            }
        };
        self.shared
            .ring_used_blocks
            .store(ring.used_blocks(), Ordering::SeqCst);
        result
    }

    /// Assigns seqs (in order, from the state), acknowledges what is durable and sends the
    /// items to the commit thread. `loc` is `None` for records held in memory only.
    fn hand_on(
        &self,
        records: impl Iterator<Item = ((Box<CallRecord>, Option<AckTo>, Vec<u8>), Option<EntryLoc>)>,
    ) {
        let now = self.shared.clock.now();
        let mut durable = Vec::new();
        let mut items = Vec::new();
        {
            let mut state = self.shared.state();
            for ((record, ack, _), loc) in records {
                let place = if loc.is_some() {
                    Place::Ring
                } else {
                    Place::Memory
                };
                let seq = state.assign(place);
                debug_assert!(loc.is_none_or(|l| l.seq == seq), "ring seq matches");
                let (record, ack) = match loc {
                    Some(_) => {
                        // Durable now: no longer held only in memory.
                        self.shared.held.fetch_sub(1, Ordering::SeqCst);
                        if let Some(a) = ack {
                            durable.push((a, seq));
                        }
                        let keep = self.shared.cached.load(Ordering::SeqCst) < CACHE_RECORDS;
                        if keep {
                            self.shared.cached.fetch_add(1, Ordering::SeqCst);
                        }
                        (keep.then_some(record), None)
                    }
                    None => (Some(record), ack),
                };
                items.push(Item {
                    seq,
                    loc,
                    record,
                    ack,
                    arrived: now,
                });
            }
        }
        for (a, seq) in durable {
            a.send(Ack::Durable { seq });
        }
        let _ = self.out.send(ToCommit::Items(items));
    }

    fn notify(&self, arrivals: &[(Box<CallRecord>, Option<AckTo>)]) {
        let mut subs = self.shared.subscribers();
        if subs.is_empty() {
            return;
        }
        for (record, _) in arrivals {
            subs.retain(|s| s.send((**record).clone()).is_ok());
        }
    }
}

/// Waits (at most [`RING_WAIT`]) for a commit that lets the ring reuse more blocks; returns
/// the new release point, or `None` when commits are failing or nothing moved in time.
fn wait_for_release(shared: &Shared) -> Option<u64> {
    if shared.problems().commit.is_some() {
        return None;
    }
    let deadline = Instant::now() + RING_WAIT;
    let mut state = shared.state();
    let before = state.releasable();
    while state.releasable() == before {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        state = shared
            .committed
            .wait_timeout(state, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    Some(state.releasable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_first() {
        let mut r = RecentIds::new();
        let id = |n: u64| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&n.to_be_bytes());
            b
        };
        for n in 0..RECENT_IDS as u64 {
            assert!(r.insert(id(n)));
        }
        assert!(!r.insert(id(0)), "remembered");
        assert!(
            r.insert(id(RECENT_IDS as u64)),
            "a new one evicts the oldest"
        );
        assert!(r.insert(id(0)), "the oldest was forgotten");
        assert!(!r.insert(id(5)));
        assert_eq!(r.set.len(), RECENT_IDS);
    }
}
