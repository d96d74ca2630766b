//! The ring file: a small pre-zeroed file where every record becomes durable on arrival with one
//! `pwrite` + one `fdatasync`, before SQLite sees it (PRODUCT.md §4, research/embedded.md §1.5).
//!
//! Layout: the file is a whole number of 4 KiB blocks, zeroed once with real writes (no sparse
//! holes, no `fallocate` unwritten extents), so it never grows: a ring write can't hit ENOSPC and
//! `fdatasync` never needs an ext4 metadata commit. A *batch* (every record available at one
//! moment) starts at a block boundary and is padded to whole blocks, so a torn write can only
//! damage the batch being written, never an earlier acknowledged one. Entries inside a batch are
//! packed: `[magic u32][len u32][seq u64][crc32 u32][payload len bytes]`, little-endian, CRC over
//! `len`, `seq` and the payload. A block holding an entry whose seq is not yet committed to SQLite
//! is never overwritten.
//!
//! This module knows bytes and blocks only; it does not know what a record is or when SQLite
//! commits (the writer tells it through [`Ring::release`]).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
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

/// One valid entry found in the ring file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingEntry {
    pub seq: u64,
    /// Byte offset of the entry header in the file.
    pub offset: u64,
    pub payload: Vec<u8>,
}

impl RingEntry {
    /// Blocks `[first, end)` this entry touches.
    pub fn blocks(&self) -> (u64, u64) {
        let first = self.offset / BLOCK as u64;
        let end_byte = self.offset + (ENTRY_HEADER + self.payload.len()) as u64;
        (first, end_byte.div_ceil(BLOCK as u64))
    }
}

/// What a scan of the ring file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingScan {
    /// Valid entries, sorted by seq (one per seq).
    pub entries: Vec<RingEntry>,
    /// Entries with a valid magic number but a bad length or CRC (torn or damaged writes).
    pub corrupt: usize,
    /// Size of the file in bytes.
    pub file_bytes: u64,
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

fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Finds every valid entry in a ring image. Batches start at block boundaries; inside a batch
/// entries follow each other until padding (zeros) or the end of the written data.
pub fn scan_bytes(data: &[u8]) -> RingScan {
    let mut scan = RingScan {
        file_bytes: data.len() as u64,
        ..RingScan::default()
    };
    let nblocks = data.len() / BLOCK;
    let limit = nblocks * BLOCK;
    let mut block = 0usize;
    while block < nblocks {
        let mut off = block * BLOCK;
        let mut found = false;
        loop {
            if off + ENTRY_HEADER > limit || read_u32(data, off) != MAGIC {
                break;
            }
            let len = read_u32(data, off + 4) as usize;
            let seq = read_u64(data, off + 8);
            let crc = read_u32(data, off + 16);
            let start = off + ENTRY_HEADER;
            if len > limit - start {
                scan.corrupt += 1;
                break;
            }
            let payload = &data[start..start + len];
            if crc_of(len as u32, seq, payload) != crc {
                scan.corrupt += 1;
                break;
            }
            scan.entries.push(RingEntry {
                seq,
                offset: off as u64,
                payload: payload.to_vec(),
            });
            found = true;
            off = start + len;
        }
        block = if found {
            off.div_ceil(BLOCK).max(block + 1)
        } else {
            block + 1
        };
    }
    scan.entries.sort_by_key(|e| e.seq);
    scan.entries.dedup_by_key(|e| e.seq);
    scan
}

/// Reads and scans a ring file. A missing file is an empty scan.
pub fn scan_file(path: &Path) -> io::Result<RingScan> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RingScan::default()),
        Err(e) => return Err(e),
    }
    Ok(scan_bytes(&data))
}

/// Blocks holding entries not yet committed to SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    len: u64,
    max_seq: u64,
}

/// An open ring file, ready for batches.
#[derive(Debug)]
pub struct Ring {
    file: File,
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

/// Writes a zeroed ring of `bytes` to a temporary file, syncs it and renames it over `path`, so a
/// crash during creation leaves the old ring (or none) in place, never a half one.
pub fn create_file(path: &Path, bytes: u64) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let zeros = vec![0u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so a rename or new file in it survives power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

impl Ring {
    /// Opens an existing, correctly sized ring file. `uncommitted` are entries (from a scan)
    /// that SQLite does not hold yet: their blocks stay protected and writing resumes after the
    /// newest of them.
    pub fn open(path: &Path, uncommitted: &[RingEntry]) -> io::Result<Ring> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let bytes = file.metadata()?.len();
        if !usable_size(bytes) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("ring file {} has unusable size {bytes}", path.display()),
            ));
        }
        let blocks = bytes / BLOCK as u64;
        let mut inflight = VecDeque::new();
        let mut head = 0;
        let mut sorted: Vec<&RingEntry> = uncommitted.iter().collect();
        sorted.sort_by_key(|e| e.seq);
        for e in sorted {
            let (first, end) = e.blocks();
            inflight.push_back(Span {
                start: first,
                len: end - first,
                max_seq: e.seq,
            });
            head = if end >= blocks { 0 } else { end };
        }
        Ok(Ring {
            file,
            blocks,
            head,
            inflight,
            buf: Vec::with_capacity(BLOCK * 4),
            writes: 0,
            bytes_written: 0,
        })
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

    /// True when nothing uncommitted is in the ring.
    pub fn is_clean(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Blocks currently protected.
    pub fn used_blocks(&self) -> u64 {
        self.inflight.iter().map(|s| s.len).sum()
    }

    /// Writes a prefix of `entries` (seq, payload), in order, as ONE batch: one `pwrite`, one
    /// `fdatasync`. Returns how many entries are now durable; 0 means the ring is full (or the
    /// first entry can never fit). Never overwrites a protected block.
    pub fn append(&mut self, entries: &[(u64, &[u8])]) -> io::Result<usize> {
        let Some(&(_, first)) = entries.first() else {
            return Ok(0);
        };
        let need_first = entry_size(first.len()).div_ceil(BLOCK) as u64;
        let mut start = self.head;
        let mut span = self.free_from(start);
        if span < need_first && start != 0 {
            start = 0;
            span = self.free_from(0);
        }
        if span < need_first {
            return Ok(0);
        }
        let capacity = (span as usize) * BLOCK;
        self.buf.clear();
        let mut count = 0;
        let mut max_seq = 0;
        for &(seq, payload) in entries {
            if self.buf.len() + entry_size(payload.len()) > capacity {
                break;
            }
            encode_entry(seq, payload, &mut self.buf);
            max_seq = max_seq.max(seq);
            count += 1;
        }
        let padded = self.buf.len().div_ceil(BLOCK) * BLOCK;
        self.buf.resize(padded, 0);
        self.file.write_all_at(&self.buf, start * BLOCK as u64)?;
        self.file.sync_data()?;
        let len = (padded / BLOCK) as u64;
        self.inflight.push_back(Span {
            start,
            len,
            max_seq,
        });
        self.head = if start + len >= self.blocks {
            0
        } else {
            start + len
        };
        self.writes += 1;
        self.bytes_written += padded as u64;
        Ok(count)
    }

    /// SQLite now holds every seq ≤ `committed_seq`: their blocks may be reused.
    pub fn release(&mut self, committed_seq: u64) {
        self.inflight.retain(|s| s.max_seq > committed_seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_in(dir: &Path, blocks: u64) -> (std::path::PathBuf, Ring) {
        let path = dir.join("r.ring");
        create_file(&path, blocks * BLOCK as u64).unwrap();
        let ring = Ring::open(&path, &[]).unwrap();
        (path, ring)
    }

    #[test]
    fn batch_is_found_again_by_scan() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ring) = ring_in(dir.path(), 16);
        let a = vec![1u8; 100];
        let b = vec![2u8; 5000];
        assert_eq!(ring.append(&[(1, &a), (2, &b)]).unwrap(), 2);
        assert_eq!(ring.append(&[(3, &a)]).unwrap(), 1);
        let scan = scan_file(&path).unwrap();
        assert_eq!(scan.corrupt, 0);
        let seqs: Vec<u64> = scan.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(scan.entries[1].payload, b);
        // Batch 1 took 2 blocks (100 + 5000 + headers), so batch 2 starts at block 2.
        assert_eq!(scan.entries[2].offset, 2 * BLOCK as u64);
    }

    #[test]
    fn full_ring_refuses_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let (_path, mut ring) = ring_in(dir.path(), 16);
        let p = vec![7u8; 3000];
        for seq in 1..=16 {
            assert_eq!(ring.append(&[(seq, &p)]).unwrap(), 1, "seq {seq}");
        }
        assert_eq!(ring.append(&[(17, &p)]).unwrap(), 0, "no free block left");
        ring.release(2);
        assert_eq!(
            ring.append(&[(17, &p)]).unwrap(),
            1,
            "wraps into freed block 0"
        );
        assert_eq!(
            ring.append(&[(18, &p), (19, &p)]).unwrap(),
            1,
            "only 1 fits in block 1"
        );
        assert_eq!(
            ring.append(&[(19, &p)]).unwrap(),
            0,
            "block 2 still holds seq 3"
        );
        ring.release(3);
        assert_eq!(ring.append(&[(19, &p)]).unwrap(), 1);
    }

    #[test]
    fn wrap_skips_a_tail_too_small_for_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ring) = ring_in(dir.path(), 16);
        let small = vec![1u8; 10];
        for seq in 1..=15 {
            assert_eq!(ring.append(&[(seq, &small)]).unwrap(), 1);
        }
        ring.release(15);
        let big = vec![9u8; 2 * BLOCK];
        // Head is block 15: one block left at the end, the entry needs 3 → goes to block 0.
        assert_eq!(ring.append(&[(16, &big)]).unwrap(), 1);
        let scan = scan_file(&path).unwrap();
        let e = scan.entries.iter().find(|e| e.seq == 16).unwrap();
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn torn_and_corrupt_entries_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ring) = ring_in(dir.path(), 16);
        let p = vec![5u8; 1000];
        for seq in 1..=4 {
            ring.append(&[(seq, &p)]).unwrap();
        }
        drop(ring);
        let mut data = std::fs::read(&path).unwrap();
        // Flip a payload byte of entry 2 (block 1) and zero the tail of entry 3 (a torn write).
        data[BLOCK + ENTRY_HEADER + 10] ^= 0xFF;
        for b in &mut data[2 * BLOCK + 500..2 * BLOCK + 1020] {
            *b = 0;
        }
        let scan = scan_bytes(&data);
        let seqs: Vec<u64> = scan.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 4]);
        assert_eq!(scan.corrupt, 2);
    }

    #[test]
    fn huge_length_field_is_corrupt_not_a_panic() {
        let mut data = vec![0u8; MIN_RING_BYTES as usize];
        data[..4].copy_from_slice(&MAGIC.to_le_bytes());
        data[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let scan = scan_bytes(&data);
        assert!(scan.entries.is_empty());
        assert_eq!(scan.corrupt, 1);
    }

    #[test]
    fn reopen_protects_uncommitted_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ring) = ring_in(dir.path(), 16);
        let p = vec![3u8; 3000];
        for seq in 1..=3 {
            ring.append(&[(seq, &p)]).unwrap();
        }
        drop(ring);
        let scan = scan_file(&path).unwrap();
        let uncommitted: Vec<RingEntry> = scan.entries.into_iter().filter(|e| e.seq > 1).collect();
        let mut ring = Ring::open(&path, &uncommitted).unwrap();
        assert_eq!(ring.used_blocks(), 2);
        ring.append(&[(4, &p)]).unwrap();
        let scan = scan_file(&path).unwrap();
        let e4 = scan.entries.iter().find(|e| e.seq == 4).unwrap();
        assert_eq!(
            e4.offset,
            3 * BLOCK as u64,
            "written after the newest uncommitted entry"
        );
        assert!(scan.entries.iter().any(|e| e.seq == 2));
    }
}
