//! `cdrbox demo`: the simulated PBX and the logger on loopback, records printed as they arrive,
//! the web page on `--listen`; a throw-away journal unless `--data` is given.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use super::init_logging;
use super::io_runtime;
use super::run::{run, RunOptions};
use super::sim_pbx::{sim_options, SimArgs};
use crate::clock::Clock;
use crate::config::Config;
use crate::fsio::{write_atomic, AtomicOptions};

/// `cdrbox demo`.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    pub listen: String,
    pub rate: f64,
    pub data: Option<PathBuf>,
    pub calls: Option<u64>,
    pub seconds: u64,
}

/// `cdrbox demo`: the simulated PBX and the logger on loopback.
pub fn demo(args: DemoArgs) -> Result<()> {
    init_logging("warn");
    let data = match &args.data {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("cdrbox-demo-{}", std::process::id())),
    };
    // The page is what a demo is for: refuse to start without it (and say how to get one)
    // rather than log one line and run on without it (issue 13 item 7). Bound once here, before
    // anything starts, and let go for the run to bind.
    check_listen(&args.listen)?;
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let rt = io_runtime("cdrbox-demo")?;
    let sim_listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("binding the simulated PBX to 127.0.0.1")?;
    let sim_args = SimArgs {
        listen: String::new(),
        username: "cdrbox".into(),
        secret: "demo-secret".into(),
        rate: args.rate,
        calls: args.calls,
        seed: Clock::system().unix() as u64,
        timezone: "Europe/Moscow".into(),
        mappings: true,
        clock_offset: 0.0,
    };
    let sim = rt.block_on(crate::sim::start(sim_listener, sim_options(&sim_args)?))?;
    let addr = sim.local_addr();
    let toml = format!(
        r#"
[box]
name = "cdrbox-demo"

[[pbx]]
name = "demo-pbx"
host = "{host}"
port = {port}
username = "cdrbox"
secret = "demo-secret"
auth = "md5"
timezone = "Europe/Moscow"

[storage]
path = "{data}"
flush_interval_ms = 5000

[web]
listen = "{listen}"

[display]
driver = "none"
"#,
        host = addr.ip(),
        port = addr.port(),
        data = data
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\""),
        listen = args.listen,
    );
    let cfg = Config::parse(&toml, "demo").context("building the demo configuration")?;
    let config_path = data.join("demo.toml");
    // Owner-only: it holds the simulated PBX's secret.
    write_atomic(&config_path, toml.as_bytes(), AtomicOptions::SECRET)
        .with_context(|| format!("writing {}", config_path.display()))?;
    println!("cdrbox demo");
    println!("  simulated PBX (AMI):  {addr}");
    println!("  journal:              {}", data.display());
    println!("  config:               {}", config_path.display());
    println!(
        "  export afterwards:    cdrbox export --config {} --format csv",
        config_path.display()
    );
    println!("  stop with Ctrl-C");
    let stop_after = (args.seconds > 0).then(|| Duration::from_secs(args.seconds));
    let setup_path =
        crate::web::setup_code::path_for(&crate::web::auth::passwd_path_for(&config_path));
    let result = run(
        cfg,
        RunOptions {
            config_path,
            echo: true,
            stop_after,
            on_web: Some(Box::new(move |addr| {
                println!("  web page:             http://{addr}/   (the first visit sets the admin password)");
                // `cdrbox run` has made the one-time code by now, unless a password exists.
                match crate::web::setup_code::current(&setup_path) {
                    Some(code) => {
                        println!("  setup code:           {code}   (type it on the first visit)\n")
                    }
                    None => println!(),
                }
            })),
            clock: Clock::system(),
        },
    );
    rt.block_on(sim.stop());
    result
}

/// Err naming the address and what to do when the demo's page could not listen on it.
fn check_listen(listen: &str) -> Result<()> {
    match std::net::TcpListener::bind(listen) {
        Ok(_) => Ok(()),
        Err(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => "another program has that port",
                std::io::ErrorKind::PermissionDenied => "ports below 1024 need root",
                _ => "give an address:port of this machine",
            };
            anyhow::bail!(
                "the demo's web page cannot listen on {listen}: {e} — {hint}; pass --listen 127.0.0.1:0 for any free port (the demo prints the one it got)"
            )
        }
    }
}
