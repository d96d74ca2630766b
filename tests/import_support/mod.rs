//! Shared by the import tests: the Moscow PBX of the captures, the golden Master.csv, and the
//! AMI records of the same calls (the `Events: cdr` listener captures, in Master.csv order).
#![allow(dead_code)]

#[path = "../journal_common/mod.rs"]
mod journal_common;

use cdrbox::record::{CallRecord, PbxContext};

pub fn moscow() -> PbxContext {
    cdrbox::journal::testdata::moscow_pbx("pbx1")
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/ami/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Written by Asterisk 22's cdr_csv (loguniqueid, loguserfield, local time) from the captures' calls.
pub fn master_csv() -> Vec<u8> {
    fixture("meta/cdr-csv-Master.csv")
}

/// The capture files Master.csv covers, in the order it was written.
pub const CAPTURES: [&str; 14] = [
    "cdr_answered.bin",
    "cdr_no_answer.bin",
    "cdr_busy.bin",
    "cdr_congestion.bin",
    "cdr_failed.bin",
    "cdr_failed_hangup_cause3.bin",
    "cdr_custom_fields.bin",
    "cdr_unicode_callerid.bin",
    "cdr_queue.bin",
    "cdr_transfer.bin",
    "cdr_simple_answered_both_legs.bin",
    "mixed_session_cdr_only.bin",
    "cdr_answered_timestampevents_systemname.bin",
    "cel_enabled_cdr_answered.bin",
];

/// The raw `Event: Cdr` messages of one capture.
pub fn cdr_events(file: &str) -> Vec<cdrbox::ami::AmiMessage> {
    cdrbox::journal::testdata::cdr_events(&fixture(file))
}

/// Every AMI record of the calls in Master.csv (42).
pub fn ami_records(ctx: &PbxContext) -> Vec<CallRecord> {
    CAPTURES
        .iter()
        .flat_map(|f| cdr_events(f))
        .map(|m| CallRecord::from_event(&m, ctx, 1))
        .collect()
}

/// The `[[pbx]]` lines of the captures' PBX (for a box's config file): its zone and charset.
pub const MOSCOW_PBX_LINES: [&str; 2] =
    ["timezone = \"Europe/Moscow\"", "charset = \"windows-1251\""];

/// How many records carry each match key (a call stored twice counts 2).
pub fn key_counts(records: &[CallRecord]) -> std::collections::HashMap<[u8; 16], usize> {
    let mut m = std::collections::HashMap::new();
    for r in records {
        *m.entry(cdrbox::record::match_key(r)).or_default() += 1;
    }
    m
}

/// Sorted match keys.
pub fn match_keys(records: &[CallRecord]) -> Vec<[u8; 16]> {
    let mut v: Vec<_> = records.iter().map(cdrbox::record::match_key).collect();
    v.sort();
    v
}

/// A journal in `dir/data` with short commit times.
pub fn storage(dir: &std::path::Path) -> cdrbox::config::StorageConfig {
    cdrbox::config::StorageConfig {
        flush_interval: std::time::Duration::from_millis(100),
        ..journal_common::cfg(&dir.join("data"))
    }
}

/// The lines of `b` sorted: a file compared row for row whatever the order.
pub fn sorted_lines(b: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(b)
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}
