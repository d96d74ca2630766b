//! What the USB export needs from the journal ([`UsbSource`]). The real one is
//! `runtime::usb_source`; tests use `usb::memory::MemorySource` (feature `testing`).
//!
//! The export only reads through this trait, on its own thread: it must never make the journal
//! writer wait. An implementation over SQLite should read on its own connection (WAL readers do
//! not block the writer) and must not hold the writer's lock while calling `each`.

use std::io;

use crate::record::CallRecord;

/// A journal problem seen by the export.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The journal could not be read or updated (the text says what and where).
    #[error("{0}")]
    Journal(String),
    /// The callback passed to [`UsbSource::for_each_after`] failed (writing to the stick); the
    /// source stops and hands the error back unchanged.
    #[error("{0}")]
    Write(#[from] io::Error),
}

/// One link-down interval of the gap ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapInfo {
    pub pbx: String,
    /// Link lost (Unix seconds).
    pub from_utc: i64,
    /// Link back (Unix seconds); `None` while it is still down.
    pub to_utc: Option<i64>,
    /// Filled by an import: from where (`master-csv`, `cdr-db`) and the records it added
    /// inside; `None` while open (issue 12).
    pub filled: Option<(String, u64)>,
}

/// The journal, as the USB export sees it. Row ids grow with arrival order and are never reused.
pub trait UsbSource: Send + Sync {
    /// The last row id copied to a stick and verified (0 = none yet).
    fn watermark(&self) -> Result<i64, SourceError>;
    /// The newest committed row id (0 = empty journal). The implementation flushes records still
    /// pending in the ring first, so a stick gets everything that arrived before it was plugged.
    fn max_id(&self) -> Result<i64, SourceError>;
    /// Calls `each(id, record)` for every row with `after_id < id <= upto_id`, in id order,
    /// streaming. When `each` fails, stop and return its error as [`SourceError::Write`].
    fn for_each_after(
        &self,
        after_id: i64,
        upto_id: i64,
        each: &mut dyn FnMut(i64, &CallRecord) -> io::Result<()>,
    ) -> Result<(), SourceError>;
    /// Link-down intervals overlapping `[from_utc, to_utc]`.
    fn gaps(&self, from_utc: i64, to_utc: i64) -> Vec<GapInfo>;
    /// Records that rows up to `id` are safely on a stick. Called only after verification.
    fn set_watermark(&self, id: i64) -> Result<(), SourceError>;
}
