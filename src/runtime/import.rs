//! `cdrbox import --config F --pbx NAME FILE|-`: Asterisk's Master.csv into the journal, each
//! call once beside what AMI (or an earlier import) stored (issue 12). The file is streamed in
//! chunks, so memory stays flat for any size.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::load_config;
use crate::clock::Clock;
use crate::import::master_csv::{Columns, CsvLayout};
use crate::import::store::Store;
use crate::import::{CsvImport, ImportReport};
use crate::journal::{Journal, JournalPaths};
use crate::record::{Origin, PbxContext};

/// What `cdrbox import` was asked to do.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    pub config: PathBuf,
    pub pbx: String,
    /// The file, or `-` for standard input.
    pub file: PathBuf,
    /// cdr.conf `[csv] usegmtime=yes`: the file's times are GMT.
    pub usegmtime: bool,
    /// Which optional columns the file has (`auto`, `none`, or a comma list of `uniqueid`,
    /// `userfield`, `newcdrcolumns`).
    pub columns: Option<String>,
}

/// The `[[pbx]]` named `name`, as a record context.
pub fn pbx_context(cfg: &crate::config::Config, name: &str) -> Result<PbxContext> {
    let Some(p) = cfg.pbx.iter().find(|p| p.name == name) else {
        let names: Vec<&str> = cfg.pbx.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "no [[pbx]] named {name:?} in the config (configured: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    super::links::context_of(p).map_err(anyhow::Error::from)
}

/// Reads Master.csv bytes from `input` and stores its records through `store`.
pub fn import_csv(
    input: &mut dyn Read,
    ctx: PbxContext,
    layout: CsvLayout,
    store: &mut Store<'_>,
    received_utc: i64,
) -> Result<()> {
    let mut imp = CsvImport::new(ctx, layout, received_utc);
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = false;
    while !done {
        let n = input
            .read(&mut buf)
            .context("reading the Master.csv input")?;
        if n == 0 {
            imp.finish();
            done = true;
        } else {
            imp.feed(&buf[..n]);
        }
        while let Some(r) = imp.next_record() {
            match r {
                Ok(rec) => store.add(rec)?,
                Err(rej) => store.report.reject(rej),
            }
        }
    }
    store.finish()?;
    store.report.lines = imp.lines_read();
    // Master.csv holds every call from its first to its last line: the gaps in between are
    // filled (a file that ends before a gap closed proves nothing about the gap's end).
    if let Some((first_start, last_end)) = store.span {
        store.cover(Origin::MasterCsv, first_start, last_end)?;
    }
    Ok(())
}

/// `cdrbox import`: prints the report; fails when the box is running (it owns the journal).
pub fn import(args: &ImportArgs) -> Result<ImportReport> {
    let cfg = load_config(&args.config)?;
    let ctx = pbx_context(&cfg, &args.pbx)?;
    let layout = CsvLayout {
        columns: Columns::parse(args.columns.as_deref().unwrap_or("auto"))
            .map_err(|e| anyhow::anyhow!("--columns: {e}"))?,
        gmt: args.usegmtime,
    };
    let paths = JournalPaths::from_config(&cfg.storage);
    if crate::journal::writer_running(&paths) {
        bail!(
            "cdrbox run is recording into {} right now, so it must do the import: upload the \
             file on the status page, or run\n  curl -u admin:PASSWORD --data-binary @{} \
             'http://{}/api/import?pbx={}'",
            paths.db.display(),
            args.file.display(),
            cfg.web.listen,
            args.pbx
        );
    }
    let clock = Clock::system();
    let (journal, _) = Journal::open(&cfg.storage, clock.clone())
        .with_context(|| format!("opening the journal at {}", cfg.storage.path.display()))?;
    let result = (|| {
        let mut store = Store::new(&journal, &args.pbx)?;
        let mut input: Box<dyn Read> = if args.file == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(
                std::fs::File::open(&args.file)
                    .with_context(|| format!("opening {}", args.file.display()))?,
            )
        };
        import_csv(&mut *input, ctx, layout, &mut store, clock.unix())?;
        Ok::<ImportReport, anyhow::Error>(store.report.clone())
    })();
    journal.shutdown();
    let report = result?;
    println!("{}", report.summary());
    for r in &report.rejections {
        println!("  line {}: {}", r.line, r.reason);
    }
    if report.rejected > report.rejections.len() as u64 {
        println!(
            "  … and {} more rejected lines",
            report.rejected - report.rejections.len() as u64
        );
    }
    Ok(report)
}
