//! Serves the web page over an in-memory backend (a call every few seconds) so the page can be
//! tried before it is wired to the journal: `cargo run --example web_preview [-- ADDR]`.
//! The password file goes to a temporary directory; the first visit sets it.

#[path = "../tests/web_support/mod.rs"]
mod web_support;

use std::sync::Arc;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let dir = std::env::temp_dir().join(format!("cdrbox-web-preview-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let backend =
        web_support::MemBackend::new((0..500).map(|i| web_support::record(i * 97)).collect());
    let mut opts = cdrbox::web::WebOptions::new(dir.join("cdrbox.passwd"));
    opts.workers = 2;
    let handle = cdrbox::web::serve(
        addr.parse()?,
        backend.clone(),
        Arc::new(cdrbox::web::CdrExporter),
        opts,
    )?;
    println!(
        "cdrbox web preview: http://{}/  (password file {})",
        handle.local_addr(),
        dir.display()
    );
    let mut i = 500;
    loop {
        std::thread::sleep(Duration::from_secs(4));
        backend.push(web_support::record(i * 97));
        i += 1;
    }
}
