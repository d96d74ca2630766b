//! Storing imported records once beside what the journal already holds: the journal-facing
//! half of an import (Master.csv from the CLI or the web, rows pulled from the CDR database).
//! Blocking (journal reads and acks): call it from a thread, never from the AMI task.
//!
//! "Already present" is decided by the match key ([`crate::record::match_key`]), counting
//! multiplicity (a record without a UniqueID — Master.csv with cdr_csv's default
//! `loguniqueid = no` — is matched on every other field): an import that brings n records with one key where the journal held m stores
//! the occurrences m+1 … n, the k-th under [`occurrence_identity`] so that the journal's UNIQUE
//! identity still refuses a repeat (two imports of the same file at once). The journal's
//! records are counted per chunk of the import, in the chunk's start-time range (the journal's
//! `start_utc` index), after a flush so records the AMI link delivered a moment ago count too.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::filter::{Filter, Sort};
use crate::journal::{Ack, Coverage, JournalError, JournalHandle, JournalReader};
use crate::record::{match_key, occurrence_identity, CallRecord, Origin};

use super::ImportReport;

/// How long one chunk may wait for the journal to make its records durable.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(120);

/// Records per chunk: bounds memory on a Pi whatever the file's size.
pub const CHUNK_RECORDS: usize = 2000;

/// An import in progress for one PBX.
pub struct Store<'a> {
    journal: &'a JournalHandle,
    reader: JournalReader,
    pbx: String,
    /// Occurrences of each match key read so far in this import.
    seen: HashMap<[u8; 16], u64>,
    /// Records this import stored, per match key (so later chunks do not count them as the
    /// journal's own).
    mine: HashMap<[u8; 16], u64>,
    pending: Vec<CallRecord>,
    pub report: ImportReport,
    /// Start of the earliest and end of the latest record read (UTC), for the gap ledger.
    pub span: Option<(i64, i64)>,
    /// End (or, when unknown, start) of every record this import stored, UTC.
    pub stored_at: Vec<i64>,
}

/// When a record's call ended, as far as it is known (the database has no end time).
pub fn end_utc(r: &CallRecord) -> Option<i64> {
    r.end
        .utc
        .or_else(|| r.start.utc.map(|s| s.saturating_add(r.duration.max(0))))
}

/// The match key of `r` with its UniqueID left out.
fn bare_key(r: &CallRecord) -> [u8; 16] {
    let mut b = r.clone();
    b.unique_id.clear();
    match_key(&b)
}

impl<'a> Store<'a> {
    pub fn new(journal: &'a JournalHandle, pbx: &str) -> Result<Store<'a>, JournalError> {
        Ok(Store {
            journal,
            reader: journal.reader()?,
            pbx: pbx.to_owned(),
            seen: HashMap::new(),
            mine: HashMap::new(),
            pending: Vec::new(),
            report: ImportReport::default(),
            span: None,
            stored_at: Vec::new(),
        })
    }

    /// Adds one record read from the source (stored in chunks).
    pub fn add(&mut self, r: CallRecord) -> Result<(), JournalError> {
        if let (Some(s), Some(e)) = (r.start.utc, end_utc(&r)) {
            self.span = Some(match self.span {
                None => (s, e),
                Some((a, b)) => (a.min(s), b.max(e)),
            });
        }
        self.pending.push(r);
        if self.pending.len() >= CHUNK_RECORDS {
            self.store_chunk()?;
        }
        Ok(())
    }

    fn store_chunk(&mut self) -> Result<(), JournalError> {
        let chunk = std::mem::take(&mut self.pending);
        if chunk.is_empty() {
            return Ok(());
        }
        self.journal.flush()?;
        let keys: Vec<[u8; 16]> = chunk.iter().map(match_key).collect();
        let wanted: HashSet<[u8; 16]> = keys.iter().copied().collect();
        // cdr_csv's default is loguniqueid=no: a line without a UniqueID is the stored record
        // that agrees on every other field, and a stored record without one (imported from
        // such a file) is the twin of a line that has one. `bare` is a record's key with its
        // UniqueID left out (for a line that has one; a line without one is its own bare key).
        let bare: Vec<Option<[u8; 16]>> = chunk
            .iter()
            .map(|r| (!r.unique_id.is_empty()).then(|| bare_key(r)))
            .collect();
        let wanted_bare: HashSet<[u8; 16]> = bare.iter().flatten().copied().collect();
        let lines_without_uid = chunk.iter().any(|r| r.unique_id.is_empty());
        let mut held: HashMap<[u8; 16], u64> = HashMap::new();
        let mut held_without_uid: HashMap<[u8; 16], u64> = HashMap::new();
        let starts = chunk.iter().filter_map(|r| r.start.utc);
        if let (Some(lo), Some(hi)) = (starts.clone().min(), starts.max()) {
            // The twin has the same start wall clock; an hour either side covers any doubt
            // about which instant a wall clock in a DST fold meant.
            let f = Filter {
                from_utc: Some(lo - 3600),
                to_utc: Some(hi + 3601),
                pbx: vec![self.pbx.clone()],
                ..Filter::default()
            };
            self.reader.for_each(&f, Sort::StartAsc, |mut r| {
                let k = match_key(&r);
                if wanted.contains(&k) {
                    *held.entry(k).or_default() += 1;
                }
                if r.unique_id.is_empty() {
                    if wanted_bare.contains(&k) {
                        *held_without_uid.entry(k).or_default() += 1;
                    }
                } else if lines_without_uid {
                    r.unique_id.clear();
                    let kb = match_key(&r);
                    if kb != k && wanted.contains(&kb) {
                        *held.entry(kb).or_default() += 1;
                    }
                }
                Ok::<(), JournalError>(())
            })?;
        }
        let mut to_store = Vec::new();
        let mut to_store_keys = Vec::new();
        for ((mut r, k), b) in chunk.into_iter().zip(keys).zip(bare) {
            let occurrence = {
                let n = self.seen.entry(k).or_default();
                *n += 1;
                *n
            };
            let without_uid = b.and_then(|b| held_without_uid.get(&b)).copied();
            let theirs = (held.get(&k).copied().unwrap_or(0) + without_uid.unwrap_or(0))
                .saturating_sub(self.mine.get(&k).copied().unwrap_or(0));
            if occurrence <= theirs {
                self.report.already_present += 1;
                continue;
            }
            r.identity = occurrence_identity(&r.identity, occurrence);
            to_store_keys.push((k, end_utc(&r).or(r.start.utc)));
            to_store.push(r);
        }
        let acks = self.journal.record_batch(to_store, CHUNK_TIMEOUT)?;
        for (ack, (k, at)) in acks.into_iter().zip(to_store_keys) {
            match ack {
                Ack::Durable { .. } => {
                    self.report.new += 1;
                    *self.mine.entry(k).or_default() += 1;
                    if let Some(t) = at {
                        self.stored_at.push(t);
                    }
                }
                // The same identity arrived meanwhile (another import of the same lines).
                Ack::Duplicate => self.report.already_present += 1,
            }
        }
        Ok(())
    }

    /// After [`finish`](Self::finish): tells the gap ledger that every call that ended in
    /// `[from_utc, to_utc]` is now stored (from `origin`), so the gaps inside are filled; the
    /// report lists them.
    pub fn cover(
        &mut self,
        origin: Origin,
        from_utc: i64,
        to_utc: i64,
    ) -> Result<(), JournalError> {
        let filled = self.journal.fill_gaps(Coverage {
            pbx: self.pbx.clone(),
            origin,
            from_utc,
            to_utc,
            stored_at: std::mem::take(&mut self.stored_at),
        })?;
        self.report.gaps_filled.extend(filled);
        Ok(())
    }

    /// Stores what is left and commits, so exports see the records at once.
    pub fn finish(&mut self) -> Result<(), JournalError> {
        self.store_chunk()?;
        self.journal.flush()
    }
}
