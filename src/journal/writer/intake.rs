//! The ring thread: takes records from producers, gives each the next seq, makes it durable with
//! one `pwrite` + `fdatasync` per batch into the ring, acknowledges it, and hands it to the
//! commit thread. It never touches SQLite, so a slow commit, a checkpoint or a locked database
//! never delays durability.
//!
//! At start it scans the ring (in windows: memory stays flat), hands the entries SQLite does not
//! hold yet to the commit thread as the first pending records (read back from the ring at their
//! commit), and (re)creates the file when it is missing or another size is configured — all
//! while the links already connect; records arriving meanwhile wait in its channel.
//!
//! Per turn it takes everything available (up to [`MAX_DRAIN`] messages) and writes it as few
//! batches as the ring allows, encoding at most [`budget::ENCODE_BYTES`] of payloads ahead of
//! the write (a turn of 512 huge records must not double their memory); what does not fit (ring
//! full or failing) stays in memory only and is acknowledged once committed. A record repeated within the recent window
//! ([`RECENT_IDS`] identities) is answered `Duplicate` at once; older repeats are refused by the
//! UNIQUE key at commit. Messages that are not records are forwarded in order, after the records
//! that came before them (so a flush covers everything sent before it).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::record::CallRecord;

use super::super::ring::{self, EntryLoc, Ring};
use super::super::state::Place;
use super::super::{budget, payload, Ack, AckTo, Msg, RingReport, Shared};
use super::{Item, ToCommit};

/// Messages taken off the channel per turn. A turn's records share `fdatasync`s (one per
/// [`MAX_BATCH_BYTES`] batch): in a burst, 512 per turn made ~460 KB writes, where a sync costs
/// about what 1 MiB of writing does (`dd oflag=dsync` here: 8 ms for 256 KiB and for 1 MiB).
pub const MAX_DRAIN: usize = 2048;
/// Identities remembered for answering repeats at once.
pub const RECENT_IDS: usize = 8192;
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

/// A record taken off the channel: what `Msg::Record` carried.
struct Arrival {
    record: Box<CallRecord>,
    ack: Option<AckTo>,
    bytes: u64,
}

/// An arrival with its ring payload, ready to write.
type Encoded = (Arrival, Vec<u8>);

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

/// What the ring thread needs to open the ring.
pub(crate) struct RingSetup {
    /// `[storage] ring_kb`, in whole blocks.
    pub want_bytes: u64,
    /// SQLite holds every seq ≤ this: ring entries above it are replayed.
    pub committed_seq: u64,
}

pub(crate) struct Intake {
    shared: Arc<Shared>,
    setup: Option<RingSetup>,
    ring: Option<Ring>,
    rx: mpsc::Receiver<Msg>,
    out: mpsc::Sender<ToCommit>,
    recent: RecentIds,
    max_batch: usize,
}

impl Intake {
    pub(crate) fn new(
        shared: Arc<Shared>,
        setup: RingSetup,
        rx: mpsc::Receiver<Msg>,
        out: mpsc::Sender<ToCommit>,
    ) -> Intake {
        Intake {
            shared,
            setup: Some(setup),
            ring: None,
            rx,
            out,
            recent: RecentIds::new(),
            max_batch: MAX_BATCH_BYTES,
        }
    }

    /// Scans the ring, replays what SQLite lacks, (re)creates the file if needed, and publishes
    /// what it found.
    fn start(&mut self, setup: RingSetup) {
        let path = self.shared.paths.ring.clone();
        let (ring, report, replay) = open_ring(&path, &setup);
        if let Some(p) = &report.problem {
            tracing::error!(target: "journal", path = %path.display(), problem = %p,
                "ring file unusable: records are held in memory until committed");
            self.shared.problems().ring = Some(format!(
                "The ring file {} cannot be used ({p}); records are durable only once \
                 committed. Check the storage device.",
                path.display()
            ));
        }
        if let Some(r) = &ring {
            // The commit thread must read the file this ring writes (a recreated ring is a new
            // inode under the same name): hand it a clone before any item that lives in it.
            match r.store().try_clone() {
                Ok(f) => {
                    let _ = self.out.send(ToCommit::RingFile(f));
                }
                Err(e) => tracing::error!(target: "journal", error = %e,
                    "cannot share the ring file with the commit thread; records beyond its \
                     memory cache cannot be read back"),
            }
            self.max_batch = (r.bytes() as usize / 2).min(MAX_BATCH_BYTES);
            self.shared.ring_blocks.store(r.blocks(), Ordering::SeqCst);
            self.shared
                .ring_used_blocks
                .store(r.used_blocks(), Ordering::SeqCst);
        }
        self.ring = ring;
        if !replay.is_empty() {
            tracing::info!(target: "journal", records = replay.len(),
                "replaying ring records the database does not hold yet");
            let now = self.shared.clock.now();
            let mut items = Vec::with_capacity(replay.len());
            let mut state = self.shared.state();
            for r in replay {
                let place = match r.record {
                    Some(_) => Place::Memory,
                    None => Place::Ring,
                };
                if !state.replayed(r.seq, place) {
                    continue;
                }
                // Replayed into memory only: charged like any record held in memory (beyond
                // the bound, because records already durable once must not be dropped).
                let bytes = r.record.as_deref().map_or(0, budget::record_bytes);
                if place == Place::Memory {
                    self.shared.held.add(bytes);
                }
                items.push(Item {
                    seq: r.seq,
                    loc: r.loc,
                    record: r.record,
                    ack: None,
                    arrived: now,
                    bytes,
                });
            }
            drop(state);
            let _ = self.out.send(ToCommit::Items(items));
        }
        *self
            .shared
            .ring_report
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(report);
        self.shared.ring_ready.notify_all();
    }

    pub(crate) fn run(mut self) {
        let mut guard = EndGuard {
            out: self.out.clone(),
            shared: self.shared.clone(),
            said: false,
        };
        if let Some(setup) = self.setup.take() {
            self.start(setup);
        }
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
                    Msg::Record { record, ack, bytes } => {
                        if self.recent.insert(record.identity) {
                            arrivals.push(Arrival { record, ack, bytes });
                        } else {
                            self.shared.held.release(bytes);
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
    /// of a burst is still being written. Payloads are encoded [`budget::ENCODE_BYTES`] at a
    /// time, just ahead of their write.
    fn accept(&mut self, arrivals: Vec<Arrival>) {
        if arrivals.is_empty() {
            return;
        }
        self.notify(&arrivals);
        let n = arrivals.len() as u64;
        let mut waiting: VecDeque<Arrival> = arrivals.into();
        let mut ring_ok = true;
        while ring_ok && !waiting.is_empty() {
            let mut rest = encode_some(&mut waiting);
            while !rest.is_empty() {
                let Some(locs) = self.append_some(&rest) else {
                    // Ring absent, failing or full for longer than a commit takes: the rest of
                    // this turn waits in memory (its payloads are not needed there), in
                    // arrival order.
                    ring_ok = false;
                    let mut unwritten: VecDeque<Arrival> = rest.drain(..).map(|(a, _)| a).collect();
                    unwritten.append(&mut waiting);
                    waiting = unwritten;
                    break;
                };
                let batch: Vec<_> = rest.drain(..locs.len()).map(|(a, _)| a).collect();
                self.hand_on(batch.into_iter().zip(locs.into_iter().map(Some)));
            }
        }
        let memory_only = waiting.len() as u64;
        if memory_only > 0 {
            self.hand_on(waiting.into_iter().zip(std::iter::repeat(None)));
        }
        let mut c = self.shared.counters();
        c.records += n;
        c.memory_only_records += memory_only;
    }

    /// Writes a prefix of `rest` to the ring as one batch, with the next seqs. `None` when the
    /// ring is absent, failing, or full for longer than a commit takes.
    fn append_some(&mut self, rest: &VecDeque<Encoded>) -> Option<Vec<EntryLoc>> {
        let ring = self.ring.as_mut()?;
        let max = ring.max_payload();
        let first_seq = self.shared.state().next_seq();
        let entries: Vec<(u64, &[u8])> = rest
            .iter()
            .take_while(|(_, p)| p.len() <= max)
            .enumerate()
            .map(|(i, (_, p))| (first_seq + i as u64, p.as_slice()))
            .collect();
        if entries.is_empty() {
            return None;
        }
        ring.release(self.shared.state().releasable());
        let result = loop {
            match ring.append(&entries, self.max_batch) {
                // Full. Blocks kept only for the integrity check go first: durability of new
                // records matters more than a refill that may never be needed.
                Ok(written) if written.is_empty() && end_hold(&self.shared) => {
                    ring.release(self.shared.state().releasable());
                }
                // While commits work, blocks free up within a commit: wait for that rather
                // than keep these records in memory only.
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
    fn hand_on(&self, records: impl Iterator<Item = (Arrival, Option<EntryLoc>)>) {
        let now = self.shared.clock.now();
        let mut durable = Vec::new();
        let mut items = Vec::new();
        {
            let mut state = self.shared.state();
            for (Arrival { record, ack, bytes }, loc) in records {
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
                        self.shared.held.release(bytes);
                        if let Some(a) = ack {
                            durable.push((a, seq));
                        }
                        // A copy for the commit thread while its byte budget allows; the rest
                        // is read back from the ring when its commit comes.
                        let keep = self.shared.cache.keep(bytes);
                        (keep.then_some(record), None)
                    }
                    None => (Some(record), ack),
                };
                items.push(Item {
                    seq,
                    loc,
                    bytes: if record.is_some() { bytes } else { 0 },
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

    fn notify(&self, arrivals: &[Arrival]) {
        let mut subs = self.shared.subscribers();
        if subs.is_empty() {
            return;
        }
        for a in arrivals {
            subs.retain(|s| s.offer(&a.record, a.bytes));
        }
    }
}

/// Encodes the first arrivals of `waiting`, up to [`budget::ENCODE_BYTES`] of payloads (at
/// least one), and takes them out of it.
fn encode_some(waiting: &mut VecDeque<Arrival>) -> VecDeque<Encoded> {
    let mut out = VecDeque::new();
    let mut bytes = 0u64;
    while bytes < budget::ENCODE_BYTES {
        let Some(a) = waiting.pop_front() else {
            break;
        };
        let p = payload::encode(&a.record);
        bytes += p.len() as u64;
        out.push_back((a, p));
    }
    out
}

/// A ring entry SQLite does not hold yet: where it is, or (when the ring file had to be
/// replaced) the record itself.
struct Replay {
    seq: u64,
    loc: Option<EntryLoc>,
    record: Option<Box<CallRecord>>,
}

/// Opens the ring at `path`: scans it, keeps the file when it holds entries SQLite lacks or has
/// the configured size, else writes a fresh one.
fn open_ring(path: &std::path::Path, setup: &RingSetup) -> (Option<Ring>, RingReport, Vec<Replay>) {
    let mut report = RingReport::default();
    let file = match ring::open_file(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            // Unreadable: keep it as it is (a later start may read it) and go on without.
            report.problem = Some(e.to_string());
            return (None, report, Vec::new());
        }
    };
    let scan = match file.as_ref().map(ring::scan).transpose() {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            report.problem = Some(e.to_string());
            return (None, report, Vec::new());
        }
    };
    report.ring_entries = scan.entries.len();
    report.ring_corrupt = scan.corrupt;
    let uncommitted: Vec<EntryLoc> = scan
        .entries
        .iter()
        .copied()
        .filter(|e| e.seq > setup.committed_seq)
        .collect();
    report.replay_found = uncommitted.len();
    let usable = file.is_some() && ring::usable_size(scan.file_bytes);
    let recreate = !usable || (uncommitted.is_empty() && scan.file_bytes != setup.want_bytes);
    if let (false, Some(f)) = (recreate, &file) {
        let kept = f
            .try_clone()
            .and_then(|f| Ring::open(f, &uncommitted, scan.newest()));
        match kept {
            Ok(r) => {
                let replay = uncommitted
                    .iter()
                    .map(|e| Replay {
                        seq: e.seq,
                        loc: Some(*e),
                        record: None,
                    })
                    .collect();
                return (Some(r), report, replay);
            }
            Err(e) => {
                report.problem = Some(e.to_string());
                return (None, report, replay_in_memory(file.as_ref(), &uncommitted));
            }
        }
    }
    // A file of an unusable size can still hold entries: keep those in memory before the file
    // is replaced.
    let replay = replay_in_memory(file.as_ref(), &uncommitted);
    drop(file);
    let fresh = ring::create_file(path, setup.want_bytes)
        .and_then(|()| ring::open_file(path))
        .and_then(|f| Ring::open(f, &[], None));
    match fresh {
        Ok(r) => {
            report.ring_created = true;
            (Some(r), report, replay)
        }
        Err(e) => {
            report.problem = Some(e.to_string());
            (None, report, replay)
        }
    }
}

/// Reads entries into memory (for a ring file that cannot be kept).
fn replay_in_memory(file: Option<&std::fs::File>, entries: &[EntryLoc]) -> Vec<Replay> {
    let Some(file) = file else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let bytes = ring::read_payload(file, e).ok()?;
            let record = payload::decode(&bytes).ok()?;
            Some(Replay {
                seq: e.seq,
                loc: None,
                record: Some(Box::new(record)),
            })
        })
        .collect()
}

/// Ends the integrity check's hold on ring blocks (the ring is full); true when there was one.
fn end_hold(shared: &Shared) -> bool {
    let mut state = shared.state();
    if !state.holding() {
        return false;
    }
    state.end_hold();
    tracing::warn!(target: "journal",
        "ring full while the integrity check runs: records committed since start are no longer \
         kept in the ring (a damaged file would keep them)");
    true
}

/// Waits (at most [`RING_WAIT`]) for a commit that lets the ring reuse more blocks; returns
/// the new release point, or `None` when commits are failing or nothing moved in time.
fn wait_for_release(shared: &Shared) -> Option<u64> {
    if shared.problems().commit.is_some() {
        return None;
    }
    let state = shared.state();
    let before = state.releasable();
    let state = shared
        .committed
        .wait_timeout_while(state, RING_WAIT, |s| s.releasable() == before)
        .map(|(g, _)| g)
        .unwrap_or_else(|p| p.into_inner().0);
    (state.releasable() != before).then(|| state.releasable())
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
