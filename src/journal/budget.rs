//! Memory bounds of the ingest path in BYTES, not rows (issue 10 item 5, issue 11 item 4): a row
//! count says nothing when a hostile PBX sends records of 1 MB each, so every place the journal
//! holds records in memory is charged with what they cost.
//!
//! - [`record_bytes`]: what one [`CallRecord`] costs on the heap, counted the way glibc's malloc
//!   hands out chunks (each allocation rounded up, with its header) — a record of 60,000 custom
//!   fields costs ~7 MB for ~1 MB on the wire, and that is what RSS sees.
//! - [`Held`]: the records held only in memory (handed to the ring thread and not yet in the
//!   ring, or memory-only until committed), bounded by `[storage] memory_queue_records` AND
//!   `[storage] memory_queue_kb`; [`Held::admit`] is the one admission rule.
//! - [`Cache`]: the commit thread's in-memory copies of ring records (the rest are read back
//!   from the ring when their commit comes), bounded by [`CACHE_BYTES`].
//!
//! Pure accounting on atomics: no I/O, no clock. It must not decide what happens to a record
//! that is refused (the handle drops and ledgers it).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::CallRecord;

/// Copies of ring records the commit thread keeps in memory beside the ring: beyond this it
/// reads them back when their commit comes. ~500 ordinary records; one hostile record of 1 MB
/// on the wire (~7 MB here) is over it alone, so such records are always read back. Small on
/// purpose: reading back is one `pread` and a binary decode (`payload.rs`), and in a burst
/// every byte kept here is RSS (the 32 MB goal of the 50,000-CDR row in BENCHMARKS.md).
pub const CACHE_BYTES: u64 = 1 << 20;
/// One commit reads back (and holds) at most this many bytes of records, whatever
/// `COMMIT_CHUNK` allows (always at least one record: a single huge one still commits). About
/// `COMMIT_CHUNK` ordinary records.
pub const COMMIT_BYTES: u64 = 2 << 20;
/// One ring turn encodes at most this many bytes of payloads before writing them.
pub const ENCODE_BYTES: u64 = 1 << 20;

/// What glibc's malloc takes for a `cap`-byte allocation: 8 bytes of header, rounded up to 16,
/// at least 32 (x86-64 and aarch64; armv7's 8/16 are smaller, so this errs high there).
pub fn chunk(cap: usize) -> u64 {
    if cap == 0 {
        return 0;
    }
    ((cap as u64 + 8).div_ceil(16) * 16).max(32)
}

fn text(s: &str) -> u64 {
    chunk(s.len())
}

fn string(s: &String) -> u64 {
    chunk(s.capacity())
}

/// Heap bytes `r` holds, box included (an estimate by the allocator's rules above; the
/// property test checks it grows with every field and is never below the bytes stored).
pub fn record_bytes(r: &CallRecord) -> u64 {
    let strings = [
        &r.pbx,
        &r.unique_id,
        &r.account_code,
        &r.source,
        &r.destination,
        &r.destination_context,
        &r.caller_id,
        &r.channel,
        &r.destination_channel,
        &r.last_application,
        &r.last_data,
        &r.ama_flags,
        &r.user_field,
    ];
    let options = [&r.queue, &r.agent, &r.linked_id];
    let custom: u64 = r
        .custom_fields
        .iter()
        .map(|(k, v)| string(k) + string(v))
        .sum();
    let pair = std::mem::size_of::<(String, String)>();
    chunk(std::mem::size_of::<CallRecord>())
        + strings.into_iter().map(string).sum::<u64>()
        + options
            .into_iter()
            .map(|o| o.as_deref().map_or(0, text))
            .sum::<u64>()
        + chunk(r.custom_fields.capacity() * pair)
        + custom
        + chunk(r.raw.capacity())
}

/// Gives freed heap back to the kernel (glibc `malloc_trim`): after a burst, the freed records
/// sit in the per-thread malloc arenas and RSS would stay at the burst's peak for good. Cheap
/// (a walk over the arenas' free lists); the commit thread calls it when a backlog of at least
/// [`TRIM_AFTER_BYTES`] has drained. A no-op where the C library is not glibc.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free memory; it is
    // thread-safe (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// At most two malloc arenas for the whole process (glibc `M_ARENA_MAX`; its default is 8 per
/// core). Records are allocated on the link's threads and freed on the journal's, and each
/// thread's own arena kept its freed chunks: ~4–5 MB of the peak RSS in the 50,000-CDR burst
/// (`cdrbox-bench proc`; `MALLOC_ARENA_MAX=1` and `=2` measured alike, no slower; BENCHMARKS.md
/// "RSS in a burst"). Call once at start, before threads. A no-op where the C library is not
/// glibc.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes effect for arenas
    // created afterwards and is safe to set at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Bytes of records that must have passed through a backlog before its end is worth a trim.
pub const TRIM_AFTER_BYTES: u64 = 4 << 20;

/// Records held only in memory, by count and bytes.
#[derive(Debug)]
pub struct Held {
    records: AtomicU64,
    bytes: AtomicU64,
    max_records: u64,
    max_bytes: u64,
}

impl Held {
    pub fn new(max_records: u64, max_bytes: u64) -> Held {
        Held {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            max_records: max_records.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Takes a record of `bytes` when both bounds allow it (false: refused, nothing taken).
    /// With nothing held, one record is always taken, however big: a bound smaller than one
    /// record must not stop every record of that size. Two producers racing may overshoot by
    /// one record each; the bound is for memory, not an exact count.
    pub fn admit(&self, bytes: u64) -> bool {
        let records = self.records.load(Ordering::SeqCst);
        let held = self.bytes.load(Ordering::SeqCst);
        let fits = records < self.max_records && held.saturating_add(bytes) <= self.max_bytes;
        if records > 0 && !fits {
            return false;
        }
        self.add(bytes);
        true
    }

    /// Takes a record without the bounds (a waiting caller, replay at start: they cannot be
    /// dropped, their caller applies back-pressure).
    pub fn add(&self, bytes: u64) {
        self.records.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }

    /// Gives back what [`admit`](Self::admit)/[`add`](Self::add) took for one record.
    pub fn release(&self, bytes: u64) {
        sub(&self.records, 1);
        sub(&self.bytes, bytes);
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::SeqCst)
    }

    /// Three quarters of either bound taken: time for producers that can wait to wait
    /// (`RecordSink::behind`), before the bound makes the journal drop.
    pub fn nearly_full(&self) -> bool {
        self.records() * 4 >= self.max_records * 3 || self.bytes() * 4 >= self.max_bytes * 3
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub fn max_records(&self) -> u64 {
        self.max_records
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

/// Saturating: a release can never wrap the counter (a bug would show as a too-low count, not
/// as a bound that refuses everything forever).
fn sub(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        Some(v.saturating_sub(n))
    });
}

/// The commit thread's in-memory copies of ring records, by bytes. Only the ring thread adds
/// and only the commit thread releases.
#[derive(Debug)]
pub struct Cache {
    bytes: AtomicU64,
    max_bytes: u64,
}

impl Cache {
    pub fn new(max_bytes: u64) -> Cache {
        Cache {
            bytes: AtomicU64::new(0),
            max_bytes,
        }
    }

    /// Keeps a copy of `bytes` when it fits (false: the record is read back from the ring).
    pub fn keep(&self, bytes: u64) -> bool {
        self.bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                (v.saturating_add(bytes) <= self.max_bytes).then_some(v + bytes)
            })
            .is_ok()
    }

    pub fn release(&self, bytes: u64) {
        sub(&self.bytes, bytes);
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> CallRecord {
        crate::journal::testdata::sample_record(1)
    }

    #[test]
    fn chunks_follow_glibc() {
        assert_eq!(chunk(0), 0);
        assert_eq!(chunk(1), 32);
        assert_eq!(chunk(24), 32);
        assert_eq!(chunk(25), 48);
        assert_eq!(chunk(1000), 1008);
    }

    #[test]
    fn a_record_costs_at_least_what_it_stores() {
        let r = sample();
        let stored = r.raw.len()
            + r.unique_id.len()
            + r.custom_fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        assert!(record_bytes(&r) > stored as u64 + std::mem::size_of::<CallRecord>() as u64);
    }

    #[test]
    fn a_hostile_record_costs_several_times_its_wire_size() {
        // 60,000 custom fields of 6 + 6 bytes: each is two small allocations of 32 bytes plus
        // the 48-byte pair — what made 200 such records take a gigabyte.
        let mut r = sample();
        r.custom_fields = (0..60_000)
            .map(|i| (format!("X{i:05}"), format!("{i:06}")))
            .collect();
        r.raw = vec![b'x'; 1_000_000];
        let b = record_bytes(&r);
        assert!(b > 60_000 * (32 + 32 + 48), "{b}");
        assert!(b < 10_000_000, "{b}");
    }

    #[test]
    fn held_refuses_beyond_either_bound_but_always_takes_one() {
        let h = Held::new(3, 1000);
        assert!(h.admit(5000), "nothing held: one record always fits");
        assert!(!h.admit(1), "bytes over");
        h.release(5000);
        assert_eq!((h.records(), h.bytes()), (0, 0));
        assert!(h.admit(400));
        assert!(h.admit(400));
        assert!(!h.admit(400), "1200 > 1000 bytes");
        assert!(h.admit(100));
        assert!(!h.admit(1), "3 records");
        h.add(10_000);
        assert_eq!((h.records(), h.bytes()), (4, 10_900));
    }

    #[test]
    fn cache_keeps_within_its_bytes() {
        let c = Cache::new(100);
        assert!(c.keep(60));
        assert!(!c.keep(60));
        assert!(c.keep(40));
        c.release(60);
        assert_eq!(c.bytes(), 40);
        assert!(!c.keep(61));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit(u64),
        Add(u64),
        /// Releases the n-th record still held (modulo).
        Release(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..5000).prop_map(Op::Admit),
            (0u64..5000).prop_map(Op::Add),
            any::<usize>().prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Against a plain model: the counters equal the sum of what is held; admitted records
        /// never take the held bytes over the bound unless they are the only one; releasing
        /// everything comes back to zero.
        #[test]
        fn held_matches_a_model(
            max_records in 1u64..20,
            max_bytes in 1u64..20_000,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let h = Held::new(max_records, max_bytes);
            let mut model: Vec<(u64, bool)> = Vec::new();
            for o in ops {
                match o {
                    Op::Admit(b) => {
                        let taken = h.admit(b);
                        let sum: u64 = model.iter().map(|m| m.0).sum();
                        let fits = (model.len() as u64) < max_records && sum + b <= max_bytes;
                        prop_assert_eq!(taken, model.is_empty() || fits);
                        if taken {
                            model.push((b, true));
                        }
                    }
                    Op::Add(b) => {
                        h.add(b);
                        model.push((b, false));
                    }
                    Op::Release(i) => {
                        if !model.is_empty() {
                            let (b, _) = model.remove(i % model.len());
                            h.release(b);
                        }
                    }
                }
                prop_assert_eq!(h.records(), model.len() as u64);
                prop_assert_eq!(h.bytes(), model.iter().map(|m| m.0).sum::<u64>());
                // Only admitted records: bounded, bar the lone one.
                if model.iter().all(|m| m.1) && model.len() > 1 {
                    prop_assert!(h.bytes() <= max_bytes);
                    prop_assert!(h.records() <= max_records);
                }
            }
            for (b, _) in model.drain(..) {
                h.release(b);
            }
            prop_assert_eq!((h.records(), h.bytes()), (0, 0));
        }

        /// The estimate grows with every byte the record stores.
        #[test]
        fn record_bytes_grows_with_content(extra in 1usize..100_000, fields in 0usize..50) {
            // A clone: capacities equal lengths, as in the copies compared below.
            let base = sample().clone();
            let b0 = record_bytes(&base);
            let mut r = base.clone();
            r.raw.extend(std::iter::repeat_n(b'x', extra));
            r.raw.shrink_to_fit();
            prop_assert!(record_bytes(&r) >= b0 + extra as u64 - 16);
            let mut r = base;
            r.custom_fields.extend((0..fields).map(|i| (format!("F{i}"), "v".to_string())));
            r.custom_fields.shrink_to_fit();
            let grew = record_bytes(&r);
            prop_assert!(fields == 0 || grew > b0, "{} vs {}", grew, b0);
        }
    }
}
