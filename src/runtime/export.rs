//! `cdrbox export`: the journal's records (plus any still only in the ring) through a filter, as
//! CSV or JSON, to stdout or to a file that appears only when complete.
//!
//! On a terminal, control bytes from the PBX (ESC sequences, NUL, BEL, a lone CR that rewrites
//! the line, C1 controls) are shown escaped (`\x1b`) instead of being obeyed by the terminal
//! (issue 11, finding 7); a pipe or a file gets the bytes unchanged.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{display_zone, load_config};
use crate::export::{ExportWriter, Format};
use crate::filter::{Filter, FilterInput, Naming, Sort};
use crate::fsio::{AtomicFile, AtomicOptions};
use crate::journal::{JournalError, JournalPaths, JournalReader};

/// `cdrbox export`.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    pub config: PathBuf,
    pub format: String,
    pub profile: Option<String>,
    pub output: Option<PathBuf>,
    /// `--from`, `--disposition`, … as typed; read by the parser the API uses too.
    pub filter: FilterInput,
    /// CSV cells get the formula guard (`--no-formula-guard` turns it off).
    pub formula_guard: bool,
}

/// `cdrbox export`: every matching record (committed, and any still only in the ring after a
/// crash), streamed; written to a temporary file and renamed so a partial file never looks done.
pub fn export(args: ExportArgs) -> Result<()> {
    let cfg = load_config(&args.config)?;
    let format = Format::parse(&args.format, args.profile.as_deref())?;
    let filter = args
        .filter
        .parse(&display_zone(&cfg))
        .map_err(|e| anyhow::anyhow!(e.render(Naming::Cli)))?;
    let reader = JournalReader::open_with_ring(&JournalPaths::from_config(&cfg.storage))
        .with_context(|| format!("opening the journal at {}", cfg.storage.path.display()))?;
    // The excel profile's name columns, resolved as the API resolves them: `[names]`, then the
    // CallerID names the journal teaches (the same records the running box learns from).
    let names = if format == Format::Csv(crate::export::Profile::Excel) {
        let dir = crate::names::Directory::new(cfg.names.clone(), crate::names::LEARNED_CAP);
        if let Err(e) = reader.learn_names(&dir) {
            tracing::warn!(target: "cdrbox::export", error = %e, "could not read the journal for CallerID names");
        }
        dir.snapshot()
    } else {
        crate::names::Names::default()
    };
    match &args.output {
        None => {
            use std::io::IsTerminal;
            let stdout = std::io::stdout();
            let tty = stdout.is_terminal();
            let out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
            if tty {
                let out = crate::export::TerminalSafe::new(out);
                write_export(&reader, &filter, format, args.formula_guard, &names, out)?
                    .finish()?;
            } else {
                write_export(&reader, &filter, format, args.formula_guard, &names, out)?.flush()?;
            }
        }
        Some(path) => {
            // The person's own file: the mode a new file normally gets (umask), not a secret's.
            let file = AtomicFile::create(path, AtomicOptions::default())
                .with_context(|| format!("creating a temporary file beside {}", path.display()))?;
            let tmp = file.temp_path().to_owned();
            let out = std::io::BufWriter::with_capacity(64 * 1024, file);
            write_export(&reader, &filter, format, args.formula_guard, &names, out)?
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", tmp.display()))?
                .commit()
                .with_context(|| {
                    format!(
                        "syncing and renaming {} to {}",
                        tmp.display(),
                        path.display()
                    )
                })?;
        }
    }
    Ok(())
}

fn write_export<W: Write>(
    reader: &JournalReader,
    filter: &Filter,
    format: Format,
    formula_guard: bool,
    names: &crate::names::Names,
    out: W,
) -> Result<W> {
    let mut writer =
        ExportWriter::with_guard(format, formula_guard, out)?.with_names(names.clone());
    // Export errors are either the journal's or the output's; keep both as the error chain.
    enum Failure {
        Journal(JournalError),
        Output(std::io::Error),
    }
    impl From<JournalError> for Failure {
        fn from(e: JournalError) -> Self {
            Failure::Journal(e)
        }
    }
    reader
        .for_each(filter, Sort::StartAsc, |rec| {
            writer.write(&rec).map_err(Failure::Output)
        })
        .map_err(|f| match f {
            Failure::Journal(e) => anyhow::Error::new(e).context("reading the journal"),
            Failure::Output(e) => anyhow::Error::new(e).context("writing the export"),
        })?;
    Ok(writer.finish()?)
}
