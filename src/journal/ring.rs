//! The ring file: a pre-zeroed file where every record becomes durable on arrival with one
//! `pwrite` + one `fdatasync`, before SQLite sees it (README "How it keeps every record").
//!
//! Layout: the file is a whole number of 4 KiB blocks, zeroed once with real writes (no sparse
//! holes, no `fallocate` unwritten extents), so it never grows: a ring write can't hit ENOSPC and
//! `fdatasync` never needs an ext4 metadata commit. A *batch* (every record available at one
//! moment) starts at a block boundary and is padded to whole blocks, so a torn write can only
//! damage the batch being written, never an earlier acknowledged one. Entries inside a batch are
//! packed: `[magic u32][len u32][seq u64][crc32 u32][payload len bytes]`, little-endian, CRC over
//! `len`, `seq` and the payload. A block holding an entry whose seq is not yet released (committed
//! to SQLite) is never overwritten; writing goes on after the newest entry, wrapping to block 0,
//! so the oldest entries are the ones reused.
//!
//! The file is reached through [`RingStore`] (a `File` in the product, [`MemStore`] in tests,
//! which can tear a write the way a power cut does). Scans read it in windows and return where
//! each entry is ([`EntryLoc`]), not its bytes, so memory stays flat whatever the ring size;
//! [`read_payload`] fetches one entry when it is needed.
//!
//! This module knows bytes and blocks only; it does not know what a record is or when SQLite
//! commits (the journal tells it through [`Ring::release`]).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Batches start on this boundary and are padded to it (the ext4 block and flash page size).
pub const BLOCK: usize = 4096;
/// Smallest ring we accept: 16 blocks.
pub const MIN_RING_BYTES: u64 = 16 * BLOCK as u64;
/// `CDR1`, little-endian.
const MAGIC: u32 = u32::from_le_bytes(*b"CDR1");
/// Bytes before the payload of each entry.
pub const ENTRY_HEADER: usize = 20;
/// Scans read the file this much at a time.
const SCAN_WINDOW: usize = 256 * 1024;

/// The file under a ring: positioned reads and writes and a data sync.
pub trait RingStore {
    /// Size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset` (the whole buffer, or an error).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: what was written is on the device when this returns.
    fn sync(&mut self) -> io::Result<()>;
}

impl RingStore for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_all_at(buf, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// Where one valid entry sits in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLoc {
    pub seq: u64,
    /// Byte offset of the entry header in the file.
    pub offset: u64,
    /// Payload length in bytes.
    pub len: u32,
    /// First block of the batch the entry was written in: a scan finds the entry only by
    /// following the batch from there, so that block must outlive the entry.
    pub batch_block: u64,
}

impl EntryLoc {
    /// Blocks `[first, end)` that must stay intact for this entry to be found again: from its
    /// batch's first block to the entry's last.
    pub fn blocks(&self) -> (u64, u64) {
        let end_byte = self.offset + entry_size(self.len as usize) as u64;
        (self.batch_block, end_byte.div_ceil(BLOCK as u64))
    }
}

/// What a scan of the ring found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingScan {
    /// Valid entries, sorted by seq (one per seq).
    pub entries: Vec<EntryLoc>,
    /// Entries with a valid magic number but a bad length or CRC (torn or damaged writes).
    pub corrupt: usize,
    /// Size of the file in bytes.
    pub file_bytes: u64,
}

impl RingScan {
    /// The entry written last (highest seq), where writing resumes after.
    pub fn newest(&self) -> Option<&EntryLoc> {
        self.entries.last()
    }
}

/// Total bytes one entry takes in a batch.
pub fn entry_size(payload_len: usize) -> usize {
    ENTRY_HEADER + payload_len
}

fn crc_of(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one encoded entry to `out`.
pub fn encode_entry(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    // Payloads are bounded by the ring size (checked by the caller), far below u32::MAX.
    let len = payload.len() as u32;
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&crc_of(len, seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Sequential reads through a window of the store, so a scan makes few system calls and holds
/// at most one window (or one oversized entry) in memory.
struct Window<'a, S: RingStore + ?Sized> {
    store: &'a S,
    limit: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<S: RingStore + ?Sized> Window<'_, S> {
    /// Bytes `[at, at + n)`, which the caller has checked lie below `limit`.
    fn get(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let end = at + n as u64;
        let cached_end = self.start + self.buf.len() as u64;
        if at < self.start || end > cached_end {
            let want = (n.max(SCAN_WINDOW) as u64).min(self.limit - at) as usize;
            self.buf.resize(want, 0);
            self.store.read_at(&mut self.buf, at)?;
            self.start = at;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + n])
    }
}

/// Finds every valid entry in a ring. Batches start at block boundaries; inside a batch entries
/// follow each other until padding (zeros) or the end of the written data.
pub fn scan<S: RingStore + ?Sized>(store: &S) -> io::Result<RingScan> {
    let file_bytes = store.size()?;
    let mut scan = RingScan {
        file_bytes,
        ..RingScan::default()
    };
    let nblocks = file_bytes / BLOCK as u64;
    let limit = nblocks * BLOCK as u64;
    let mut win = Window {
        store,
        limit,
        start: 0,
        buf: Vec::new(),
    };
    let mut block = 0u64;
    while block < nblocks {
        let mut off = block * BLOCK as u64;
        let mut found = false;
        loop {
            if off + ENTRY_HEADER as u64 > limit {
                break;
            }
            let head = win.get(off, ENTRY_HEADER)?;
            if u32_at(head, 0) != MAGIC {
                break;
            }
            let len = u32_at(head, 4);
            let seq = u64_at(head, 8);
            let crc = u32_at(head, 16);
            let start = off + ENTRY_HEADER as u64;
            if u64::from(len) > limit - start {
                scan.corrupt += 1;
                break;
            }
            let payload = win.get(start, len as usize)?;
            if crc_of(len, seq, payload) != crc {
                scan.corrupt += 1;
                break;
            }
            scan.entries.push(EntryLoc {
                seq,
                offset: off,
                len,
                batch_block: block,
            });
            found = true;
            off = start + u64::from(len);
        }
        block = if found {
            off.div_ceil(BLOCK as u64).max(block + 1)
        } else {
            block + 1
        };
    }
    scan.entries.sort_by_key(|e| e.seq);
    scan.entries.dedup_by_key(|e| e.seq);
    Ok(scan)
}

/// Scans a ring file. A missing file is an empty scan.
pub fn scan_file(path: &Path) -> io::Result<RingScan> {
    match File::open(path) {
        Ok(f) => scan(&f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RingScan::default()),
        Err(e) => Err(e),
    }
}

/// Reads one entry's payload back, checking it is still the entry that was written there.
pub fn read_payload<S: RingStore + ?Sized>(store: &S, loc: &EntryLoc) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; entry_size(loc.len as usize)];
    store.read_at(&mut buf, loc.offset)?;
    let ok = u32_at(&buf, 0) == MAGIC
        && u32_at(&buf, 4) == loc.len
        && u64_at(&buf, 8) == loc.seq
        && crc_of(loc.len, loc.seq, &buf[ENTRY_HEADER..]) == u32_at(&buf, 16);
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "ring entry seq {} at byte {} no longer matches what was written",
                loc.seq, loc.offset
            ),
        ));
    }
    buf.drain(..ENTRY_HEADER);
    Ok(buf)
}

/// Blocks holding entries not yet released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    len: u64,
    max_seq: u64,
}

/// An open ring, ready for batches.
#[derive(Debug)]
pub struct Ring<S: RingStore = File> {
    store: S,
    blocks: u64,
    /// Next block to write.
    head: u64,
    /// Spans that must not be overwritten, oldest first.
    inflight: VecDeque<Span>,
    buf: Vec<u8>,
    /// Counters for the measurement helper.
    pub writes: u64,
    pub bytes_written: u64,
}

/// Rounds a configured size to whole blocks, at least [`MIN_RING_BYTES`].
pub fn ring_bytes_for_kb(ring_kb: u32) -> u64 {
    let bytes = u64::from(ring_kb) * 1024;
    (bytes / BLOCK as u64 * BLOCK as u64).max(MIN_RING_BYTES)
}

/// True when an existing ring file has a usable size.
pub fn usable_size(bytes: u64) -> bool {
    bytes >= MIN_RING_BYTES && bytes.is_multiple_of(BLOCK as u64)
}

/// Writes a zeroed ring of `bytes` to a temporary file (mode 0600), syncs it and renames it over
/// `path` (the box's one atomic write, [`crate::fsio::AtomicFile`]), so a crash during creation
/// leaves the old ring (or none) in place, never a half one.
pub fn create_file(path: &Path, bytes: u64) -> io::Result<()> {
    let mut f = crate::fsio::AtomicFile::create(
        path,
        crate::fsio::AtomicOptions {
            mode: Some(0o600),
            backup: false,
        },
    )?;
    let zeros = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.commit()
}

/// Opens a ring file for writing.
pub fn open_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

impl<S: RingStore> Ring<S> {
    /// Opens a correctly sized ring. `protect` are entries (from a scan) not yet released: their
    /// blocks, from the start of their batch, stay protected. Writing resumes after `newest` (the newest valid entry of the scan,
    /// protected or not), so what is overwritten first is the oldest.
    pub fn open(store: S, protect: &[EntryLoc], newest: Option<&EntryLoc>) -> io::Result<Ring<S>> {
        let bytes = store.size()?;
        if !usable_size(bytes) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("ring has unusable size {bytes} (not whole 4 KiB blocks, or too small)"),
            ));
        }
        let blocks = bytes / BLOCK as u64;
        let mut sorted: Vec<&EntryLoc> = protect.iter().collect();
        sorted.sort_by_key(|e| e.seq);
        let inflight = sorted
            .iter()
            .map(|e| {
                let (first, end) = e.blocks();
                Span {
                    start: first,
                    len: end - first,
                    max_seq: e.seq,
                }
            })
            .collect();
        let after = newest.or(sorted.last().copied());
        let head = after.map_or(0, |e| {
            let end = e.blocks().1;
            if end >= blocks {
                0
            } else {
                end
            }
        });
        Ok(Ring {
            store,
            blocks,
            head,
            inflight,
            buf: Vec::with_capacity(BLOCK * 4),
            writes: 0,
            bytes_written: 0,
        })
    }

    /// The store, for reading entries back.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to arrange faults in tests.
    #[cfg(test)]
    pub fn store_mut_for_test(&mut self) -> &mut S {
        &mut self.store
    }

    /// Size of the ring in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks * BLOCK as u64
    }

    /// Size of the ring in blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The largest payload that can ever be written.
    pub fn max_payload(&self) -> usize {
        self.bytes() as usize - ENTRY_HEADER
    }

    /// Free contiguous blocks starting at `at` (up to the end of the file).
    fn free_from(&self, at: u64) -> u64 {
        let mut limit = self.blocks;
        for s in &self.inflight {
            if at >= s.start && at < s.start + s.len {
                return 0;
            }
            if s.start > at {
                limit = limit.min(s.start);
            }
        }
        limit - at
    }

    /// True when nothing unreleased is in the ring.
    pub fn is_clean(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Blocks currently protected.
    pub fn used_blocks(&self) -> u64 {
        self.inflight.iter().map(|s| s.len).sum()
    }

    /// Writes a prefix of `entries` (seq, payload), in order, as ONE batch: one `pwrite`, one
    /// `fdatasync`, at most `max_bytes` (rounded up to one entry). Returns where the written
    /// entries are; empty means the ring is full (or the first entry can never fit). Never
    /// overwrites a protected block. A failed write leaves nothing protected: the caller treats
    /// the batch as not durable.
    pub fn append(
        &mut self,
        entries: &[(u64, &[u8])],
        max_bytes: usize,
    ) -> io::Result<Vec<EntryLoc>> {
        let Some(&(_, first)) = entries.first() else {
            return Ok(Vec::new());
        };
        let need_first = entry_size(first.len()).div_ceil(BLOCK) as u64;
        let mut start = self.head;
        let mut span = self.free_from(start);
        if span < need_first && start != 0 {
            start = 0;
            span = self.free_from(0);
        }
        if span < need_first {
            return Ok(Vec::new());
        }
        let capacity = (span as usize * BLOCK).min(max_bytes.max(entry_size(first.len())));
        self.buf.clear();
        let mut locs = Vec::new();
        let base = start * BLOCK as u64;
        for &(seq, payload) in entries {
            if self.buf.len() + entry_size(payload.len()) > capacity {
                break;
            }
            locs.push(EntryLoc {
                seq,
                offset: base + self.buf.len() as u64,
                len: payload.len() as u32,
                batch_block: start,
            });
            encode_entry(seq, payload, &mut self.buf);
        }
        let padded = self.buf.len().div_ceil(BLOCK) * BLOCK;
        self.buf.resize(padded, 0);
        self.store.write_at(&self.buf, base)?;
        self.store.sync()?;
        let len = (padded / BLOCK) as u64;
        self.inflight.push_back(Span {
            start,
            len,
            max_seq: locs.iter().map(|l| l.seq).max().unwrap_or(0),
        });
        self.head = if start + len >= self.blocks {
            0
        } else {
            start + len
        };
        self.writes += 1;
        self.bytes_written += padded as u64;
        Ok(locs)
    }

    /// Every seq ≤ `upto` is safe elsewhere (committed to SQLite): their blocks may be reused.
    pub fn release(&mut self, upto: u64) {
        self.inflight.retain(|s| s.max_seq > upto);
    }
}

/// How a write interrupted by a power cut reaches the device.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub enum Tear {
    /// The first n bytes land.
    Prefix(usize),
    /// 512-byte sector i lands when bit i is set (sectors from 64 on never land): devices do
    /// not promise to write sectors in order.
    Sectors(u64),
}

/// An in-memory store for tests: what has been synced is what survives [`MemStore::crash`];
/// [`MemStore::tear_next_write`] makes the next write land only partly and fail, as a power cut
/// in the middle of a `pwrite` does.
#[cfg(test)]
#[derive(Debug, Clone)]
pub struct MemStore {
    /// The file as the page cache sees it.
    pub data: Vec<u8>,
    /// The file as the device holds it.
    pub synced: Vec<u8>,
    tear: Option<Tear>,
}

#[cfg(test)]
impl MemStore {
    pub fn zeroed(bytes: usize) -> MemStore {
        MemStore {
            data: vec![0; bytes],
            synced: vec![0; bytes],
            tear: None,
        }
    }

    /// The next write puts only part of itself on the device, then fails.
    pub fn tear_next_write(&mut self, tear: Tear) {
        self.tear = Some(tear);
    }

    /// What a restart after a power cut finds.
    pub fn crash(&self) -> MemStore {
        MemStore {
            data: self.synced.clone(),
            synced: self.synced.clone(),
            tear: None,
        }
    }
}

#[cfg(test)]
impl RingStore for MemStore {
    fn size(&self) -> io::Result<u64> {
        Ok(self.data.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let at = offset as usize;
        let src = self
            .data
            .get(at..at + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let at = offset as usize;
        if at + buf.len() > self.data.len() {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        if let Some(tear) = self.tear.take() {
            for (i, chunk) in buf.chunks(512).enumerate() {
                let lands = match tear {
                    Tear::Prefix(n) => i * 512 < n,
                    Tear::Sectors(mask) => i < 64 && mask & (1 << i) != 0,
                };
                if !lands {
                    continue;
                }
                let n = match tear {
                    Tear::Prefix(n) => chunk.len().min(n - i * 512),
                    Tear::Sectors(_) => chunk.len(),
                };
                let from = at + i * 512;
                self.data[from..from + n].copy_from_slice(&chunk[..n]);
                self.synced[from..from + n].copy_from_slice(&chunk[..n]);
            }
            return Err(io::Error::other("power cut during the write"));
        }
        self.data[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.synced.copy_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: usize = usize::MAX;

    fn ring(blocks: usize) -> Ring<MemStore> {
        Ring::open(MemStore::zeroed(blocks * BLOCK), &[], None).unwrap()
    }

    fn seqs(scan: &RingScan) -> Vec<u64> {
        scan.entries.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn batch_is_found_again_by_scan() {
        let mut ring = ring(16);
        let a = vec![1u8; 100];
        let b = vec![2u8; 5000];
        assert_eq!(ring.append(&[(1, &a), (2, &b)], ALL).unwrap().len(), 2);
        assert_eq!(ring.append(&[(3, &a)], ALL).unwrap().len(), 1);
        let scan = scan(ring.store()).unwrap();
        assert_eq!(scan.corrupt, 0);
        assert_eq!(seqs(&scan), vec![1, 2, 3]);
        assert_eq!(read_payload(ring.store(), &scan.entries[1]).unwrap(), b);
        // Batch 1 took 2 blocks (100 + 5000 + headers), so batch 2 starts at block 2.
        assert_eq!(scan.entries[2].offset, 2 * BLOCK as u64);
    }

    #[test]
    fn append_reports_where_each_entry_went() {
        let mut ring = ring(16);
        let p = vec![9u8; 300];
        let locs = ring.append(&[(5, &p), (6, &p)], ALL).unwrap();
        let scan = scan(ring.store()).unwrap();
        assert_eq!(locs, scan.entries);
        assert_eq!(read_payload(ring.store(), &locs[1]).unwrap(), p);
    }

    #[test]
    fn a_batch_is_capped_at_max_bytes() {
        let mut ring = ring(16);
        let p = vec![4u8; 1000];
        let entries: Vec<(u64, &[u8])> = (1..=10).map(|s| (s, &p[..])).collect();
        let locs = ring.append(&entries, 2 * BLOCK).unwrap();
        assert_eq!(locs.len(), 8, "8 × 1020 bytes fit in 8 KiB");
        // One entry always goes, even when it alone is over the cap.
        let big = vec![1u8; 3 * BLOCK];
        assert_eq!(ring.append(&[(11, &big)], 100).unwrap().len(), 1);
    }

    #[test]
    fn full_ring_refuses_and_release_frees() {
        let mut ring = ring(16);
        let p = vec![7u8; 3000];
        for seq in 1..=16 {
            assert_eq!(
                ring.append(&[(seq, &p)], ALL).unwrap().len(),
                1,
                "seq {seq}"
            );
        }
        assert!(ring.append(&[(17, &p)], ALL).unwrap().is_empty(), "full");
        ring.release(2);
        assert_eq!(ring.append(&[(17, &p)], ALL).unwrap().len(), 1, "block 0");
        assert_eq!(
            ring.append(&[(18, &p), (19, &p)], ALL).unwrap().len(),
            1,
            "only 1 fits in block 1"
        );
        assert!(
            ring.append(&[(19, &p)], ALL).unwrap().is_empty(),
            "block 2 still holds seq 3"
        );
        ring.release(3);
        assert_eq!(ring.append(&[(19, &p)], ALL).unwrap().len(), 1);
    }

    #[test]
    fn wrap_skips_a_tail_too_small_for_the_batch() {
        let mut ring = ring(16);
        let small = vec![1u8; 10];
        for seq in 1..=15 {
            assert_eq!(ring.append(&[(seq, &small)], ALL).unwrap().len(), 1);
        }
        ring.release(15);
        let big = vec![9u8; 2 * BLOCK];
        // Head is block 15: one block left at the end, the entry needs 3 → goes to block 0.
        let locs = ring.append(&[(16, &big)], ALL).unwrap();
        assert_eq!(locs[0].offset, 0);
    }

    #[test]
    fn torn_and_corrupt_entries_are_skipped_and_counted() {
        let mut ring = ring(16);
        let p = vec![5u8; 1000];
        for seq in 1..=4 {
            ring.append(&[(seq, &p)], ALL).unwrap();
        }
        let mut data = ring.store().data.clone();
        // Flip a payload byte of entry 2 (block 1) and zero the tail of entry 3 (a torn write).
        data[BLOCK + ENTRY_HEADER + 10] ^= 0xFF;
        data[2 * BLOCK + 500..2 * BLOCK + 1020].fill(0);
        let store = MemStore {
            data: data.clone(),
            synced: data,
            tear: None,
        };
        let scan = scan(&store).unwrap();
        assert_eq!(seqs(&scan), vec![1, 4]);
        assert_eq!(scan.corrupt, 2);
    }

    #[test]
    fn a_torn_write_fails_and_leaves_earlier_batches_intact() {
        let mut ring = ring(16);
        let p = vec![5u8; 1000];
        ring.append(&[(1, &p)], ALL).unwrap();
        ring.store.tear_next_write(Tear::Prefix(700));
        assert!(ring.append(&[(2, &p)], ALL).is_err());
        let after = ring.store().crash();
        let scan = scan(&after).unwrap();
        assert_eq!(seqs(&scan), vec![1]);
        assert_eq!(scan.corrupt, 1, "the torn entry is seen and skipped");
    }

    #[test]
    fn huge_length_field_is_corrupt_not_a_panic() {
        let mut store = MemStore::zeroed(MIN_RING_BYTES as usize);
        store.data[..4].copy_from_slice(&MAGIC.to_le_bytes());
        store.data[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let scan = scan(&store).unwrap();
        assert!(scan.entries.is_empty());
        assert_eq!(scan.corrupt, 1);
    }

    #[test]
    fn scan_across_window_boundaries_finds_every_entry() {
        // 128 blocks (512 KiB, two scan windows) of 3-entry batches with odd payload sizes.
        let mut ring = ring(128);
        let mut seq = 0;
        for i in 0..40usize {
            let a = vec![i as u8; 1000 + i * 97];
            let b = vec![!(i as u8); 2000 + i * 13];
            let c = vec![3u8; 17];
            let batch: Vec<(u64, &[u8])> = vec![(seq + 1, &a), (seq + 2, &b), (seq + 3, &c)];
            assert_eq!(ring.append(&batch, ALL).unwrap().len(), 3);
            seq += 3;
        }
        let scan = scan(ring.store()).unwrap();
        assert_eq!(scan.corrupt, 0);
        assert_eq!(seqs(&scan), (1..=seq).collect::<Vec<_>>());
    }

    #[test]
    fn after_reopen_a_half_committed_batch_keeps_its_first_block() {
        // Found by the model test: one batch of two entries, the first spanning blocks 0-1 and
        // the second starting inside block 1. After a restart only the second is uncommitted;
        // reusing block 0 would leave it unreachable for the next scan.
        let mut ring = ring(16);
        let a = vec![1u8; 5000];
        let b = vec![2u8; 900];
        ring.append(&[(1, &a), (2, &b)], ALL).unwrap();
        let store = ring.store().crash();
        let found = scan(&store).unwrap();
        let second = found.entries[1];
        assert_eq!((second.offset / BLOCK as u64, second.batch_block), (1, 0));
        let mut ring = Ring::open(store, &[second], found.newest()).unwrap();
        assert_eq!(ring.used_blocks(), 2, "blocks 0 and 1");
        // Fill the ring completely: nothing may land on block 0 or 1.
        let p = vec![3u8; 100];
        let mut seq = 3;
        while !ring.append(&[(seq, &p)], ALL).unwrap().is_empty() {
            seq += 1;
        }
        let again = scan(&ring.store().crash()).unwrap();
        assert!(
            again.entries.iter().any(|e| e.seq == 2),
            "entry 2 still found"
        );
    }

    #[test]
    fn reopen_protects_unreleased_blocks_and_resumes_after_the_newest() {
        let mut ring = ring(16);
        let p = vec![3u8; 3000];
        for seq in 1..=3 {
            ring.append(&[(seq, &p)], ALL).unwrap();
        }
        let store = ring.store().crash();
        let found = scan(&store).unwrap();
        let unreleased: Vec<EntryLoc> = found
            .entries
            .iter()
            .copied()
            .filter(|e| e.seq > 1)
            .collect();
        let mut ring = Ring::open(store, &unreleased, found.newest()).unwrap();
        assert_eq!(ring.used_blocks(), 2);
        let locs = ring.append(&[(4, &p)], ALL).unwrap();
        assert_eq!(locs[0].offset, 3 * BLOCK as u64, "after the newest entry");
        // With nothing protected, writing still resumes after the newest entry: block 0 (the
        // oldest) is reused last.
        let store = ring.store().crash();
        let found = scan(&store).unwrap();
        let mut ring = Ring::open(store, &[], found.newest()).unwrap();
        let locs = ring.append(&[(5, &p)], ALL).unwrap();
        assert_eq!(locs[0].offset, 4 * BLOCK as u64);
    }
}
