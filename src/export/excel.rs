//! The `excel` CSV profile: a file an accountant opens in Excel or LibreOffice without fixing
//! anything (issue 13, item 6). Pure code over `impl Write`, one record at a time.
//!
//! What a spreadsheet makes of each cell (checked cell by cell in LibreOffice by
//! `tests/export_excel_libreoffice.rs`):
//! - times are the PBX's wall clock as `YYYY-MM-DD HH:MM:SS`, which both read as date-times
//!   (RFC 3339 with `T` and an offset stayed text);
//! - durations are `h:mm:ss` (a time) beside the seconds (a number);
//! - headers are words; every custom field of the first record is its own column (Asterisk
//!   sends every mapped field on every CDR, empty when unset), and anything else a later record
//!   carries goes into "Other fields" as `Name=value; …`, so a stream needs no second pass;
//! - numbers a spreadsheet would change — `+7 916 …` (read as a formula or a positive number),
//!   `0049…` (leading zero dropped), twelve digits and more (shown as 7.5E+10), UniqueIDs like
//!   `1795331250.26` (rounded as a decimal) — start with an invisible U+2060 WORD JOINER, so the
//!   cell is text and shows exactly what the PBX sent, with no apostrophe. Such cells hold only
//!   digits, `+ - ( ) .` and spaces, so nothing in them can run.
//! - every other cell from the PBX keeps the formula guard of every profile
//!   ([`super::formula_guard`]: a visible `'` before `= + - @`), so no formula can run.
//!
//! With the guard off (`?formulaGuard=off`) cells are exactly as received (no joiner either).
//!
//! "Source name" and "Destination name" are the people behind the numbers as the API shows them
//! (`[names]` > learned from CallerID > empty, [`crate::names`]): the caller resolves them
//! (a [`Names`] snapshot passed in); this module only looks them up, it reads no config or journal.

use std::io::{self, Write};

use super::{csv_err, formula_guard, needs_formula_guard};
use crate::names::Names;
use crate::record::{CallRecord, CdrTime};

/// The fixed columns, in words; custom-field columns and [`OTHER_FIELDS`] follow.
pub const EXCEL_COLUMNS: [&str; 32] = [
    "Start",
    "Answered",
    "End",
    "Caller name",
    "Caller number",
    "Source name",
    "Dialled",
    "Destination name",
    "Direction",
    "Disposition",
    "Duration",
    "Duration (s)",
    "Talk time",
    "Talk (s)",
    "Ring time",
    "Ring (s)",
    "Queue",
    "Agent",
    "Account code",
    "User field",
    "PBX",
    "Unique ID",
    "Linked ID",
    "Sequence",
    "Channel",
    "Destination channel",
    "Context",
    "Application",
    "Application data",
    "AMA flags",
    "Caller ID as sent",
    "Origin",
];

/// The last column: custom fields that have no column of their own.
pub const OTHER_FIELDS: &str = "Other fields";

/// Invisible and not whitespace: a cell starting with it is text, shown as the rest.
const WORD_JOINER: char = '\u{2060}';

/// The excel profile's column set: [`EXCEL_COLUMNS`], one per custom field of the first record,
/// then [`OTHER_FIELDS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcelColumns {
    custom: Vec<String>,
}

impl ExcelColumns {
    /// Columns for a file whose first record is `first` (`None`: an empty file).
    pub fn of(first: Option<&CallRecord>) -> Self {
        let mut custom: Vec<String> = Vec::new();
        for (name, _) in first.map(|r| r.custom_fields.as_slice()).unwrap_or(&[]) {
            // A name the fixed columns already carry, or a repeat, stays in "Other fields".
            if !custom.contains(name) && !EXCEL_COLUMNS.contains(&name.as_str()) {
                custom.push(name.clone());
            }
        }
        Self { custom }
    }

    /// The header row.
    pub fn header(&self) -> Vec<String> {
        EXCEL_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .chain(self.custom.iter().map(|c| text(c, true)))
            .chain([OTHER_FIELDS.to_string()])
            .collect()
    }

    /// The cells of `r` under this header, before CSV quoting; `guard` as in the module docs;
    /// the name columns from `names`.
    pub fn cells(&self, r: &CallRecord, guard: bool, names: &Names) -> Vec<String> {
        let t = |s: &str| text(s, guard);
        let id = |s: &str| id_text(s, guard);
        let time = |c: Option<&CdrTime>| c.map(|c| t(&c.local())).unwrap_or_default();
        let opt = |s: &Option<String>| t(s.as_deref().unwrap_or(""));
        let name = |number: &str| t(names.name_of(number).unwrap_or(""));
        // A negative count from a broken PBX would start with `-`: the guard as everywhere.
        let num = |n: i64| {
            if guard {
                formula_guard(n.to_string())
            } else {
                n.to_string()
            }
        };
        let mut cells = vec![
            time(Some(&r.start)),
            time(r.answer.as_ref()),
            time(Some(&r.end)),
            t(&r.caller_name()),
            t(&r.source),
            name(&r.source),
            t(&r.destination),
            name(&r.destination),
            r.direction.as_str().to_string(),
            t(r.disposition.as_str()),
            h_mm_ss(r.duration),
            num(r.duration),
            h_mm_ss(r.billable_seconds),
            num(r.billable_seconds),
            h_mm_ss(r.ring_seconds),
            num(r.ring_seconds),
            opt(&r.queue),
            opt(&r.agent),
            t(&r.account_code),
            t(&r.user_field),
            t(&r.pbx),
            id(&r.unique_id),
            id(r.linked_id.as_deref().unwrap_or("")),
            r.sequence.map(num).unwrap_or_default(),
            t(&r.channel),
            t(&r.destination_channel),
            t(&r.destination_context),
            t(&r.last_application),
            t(&r.last_data),
            t(&r.ama_flags),
            t(&r.caller_id),
            r.origin.as_str().to_string(),
        ];
        let mut used = vec![false; r.custom_fields.len()];
        for name in &self.custom {
            let found = r
                .custom_fields
                .iter()
                .enumerate()
                .find(|(i, (k, _))| !used[*i] && k == name);
            cells.push(match found {
                Some((i, (_, v))) => {
                    used[i] = true;
                    t(v)
                }
                None => String::new(),
            });
        }
        let other: Vec<String> = r
            .custom_fields
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|((k, v), _)| format!("{k}={v}"))
            .collect();
        cells.push(t(&other.join("; ")));
        cells
    }
}

/// `h:mm:ss`, the way Excel writes a duration (hours not wrapped at 24).
pub fn h_mm_ss(seconds: i64) -> String {
    let s = seconds.max(0);
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A text cell from the PBX: shown as typed when it is a number a spreadsheet would change,
/// else with the formula guard.
fn text(s: &str, guard: bool) -> String {
    if !guard {
        s.to_string()
    } else if changed_by_spreadsheets(s) {
        format!("{WORD_JOINER}{s}")
    } else {
        formula_guard(s.to_string())
    }
}

/// An id (`1795331250.26`): text even when it looks like a decimal number.
fn id_text(s: &str, guard: bool) -> String {
    let decimal = s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    if guard && decimal {
        format!("{WORD_JOINER}{s}")
    } else {
        text(s, guard)
    }
}

/// A phone-like value (digits, `+ - ( )` and spaces only, two digits or more) that Excel or
/// LibreOffice would not keep as typed: a sign or bracket first, a leading zero, or too many
/// digits for a number. A plain `1001` stays a number.
fn changed_by_spreadsheets(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let phone_like = digits >= 2
        && s.bytes()
            .all(|c| c.is_ascii_digit() || b"+-() ".contains(&c));
    if !phone_like {
        return false;
    }
    let all_digits = digits == s.len();
    needs_formula_guard(s)
        || s.starts_with(['(', ' '])
        || !all_digits
        || (s.len() > 1 && s.starts_with('0'))
        || digits >= 12
}

/// The excel profile's writer: BOM first, the header when the first record shows its custom
/// fields, then one row per record. `separator` is `;` or `,` (the caller's choice).
pub struct ExcelWriter<W: Write> {
    before: Option<W>,
    csv: Option<(Box<csv::Writer<W>>, ExcelColumns)>,
    separator: u8,
    guard: bool,
    names: Names,
}

impl<W: Write> ExcelWriter<W> {
    pub fn new(mut w: W, separator: u8, guard: bool) -> io::Result<Self> {
        // Excel only reads a CSV as UTF-8 when it starts with a BOM.
        w.write_all("\u{FEFF}".as_bytes())?;
        Ok(Self {
            before: Some(w),
            csv: None,
            separator,
            guard,
            names: Names::default(),
        })
    }

    /// The names the "Source name" / "Destination name" columns show (none until set).
    pub fn set_names(&mut self, names: Names) {
        self.names = names;
    }

    fn start(&mut self, first: Option<&CallRecord>) -> io::Result<()> {
        if self.csv.is_some() {
            return Ok(());
        }
        let w = self
            .before
            .take()
            .ok_or_else(|| io::Error::other("excel writer used after a failed write"))?;
        let mut cw = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .delimiter(self.separator)
            .from_writer(w);
        let columns = ExcelColumns::of(first);
        cw.write_record(columns.header()).map_err(csv_err)?;
        self.csv = Some((Box::new(cw), columns));
        Ok(())
    }

    pub fn write(&mut self, r: &CallRecord) -> io::Result<()> {
        self.start(Some(r))?;
        let guard = self.guard;
        let Some((cw, columns)) = self.csv.as_mut() else {
            return Err(io::Error::other("excel writer has no header"));
        };
        cw.write_record(columns.cells(r, guard, &self.names))
            .map_err(csv_err)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.start(None)?;
        match self.csv {
            Some((cw, _)) => cw
                .into_inner()
                .map_err(|e| io::Error::new(e.error().kind(), e.error().to_string())),
            None => Err(io::Error::other("excel writer has no header")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_spreadsheet_would_change_is_kept_as_typed() {
        let wj = |s: &str| format!("{WORD_JOINER}{s}");
        for (cell, want) in [
            ("+74991234567", wj("+74991234567")),
            ("+7 (499) 123-45-67", wj("+7 (499) 123-45-67")),
            ("0049301234", wj("0049301234")),
            ("(499) 123", wj("(499) 123")),
            ("749912345678", wj("749912345678")),
            ("1001", "1001".into()),
            ("0", "0".into()),
            ("", "".into()),
            ("Иван Петров", "Иван Петров".into()),
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")".into()),
            // Digits and signs only: text behind the joiner, nothing to evaluate.
            ("-1+1", wj("-1+1")),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0".into()),
            ("2026-12-01 09:29:13", "2026-12-01 09:29:13".into()),
        ] {
            assert_eq!(text(cell, true), want, "{cell:?}");
            assert_eq!(text(cell, false), cell, "{cell:?} unguarded");
        }
        assert_eq!(id_text("1795331250.26", true), wj("1795331250.26"));
        assert_eq!(
            id_text("pbx-msk-01-1795331365.1", true),
            "pbx-msk-01-1795331365.1"
        );
        assert_eq!(id_text("1795331250.26", false), "1795331250.26");
    }

    #[test]
    fn durations_read_as_excel_writes_them() {
        assert_eq!(h_mm_ss(0), "0:00:00");
        assert_eq!(h_mm_ss(65), "0:01:05");
        assert_eq!(h_mm_ss(90_061), "25:01:01");
        assert_eq!(h_mm_ss(-5), "0:00:00");
    }
}
