//! Filling the gaps: CDRs the PBX kept while the AMI link was down, read back from Asterisk's
//! Master.csv ([`master_csv`]) or FreePBX's CDR database ([`cdr_db`]) and turned into
//! [`CallRecord`]s with the same match key as their AMI twins ([`crate::record::match_key`]), so
//! the journal stores each call once whichever way it came in (issue 12; README "Filling the
//! gaps: Master.csv and FreePBX's CDR database").
//!
//! This module turns source bytes/rows into records and counts what happened; it must not own
//! the journal, a socket or a file handle beyond what its adapter ([`cdr_db`]) is for. Fields a
//! source does not carry stay empty (Master.csv has no `[mappings]` fields; the database has
//! no AnswerTime/EndTime): they are never invented.

pub mod cdr_db;
pub mod master_csv;
pub mod pull;
pub mod puller;
pub mod store;

use serde::Serialize;

use crate::record::{CallRecord, PbxContext};
use master_csv::{CsvLayout, MasterCsvReader};

/// How many rejected lines a report lists one by one (the count is always complete).
pub const MAX_LISTED_REJECTIONS: usize = 200;

/// A line (or row) that did not become a record, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// 1-based line in the file (or row number of a database answer).
    pub line: u64,
    pub reason: String,
}

/// What one import did; the same shape for the CLI, `POST /api/import` and database pulls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Physical lines read (rows for a database pull).
    pub lines: u64,
    /// Records that were new to the journal and are now stored.
    pub new: u64,
    /// Records the journal already held (from AMI, or an earlier import).
    pub already_present: u64,
    /// Lines that are not CDRs.
    pub rejected: u64,
    /// The first [`MAX_LISTED_REJECTIONS`] rejected lines with their reasons.
    pub rejections: Vec<Rejected>,
    /// Gaps of the ledger this import covered, now marked filled, with the records it added
    /// inside each.
    pub gaps_filled: Vec<crate::journal::FilledGap>,
}

impl ImportReport {
    /// Counts a rejected line, listing it while there is room.
    pub fn reject(&mut self, r: Rejected) {
        self.rejected += 1;
        if self.rejections.len() < MAX_LISTED_REJECTIONS {
            self.rejections.push(r);
        }
    }

    /// One line for a terminal or a status page.
    pub fn summary(&self) -> String {
        let gaps = match self.gaps_filled.len() {
            0 => String::new(),
            1 => "; 1 gap filled".to_owned(),
            n => format!("; {n} gaps filled"),
        };
        format!(
            "{} lines read: {} new, {} already present, {} rejected{gaps}",
            self.lines, self.new, self.already_present, self.rejected
        )
    }
}

/// Master.csv bytes in, records out: the pure part of an import (the caller reads the file
/// and stores the records). Feed chunks, then call [`next_row`](Self::next_row) until `None`.
pub struct CsvImport {
    reader: MasterCsvReader,
    layout: CsvLayout,
    ctx: PbxContext,
    received_utc: i64,
}

impl CsvImport {
    /// An import for one PBX: its zone and charset read the file; `received_utc` is the box's
    /// clock at import time (kept as each record's arrival time).
    pub fn new(ctx: PbxContext, layout: CsvLayout, received_utc: i64) -> CsvImport {
        CsvImport {
            reader: MasterCsvReader::new(),
            layout,
            ctx,
            received_utc,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.reader.feed(bytes);
    }

    pub fn finish(&mut self) {
        self.reader.finish();
    }

    /// Physical lines consumed so far.
    pub fn lines_read(&self) -> u64 {
        self.reader.lines_read()
    }

    /// The next record, or the next rejected line; `None` when more input is needed.
    pub fn next_record(&mut self) -> Option<Result<CallRecord, Rejected>> {
        let row = match self.reader.next_row()? {
            Ok(row) => row,
            Err(e) => {
                return Some(Err(Rejected {
                    line: e.line,
                    reason: e.kind.to_string(),
                }))
            }
        };
        Some(match self.layout.fields(&row, &self.ctx.timezone) {
            Ok(fields) => {
                let refs: Vec<(&[u8], &[u8])> = fields
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), v.as_slice()))
                    .collect();
                let mut rec = CallRecord::from_fields(&refs, &self.ctx, self.received_utc);
                rec.raw = row.raw;
                rec.origin = crate::record::Origin::MasterCsv;
                Ok(rec)
            }
            Err(e) => Err(Rejected {
                line: row.line,
                reason: e.to_string(),
            }),
        })
    }
}

/// Reads a whole Master.csv held in memory (tests, small files).
pub fn read_csv(
    bytes: &[u8],
    ctx: &PbxContext,
    layout: CsvLayout,
    received_utc: i64,
) -> (Vec<CallRecord>, ImportReport) {
    let mut imp = CsvImport::new(ctx.clone(), layout, received_utc);
    imp.feed(bytes);
    imp.finish();
    let mut records = Vec::new();
    let mut report = ImportReport::default();
    while let Some(r) = imp.next_record() {
        match r {
            Ok(rec) => records.push(rec),
            Err(rej) => report.reject(rej),
        }
    }
    report.lines = imp.lines_read();
    (records, report)
}

/// One database row as a record: the columns under their `Event: Cdr` names (see
/// [`cdr_db::row_fields`]), `raw` the row's `column=value` lines.
pub fn db_record(
    row: &cdr_db::DbRow,
    ctx: &PbxContext,
    received_utc: i64,
) -> Result<CallRecord, cdr_db::DbRowError> {
    let fields = cdr_db::row_fields(row)?;
    let refs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_slice()))
        .collect();
    let mut rec = CallRecord::from_fields(&refs, ctx, received_utc);
    rec.raw = cdr_db::row_raw(row);
    rec.origin = crate::record::Origin::CdrDb;
    Ok(rec)
}
