//! `cdrbox setup-code`: prints the one-time code the first visit to the web page asks for
//! (made now if `cdrbox run` has not made it yet), for an owner with a shell but no display.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::load_config;
use crate::web::{auth, setup_code};

/// `cdrbox setup-code --config F`: the code on stdout; an error when the admin password is
/// already set (then there is no code: `cdrbox passwd` resets the password).
pub fn setup_code(config: &Path) -> Result<()> {
    load_config(config)?;
    let passwd = auth::passwd_path_for(config);
    let file = auth::PasswordFile::load(&passwd)
        .with_context(|| format!("reading {}", passwd.display()))?;
    if file.hash_of("admin").is_some() {
        bail!(
            "the admin password is already set, so there is no setup code; to reset the password: cdrbox passwd --config {}",
            config.display()
        );
    }
    let path = setup_code::path_for(&passwd);
    let code = setup_code::ensure(&path, &auth::os_random)
        .with_context(|| format!("making the setup code in {}", path.display()))?;
    println!("{code}");
    Ok(())
}
