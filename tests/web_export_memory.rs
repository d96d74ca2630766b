//! The export streams: a download much larger than the memory it may use completes while the
//! server's peak RSS barely moves. Own test binary, so no other test shares the process.

#[path = "web_support/mod.rs"]
mod web_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

use cdrbox::filter::{Filter, Page, Sort};
use cdrbox::record::CallRecord;
use cdrbox::status::StatusView;
use cdrbox::web::{serve_listener, Backend, BackendError, CdrExporter, Gap, WebOptions};

/// Makes records on the fly: nothing is held, so any growth is the web layer's.
struct Generated(u64);

impl Backend for Generated {
    fn status(&self) -> StatusView {
        StatusView::default()
    }
    fn count(&self, _f: &Filter) -> Result<u64, BackendError> {
        Ok(self.0)
    }
    fn query(&self, _f: &Filter, _s: Sort, _p: Page) -> Result<Vec<CallRecord>, BackendError> {
        Ok(vec![])
    }
    fn for_each(
        &self,
        _f: &Filter,
        _s: Sort,
        each: &mut dyn FnMut(&CallRecord) -> std::io::Result<()>,
    ) -> Result<(), BackendError> {
        let mut r = web_support::record(0);
        for i in 0..self.0 {
            r.unique_id = format!("1795330800.{i}");
            each(&r)?;
        }
        Ok(())
    }
    fn subscribe(&self) -> cdrbox::journal::Subscription {
        channel().1.into()
    }
    fn config_text(&self) -> String {
        String::new()
    }
    fn apply_config(&self, _t: &str) -> Result<(), BackendError> {
        Ok(())
    }
    fn gaps(&self, _f: i64, _t: i64) -> Vec<Gap> {
        vec![]
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn export_memory_stays_flat() {
    const ROWS: u64 = 150_000;
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("cdrbox.passwd");
    cdrbox::web::auth::set_password(&passwd, "admin", "correct-horse-1").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let h = serve_listener(
        listener,
        Arc::new(Generated(ROWS)),
        Arc::new(CdrExporter),
        WebOptions::new(passwd),
    )
    .unwrap();
    let mut c = TcpStream::connect(h.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    // admin:correct-horse-1
    c.write_all(b"GET /export.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic YWRtaW46Y29ycmVjdC1ob3JzZS0x\r\n\r\n")
        .unwrap();
    let before = vm_hwm_kb();
    let mut r = BufReader::with_capacity(1 << 16, c);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut total = 0u64;
    let mut newlines = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        newlines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let grew_kb = vm_hwm_kb().saturating_sub(before);
    // Every row arrived (header + rows; chunk framing adds lines too, so at least).
    assert!(newlines > ROWS, "{newlines} lines");
    assert!(total > 40 * 1024 * 1024, "only {total} bytes");
    eprintln!("streamed {} MiB, peak RSS grew {grew_kb} KiB", total >> 20);
    assert!(
        grew_kb < 16 * 1024,
        "peak RSS grew by {grew_kb} KiB while streaming {} MiB",
        total >> 20
    );
    h.shutdown();
}
