//! `cdrbox display --png OUT`: renders the OLED's first page from the journal alone (no live
//! links) into a PNG, to check the display layout without the hardware.

use std::path::Path;

use anyhow::{Context, Result};

use super::board::StatusBoard;
use super::{display_zone, load_config, start_of_day};
use crate::clock::Clock;
use crate::config::Config;
use crate::filter::{Filter, Sort};
use crate::fsio::{write_atomic, AtomicOptions};
use crate::journal::{JournalError, JournalPaths, JournalReader};
use crate::sink::LinkEvent;

/// `cdrbox display --png OUT`: the OLED's first page for the journal's current state, as PNG.
pub fn display_png(config: &Path, out: &Path, scale: u32) -> Result<()> {
    let cfg = load_config(config)?;
    let view = offline_status(&cfg, Clock::system().unix())?;
    let png = crate::display::render_view_png(&view, 0, scale);
    write_atomic(out, &png, AtomicOptions::default())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} ({} page(s); links are shown as not connected: this command does not connect)",
        out.display(),
        crate::display::pages(&view)
    );
    Ok(())
}

/// The status a box would show from its journal alone (no live links).
fn offline_status(cfg: &Config, now: i64) -> Result<crate::status::StatusView> {
    let links: Vec<(String, String)> = cfg
        .pbx
        .iter()
        .filter(|p| p.enabled)
        .map(|p| (p.name.clone(), format!("{}:{}", p.host, p.port)))
        .collect();
    let tz = display_zone(cfg);
    let board = StatusBoard::new(&cfg.box_name, &links, tz.clone(), now);
    let paths = JournalPaths::from_config(&cfg.storage);
    if let Ok(reader) = JournalReader::open_with_ring(&paths) {
        let filter = Filter {
            from_utc: start_of_day(&tz, now),
            ..Filter::default()
        };
        reader.for_each::<JournalError>(&filter, Sort::StartAsc, |r| {
            board.on_record(&r);
            Ok(())
        })?;
        let storage = crate::status::StorageStatus {
            path: cfg.storage.path.display().to_string(),
            committed: reader.rows().unwrap_or(0),
            ..Default::default()
        };
        board.set_storage(storage, Vec::new());
    }
    for (pbx, _) in &links {
        board.on_link_event(
            pbx,
            now,
            &LinkEvent::Down {
                reason: "not connected (offline rendering)".into(),
                kind: crate::sink::DownKind::Transient,
            },
        );
    }
    board.publish(now);
    Ok(board.snapshot())
}
