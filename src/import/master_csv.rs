//! Asterisk's `cdr_csv` file (`/var/log/asterisk/cdr-csv/Master.csv`), read exactly as
//! `cdr/cdr_csv.c` writes it. Pure and sans-IO: [`MasterCsvReader`] is fed bytes and hands back
//! rows or errors with line numbers; [`CsvLayout`] turns a row into `Event: Cdr`-named fields.
//! It must not open files, know the journal, or apply a charset (the record does that).
//!
//! What `cdr_csv.c` (Asterisk 1.8 … 23, `build_csv_record`) writes, one `fputs` per CDR:
//! - columns: accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
//!   start, answer, end, duration, billsec, disposition, amaflags — 16 — then `uniqueid` when
//!   `loguniqueid=yes`, `userfield` when `loguserfield=yes`, and peeraccount, linkedid, sequence
//!   when `newcdrcolumns=yes`: 16 to 21 columns;
//! - text (`append_string`) always in `"…"`, a `"` inside doubled, nothing else escaped (commas,
//!   backslashes, bytes ≥ 0x80 and even newlines go in raw);
//! - times (`append_date`) `"%Y-%m-%d %T"` in quotes, in the PBX's local zone or in GMT with
//!   `usegmtime=yes`; a zero time (no answer) is an empty, **unquoted** field;
//! - numbers (`append_int`: duration, billsec, sequence) bare;
//! - the line ends in `\n`; a CDR that does not fit 1024 bytes is not written at all.
//!
//! The golden file is `tests/fixtures/ami/meta/cdr-csv-Master.csv`, written by Asterisk 22 from
//! the same calls as the AMI captures.

use crate::record::{unique_id_epoch, STANDARD_FIELDS};

/// Longest record accepted (cdr_csv's own buffer is 1024 bytes; files edited by hand or
/// written by other tools get room, but a runaway quote cannot eat the whole file).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// One field as read: its bytes after unquoting, and whether it was in quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvField {
    pub value: Vec<u8>,
    pub quoted: bool,
}

/// One record of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    /// 1-based physical line the record starts on.
    pub line: u64,
    /// The record's bytes exactly as in the file, without the line end.
    pub raw: Vec<u8>,
    pub fields: Vec<CsvField>,
    /// False for a last line with no `\n` after it (a file copied while being written).
    pub terminated: bool,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvErrorKind {
    #[error("a quoted field is not closed")]
    UnterminatedQuote,
    #[error("field {field}: text after the closing quote")]
    TextAfterQuote { field: usize },
    #[error("field {field}: a quote inside an unquoted field")]
    QuoteInUnquotedField { field: usize },
    #[error("longer than {limit} bytes (cdr_csv writes at most 1024)")]
    TooLong { limit: usize },
}

/// A line that is not a CSV record, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct CsvError {
    pub line: u64,
    pub kind: CsvErrorKind,
}

/// The push parser: [`feed`](Self::feed) bytes in any chunks, [`finish`](Self::finish) at the
/// end, and call [`next_row`](Self::next_row) until it returns `None` (more input needed, or done).
///
/// A record ends at a `\n` outside quotes (a `\r` before it is dropped). When a record that
/// spans several physical lines (a quote left open) does not parse, only its first line is
/// reported and parsing restarts on the next line, so one damaged line never swallows the good
/// lines after it.
#[derive(Debug, Default)]
pub struct MasterCsvReader {
    buf: Vec<u8>,
    /// Where the scan for the current record's end stopped (all of `buf[..scan]` is scanned).
    scan: usize,
    in_quotes: bool,
    /// Physical line number of `buf[0]`, 1-based.
    line: u64,
    finished: bool,
    /// Dropping an over-long record up to the next newline.
    skipping: bool,
    /// Physical lines ended by a `\n` so far.
    lines: u64,
    /// Bytes after the last `\n` were consumed (a last line without a line end).
    mid_line: bool,
}

impl MasterCsvReader {
    pub fn new() -> MasterCsvReader {
        MasterCsvReader {
            line: 1,
            ..MasterCsvReader::default()
        }
    }

    /// Appends input.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Marks the end of input: a last line without `\n` is then read too.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Physical lines consumed so far (records, blank lines and rejected lines).
    pub fn lines_read(&self) -> u64 {
        self.lines + u64::from(self.mid_line)
    }

    /// Drops `n` bytes from the front, counting the lines they end.
    fn consume(&mut self, n: usize) {
        if n > 0 {
            self.lines += memchr::memchr_iter(b'\n', &self.buf[..n]).count() as u64;
            self.line = self.lines + 1;
            self.mid_line = self.buf[n - 1] != b'\n';
        }
        self.buf.drain(..n);
        self.scan = 0;
        self.in_quotes = false;
    }

    /// The next row or error; `None` when more input is needed (or, after `finish`, at the end).
    pub fn next_row(&mut self) -> Option<Result<CsvRow, CsvError>> {
        loop {
            if self.skipping {
                match memchr::memchr(b'\n', &self.buf) {
                    Some(i) => {
                        self.consume(i + 1);
                        self.skipping = false;
                    }
                    None => {
                        let n = self.buf.len();
                        self.consume(n);
                        return None;
                    }
                }
            }
            // Find the end of the record: a newline outside quotes.
            let mut end = None;
            for (i, &b) in self.buf.iter().enumerate().skip(self.scan) {
                match b {
                    b'"' => self.in_quotes = !self.in_quotes,
                    b'\n' if !self.in_quotes => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let (record_len, terminated) = match end {
                Some(i) => (i, true),
                None => {
                    self.scan = self.buf.len();
                    if self.buf.len() > MAX_RECORD_BYTES {
                        let line = self.line;
                        // Lines inside the over-long record mean a quote was left open.
                        let kind = if memchr::memchr(b'\n', &self.buf).is_some() {
                            CsvErrorKind::UnterminatedQuote
                        } else {
                            CsvErrorKind::TooLong {
                                limit: MAX_RECORD_BYTES,
                            }
                        };
                        self.drop_first_line_or_skip();
                        return Some(Err(CsvError { line, kind }));
                    }
                    if !self.finished || self.buf.is_empty() {
                        return None;
                    }
                    (self.buf.len(), false)
                }
            };
            let line = self.line;
            let mut rec = &self.buf[..record_len];
            if let [rest @ .., b'\r'] = rec {
                rec = rest;
            }
            if rec.is_empty() {
                // cdr_csv never writes blank lines; a trailing one (or CRLF conversion) is not
                // a record and not an error.
                self.consume(record_len + usize::from(terminated));
                continue;
            }
            if record_len > MAX_RECORD_BYTES {
                self.drop_first_line_or_skip();
                return Some(Err(CsvError {
                    line,
                    kind: CsvErrorKind::TooLong {
                        limit: MAX_RECORD_BYTES,
                    },
                }));
            }
            match parse_fields(rec) {
                Ok(fields) => {
                    let row = CsvRow {
                        line,
                        raw: rec.to_vec(),
                        fields,
                        terminated,
                    };
                    self.consume(record_len + usize::from(terminated));
                    return Some(Ok(row));
                }
                Err(kind) => {
                    if memchr::memchr(b'\n', &self.buf[..record_len]).is_some() {
                        // A quote left open swallowed the following lines: report the first
                        // line alone and read on from the next one.
                        let first = memchr::memchr(b'\n', &self.buf).unwrap_or(0);
                        self.consume(first + 1);
                        let kind = match kind {
                            CsvErrorKind::TextAfterQuote { .. } => CsvErrorKind::UnterminatedQuote,
                            k => k,
                        };
                        return Some(Err(CsvError { line, kind }));
                    }
                    self.consume(record_len + usize::from(terminated));
                    return Some(Err(CsvError { line, kind }));
                }
            }
        }
    }

    /// After an over-long record: restart at the next physical line if there is one in the
    /// buffer, else drop input up to the next newline as it arrives.
    fn drop_first_line_or_skip(&mut self) {
        match memchr::memchr(b'\n', &self.buf) {
            Some(i) => self.consume(i + 1),
            None => {
                self.skipping = true;
                self.scan = 0;
                self.in_quotes = false;
            }
        }
    }
}

/// Splits one record (no line end) into fields, the way cdr_csv quotes them.
fn parse_fields(rec: &[u8]) -> Result<Vec<CsvField>, CsvErrorKind> {
    let mut fields = Vec::with_capacity(18);
    let mut i = 0;
    loop {
        let field = fields.len() + 1;
        if rec.get(i) == Some(&b'"') {
            i += 1;
            let mut value = Vec::new();
            loop {
                match rec.get(i) {
                    None => return Err(CsvErrorKind::UnterminatedQuote),
                    Some(b'"') if rec.get(i + 1) == Some(&b'"') => {
                        value.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            fields.push(CsvField {
                value,
                quoted: true,
            });
            match rec.get(i) {
                None => return Ok(fields),
                Some(b',') => i += 1,
                Some(_) => return Err(CsvErrorKind::TextAfterQuote { field }),
            }
        } else {
            let end = memchr::memchr(b',', &rec[i..]).map_or(rec.len(), |j| i + j);
            let value = &rec[i..end];
            if value.contains(&b'"') {
                return Err(CsvErrorKind::QuoteInUnquotedField { field });
            }
            fields.push(CsvField {
                value: value.to_vec(),
                quoted: false,
            });
            if end == rec.len() {
                return Ok(fields);
            }
            i = end + 1;
        }
    }
}

/// Which optional columns the file has (cdr.conf `[csv]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Columns {
    /// `loguniqueid=yes`.
    pub unique_id: bool,
    /// `loguserfield=yes`.
    pub user_field: bool,
    /// `newcdrcolumns=yes`: peeraccount, linkedid, sequence.
    pub new_columns: bool,
}

impl Columns {
    /// Parses the `--columns` / `columns=` option: `auto` (`None`: told by each line's column
    /// count), `none`, or a comma list of `uniqueid`, `userfield`, `newcdrcolumns`.
    pub fn parse(s: &str) -> Result<Option<Columns>, String> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("auto") {
            return Ok(None);
        }
        let mut c = Columns::default();
        if s.eq_ignore_ascii_case("none") {
            return Ok(Some(c));
        }
        for part in s.split(',').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "uniqueid" | "loguniqueid" => c.unique_id = true,
                "userfield" | "loguserfield" => c.user_field = true,
                "newcdrcolumns" | "new" => c.new_columns = true,
                other => {
                    return Err(format!(
                        "{other:?} is not a cdr_csv column option (allowed: auto, none, or a \
                         comma list of uniqueid, userfield, newcdrcolumns)"
                    ))
                }
            }
        }
        Ok(Some(c))
    }

    /// How many columns cdr_csv writes with these settings.
    pub fn count(self) -> usize {
        16 + usize::from(self.unique_id)
            + usize::from(self.user_field)
            + 3 * usize::from(self.new_columns)
    }
}

/// How to read the columns and times of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CsvLayout {
    /// `None`: told by each line's column count (16 none, 18 uniqueid + userfield, 19 / 21
    /// with the new columns; for 17 and 20 a uniqueid-shaped value means `loguniqueid`).
    pub columns: Option<Columns>,
    /// `usegmtime=yes`: times are GMT and are converted to the PBX's zone.
    pub gmt: bool,
}

/// Why a well-formed CSV row is not a CDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("{found} columns; cdr_csv writes 16 to 21 (18 with loguniqueid and loguserfield)")]
    ColumnCount { found: usize },
    #[error("{found} columns, but the configured layout has {expected}")]
    LayoutMismatch { found: usize, expected: usize },
    #[error("{column}: {value:?} is not a time (YYYY-MM-DD HH:MM:SS)")]
    Time { column: &'static str, value: String },
    #[error("{column}: {value:?} is not a whole number")]
    Number { column: &'static str, value: String },
    #[error("the last line has no line end and ends in a number that may be cut off")]
    CutOff,
}

/// `Event: Cdr` names of the 16 fixed columns, in file order: cdr_csv and cdr_manager write
/// the same fields in the same order, cdr_manager's UniqueID and UserField come after them.
fn fixed_names() -> &'static [&'static str] {
    &STANDARD_FIELDS[..16]
}

/// Names the newcdrcolumns get as custom fields (the CDR variable names).
pub const NEW_COLUMN_NAMES: [&str; 3] = ["PeerAccount", "LinkedID", "Sequence"];

fn is_int(b: &[u8]) -> bool {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl CsvLayout {
    /// The optional columns a row of `n` columns has.
    pub fn columns_of(&self, row: &CsvRow) -> Result<Columns, RowError> {
        let n = row.fields.len();
        if let Some(c) = self.columns {
            return if c.count() == n {
                Ok(c)
            } else {
                Err(RowError::LayoutMismatch {
                    found: n,
                    expected: c.count(),
                })
            };
        }
        let uid_shaped = |i: usize| {
            row.fields
                .get(i)
                .is_some_and(|f| unique_id_epoch(&String::from_utf8_lossy(&f.value)).is_some())
        };
        let c = |u, f, n| Columns {
            unique_id: u,
            user_field: f,
            new_columns: n,
        };
        Ok(match n {
            16 => c(false, false, false),
            17 => c(uid_shaped(16), !uid_shaped(16), false),
            18 => c(true, true, false),
            19 => c(false, false, true),
            20 => c(uid_shaped(16), !uid_shaped(16), true),
            21 => c(true, true, true),
            found => return Err(RowError::ColumnCount { found }),
        })
    }

    /// The row as `Event: Cdr`-named fields (raw bytes; times in the PBX's wall clock),
    /// ready for [`CallRecord::from_fields`](crate::record::CallRecord::from_fields).
    pub fn fields(
        &self,
        row: &CsvRow,
        tz: &jiff::tz::TimeZone,
    ) -> Result<Vec<(&'static str, Vec<u8>)>, RowError> {
        let cols = self.columns_of(row)?;
        let f = &row.fields;
        let mut out: Vec<(&'static str, Vec<u8>)> = Vec::with_capacity(f.len());
        for (i, name) in fixed_names().iter().enumerate() {
            let v = &f[i].value;
            let v = match i {
                9..=11 => self.time(name, v, tz)?,
                12 | 13 => {
                    if !is_int(v) {
                        return Err(RowError::Number {
                            column: name,
                            value: text(v),
                        });
                    }
                    v.clone()
                }
                _ => v.clone(),
            };
            out.push((name, v));
        }
        let mut next = 16;
        if cols.unique_id {
            out.push(("UniqueID", f[next].value.clone()));
            next += 1;
        }
        if cols.user_field {
            out.push(("UserField", f[next].value.clone()));
            next += 1;
        }
        if cols.new_columns {
            let seq = &f[next + 2].value;
            if !seq.is_empty() && !is_int(seq) {
                return Err(RowError::Number {
                    column: "sequence",
                    value: text(seq),
                });
            }
            for (k, name) in NEW_COLUMN_NAMES.iter().enumerate() {
                out.push((name, f[next + k].value.clone()));
            }
        }
        // A last line without `\n` that ends in a bare number may have lost digits.
        if !row.terminated && f.last().is_some_and(|l| !l.quoted) {
            return Err(RowError::CutOff);
        }
        Ok(out)
    }

    /// A time column in the PBX's wall clock (empty stays empty).
    fn time(
        &self,
        column: &'static str,
        v: &[u8],
        tz: &jiff::tz::TimeZone,
    ) -> Result<Vec<u8>, RowError> {
        if v.is_empty() {
            return Ok(Vec::new());
        }
        let bad = || RowError::Time {
            column,
            value: text(v),
        };
        let s = std::str::from_utf8(v).map_err(|_| bad())?;
        let dt = crate::record::parse_wall_clock(s).ok_or_else(bad)?;
        if !self.gmt {
            return Ok(v.to_vec());
        }
        let ts = jiff::tz::TimeZone::UTC
            .to_timestamp(dt)
            .map_err(|_| bad())?;
        Ok(ts
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
            .into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], chunk: usize) -> Vec<Result<CsvRow, CsvError>> {
        let mut r = MasterCsvReader::new();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            r.feed(c);
            while let Some(x) = r.next_row() {
                out.push(x);
            }
        }
        r.finish();
        while let Some(x) = r.next_row() {
            out.push(x);
        }
        out
    }

    fn values(row: &CsvRow) -> Vec<(String, bool)> {
        row.fields
            .iter()
            .map(|f| (String::from_utf8_lossy(&f.value).into_owned(), f.quoted))
            .collect()
    }

    #[test]
    fn quoting_as_cdr_csv_writes_it() {
        let rows = read_all(
            b"\"a\",\"\",,4,\"x \"\"q\"\" y\",\"comma, and \\\\ backslash\"\n",
            1000,
        );
        let row = rows[0].as_ref().unwrap();
        assert_eq!(
            values(row),
            vec![
                ("a".into(), true),
                ("".into(), true),
                ("".into(), false),
                ("4".into(), false),
                ("x \"q\" y".into(), true),
                ("comma, and \\\\ backslash".into(), true),
            ]
        );
        assert_eq!(row.line, 1);
        assert!(row.terminated);
    }

    #[test]
    fn errors_say_which_line_and_reading_goes_on() {
        let input = b"\"ok\",1\n\"bad\"x,1\n\"a\"\"\n\"next\",2\nab\"c,3\n\"last\",4";
        let got = read_all(input, 3);
        let summary: Vec<String> = got
            .iter()
            .map(|r| match r {
                Ok(row) => format!("{} ok {}", row.line, values(row)[0].0),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                "1 ok ok",
                "line 2: field 1: text after the closing quote",
                "line 3: a quoted field is not closed",
                "4 ok next",
                "line 5: field 1: a quote inside an unquoted field",
                "6 ok last",
            ]
        );
        assert!(!got[5].as_ref().unwrap().terminated);
    }

    #[test]
    fn a_quoted_newline_is_kept_when_the_record_is_whole() {
        let got = read_all(b"\"two\nlines\",1\n\"x\",2\n", 5);
        let first = got[0].as_ref().unwrap();
        assert_eq!(values(first)[0].0, "two\nlines");
        assert_eq!(got[1].as_ref().unwrap().line, 3);
    }

    #[test]
    fn crlf_and_blank_lines() {
        let mut r = MasterCsvReader::new();
        r.feed(b"\"a\",1\r\n\r\n\n\"b\",2\r\n");
        r.finish();
        let a = r.next_row().unwrap().unwrap();
        assert_eq!(a.raw, b"\"a\",1");
        let b = r.next_row().unwrap().unwrap();
        assert_eq!(b.line, 4);
        assert!(r.next_row().is_none());
        assert_eq!(r.lines_read(), 4);
    }

    #[test]
    fn a_quote_left_open_in_a_big_file_costs_one_line() {
        let mut input = b"\"cut,1\n".to_vec();
        for i in 0..8000 {
            input.extend_from_slice(format!("\"line {i}\",2\n").as_bytes());
        }
        let got = read_all(&input, 4096);
        assert_eq!(
            got[0],
            Err(CsvError {
                line: 1,
                kind: CsvErrorKind::UnterminatedQuote
            })
        );
        assert_eq!(got.len(), 8001);
        assert!(got[1..].iter().all(|r| r.is_ok()));
    }

    #[test]
    fn an_overlong_record_is_one_error() {
        let mut input = Vec::new();
        input.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        input.extend_from_slice(b"\n\"after\",1\n");
        let got = read_all(&input, 4096);
        assert!(matches!(
            got[0],
            Err(CsvError {
                line: 1,
                kind: CsvErrorKind::TooLong { .. }
            })
        ));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].as_ref().unwrap().line, 2);
    }

    fn row(fields: &[&str]) -> CsvRow {
        CsvRow {
            line: 1,
            raw: Vec::new(),
            fields: fields
                .iter()
                .map(|f| CsvField {
                    value: f.as_bytes().to_vec(),
                    quoted: !f.chars().all(|c| c.is_ascii_digit()),
                })
                .collect(),
            terminated: true,
        }
    }

    fn base16() -> Vec<&'static str> {
        vec![
            "",
            "1001",
            "2001",
            "internal",
            "\"A\" <1001>",
            "Local/a;2",
            "",
            "Dial",
            "x",
            "2026-11-22 10:07:06",
            "",
            "2026-11-22 10:07:10",
            "4",
            "0",
            "NO ANSWER",
            "DOCUMENTATION",
        ]
    }

    #[test]
    fn columns_option() {
        assert_eq!(Columns::parse("auto").unwrap(), None);
        assert_eq!(Columns::parse("none").unwrap(), Some(Columns::default()));
        let c = Columns::parse("uniqueid, userfield").unwrap().unwrap();
        assert!(c.unique_id && c.user_field && !c.new_columns);
        let e = Columns::parse("uniqueid,bogus").unwrap_err();
        assert!(e.contains("\"bogus\""), "{e}");
    }

    #[test]
    fn layouts_by_column_count() {
        let tz = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        let auto = CsvLayout::default();
        let names = |r: &CsvRow| -> Vec<&str> {
            auto.fields(r, &tz)
                .unwrap()
                .iter()
                .map(|(k, _)| *k)
                .collect()
        };
        assert_eq!(names(&row(&base16())).len(), 16);
        let mut uid = base16();
        uid.push("1795331226.1");
        assert_eq!(names(&row(&uid))[16], "UniqueID");
        let mut uf = base16();
        uf.push("ticket=42");
        assert_eq!(names(&row(&uf))[16], "UserField");
        let mut all = uid.clone();
        all.extend(["", "", "1795331226.1", "7"]);
        assert_eq!(
            names(&row(&all))[16..],
            [
                "UniqueID",
                "UserField",
                "PeerAccount",
                "LinkedID",
                "Sequence"
            ]
        );
        let mut short = base16();
        short.pop();
        assert_eq!(
            auto.fields(&row(&short), &tz).unwrap_err(),
            RowError::ColumnCount { found: 15 }
        );
        let fixed = CsvLayout {
            columns: Some(Columns {
                unique_id: true,
                user_field: true,
                new_columns: false,
            }),
            gmt: false,
        };
        assert_eq!(
            fixed.fields(&row(&uid), &tz).unwrap_err(),
            RowError::LayoutMismatch {
                found: 17,
                expected: 18
            }
        );
    }

    #[test]
    fn bad_values_are_named() {
        let tz = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        let mut b = base16();
        b[9] = "yesterday";
        assert_eq!(
            CsvLayout::default()
                .fields(&row(&b), &tz)
                .unwrap_err()
                .to_string(),
            "StartTime: \"yesterday\" is not a time (YYYY-MM-DD HH:MM:SS)"
        );
        let mut b = base16();
        b[12] = "4s";
        assert!(matches!(
            CsvLayout::default().fields(&row(&b), &tz),
            Err(RowError::Number {
                column: "Duration",
                ..
            })
        ));
        let mut cut = row(&base16());
        cut.fields.push(CsvField {
            value: b"1795331226.1".to_vec(),
            quoted: true,
        });
        cut.terminated = false;
        assert!(
            CsvLayout::default().fields(&cut, &tz).is_ok(),
            "ends in a quote"
        );
        let mut all = base16();
        all.extend(["1.1", "", "", "", "7"]);
        let mut cut = row(&all);
        cut.terminated = false;
        assert_eq!(
            CsvLayout::default().fields(&cut, &tz).unwrap_err(),
            RowError::CutOff
        );
    }

    #[test]
    fn gmt_times_become_pbx_wall_clock() {
        let tz = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        let gmt = CsvLayout {
            columns: None,
            gmt: true,
        };
        let got = gmt.fields(&row(&base16()), &tz).unwrap();
        assert_eq!(got[9].1, b"2026-11-22 13:07:06");
        assert_eq!(got[10].1, b"", "no answer stays empty");
    }
}
