//! `cdrbox passwd`: sets the web page's admin or viewer password in the file beside the config.

use std::path::Path;

use anyhow::{Context, Result};

use super::load_config;

/// `cdrbox passwd --config F [--user admin|viewer]`: sets a web password (first line of stdin
/// when it is not a terminal, else asked twice without echo).
pub fn passwd(config: &Path, user: &str) -> Result<()> {
    // Validate the config first so a typo in the path is not silently a new password file.
    load_config(config)?;
    let path = crate::web::auth::passwd_path_for(config);
    crate::web::auth::run_passwd(&path, user)
        .with_context(|| format!("setting the {user} password in {}", path.display()))?;
    println!("password for {user} saved in {}", path.display());
    Ok(())
}
