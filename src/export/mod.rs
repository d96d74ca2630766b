//! Export writers: records → JSON array, NDJSON or CSV in four profiles. Pure code.
//!
//! Writers stream into any `impl std::io::Write`, one record at a time, so an export of millions
//! of rows uses the same memory as one of ten. They never open files or sockets and never read
//! the journal: callers (web download, CLI, USB copy) feed records and own the destination.
//!
//! CSV profiles:
//! - `standard`: every JSON field as a column in `record::JSON_FIELDS` order, header row,
//!   RFC 4180, UTF-8;
//!   `customFields` is one column holding the JSON object text.
//! - `excel`: for spreadsheets (see [`excel`]): UTF-8 BOM, `;` (or `,`) separators, headers in
//!   words, date-times and `h:mm:ss` durations a spreadsheet reads as such, custom fields as
//!   their own columns, phone numbers shown as typed, and the people behind the source and
//!   destination numbers (resolved by the caller, passed in: [`ExportWriter::with_names`]).
//! - `pbxlogger`: the Advanced PBX Data Logger columns.
//! - `asterisk`: byte-compatible with Asterisk's `cdr_csv` `Master.csv` (`loguniqueid=yes`,
//!   `loguserfield=yes`): no header, strings and dates always quoted, numbers bare, an empty
//!   answer time as an empty unquoted field, `\n` line ends (see `cdr_csv.c` `append_string`).
//!
//! Every CSV profile carries the **formula guard** ([`formula_guard`]; issue 11, finding 7):
//! PBX data is outside input, and a spreadsheet runs a cell like `=HYPERLINK(…)` or
//! `+cmd|' /C calc'!A0` as a formula. The guard is on unless the caller asks for raw cells
//! explicitly ([`ExportWriter::unguarded`]: `?formulaGuard=off` on the web, `--no-formula-guard`
//! on the CLI), e.g. for a billing tool that must read `Master.csv` byte for byte.

pub mod excel;

use std::io::{self, Write};

use crate::record::{
    split_caller_id, CallRecord, CdrTime, JsonCustomFields, JsonRecord, JSON_FIELDS,
};

/// A CSV profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    Standard,
    Excel,
    PbxLogger,
    Asterisk,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::Standard,
        Profile::Excel,
        Profile::PbxLogger,
        Profile::Asterisk,
    ];

    /// The name used in URLs, the CLI and the config (`usb.profile`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::Excel => "excel",
            Profile::PbxLogger => "pbxlogger",
            Profile::Asterisk => "asterisk",
        }
    }

    /// Column names; `None` for `asterisk`, which has no header row. For `excel`, the fixed
    /// columns: one per custom field and "Other fields" follow ([`excel::ExcelColumns`]).
    pub fn header(&self) -> Option<&'static [&'static str]> {
        match self {
            Profile::Standard => Some(&JSON_FIELDS),
            Profile::Excel => Some(&excel::EXCEL_COLUMNS),
            Profile::PbxLogger => Some(&PBXLOGGER_COLUMNS),
            Profile::Asterisk => None,
        }
    }

    /// The cell texts of one record as the default writer puts them, before CSV quoting:
    /// after the formula guard. For `asterisk`, the 18 `Master.csv` values (an unanswered
    /// call's answer time is the empty string). For `excel`, as the first record of a file
    /// (its custom fields are the columns), with no names known.
    pub fn cells(&self, r: &CallRecord) -> Vec<String> {
        match self {
            Profile::Excel => excel::ExcelColumns::of(Some(r)).cells(r, true, &Default::default()),
            _ => self.raw_cells(r).into_iter().map(formula_guard).collect(),
        }
    }

    /// The cell texts without the formula guard (what [`ExportWriter::unguarded`] writes).
    pub fn raw_cells(&self, r: &CallRecord) -> Vec<String> {
        match self {
            Profile::Standard => standard_cells(r),
            Profile::Excel => excel::ExcelColumns::of(Some(r)).cells(r, false, &Default::default()),
            Profile::PbxLogger => pbxlogger_cells(r),
            Profile::Asterisk => asterisk_fields(r).into_iter().map(|(_, s)| s).collect(),
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ExportError::UnknownProfile(s.to_owned()))
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One JSON array of record views.
    Json,
    /// One record view per line.
    Ndjson,
    Csv(Profile),
}

/// A bad format or profile name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("format {0:?} is not supported (allowed: csv, json, ndjson)")]
    UnknownFormat(String),
    #[error("profile {0:?} is not supported (allowed: standard, excel, pbxlogger, asterisk)")]
    UnknownProfile(String),
    #[error("profile {profile:?} applies only to csv, not to {format}")]
    ProfileNotApplicable {
        format: &'static str,
        profile: String,
    },
}

impl Format {
    /// Parses a format name (`csv`, `json`, `ndjson`) and an optional CSV profile (default
    /// `standard`). JSON formats accept no profile other than `standard`.
    pub fn parse(format: &str, profile: Option<&str>) -> Result<Format, ExportError> {
        let profile = profile.map(str::trim).filter(|p| !p.is_empty());
        let json_like = |f: Format, name: &'static str| match profile {
            None => Ok(f),
            Some(p) if p.eq_ignore_ascii_case("standard") => Ok(f),
            Some(p) => Err(ExportError::ProfileNotApplicable {
                format: name,
                profile: p.to_owned(),
            }),
        };
        match format.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv(match profile {
                None => Profile::Standard,
                Some(p) => p.parse()?,
            })),
            "json" => json_like(Format::Json, "json"),
            "ndjson" | "jsonl" => json_like(Format::Ndjson, "ndjson"),
            _ => Err(ExportError::UnknownFormat(format.to_owned())),
        }
    }

    /// The HTTP `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv(_) => "text/csv; charset=utf-8",
        }
    }

    /// The file name extension, without the dot.
    pub fn file_extension(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv(_) => "csv",
        }
    }
}

/// The Advanced PBX Data Logger column names, in its order.
pub const PBXLOGGER_COLUMNS: [&str; 12] = [
    "ACC",
    "DIALED_PHONE",
    "FLAG1",
    "CALLER_PHONE",
    "CALL_TYPE",
    "CALL_TIME",
    "CALL_DURATION_S",
    "CALL_DURATION",
    "TOTAL_DURATION_S",
    "RING_S",
    "RING",
    "FLAG2",
];

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn standard_cells(r: &CallRecord) -> Vec<String> {
    let custom = serde_json::to_string(&JsonCustomFields(&r.custom_fields)).unwrap_or_default();
    vec![
        r.unique_id.clone(),
        r.account_code.clone(),
        r.source.clone(),
        r.destination.clone(),
        r.destination_context.clone(),
        r.caller_id.clone(),
        r.channel.clone(),
        r.destination_channel.clone(),
        r.last_application.clone(),
        r.last_data.clone(),
        r.start.rfc3339(),
        r.answer.as_ref().map(CdrTime::rfc3339).unwrap_or_default(),
        r.end.rfc3339(),
        r.duration.to_string(),
        r.billable_seconds.to_string(),
        r.disposition.as_str().to_owned(),
        r.ama_flags.clone(),
        r.user_field.clone(),
        r.pbx.clone(),
        r.direction.as_str().to_owned(),
        r.ring_seconds.to_string(),
        opt(&r.queue),
        opt(&r.agent),
        opt(&r.linked_id),
        r.sequence.map(|s| s.to_string()).unwrap_or_default(),
        custom,
        r.origin.as_str().to_owned(),
    ]
}

/// The formula guard's rule. A cell is prefixed with one `'` when
/// - its first character is `'` (so the rule can be undone: [`formula_unguard`] drops exactly
///   one leading `'`), a tab, CR or LF; or
/// - its first character after any leading whitespace or control characters (spaces, tabs,
///   no-break and ideographic spaces, …) is a formula sign: `=` `+` `-` `@`, their full-width
///   forms `＝` `＋` `－` `＠`, the small forms `﹦` `﹢` `﹣` `﹫`, or the minus sign `−`.
///
/// Excel and LibreOffice show a cell starting with `'` as text and hide the `'`, so a guarded
/// `+7 916 123-45-67` still reads as the number the PBX sent. (OWASP's rule is the first four
/// signs and tab/CR in the first position only; a leading space or a full-width `＝` passed
/// it, and spreadsheets still evaluate those.)
pub fn needs_formula_guard(cell: &str) -> bool {
    match cell.chars().next() {
        None => false,
        Some('\'' | '\t' | '\r' | '\n') => true,
        Some(_) => matches!(
            cell.trim_start_matches(|c: char| c.is_whitespace() || c.is_control())
                .chars()
                .next(),
            Some(
                '=' | '+' | '-' | '@' | '＝' | '＋' | '－' | '＠' | '﹦' | '﹢' | '﹣' | '﹫' | '−'
            )
        ),
    }
}

/// `cell` with the formula guard applied (see [`needs_formula_guard`]).
pub fn formula_guard(cell: String) -> String {
    if needs_formula_guard(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// Undoes [`formula_guard`]: drops one leading `'` (a reader of our CSV gets the PBX's value).
pub fn formula_unguard(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// A writer for a terminal: control bytes are written as visible escapes (`\x1b`, `\x00`,
/// `\u{9b}`), so text from a PBX cannot move the cursor, retitle the window, ring the bell or
/// rewrite a line with a bare CR. Newlines and tabs pass; CR passes only right before LF (CSV
/// line ends). Valid UTF-8 passes; invalid bytes are shown as `\xNN`. Streams: state between
/// writes is kept, so escapes never depend on where a write was cut.
pub struct TerminalSafe<W: Write> {
    inner: W,
    /// A CR seen at the end of the last write, not yet known to be followed by LF.
    pending_cr: bool,
    /// An incomplete UTF-8 sequence at the end of the last write.
    partial: Vec<u8>,
}

impl<W: Write> TerminalSafe<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            pending_cr: false,
            partial: Vec::new(),
        }
    }

    /// Flushes what is pending (a trailing CR or a cut character, escaped) and gives the
    /// writer back.
    pub fn finish(mut self) -> io::Result<W> {
        if self.pending_cr {
            self.inner.write_all(b"\\r")?;
        }
        for b in std::mem::take(&mut self.partial) {
            write!(self.inner, "\\x{b:02x}")?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn escape(&mut self, buf: &[u8], out: &mut Vec<u8>) {
        let mut bytes = std::mem::take(&mut self.partial);
        bytes.extend_from_slice(buf);
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    out.extend_from_slice(b"\r\n");
                    i += 1;
                    continue;
                }
                out.extend_from_slice(b"\\r");
            }
            match b {
                b'\r' => {
                    self.pending_cr = true;
                    i += 1;
                }
                b'\n' | b'\t' => {
                    out.push(b);
                    i += 1;
                }
                0x00..=0x1f | 0x7f => {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                    i += 1;
                }
                0x20..=0x7e => {
                    out.push(b);
                    i += 1;
                }
                _ => {
                    let len = match b {
                        0xc2..=0xdf => 2,
                        0xe0..=0xef => 3,
                        0xf0..=0xf4 => 4,
                        _ => 0,
                    };
                    if len > 0 && i + len > bytes.len() {
                        // Maybe the rest of the character comes with the next write.
                        self.partial = bytes[i..].to_vec();
                        return;
                    }
                    match std::str::from_utf8(&bytes[i..i + len.max(1)]) {
                        Ok(s) if len > 0 => {
                            let c = s.chars().next().unwrap_or('\u{fffd}');
                            if c.is_control() {
                                // C1 controls (U+0080–U+009F): CSI and friends.
                                out.extend_from_slice(format!("\\u{{{:x}}}", c as u32).as_bytes());
                            } else {
                                out.extend_from_slice(s.as_bytes());
                            }
                            i += len;
                        }
                        _ => {
                            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                            i += 1;
                        }
                    }
                }
            }
        }
    }
}

impl<W: Write> Write for TerminalSafe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 16);
        self.escape(buf, &mut out);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `HH:MM:SS` (hours not wrapped at 24).
pub fn hms(seconds: i64) -> String {
    let s = seconds.max(0);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn pbxlogger_cells(r: &CallRecord) -> Vec<String> {
    vec![
        r.account_code.clone(),
        r.destination.clone(),
        split_caller_id(&r.caller_id).0,
        r.source.clone(),
        r.direction.as_str().to_owned(),
        r.start.local(),
        r.billable_seconds.to_string(),
        hms(r.billable_seconds),
        r.duration.to_string(),
        r.ring_seconds.to_string(),
        hms(r.ring_seconds),
        r.unique_id.clone(),
    ]
}

/// How `cdr_csv` writes a field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CdrCsvKind {
    /// `append_string`: always quoted, `"` doubled.
    Text,
    /// `append_date`: quoted, or empty and unquoted when the time is zero.
    Date,
    /// `append_int`: bare.
    Int,
}

fn asterisk_fields(r: &CallRecord) -> [(CdrCsvKind, String); 18] {
    use CdrCsvKind::*;
    [
        (Text, r.account_code.clone()),
        (Text, r.source.clone()),
        (Text, r.destination.clone()),
        (Text, r.destination_context.clone()),
        (Text, r.caller_id.clone()),
        (Text, r.channel.clone()),
        (Text, r.destination_channel.clone()),
        (Text, r.last_application.clone()),
        (Text, r.last_data.clone()),
        (Date, r.start.local()),
        (
            Date,
            r.answer.as_ref().map(CdrTime::local).unwrap_or_default(),
        ),
        (Date, r.end.local()),
        (Int, r.duration.to_string()),
        (Int, r.billable_seconds.to_string()),
        (Text, r.disposition.as_str().to_owned()),
        (Text, r.ama_flags.clone()),
        (Text, r.unique_id.clone()),
        (Text, r.user_field.clone()),
    ]
}

fn write_asterisk_line<W: Write>(w: &mut W, r: &CallRecord, guard: bool) -> io::Result<()> {
    let mut line = Vec::with_capacity(512);
    for (i, (kind, value)) in asterisk_fields(r).into_iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        if kind == CdrCsvKind::Int || (kind == CdrCsvKind::Date && value.is_empty()) {
            line.extend_from_slice(value.as_bytes());
            continue;
        }
        let value = if guard { formula_guard(value) } else { value };
        line.push(b'"');
        for b in value.bytes() {
            if b == b'"' {
                line.push(b'"');
            }
            line.push(b);
        }
        line.push(b'"');
    }
    line.push(b'\n');
    w.write_all(&line)
}

enum Inner<W: Write> {
    Json {
        w: W,
        first: bool,
    },
    Ndjson(W),
    // Boxed: csv::Writer carries an 8 KiB buffer inline.
    Csv {
        w: Box<csv::Writer<W>>,
        profile: Profile,
    },
    Asterisk(W),
    Excel(excel::ExcelWriter<W>),
}

/// Streams records in one format into `W`. Call [`ExportWriter::finish`] at the end: it closes
/// the JSON array and flushes buffered CSV.
pub struct ExportWriter<W: Write> {
    format: Format,
    inner: Inner<W>,
    records: u64,
    /// The formula guard on CSV cells (on unless asked for raw cells).
    guard: bool,
}

pub(crate) fn csv_err(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

impl<W: Write> ExportWriter<W> {
    /// Starts an export: writes what comes before the first record (`[`, BOM, header row).
    /// CSV cells get the formula guard.
    pub fn new(format: Format, w: W) -> io::Result<ExportWriter<W>> {
        Self::with_guard(format, true, w)
    }

    /// Like [`ExportWriter::new`], CSV cells exactly as the PBX sent them (no formula guard):
    /// only for a caller who chose so explicitly.
    pub fn unguarded(format: Format, w: W) -> io::Result<ExportWriter<W>> {
        Self::with_guard(format, false, w)
    }

    /// [`ExportWriter::new`] (`guard`) or [`ExportWriter::unguarded`] (`!guard`).
    pub fn with_guard(format: Format, guard: bool, w: W) -> io::Result<ExportWriter<W>> {
        Self::with_separator(format, guard, None, w)
    }

    /// [`ExportWriter::with_guard`] with the CSV separator chosen (`b';'` or `b','`; `None`:
    /// the profile's own — `;` for `excel`, `,` for the others). `asterisk` is always `,`.
    pub fn with_separator(
        format: Format,
        guard: bool,
        separator: Option<u8>,
        mut w: W,
    ) -> io::Result<ExportWriter<W>> {
        let inner = match format {
            Format::Json => {
                w.write_all(b"[")?;
                Inner::Json { w, first: true }
            }
            Format::Ndjson => Inner::Ndjson(w),
            Format::Csv(Profile::Asterisk) => Inner::Asterisk(w),
            // Excel in most non-English locales splits on `;` (the decimal comma): the default.
            Format::Csv(Profile::Excel) => Inner::Excel(excel::ExcelWriter::new(
                w,
                separator.unwrap_or(b';'),
                guard,
            )?),
            Format::Csv(profile) => {
                let mut b = csv::WriterBuilder::new();
                b.terminator(csv::Terminator::CRLF);
                b.delimiter(separator.unwrap_or(b','));
                let mut cw = b.from_writer(w);
                if let Some(h) = profile.header() {
                    cw.write_record(h).map_err(csv_err)?;
                }
                Inner::Csv {
                    w: Box::new(cw),
                    profile,
                }
            }
        };
        Ok(ExportWriter {
            format,
            inner,
            records: 0,
            guard,
        })
    }

    /// The people behind the numbers, for the profiles that show names (`excel`: "Source
    /// name", "Destination name"); the others ignore them, so their columns never change.
    pub fn with_names(mut self, names: crate::names::Names) -> Self {
        if let Inner::Excel(x) = &mut self.inner {
            x.set_names(names);
        }
        self
    }

    /// Appends one record.
    pub fn write(&mut self, r: &CallRecord) -> io::Result<()> {
        match &mut self.inner {
            Inner::Json { w, first } => {
                w.write_all(if *first { b"\n" } else { b",\n" })?;
                *first = false;
                serde_json::to_writer(&mut *w, &JsonRecord(r)).map_err(io::Error::from)?;
            }
            Inner::Ndjson(w) => {
                serde_json::to_writer(&mut *w, &JsonRecord(r)).map_err(io::Error::from)?;
                w.write_all(b"\n")?;
            }
            Inner::Csv { w, profile } => {
                let cells = if self.guard {
                    profile.cells(r)
                } else {
                    profile.raw_cells(r)
                };
                w.write_record(cells).map_err(csv_err)?
            }
            Inner::Asterisk(w) => write_asterisk_line(w, r, self.guard)?,
            Inner::Excel(x) => x.write(r)?,
        }
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Ends the export (closes the JSON array, flushes) and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        let mut w = match self.inner {
            Inner::Json { mut w, first } => {
                w.write_all(if first { b"]\n" } else { b"\n]\n" })?;
                w
            }
            Inner::Ndjson(w) | Inner::Asterisk(w) => w,
            Inner::Excel(x) => x.finish()?,
            Inner::Csv { w, .. } => w
                .into_inner()
                .map_err(|e| io::Error::new(e.error().kind(), e.error().to_string()))?,
        };
        w.flush()?;
        Ok(w)
    }

    /// See [`Format::content_type`].
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }

    /// See [`Format::file_extension`].
    pub fn file_extension(&self) -> &'static str {
        self.format.file_extension()
    }
}

/// Writes all `records` in `format` and returns the writer (a convenience for small exports and
/// tests; large exports call [`ExportWriter::write`] as rows arrive).
pub fn write_all<'a, W: Write>(
    format: Format,
    w: W,
    records: impl IntoIterator<Item = &'a CallRecord>,
) -> io::Result<W> {
    let mut ex = ExportWriter::new(format, w)?;
    for r in records {
        ex.write(r)?;
    }
    ex.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parse_table() {
        let ok = [
            ("csv", None, Format::Csv(Profile::Standard)),
            ("CSV", Some("Excel"), Format::Csv(Profile::Excel)),
            ("csv", Some("pbxlogger"), Format::Csv(Profile::PbxLogger)),
            ("csv", Some("asterisk"), Format::Csv(Profile::Asterisk)),
            ("csv", Some(""), Format::Csv(Profile::Standard)),
            ("json", None, Format::Json),
            ("json", Some("standard"), Format::Json),
            ("ndjson", None, Format::Ndjson),
        ];
        for (f, p, want) in ok {
            assert_eq!(Format::parse(f, p).unwrap(), want, "{f} {p:?}");
        }
        let bad = [
            (
                "xlsx",
                None,
                "format \"xlsx\" is not supported (allowed: csv, json, ndjson)",
            ),
            (
                "csv",
                Some("exel"),
                "profile \"exel\" is not supported (allowed: standard, excel, pbxlogger, asterisk)",
            ),
            (
                "json",
                Some("excel"),
                "profile \"excel\" applies only to csv, not to json",
            ),
        ];
        for (f, p, msg) in bad {
            assert_eq!(Format::parse(f, p).unwrap_err().to_string(), msg);
        }
    }

    #[test]
    fn guard_and_hms_table() {
        let cases = [
            ("=1+1", "'=1+1"),
            ("+79161234567", "'+79161234567"),
            ("-5", "'-5"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("\nx", "'\nx"),
            // Issue 11, finding 7: what OWASP's first-character rule let through.
            (" =1+1", "' =1+1"),
            ("\u{a0}\u{3000}+1", "'\u{a0}\u{3000}+1"),
            ("\u{1}=1", "'\u{1}=1"),
            ("＝HYPERLINK(\"x\")", "'＝HYPERLINK(\"x\")"),
            ("＋1", "'＋1"),
            ("－1", "'－1"),
            ("＠SUM(A1)", "'＠SUM(A1)"),
            ("﹦1", "'﹦1"),
            ("−1", "'−1"),
            // A leading quote is doubled, so unguarding is exact.
            ("'=x", "''=x"),
            ("'hello", "''hello"),
            ("1001", "1001"),
            ("", ""),
            ("a=b", "a=b"),
            ("Иванов", "Иванов"),
            ("  1001", "  1001"),
        ];
        for (i, o) in cases {
            assert_eq!(formula_guard(i.to_owned()), o, "{i:?}");
            assert_eq!(formula_unguard(o), i, "{o:?}");
        }
        assert_eq!(hms(0), "00:00:00");
        assert_eq!(hms(1), "00:00:01");
        assert_eq!(hms(3725), "01:02:05");
        assert_eq!(hms(360_000), "100:00:00");
        assert_eq!(hms(-3), "00:00:00");
    }

    /// Issue 11, finding 7: control bytes from the PBX never reach a terminal as such, however
    /// the stream is cut into writes.
    #[test]
    fn terminal_output_escapes_control_bytes() {
        let input = "a\x1b]0;owned\x07b\0c\rd\r\ne\tf\u{9b}31mg Иванов\x7f\u{2028}"
            .as_bytes()
            .iter()
            .copied()
            .chain([0xff, b'h', b'\r'])
            .collect::<Vec<u8>>();
        let want = "a\\x1b]0;owned\\x07b\\x00c\\rd\r\ne\tf\\u{9b}31mg Иванов\\x7f\u{2028}\\xffh\\r";
        for cut in [1, 2, 3, 7, 1000] {
            let mut t = TerminalSafe::new(Vec::new());
            for chunk in input.chunks(cut) {
                t.write_all(chunk).unwrap();
            }
            let out = String::from_utf8(t.finish().unwrap()).unwrap();
            assert_eq!(out, want, "cut {cut}");
            assert!(!out
                .bytes()
                .any(|b| b < 0x20 && b != b'\n' && b != b'\t' && b != b'\r'));
        }
    }
}
