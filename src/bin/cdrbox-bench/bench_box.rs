//! A `cdrbox run` that a benchmark starts on a journal of its own: the config written beside the
//! data (one PBX, the page on a free loopback port, no OLED), the admin password set with
//! `cdrbox passwd`, the child's output discarded. Shared by cdrbox-bench (`query`) and
//! cdrbox-web-bench (its memory runs); it measures nothing itself.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

/// The admin password of a bench box.
pub const PASSWORD: &str = "bench-password-1";

/// Starts `bin run` on the journal in `data`, its config `dir/cdrbox.toml`: the PBX on
/// 127.0.0.1:`pbx_port` (then the `pbx_more` lines), the page on a free port. `RUST_LOG` is
/// `log`, or the config's filter when `None`. Returns the child and the page's port.
pub fn start(
    bin: &Path,
    dir: &Path,
    data: &Path,
    pbx_port: u16,
    pbx_more: &str,
    log: Option<&str>,
) -> Result<(Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("cdrbox.toml");
    std::fs::write(
        &config,
        format!(
            "[[pbx]]\nname = \"bench\"\nhost = \"127.0.0.1\"\nport = {pbx_port}\nusername = \"u\"\nsecret = \"s\"\nauth = \"plain\"\n{pbx_more}\n[storage]\npath = \"{}\"\n\n[web]\nlisten = \"127.0.0.1:{port}\"\n\n[display]\ndriver = \"none\"\n",
            data.display()
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let mut passwd = Command::new(bin)
        .args(["passwd", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {} passwd", bin.display()))?;
    if let Some(mut i) = passwd.stdin.take() {
        writeln!(i, "{PASSWORD}")?;
    }
    if !passwd.wait()?.success() {
        bail!("cdrbox passwd failed");
    }
    let mut run = Command::new(bin);
    run.args(["run", "--config"]).arg(&config);
    if let Some(filter) = log {
        run.env("RUST_LOG", filter);
    }
    let child = run
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    Ok((child, port))
}
