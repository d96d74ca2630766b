//! `cdrbox test-alarm --config F`: sends a test alarm on every configured channel now (e-mail,
//! webhook) and says per channel whether it arrived at the server — the check after filling
//! in `[alarms]`, with the box running or not (it does not touch the outbox).

use std::path::Path;

use anyhow::{bail, Result};

use super::load_config;
use crate::clock::Clock;

/// One line per channel on stdout; an error naming the channels that failed.
pub fn test_alarm(config: &Path) -> Result<()> {
    let cfg = load_config(config)?;
    match crate::alarms::service::send_test_now(&cfg, &Clock::system(), "cdrbox test-alarm") {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
        Err(lines) => bail!("{}", lines.join("\n")),
    }
}
