//! Wiring of the box: one file per CLI command, and the running box's pieces.
//!
//! Map (`main.rs` parses the command line and calls one of these):
//! - [`run`] — `cdrbox run`: journal, AMI links ([`links`]), status board ([`board`]), display,
//!   USB watcher ([`usb_source`]), web page ([`web_backend`]), signals ([`signals`]);
//! - [`export`], [`usb_export`], [`display`], [`check_config`], [`passwd`] — one-shot commands
//!   over a config file and its journal (`--from/--to/…` are read by [`crate::filter::input`],
//!   the parser the web API uses too);
//! - [`sim_pbx`] and [`demo`] — the simulated PBX alone, and with the logger on loopback.
//!
//! The only place that starts threads and tasks. Everything it wires is tested on its own; what
//! is tested here is that the pieces are connected (`tests/cli_*.rs` run the real binary).

pub mod board;
mod check_config;
mod demo;
mod display;
mod export;
mod import;
mod links;
mod live;
mod passwd;
mod pullers;
mod run;
mod setup_code;
mod signals;
mod sim_pbx;
mod test_alarm;
mod usb_export;
pub mod usb_source;
pub mod web_backend;

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;

pub use check_config::check_config;
pub use demo::{demo, DemoArgs};
pub use display::display_png;
pub use export::{export, ExportArgs};
pub use import::{import, import_csv, pbx_context, ImportArgs};
pub use links::context_of;
pub use passwd::passwd;
pub use run::{one_line, run, run_from_file, RunOptions};
pub use setup_code::setup_code;
pub use sim_pbx::{sim_pbx, SimArgs};
pub use test_alarm::test_alarm;
pub use usb_export::usb_export;

/// The config file, validated. No context is added: the error names the file itself, and a
/// printed chain must say it once (issue 13 item 7: not "reading configuration bad.toml:
/// bad.toml: …").
fn load_config(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

/// A warning for the config file and for its `.bak` (both hold the AMI secret) when open to
/// more than their owner and group (issue 11 item 5); nothing for a private or missing file
/// (loading says why a config is unreadable).
fn config_mode_warnings(path: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let bak = crate::fsio::backup_path(path).ok();
    [Some(path.to_path_buf()), bak]
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let mode = std::fs::metadata(&p).ok()?.permissions().mode() & 0o777;
            crate::web::settings::mode_is_loose(mode).then(|| {
                format!(
                    "{} is open to others (mode {mode:04o}) and holds the AMI secret: chmod 600 {0} (or 640 with the service's group); the next save from the settings page does that",
                    p.display()
                )
            })
        })
        .collect()
}

/// The zone user-typed times are read in: the first PBX's, else UTC.
fn display_zone(cfg: &Config) -> jiff::tz::TimeZone {
    cfg.pbx
        .first()
        .and_then(|p| jiff::tz::TimeZone::get(&p.timezone).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The tokio runtime the async parts (links, timers) run on: two workers; the blocking owners
/// (journal writer, web server, display) have threads of their own.
fn io_runtime(thread_name: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name(thread_name)
        .build()
        .context("starting the async runtime")
}

/// Logs to stderr with `level` (`RUST_LOG` overrides); the filter can be swapped later by
/// [`live::set_log_level`] when the settings page changes `[log] level`.
fn init_logging(level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init()
        .is_ok();
    // A second init (tests calling twice) is harmless: the first subscriber stays.
    if installed {
        let _ = live::LOG_FILTER.set(handle);
    }
}

/// Midnight of `now`'s day in `tz`, as Unix seconds ("today" on the page and the OLED).
fn start_of_day(tz: &jiff::tz::TimeZone, now: i64) -> Option<i64> {
    let date = jiff::Timestamp::from_second(now)
        .ok()?
        .to_zoned(tz.clone())
        .date();
    let midnight = tz
        .to_zoned(date.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    Some(midnight.timestamp().as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_of_day_is_local_midnight() {
        let moscow = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        // 2026-11-22T07:07:37Z is 10:07:37 in Moscow; its midnight is 21:00 UTC the day before.
        assert_eq!(start_of_day(&moscow, 1_795_331_257), Some(1_795_294_800));
        assert_eq!(
            start_of_day(&jiff::tz::TimeZone::UTC, 1_795_331_257),
            Some(1_795_305_600)
        );
    }
}
