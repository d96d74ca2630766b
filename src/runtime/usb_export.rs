//! `cdrbox usb-export --to DIR`: the USB stick copy run by hand into any directory, beside a
//! running box (read-only) or on its own (opening the journal, which replays the ring).

use std::path::Path;

use anyhow::{Context, Result};

use super::{load_config, usb_source};
use crate::clock::Clock;
use crate::journal::{Journal, JournalPaths};

/// `cdrbox usb-export --to DIR`: the USB copy, by hand, into any directory.
pub fn usb_export(config: &Path, to: &Path) -> Result<()> {
    let cfg = load_config(config)?;
    let paths = JournalPaths::from_config(&cfg.storage);
    let clock = Clock::system();
    // The excel profile's name columns, as the page resolves them: `[names]`, then the CallerID
    // names the journal teaches.
    let names = crate::names::Directory::new(cfg.names.clone(), crate::names::LEARNED_CAP);
    match crate::journal::JournalReader::open(&paths) {
        Ok(r) => {
            if let Err(e) = r.learn_names(&names) {
                tracing::warn!(target: "cdrbox::usb", error = %e, "could not read the journal for CallerID names");
            }
        }
        Err(e) => {
            tracing::warn!(target: "cdrbox::usb", error = %e, "could not read the journal for CallerID names")
        }
    }
    let names = names.snapshot();
    let run = |source: &dyn crate::usb::UsbSource| {
        crate::usb::export_to_dir(
            source,
            to,
            &cfg.usb,
            &cfg.box_name,
            clock.unix(),
            names.clone(),
        )
        .with_context(|| format!("copying records to {}", to.display()))
    };
    let report = if crate::journal::writer_running(&paths) {
        // `cdrbox run` owns the writer: copy what it has committed (records still waiting in
        // its ring are committed within [storage] flush_interval_ms and go next time).
        run(&usb_source::JournalUsbSource::read_only(paths))?
    } else {
        // No writer: open it, which replays the ring, so nothing that arrived is left out.
        let (journal, _) = Journal::open(&cfg.storage, clock.clone())
            .with_context(|| format!("opening the journal at {}", cfg.storage.path.display()))?;
        let report = run(&usb_source::JournalUsbSource::with_writer(journal.clone()));
        journal.shutdown();
        report?
    };
    match &report.folder {
        None => println!("nothing new to copy (mode {:?})", cfg.usb.mode),
        Some(folder) => println!(
            "copied {} records to {} (verified: {})",
            report.records,
            folder.display(),
            report
                .files
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(())
}
