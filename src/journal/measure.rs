//! Write-cost measurement for the lead's benchmark: bytes and flushes that reach the block
//! device under the journal, the process's own write bytes, and the journal's counters.
//! Nothing here is timed or asserted in tests; it only reads `/sys` and `/proc`.

use std::path::Path;

use serde::Serialize;

use super::{JournalCounters, JournalHandle};

/// Block-device counters (from `/sys/dev/block/MAJ:MIN/stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStat {
    pub write_ios: u64,
    /// 512-byte sectors written.
    pub sectors_written: u64,
    /// Flush requests (kernel ≥ 5.5; 0 when the field is missing).
    pub flushes: u64,
}

impl DeviceStat {
    /// Parses the `stat` file's whitespace-separated fields.
    pub fn parse(text: &str) -> Option<DeviceStat> {
        let f: Vec<u64> = text
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        if f.len() < 7 {
            return None;
        }
        Some(DeviceStat {
            write_ios: f[4],
            sectors_written: f[6],
            flushes: f.get(15).copied().unwrap_or(0),
        })
    }
}

/// The device stat of the filesystem holding `path` (`None` for tmpfs/overlay and the like).
pub fn device_stat_for(path: &Path) -> Option<DeviceStat> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    DeviceStat::parse(&text)
}

/// `write_bytes` of this process from `/proc/self/io`. Caution: recent kernels account it per
/// dirtied page-cache folio (up to 64 KiB+ for one 4 KiB pwrite into a large folio), so it
/// overstates small writes; device counters on a dedicated filesystem are the real measure.
pub fn process_write_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Everything at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IoSnapshot {
    pub device: Option<DeviceStat>,
    pub process_write_bytes: Option<u64>,
    pub journal: JournalCounters,
}

/// Takes a snapshot for `journal` (call `sync`/`syncfs` first for device numbers to settle).
pub fn snapshot(journal: &JournalHandle) -> IoSnapshot {
    IoSnapshot {
        device: device_stat_for(&journal.paths().dir),
        process_write_bytes: process_write_bytes(),
        journal: journal.counters(),
    }
}

/// Costs per record between two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerRecord {
    pub records: u64,
    pub device_bytes: Option<f64>,
    pub device_flushes: Option<f64>,
    pub process_bytes: Option<f64>,
    pub ring_writes: f64,
    pub ring_bytes: f64,
    pub commits: f64,
}

/// Divides the difference `after - before` by the records accepted in between.
pub fn per_record(before: &IoSnapshot, after: &IoSnapshot) -> PerRecord {
    let records = after.journal.records.saturating_sub(before.journal.records);
    let n = records.max(1) as f64;
    let dev = match (before.device, after.device) {
        (Some(b), Some(a)) => Some((
            a.sectors_written.saturating_sub(b.sectors_written) as f64 * 512.0 / n,
            a.flushes.saturating_sub(b.flushes) as f64 / n,
        )),
        _ => None,
    };
    PerRecord {
        records,
        device_bytes: dev.map(|d| d.0),
        device_flushes: dev.map(|d| d.1),
        process_bytes: match (before.process_write_bytes, after.process_write_bytes) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n),
            _ => None,
        },
        ring_writes: after
            .journal
            .ring_writes
            .saturating_sub(before.journal.ring_writes) as f64
            / n,
        ring_bytes: after
            .journal
            .ring_bytes
            .saturating_sub(before.journal.ring_bytes) as f64
            / n,
        commits: after.journal.commits.saturating_sub(before.journal.commits) as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_diskstat_line() {
        let s = "  100 0 800 10   50 7 4000 90 0 30 100 0 0 0 0 12 5\n";
        let d = DeviceStat::parse(s).unwrap();
        assert_eq!(d.write_ios, 50);
        assert_eq!(d.sectors_written, 4000);
        assert_eq!(d.flushes, 12);
        assert!(DeviceStat::parse("1 2 x").is_none());
    }
}
