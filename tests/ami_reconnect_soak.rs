//! 10,000 reconnects against a fake PBX that closes right after each login: file descriptors
//! and resident memory must stay flat (no leaked sockets, timers or buffers per connection).
//!
//! Alone in its own test binary so no other test's sockets or allocations blur the numbers.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdrbox::ami::BackoffConfig;
use cdrbox::config::AuthMethod;
use cdrbox::record::CallRecord;
use cdrbox::sink::{LinkEvent, RecordSink};
use support::fake_ami::{FakeAmi, LoginResult};
use support::{link_config, start_dyn, wait_for};

/// Counts, stores nothing (so the sink itself cannot grow).
#[derive(Default)]
struct CountingSink {
    ups: AtomicUsize,
    downs: AtomicUsize,
}

impl RecordSink for CountingSink {
    fn record(&self, _record: CallRecord) {}
    fn link_event(&self, _pbx: &str, _at: i64, event: LinkEvent) {
        match event {
            LinkEvent::Up { .. } => self.ups.fetch_add(1, Ordering::SeqCst),
            LinkEvent::Down { .. } => self.downs.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident set size in KiB (`/proc/self/statm` field 2, in pages).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_reconnects_keep_fds_and_memory_flat() {
    const WARMUP: usize = 1_000;
    const TOTAL: usize = 10_000;
    let fake = FakeAmi::start(|mut c| async move {
        if c.login(None, Duration::ZERO, None).await == LoginResult::Accepted {
            c.writer.close().await; // the PBX drops us right after login
        }
    })
    .await;
    let mut cfg = link_config(fake.addr, AuthMethod::Plain);
    cfg.backoff = BackoffConfig {
        quick_interval: Duration::from_micros(50),
        quick_retries: 2,
        factor: 2,
        cap: Duration::from_micros(200),
        stable_after: Duration::from_secs(60),
        restart_poll: Duration::from_micros(50),
        restart_window: Duration::from_millis(1),
        in_use_interval: Duration::from_micros(50),
        in_use_cap: Duration::from_micros(200),
        auth_first: Duration::from_millis(1),
        auth_cap: Duration::from_millis(1),
    };
    let sink = Arc::new(CountingSink::default());
    let (stop, task) = start_dyn(cfg, sink.clone());

    let ups = |n| {
        let sink = sink.clone();
        move || sink.ups.load(Ordering::SeqCst) >= n
    };
    wait_for("warm-up reconnects", Duration::from_secs(20), ups(WARMUP)).await;
    let (fds0, rss0) = (open_fds(), rss_kib());
    wait_for("10,000 reconnects", Duration::from_secs(60), ups(TOTAL)).await;
    let (fds1, rss1) = (open_fds(), rss_kib());
    eprintln!("after {WARMUP}: {fds0} fds, {rss0} KiB; after {TOTAL}: {fds1} fds, {rss1} KiB");

    let _ = stop.send(true);
    task.await.unwrap();
    assert!(fake.stats.connections() >= TOTAL);
    assert!(sink.downs.load(Ordering::SeqCst) >= TOTAL - 1);
    assert!(fds1 <= fds0 + 4, "fds grew from {fds0} to {fds1}");
    assert!(
        rss1 <= rss0 + 2048,
        "RSS grew from {rss0} KiB to {rss1} KiB over {} reconnects",
        TOTAL - WARMUP
    );
}
