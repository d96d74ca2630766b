//! `cdrbox check-config`: loads and validates a config file and prints a summary and warnings.

use std::path::Path;

use anyhow::Result;

use super::load_config;

/// `cdrbox check-config`: prints the problems, or a summary and warnings.
pub fn check_config(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    println!(
        "{}: OK — {} PBX link(s), journal at {}, web on {}",
        path.display(),
        cfg.pbx.len(),
        cfg.storage.path.display(),
        cfg.web.listen
    );
    for w in super::config_mode_warnings(path)
        .into_iter()
        .chain(cfg.warnings())
    {
        println!("warning: {w}");
    }
    Ok(())
}
