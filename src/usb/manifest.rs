//! What an export says about itself: the span of the records copied (first and last call,
//! count), the folder's name from the box name and the PBX-local dates, and `MANIFEST.txt`
//! (readable lines, then `sha256sum -c` lines). Pure: no file is touched here.

use super::export::{ExportOptions, ExportedFile, MANIFEST_FILE};
use super::source::GapInfo;
use crate::config::UsbMode;
use crate::record::CallRecord;

/// Time span and count of the exported records.
#[derive(Debug, Clone, Default)]
pub(super) struct Span {
    pub(super) count: u64,
    pub(super) first_utc: i64,
    pub(super) last_utc: i64,
    pub(super) first: Option<CallRecord>,
    pub(super) last: Option<CallRecord>,
}

/// The instant a record is ordered by: its start, or its arrival when the start did not parse.
pub(super) fn instant(r: &CallRecord) -> i64 {
    r.start.utc.unwrap_or(r.received_utc)
}

impl Span {
    pub(super) fn add(&mut self, r: &CallRecord) {
        let t = instant(r);
        if self.count == 0 || t < self.first_utc {
            self.first_utc = t;
            self.first = Some(r.clone());
        }
        if self.count == 0 || t > self.last_utc {
            self.last_utc = t;
            self.last = Some(r.clone());
        }
        self.count += 1;
    }
}

/// PBX-local `YYYY-MM-DD` of a record's start; the UTC date of its arrival when the start did
/// not parse.
pub(super) fn local_date(r: &CallRecord) -> String {
    if r.start.utc.is_some() {
        let l = r.start.local();
        if let Some(d) = l.get(..10) {
            if is_date(d) {
                return d.to_owned();
            }
        }
    }
    utc_text(r.received_utc)
        .get(..10)
        .unwrap_or("0000-00-00")
        .to_owned()
}

fn is_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// `2026-11-22T08:30:00Z`.
pub(super) fn utc_text(t: i64) -> String {
    match jiff::Timestamp::from_second(t) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("@{t}"),
    }
}

/// `<box>_<from>_<to>`, with characters that FAT, exFAT or a shell would trip on replaced by `_`.
pub fn folder_name(box_name: &str, first_date: &str, last_date: &str) -> String {
    let clean: String = box_name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    let clean = if clean.is_empty() { "cdrbox" } else { clean };
    format!("{clean}_{first_date}_{last_date}")
}

pub(super) fn placeholder(name: &str, bytes: u64) -> ExportedFile {
    ExportedFile {
        name: name.into(),
        bytes,
        sha256: "0".repeat(64),
    }
}

pub(super) struct ManifestData<'a> {
    pub(super) opts: &'a ExportOptions,
    pub(super) after: i64,
    pub(super) upto: i64,
    pub(super) span: &'a Span,
    pub(super) gaps: &'a [GapInfo],
    pub(super) files: &'a [ExportedFile],
}

/// The manifest text. The last lines are in `sha256sum` format, so `sha256sum -c MANIFEST.txt`
/// checks the copy on any Linux or macOS machine (it warns about the other lines, and passes).
pub(super) fn manifest_text(m: &ManifestData) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let t = |r: &Option<CallRecord>| {
        r.as_ref()
            .map(|r| format!("{} (UTC {})", r.start.rfc3339(), utc_text(instant(r))))
            .unwrap_or_else(|| "-".into())
    };
    let _ = writeln!(s, "cdrbox USB export");
    let _ = writeln!(s, "box: {}", m.opts.box_name);
    let _ = writeln!(s, "exported: {}", utc_text(m.opts.now_utc));
    let _ = writeln!(
        s,
        "mode: {}",
        match m.opts.mode {
            UsbMode::New => "new (records not copied before)",
            UsbMode::All => "all (every record in the journal)",
        }
    );
    let _ = writeln!(s, "journal rows: {} to {}", m.after + 1, m.upto);
    let _ = writeln!(s, "records: {}", m.span.count);
    let _ = writeln!(s, "first call: {}", t(&m.span.first));
    let _ = writeln!(s, "last call: {}", t(&m.span.last));
    // Only open gaps are "may be missing": a filled one was covered by Master.csv or the
    // PBX's database (issue 12).
    let open = m.gaps.iter().filter(|g| g.filled.is_none()).count();
    let _ = writeln!(
        s,
        "open gaps in range: {open}{}",
        if open == 0 {
            ""
        } else {
            " (not filled by an import: calls in these intervals may be missing)"
        }
    );
    let _ = writeln!(s, "filled gaps in range: {}", m.gaps.len() - open);
    for g in m.gaps {
        let state = match &g.filled {
            None => "open".to_owned(),
            Some((from, n)) => format!("filled from {from}, {n} records added"),
        };
        let _ = writeln!(
            s,
            "gap: {} from {} to {} ({state})",
            g.pbx,
            utc_text(g.from_utc),
            g.to_utc
                .map(utc_text)
                .unwrap_or_else(|| "still down".into())
        );
    }
    let _ = writeln!(s, "csv profile: {}", m.opts.profile);
    for f in m.files {
        let _ = writeln!(
            s,
            "file: {} {} bytes, {} records",
            f.name, f.bytes, m.span.count
        );
    }
    let _ = writeln!(s, "SHA-256 (check with: sha256sum -c {MANIFEST_FILE}):");
    for f in m.files {
        let _ = writeln!(s, "{}  {}", f.sha256, f.name);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        assert_eq!(
            folder_name("office", "2026-11-20", "2026-11-22"),
            "office_2026-11-20_2026-11-22"
        );
        assert_eq!(
            folder_name("a/b:c*d", "2026-01-01", "2026-01-01"),
            "a_b_c_d_2026-01-01_2026-01-01"
        );
        assert_eq!(folder_name("..", "x", "y"), "cdrbox_x_y");
        assert_eq!(folder_name("Офис 1", "x", "y"), "Офис_1_x_y");
    }

    #[test]
    fn dates() {
        assert!(is_date("2026-11-22"));
        assert!(!is_date("2026/11/22"));
        assert!(!is_date("garbage!!!"));
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
    }
}
