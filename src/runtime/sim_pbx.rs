//! `cdrbox sim-pbx`: the simulated Asterisk AMI server on a TCP address, until SIGINT/SIGTERM.

use anyhow::{bail, Context, Result};

use super::init_logging;
use super::io_runtime;
use super::signals::StopSignals;

/// `cdrbox sim-pbx`.
#[derive(Debug, Clone)]
pub struct SimArgs {
    pub listen: String,
    pub username: String,
    pub secret: String,
    pub rate: f64,
    pub calls: Option<u64>,
    pub seed: u64,
    pub timezone: String,
    pub mappings: bool,
    /// Seconds the simulated PBX's clock runs ahead of the real one (negative: behind).
    pub clock_offset: f64,
}

/// `cdrbox sim-pbx`.
pub fn sim_pbx(args: SimArgs) -> Result<()> {
    init_logging("info");
    let rt = io_runtime("cdrbox-sim")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let opts = sim_options(&args)?;
        let handle = crate::sim::start(listener, opts).await?;
        println!(
            "sim-pbx: AMI on {} (user {:?})",
            handle.local_addr(),
            args.username
        );
        StopSignals::install().wait(None).await;
        handle.stop().await;
        Ok(())
    })
}

pub(super) fn sim_options(args: &SimArgs) -> Result<crate::sim::SimOptions> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!(
            "--rate: {} is not a number of calls per second ≥ 0",
            args.rate
        );
    }
    let timezone = jiff::tz::TimeZone::get(&args.timezone).map_err(|_| {
        anyhow::anyhow!(
            "--timezone: {:?} is not an IANA time zone (e.g. Europe/Moscow)",
            args.timezone
        )
    })?;
    if !(args.clock_offset.is_finite() && args.clock_offset.abs() <= 1e9) {
        bail!(
            "--clock-offset: {} is not a number of seconds (e.g. 42 or -3.5)",
            args.clock_offset
        );
    }
    Ok(crate::sim::SimOptions {
        clock: crate::clock::Clock::system_offset((args.clock_offset * 1000.0).round() as i64),
        username: args.username.clone(),
        secret: args.secret.clone(),
        rate_per_sec: args.rate,
        calls: args.calls,
        // A long-running simulator must not keep every event it ever sent.
        record_events: false,
        generator: crate::sim::GeneratorOptions {
            seed: args.seed,
            timezone,
            map_linkedid_sequence: args.mappings,
            ..Default::default()
        },
        ..Default::default()
    })
}
