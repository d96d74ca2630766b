//! The seam between `/export.*` downloads and the export writers: [`Exporter`] makes a
//! [`RecordWriter`] over any `Write`, and the server streams the filtered set through it.
//!
//! [`CdrExporter`] is the implementation over `crate::export`; tests may pass their own.
//! Pure code: writers only ever see an `impl Write`.

use std::io::{self, Write};

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
    /// [`Exporter::profiles`]; the JSON formats ignore it. `formula_guard` is false only when
    /// the user asked for raw CSV cells (`?formulaGuard=off`). `separator` is the CSV
    /// separator asked for (`None`: the profile's own). `names` are the people behind the
    /// numbers ([`super::Backend::names`]), for the profiles that show them (`excel`).
    fn writer<'a>(
        &self,
        format: ExportFormat,
        profile: &str,
        formula_guard: bool,
        separator: Option<u8>,
        names: crate::names::Names,
        out: Box<dyn Write + 'a>,
    ) -> Result<Box<dyn RecordWriter + 'a>, BackendError>;
}

/// The exporter over `crate::export` (every format and CSV profile listed there). This is
/// what the runtime passes to [`super::serve`].
#[derive(Debug, Default, Clone, Copy)]
pub struct CdrExporter;

impl Exporter for CdrExporter {
    fn profiles(&self) -> Vec<String> {
        crate::export::Profile::ALL
            .iter()
            .map(|p| p.as_str().to_string())
            .collect()
    }

    fn writer<'a>(
        &self,
        format: ExportFormat,
        profile: &str,
        formula_guard: bool,
        separator: Option<u8>,
        names: crate::names::Names,
        out: Box<dyn Write + 'a>,
    ) -> Result<Box<dyn RecordWriter + 'a>, BackendError> {
        use crate::export::{ExportWriter, Format, Profile};
        let format = match format {
            // The JSON views have no profiles; the page sends one anyway.
            ExportFormat::Json => Format::Json,
            ExportFormat::Ndjson => Format::Ndjson,
            ExportFormat::Csv => {
                Format::Csv(
                    profile
                        .parse::<Profile>()
                        .map_err(|e| BackendError::Invalid {
                            field: "profile".into(),
                            message: e.to_string(),
                        })?,
                )
            }
        };
        Ok(Box::new(Streaming(
            ExportWriter::with_separator(format, formula_guard, separator, out)?.with_names(names),
        )))
    }
}

struct Streaming<W: Write>(crate::export::ExportWriter<W>);

impl<W: Write> RecordWriter for Streaming<W> {
    fn write(&mut self, record: &CallRecord) -> io::Result<()> {
        self.0.write(record)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish().map(|_| ())
    }
}
