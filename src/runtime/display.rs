//! `cdrbox display --png OUT [--page N]`: renders one page of the OLED rotation from the journal
//! alone into a PNG, to check the display layout without the hardware.
//!
//! Honest about what it knows (issue 13 item 8): it says which page of how many it wrote (and
//! how to get the others), draws the box's real address in the header (the route towards the
//! first PBX, as the running box does) instead of "NO NETWORK", and draws the links as not
//! connected with that reason on the screen, because this command never connects to a PBX.

use std::path::Path;

use anyhow::{Context, Result};

use super::board::StatusBoard;
use super::{display_zone, load_config, start_of_day};
use crate::clock::Clock;
use crate::config::Config;
use crate::display::Page;
use crate::filter::{Filter, Sort};
use crate::fsio::{write_atomic, AtomicOptions};
use crate::journal::{JournalError, JournalPaths, JournalReader};
use crate::sink::LinkEvent;

/// `cdrbox display --png OUT --page N`: page `page` (1-based) of the OLED rotation for the
/// journal's current state, as PNG.
pub fn display_png(config: &Path, out: &Path, page: usize, scale: u32) -> Result<()> {
    let cfg = load_config(config)?;
    let view = offline_status(&cfg, Clock::system().unix())?;
    let list = crate::display::page_list(&view);
    let Some(shown) = page.checked_sub(1).and_then(|i| list.get(i)) else {
        anyhow::bail!(
            "--page {page}: the screen has {} page(s) now: {}",
            list.len(),
            page_names(&list)
        );
    };
    let png = crate::display::render_view_png(&view, page - 1, scale);
    write_atomic(out, &png, AtomicOptions::default())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {}: page {page} of {} ({}){}",
        out.display(),
        list.len(),
        page_name(shown),
        if list.len() > 1 {
            format!("; all pages: {}", page_names(&list))
        } else {
            String::new()
        }
    );
    if !view.links.is_empty() {
        println!("links are drawn as not connected: this command reads the journal and does not connect to a PBX");
    }
    if view.uplink.is_some() {
        println!(
            "the uplink is drawn as offline: this command does not connect to the central server"
        );
    }
    if let Some(addr) = running_page(&cfg) {
        println!("a box answers on {addr}: its own screen, with live links, is http://{addr}/display.png");
    }
    Ok(())
}

/// The address of this config's web page when something answers there (a running box).
fn running_page(cfg: &Config) -> Option<std::net::SocketAddr> {
    let mut addr = cfg.web.listen;
    if addr.port() == 0 {
        return None;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300))
        .ok()
        .map(|_| addr)
}

/// What a person calls the page.
fn page_name(page: &Page) -> &'static str {
    match page {
        Page::Setup => "setup code",
        Page::Tls => "HTTPS fingerprint",
        Page::Alarms { .. } => "alarms",
        Page::Usb => "USB stick",
        Page::Summary => "summary",
        Page::Links { .. } => "PBX links",
        Page::Link => "PBX link",
        Page::Uplink => "uplink",
    }
}

/// `--page 1 summary, --page 2 PBX link`
fn page_names(list: &[Page]) -> String {
    list.iter()
        .enumerate()
        .map(|(i, p)| format!("--page {} {}", i + 1, page_name(p)))
        .collect::<Vec<_>>()
        .join(", ")
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
    if !cfg.uplink.url.0.trim().is_empty() {
        let reader = JournalReader::open_with_ring(&paths).ok();
        board.set_uplink(offline_uplink(cfg, reader.as_ref(), now));
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
    // The header's address: the one the running box would show (the route towards the first
    // PBX); no packet is sent.
    board.set_ip(super::run::local_ip_towards(&super::run::ip_target(cfg)));
    board.publish(now);
    Ok(board.snapshot())
}

/// The uplink as the journal knows it: what waits above the watermark and since when. The
/// state says "offline": this command never connects to the server.
/// No journal yet: nothing waits.
fn offline_uplink(
    cfg: &Config,
    reader: Option<&JournalReader>,
    now: i64,
) -> crate::status::UplinkStatus {
    let mut st = crate::status::UplinkStatus {
        state: "offline".into(),
        target: crate::uplink::url::redact(&cfg.uplink.url.0),
        ..Default::default()
    };
    if let Some(reader) = reader {
        let wm = reader.uplink_watermark().unwrap_or(0);
        st.lag_records = reader.count_after_id(wm).unwrap_or(0);
        st.lag_seconds = reader
            .records_after_id(wm, 1)
            .ok()
            .and_then(|b| b.first().map(|(_, r)| (now - r.received_utc).max(0)));
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13 item 8: the offline picture said "NO NETWORK" on a box with a network.
    #[test]
    fn the_offline_header_shows_the_route_address_not_no_network() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse(
            &format!(
                "[[pbx]]\nname = \"office\"\nhost = \"127.0.0.1\"\nusername = \"u\"\nsecret = \"s\"\ntimezone = \"UTC\"\n[storage]\npath = \"{}\"\n",
                dir.path().display()
            ),
            "test",
        )
        .unwrap();
        let view = offline_status(&cfg, 1_795_860_000).unwrap();
        assert_eq!(view.ip_address.as_deref(), Some("127.0.0.1"));
        let list = crate::display::page_list(&view);
        assert_eq!(
            page_names(&list),
            "--page 1 summary, --page 2 PBX link",
            "one link, not connected: its detail page follows"
        );
    }
}
