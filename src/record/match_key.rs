//! The match key: which stored record a CDR from another source is, whichever way it reached
//! the box — AMI (`cdr_manager`), Asterisk's Master.csv (`cdr_csv`) or FreePBX's CDR database
//! (`cdr_adaptive_odbc` into `asteriskcdrdb.cdr`). It sits beside the identity
//! ([`compute_identity`](super::compute_identity), the exactly-once key of one source and the
//! uplink's primary key), which it does not replace. Pure code; spec: issue 12 §3.
//!
//! # The matching rule
//!
//! Two records are the same CDR when they come from the same configured PBX and agree on
//! every field that all three sources carry, after the same normalisation:
//!
//! | field | AMI | Master.csv | database | compared as |
//! |---|---|---|---|---|
//! | UniqueID | `UniqueID` | column 17 (`loguniqueid=yes`) | `uniqueid` | first 32 bytes (FreePBX's `varchar(32)`) |
//! | Source … LastData (8 texts) | same names | columns 2–9 | `src` … `lastdata` | first 80 bytes (`varchar(80)`; Asterisk keeps ≤ 79) |
//! | StartTime | PBX wall clock | column 10 (GMT when `usegmtime=yes`: converted to the PBX zone on import) | `calldate` (the **start**) | `YYYY-MM-DD HH:MM:SS` in the PBX's zone |
//! | Duration, BillableSeconds | decimal | columns 13, 14 | `duration`, `billsec` | integers |
//! | Disposition | `NO ANSWER` … | column 15 | `disposition` (text, or an `AST_CDR_*` number) | the text `ast_cdr_disp2str` gives |
//! | AMAFlags | `DOCUMENTATION` … | column 16 | `amaflags` (FreePBX: `int`, 3) | the text `ast_channel_amaflags2string` gives |
//! | AccountCode | `AccountCode` | column 1 | `accountcode` | first 20 bytes (`varchar(20)`) |
//! | UserField | `UserField` | column 18 (`loguserfield=yes`) | `userfield` | first 255 bytes |
//!
//! Texts are the record's decoded values (UTF-8, or the PBX's `charset` for legacy bytes: both
//! sides of a match are decoded with the same setting) with trailing spaces removed, cut to the
//! narrowest column FreePBX has used for the field, in bytes: a database that cut a value to N
//! characters kept at least N bytes, so both sides agree on the first N.
//!
//! Left out on purpose, because some source lacks them or writes them differently:
//! `AnswerTime` and `EndTime` (the database has only `calldate`; `duration` and `billsec` carry
//! the same facts), `[mappings]` custom fields (AMI only), the database's FreePBX extras
//! (`did`, `recordingfile`, `cnum`, …), `LinkedID`, `PeerAccount` and `Sequence` (AMI only when
//! mapped, Master.csv only with `newcdrcolumns=yes`; Master.csv without it must still match),
//! and the AMI envelope (`Timestamp`, `SystemName`).
//!
//! Legitimately distinct CDRs of one call (parallel dial, queue members, transfer legs, the
//! `Hangup` leftover after a failed `Dial`) differ in DestinationChannel, LastApplication,
//! LastData or StartTime, so their match keys differ. CDRs that agree on all of the above are
//! told apart by counting: an import that brings n records with one match key where the journal
//! holds m stores n − m of them, the k-th under [`occurrence_identity`], so a repeated import
//! stores nothing and two identical Master.csv lines stay two rows.

use sha2::{Digest, Sha256};

use super::{wall_clock_key, CallRecord};

/// How one field of the match key is normalised.
#[derive(Clone, Copy)]
enum Kind {
    /// Raw bytes, cut to this many, trailing spaces removed.
    Text(usize),
    /// `YYYY-MM-DD HH:MM:SS`, canonical when it parses.
    Time,
    /// `ast_cdr_disp2str`'s text; a number is an `AST_CDR_*` value.
    Disposition,
    /// `ast_channel_amaflags2string`'s text; a number is an `ama_flags` value.
    AmaFlags,
}

/// The text Asterisk writes for an `AST_CDR_*` disposition number (`ast_cdr_disp2str`).
pub fn disposition_name(n: i64) -> &'static str {
    match n {
        0 | 1 => "NO ANSWER",
        2 => "FAILED",
        4 => "BUSY",
        8 => "ANSWERED",
        16 => "CONGESTION",
        32 => "CANCEL",
        _ => "UNKNOWN",
    }
}

/// The text Asterisk writes for an `ama_flags` number (`ast_channel_amaflags2string`).
pub fn ama_flags_name(n: i64) -> &'static str {
    match n {
        1 => "OMIT",
        2 => "BILLING",
        3 => "DOCUMENTATION",
        _ => "Unknown",
    }
}

fn trim_end_spaces(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b' '] = b {
        b = rest;
    }
    b
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(trim_ascii(b)).ok()?.parse().ok()
}

/// The normalised bytes of one field.
fn normalise(kind: Kind, v: &[u8]) -> Vec<u8> {
    match kind {
        Kind::Text(width) => trim_end_spaces(&v[..v.len().min(width)]).to_vec(),
        Kind::Time => {
            let t = trim_ascii(v);
            match std::str::from_utf8(t)
                .ok()
                .and_then(super::parse_wall_clock)
            {
                Some(dt) => dt.strftime("%Y-%m-%d %H:%M:%S").to_string().into_bytes(),
                None => t.to_vec(),
            }
        }
        Kind::Disposition => match parse_int(v) {
            Some(n) => disposition_name(n).as_bytes().to_vec(),
            None => trim_end_spaces(trim_ascii(v)).to_vec(),
        },
        Kind::AmaFlags => match parse_int(v) {
            Some(n) => ama_flags_name(n).as_bytes().to_vec(),
            None => trim_end_spaces(trim_ascii(v)).to_vec(),
        },
    }
}

fn part(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_le_bytes());
    h.update(b);
}

/// The match key (16 bytes) of a record. See the module docs.
pub fn match_key(r: &CallRecord) -> [u8; 16] {
    let t = |s: &str, w: usize| normalise(Kind::Text(w), s.as_bytes());
    let start = normalise(Kind::Time, r.start.raw.as_bytes());
    let parts: [Vec<u8>; 16] = [
        t(&r.unique_id, 32),
        t(&r.source, 80),
        t(&r.destination, 80),
        t(&r.destination_context, 80),
        t(&r.caller_id, 80),
        t(&r.channel, 80),
        t(&r.destination_channel, 80),
        t(&r.last_application, 80),
        t(&r.last_data, 80),
        start.clone(),
        r.duration.to_string().into_bytes(),
        r.billable_seconds.to_string().into_bytes(),
        normalise(Kind::Disposition, r.disposition.as_str().as_bytes()),
        normalise(Kind::AmaFlags, r.ama_flags.as_bytes()),
        t(&r.account_code, 20),
        t(&r.user_field, 255),
    ];
    let mut h = Sha256::new();
    part(&mut h, b"cdrbox-match-key-v1");
    part(&mut h, r.pbx.as_bytes());
    for p in &parts {
        part(&mut h, p);
    }
    finish(h, &start)
}

/// The identity of the `k`-th (1-based) of several records an import brings with one match
/// key: the record's own identity for the first, a deterministic variant for the others, so
/// a repeated import maps each occurrence to the same identity again.
pub fn occurrence_identity(identity: &[u8; 16], k: u64) -> [u8; 16] {
    if k <= 1 {
        return *identity;
    }
    let mut h = Sha256::new();
    part(&mut h, b"cdrbox-identity-v1:occurrence");
    part(&mut h, identity);
    part(&mut h, k.to_string().as_bytes());
    let mut out = finish(h, b"");
    // Keep the time-ordered prefix of the original.
    out[..4].copy_from_slice(&identity[..4]);
    out
}

fn finish(h: Sha256, start: &[u8]) -> [u8; 16] {
    let digest = h.finalize();
    // Time-ordered like the identity (the first 4 bytes are the StartTime wall clock), so the
    // journal's index on it grows at its tail and a commit dirties few pages.
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&wall_clock_key(start).to_be_bytes());
    out[4..].copy_from_slice(&digest[..12]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{PbxContext, DEFAULT_TRUNK_PATTERN};

    fn ctx(name: &str) -> PbxContext {
        PbxContext::new(
            name,
            "Europe/Moscow",
            "windows-1251",
            &[DEFAULT_TRUNK_PATTERN],
        )
        .unwrap()
    }

    const BASE: [(&str, &str); 18] = [
        ("AccountCode", ""),
        ("Source", "1001"),
        ("Destination", "2001"),
        ("DestinationContext", "internal"),
        ("CallerID", "\"Alice Smith\" <1001>"),
        ("Channel", "Local/2001@internal-00000000;2"),
        ("DestinationChannel", "Local/2001@sim-answer-00000001;1"),
        ("LastApplication", "Dial"),
        ("LastData", "Local/2001@sim-answer,20"),
        ("StartTime", "2026-11-22 10:07:06"),
        ("AnswerTime", "2026-11-22 10:07:07"),
        ("EndTime", "2026-11-22 10:07:10"),
        ("Duration", "4"),
        ("BillableSeconds", "3"),
        ("Disposition", "ANSWERED"),
        ("AMAFlags", "DOCUMENTATION"),
        ("UniqueID", "1795331226.1"),
        ("UserField", ""),
    ];

    /// The match key of BASE with `over` replacing (or, when absent, adding) fields and
    /// `drop` left out.
    fn key(pbx: &str, over: &[(&str, &str)], drop: &[&str]) -> [u8; 16] {
        let mut f: Vec<(&str, &str)> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| !drop.contains(k) && !over.iter().any(|(o, _)| o == k))
            .collect();
        f.extend_from_slice(over);
        let raw: Vec<(&[u8], &[u8])> = f
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        match_key(&CallRecord::from_fields(&raw, &ctx(pbx), 1))
    }

    #[test]
    fn what_a_database_row_or_csv_line_differs_in_does_not_matter() {
        let a = key("pbx", &[], &[]);
        assert_eq!(
            key("pbx", &[], &["AnswerTime", "EndTime"]),
            a,
            "no answer/end in the DB"
        );
        assert_eq!(key("pbx", &[("AMAFlags", "3")], &[]), a);
        assert_eq!(key("pbx", &[("Disposition", "8")], &[]), a);
        assert_eq!(key("pbx", &[("Duration", " 4")], &[]), a);
        assert_eq!(
            key(
                "pbx",
                &[("AccountCode", "ACCOUNT-CODE-0123456789-LONG")],
                &[]
            ),
            key("pbx", &[("AccountCode", "ACCOUNT-CODE-0123456")], &[]),
            "the DB's varchar(20)"
        );
        assert_eq!(
            key("pbx", &[("UserField", "x  ")], &[]),
            key("pbx", &[("UserField", "x")], &[])
        );
        assert_eq!(
            key(
                "pbx",
                &[
                    ("Department", "Sales"),
                    ("Sequence", "7"),
                    ("LinkedID", "1.1")
                ],
                &[]
            ),
            a,
            "mappings, Sequence and LinkedID are not compared"
        );
    }

    #[test]
    fn what_tells_cdrs_of_one_call_apart_does() {
        let a = key("pbx", &[], &[]);
        for over in [
            ("DestinationChannel", "Local/202@agents-00000015;1"),
            ("LastApplication", "Hangup"),
            ("LastData", "Local/2001@sim-answer,30"),
            ("StartTime", "2026-11-22 10:07:07"),
            ("Duration", "5"),
            ("BillableSeconds", "0"),
            ("Disposition", "NO ANSWER"),
            ("UniqueID", "1795331226.2"),
            ("CallerID", "\"Bob\" <1001>"),
            ("UserField", "x"),
        ] {
            assert_ne!(key("pbx", &[over], &[]), a, "{over:?}");
        }
        assert_ne!(key("branch", &[], &[]), a, "another PBX");
    }

    #[test]
    fn keys_sort_by_start_and_occurrences_keep_the_prefix() {
        let early = key("pbx", &[], &[]);
        let late = key("pbx", &[("StartTime", "2026-11-22 10:07:07")], &[]);
        assert!(early < late);
        let id = [7u8; 16];
        assert_eq!(occurrence_identity(&id, 1), id);
        let second = occurrence_identity(&id, 2);
        assert_eq!(second[..4], id[..4]);
        assert_ne!(second, id);
        assert_ne!(second, occurrence_identity(&id, 3));
        assert_eq!(second, occurrence_identity(&id, 2), "deterministic");
    }

    #[test]
    fn numbers_map_to_asterisk_names() {
        assert_eq!(disposition_name(8), "ANSWERED");
        assert_eq!(disposition_name(0), "NO ANSWER");
        assert_eq!(disposition_name(16), "CONGESTION");
        assert_eq!(disposition_name(99), "UNKNOWN");
        assert_eq!(ama_flags_name(3), "DOCUMENTATION");
        assert_eq!(ama_flags_name(2), "BILLING");
        assert_eq!(ama_flags_name(0), "Unknown");
    }
}
