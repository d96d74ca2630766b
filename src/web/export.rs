//! The seam between `/export.*` downloads and the export writers: [`Exporter`] makes a
//! [`RecordWriter`] over any `Write`, and the server streams the filtered set through it.
//!
//! [`SimpleExporter`] is a small stand-in (json, ndjson, csv `standard` and `excel`) so the web
//! layer works and is tested before `crate::export` lands; the runtime should pass an `Exporter`
//! over `crate::export` instead. Pure code: writers only ever see an `impl Write`.

use std::io::{self, Write};

use serde_json::Value;

use super::json::record_json;
use super::BackendError;
use crate::record::CallRecord;

/// The download formats, by URL suffix (`/export.csv`, `/export.json`, `/export.ndjson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
    Ndjson,
}

impl ExportFormat {
    /// From the URL suffix.
    pub fn from_ext(ext: &str) -> Option<Self> {
        match ext {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "ndjson" => Some(Self::Ndjson),
            _ => None,
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
        }
    }
}

/// Writes records one at a time; `finish` closes the document (`]` of a JSON array) and flushes.
pub trait RecordWriter {
    fn write(&mut self, record: &CallRecord) -> io::Result<()>;
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Makes record writers for the download formats.
pub trait Exporter: Send + Sync + 'static {
    /// CSV profile names offered on the page; the first is the default.
    fn profiles(&self) -> Vec<String>;
    /// A writer for `format` in `profile` over `out`. `profile` was checked against
    /// [`Exporter::profiles`]; the JSON formats ignore it.
    fn writer<'a>(
        &self,
        format: ExportFormat,
        profile: &str,
        out: Box<dyn Write + 'a>,
    ) -> Result<Box<dyn RecordWriter + 'a>, BackendError>;
}

/// Stand-in exporter: JSON array, NDJSON, CSV `standard` (every §2 field, RFC 4180, UTF-8) and
/// `excel` (BOM, `;`, CSV-injection guard). TEMPORARY: the runtime wires `crate::export`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimpleExporter;

/// The §2 field names, in CSV column order.
const COLUMNS: [&str; 26] = [
    "uniqueId",
    "accountCode",
    "source",
    "destination",
    "destinationContext",
    "callerId",
    "channel",
    "destinationChannel",
    "lastApplication",
    "lastData",
    "startTime",
    "answerTime",
    "endTime",
    "duration",
    "billableSeconds",
    "disposition",
    "amaFlags",
    "userField",
    "pbx",
    "direction",
    "ringSeconds",
    "queue",
    "agent",
    "linkedId",
    "sequence",
    "customFields",
];

impl Exporter for SimpleExporter {
    fn profiles(&self) -> Vec<String> {
        vec!["standard".into(), "excel".into()]
    }

    fn writer<'a>(
        &self,
        format: ExportFormat,
        profile: &str,
        out: Box<dyn Write + 'a>,
    ) -> Result<Box<dyn RecordWriter + 'a>, BackendError> {
        Ok(match format {
            ExportFormat::Json => Box::new(JsonArray { out, first: true }),
            ExportFormat::Ndjson => Box::new(Ndjson { out }),
            ExportFormat::Csv => {
                let excel = profile == "excel";
                let mut out = out;
                if excel {
                    out.write_all("\u{feff}".as_bytes())?;
                }
                let mut w = Csv { out, excel };
                w.row(COLUMNS.iter().map(|c| c.to_string()))?;
                Box::new(w)
            }
        })
    }
}

struct JsonArray<'a> {
    out: Box<dyn Write + 'a>,
    first: bool,
}

impl RecordWriter for JsonArray<'_> {
    fn write(&mut self, record: &CallRecord) -> io::Result<()> {
        self.out
            .write_all(if self.first { b"[\n" } else { b",\n" })?;
        self.first = false;
        serde_json::to_writer(&mut self.out, &record_json(record))?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out
            .write_all(if self.first { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()
    }
}

struct Ndjson<'a> {
    out: Box<dyn Write + 'a>,
}

impl RecordWriter for Ndjson<'_> {
    fn write(&mut self, record: &CallRecord) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &record_json(record))?;
        self.out.write_all(b"\n")
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.flush()
    }
}

struct Csv<'a> {
    out: Box<dyn Write + 'a>,
    excel: bool,
}

impl Csv<'_> {
    fn row(&mut self, cells: impl Iterator<Item = String>) -> io::Result<()> {
        let sep: &[u8] = if self.excel { b";" } else { b"," };
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                self.out.write_all(sep)?;
            }
            let guarded;
            let cell = if self.excel && cell.starts_with(['=', '+', '-', '@']) {
                guarded = format!("'{cell}");
                &guarded
            } else {
                &cell
            };
            if cell.contains([',', ';', '"', '\n', '\r']) {
                self.out.write_all(b"\"")?;
                self.out.write_all(cell.replace('"', "\"\"").as_bytes())?;
                self.out.write_all(b"\"")?;
            } else {
                self.out.write_all(cell.as_bytes())?;
            }
        }
        self.out.write_all(b"\r\n")
    }
}

impl RecordWriter for Csv<'_> {
    fn write(&mut self, record: &CallRecord) -> io::Result<()> {
        let v = record_json(record);
        let cells = COLUMNS.iter().map(|c| match &v[*c] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Object(m) if m.is_empty() => String::new(),
            other => other.to_string(),
        });
        let cells: Vec<String> = cells.collect();
        self.row(cells.into_iter())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.flush()
    }
}
