//! The journal as the USB export sees it ([`crate::usb::UsbSource`]): reads on their own SQLite
//! connection so an export never makes the writer wait; the watermark goes through the writer
//! when this process owns it, or straight to SQLite when another process does.

use std::io;

use crate::filter::Filter;
use crate::journal::{JournalError, JournalHandle, JournalPaths, JournalReader};
use crate::record::CallRecord;
use crate::usb::{GapInfo, SourceError, UsbSource};

/// Where the watermark is written.
enum Owner {
    /// This process runs the writer: flush pending records first, set the watermark through it.
    Writer(JournalHandle),
    /// Another process (a running `cdrbox run`) owns the writer: committed records only.
    Reader,
}

/// A [`UsbSource`] over the real journal.
pub struct JournalUsbSource {
    paths: JournalPaths,
    owner: Owner,
}

impl JournalUsbSource {
    /// For the running box (the USB watcher).
    pub fn with_writer(handle: JournalHandle) -> Self {
        JournalUsbSource {
            paths: handle.paths().clone(),
            owner: Owner::Writer(handle),
        }
    }

    /// For `cdrbox usb-export` while `cdrbox run` holds the writer.
    pub fn read_only(paths: JournalPaths) -> Self {
        JournalUsbSource {
            paths,
            owner: Owner::Reader,
        }
    }

    fn reader(&self) -> Result<JournalReader, SourceError> {
        JournalReader::open(&self.paths).map_err(journal)
    }
}

fn journal(e: JournalError) -> SourceError {
    SourceError::Journal(e.to_string())
}

/// Why a streamed read stopped.
enum Stop {
    Journal(JournalError),
    Write(io::Error),
    /// Past `upto_id`: the rest is for the next copy.
    Done,
}

impl From<JournalError> for Stop {
    fn from(e: JournalError) -> Self {
        Stop::Journal(e)
    }
}

impl UsbSource for JournalUsbSource {
    fn watermark(&self) -> Result<i64, SourceError> {
        self.reader()?.copy_watermark().map_err(journal)
    }

    fn max_id(&self) -> Result<i64, SourceError> {
        if let Owner::Writer(h) = &self.owner {
            // A stick must get everything that arrived before it was plugged in.
            h.flush().map_err(journal)?;
        }
        self.reader()?.max_id().map_err(journal)
    }

    fn for_each_after(
        &self,
        after_id: i64,
        upto_id: i64,
        each: &mut dyn FnMut(i64, &CallRecord) -> io::Result<()>,
    ) -> Result<(), SourceError> {
        let result = self
            .reader()?
            .for_each_after_id(after_id, &Filter::default(), |id, rec| {
                if id > upto_id {
                    return Err(Stop::Done);
                }
                each(id, &rec).map_err(Stop::Write)
            });
        match result {
            Ok(_) | Err(Stop::Done) => Ok(()),
            Err(Stop::Write(e)) => Err(SourceError::Write(e)),
            Err(Stop::Journal(e)) => Err(journal(e)),
        }
    }

    fn gaps(&self, from_utc: i64, to_utc: i64) -> Vec<GapInfo> {
        let Ok(reader) = self.reader() else {
            return Vec::new();
        };
        reader
            .gaps(Some(from_utc), Some(to_utc))
            .unwrap_or_default()
            .into_iter()
            .map(|g| GapInfo {
                filled: g.fill(),
                pbx: g.pbx,
                from_utc: g.down_utc,
                to_utc: g.up_utc,
            })
            .collect()
    }

    fn set_watermark(&self, id: i64) -> Result<(), SourceError> {
        match &self.owner {
            Owner::Writer(h) => h.set_copy_watermark(id).map_err(journal),
            Owner::Reader => self.reader()?.set_copy_watermark(id).map_err(journal),
        }
    }
}
