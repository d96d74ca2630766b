//! `cdrbox passwd`: sets the web page's admin or viewer password in the file beside the config —
//! the first line of stdin when it is not a terminal (scripts), else typed twice without echo.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::load_config;
use crate::web::auth::{passwd_path_for, read_password_line, set_password};

/// `cdrbox passwd --config F [--user admin|viewer]`.
pub fn passwd(config: &Path, user: &str) -> Result<()> {
    // Validate the config first so a typo in the path is not silently a new password file.
    load_config(config)?;
    let path = passwd_path_for(config);
    let password = read_new_password(user).context("reading the new password from stdin")?;
    set_password(&path, user, &password)
        .with_context(|| format!("setting the {user} password in {}", path.display()))?;
    println!("password for {user} saved in {}", path.display());
    Ok(())
}

/// `echo "$PW" | cdrbox passwd …` reads one line; a person at a terminal types it twice, unseen.
fn read_new_password(user: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        return Ok(read_password_line(&mut std::io::stdin().lock())?);
    }
    let first = rpassword::prompt_password(format!("New password for {user}: "))?;
    let again = rpassword::prompt_password("Repeat it: ")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}
