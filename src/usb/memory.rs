//! [`MemorySource`]: an in-memory [`UsbSource`] for tests (feature `testing`; not in the shipped
//! binary, which exports from the journal through `runtime::usb_source`).

use std::io;
use std::sync::Mutex;

use super::source::{GapInfo, SourceError, UsbSource};
use crate::record::CallRecord;

#[derive(Default)]
struct MemoryInner {
    rows: Vec<(i64, CallRecord)>,
    next_id: i64,
    watermark: i64,
    gaps: Vec<GapInfo>,
}

/// An in-memory journal: ids from 1, gaps as pushed. Callbacks run without its lock held, so
/// [`MemorySource::push`] from another thread never waits for an export (like the real one).
#[derive(Default)]
pub struct MemorySource {
    inner: Mutex<MemoryInner>,
}

/// Rows copied out per lock, so a push waits at most for one small clone.
const CHUNK: usize = 256;

impl MemorySource {
    pub fn new() -> MemorySource {
        MemorySource::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic in another thread while holding the lock leaves plain data: keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a record; returns its id.
    pub fn push(&self, r: CallRecord) -> i64 {
        let mut g = self.lock();
        g.next_id += 1;
        let id = g.next_id;
        g.rows.push((id, r));
        id
    }

    /// Adds a gap to the ledger.
    pub fn push_gap(&self, g: GapInfo) {
        self.lock().gaps.push(g);
    }

    /// Drops rows with `id <= upto` (retention), keeping ids of the rest.
    pub fn delete_upto(&self, upto: i64) {
        self.lock().rows.retain(|(id, _)| *id > upto);
    }

    /// Rows currently held.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl UsbSource for MemorySource {
    fn watermark(&self) -> Result<i64, SourceError> {
        Ok(self.lock().watermark)
    }

    fn max_id(&self) -> Result<i64, SourceError> {
        Ok(self.lock().rows.last().map(|(id, _)| *id).unwrap_or(0))
    }

    fn for_each_after(
        &self,
        after_id: i64,
        upto_id: i64,
        each: &mut dyn FnMut(i64, &CallRecord) -> io::Result<()>,
    ) -> Result<(), SourceError> {
        let mut cursor = after_id;
        loop {
            let chunk: Vec<(i64, CallRecord)> = {
                let g = self.lock();
                let start = g.rows.partition_point(|(id, _)| *id <= cursor);
                g.rows[start..]
                    .iter()
                    .take_while(|(id, _)| *id <= upto_id)
                    .take(CHUNK)
                    .cloned()
                    .collect()
            };
            let Some((last, _)) = chunk.last() else {
                return Ok(());
            };
            cursor = *last;
            for (id, r) in &chunk {
                each(*id, r)?;
            }
        }
    }

    fn gaps(&self, from_utc: i64, to_utc: i64) -> Vec<GapInfo> {
        self.lock()
            .gaps
            .iter()
            .filter(|g| g.from_utc <= to_utc && g.to_utc.is_none_or(|t| t >= from_utc))
            .cloned()
            .collect()
    }

    fn set_watermark(&self, id: i64) -> Result<(), SourceError> {
        self.lock().watermark = id;
        Ok(())
    }
}
