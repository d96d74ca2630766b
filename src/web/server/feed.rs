//! The live feed (`/api/events`): the drain thread turns each new record into its bounded
//! event text at once, the [`Feed`] queue holds those events bounded in bytes (`event: lagged`
//! when the oldest are dropped), and the hub thread writes each one to every client, dropping a
//! client whose socket fails.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex};
// Instant, not the box Clock: the keep-alive is for real proxies and phones that drop an idle
// socket in real time, and the hub waits on a Condvar that a fake clock would not wake.
use std::time::{Duration, Instant};

use super::health::Health;
use crate::web::json::listing_json;

/// The live-feed side shared by the workers (which add clients) and the hub.
#[derive(Clone)]
pub(super) struct Hub {
    pub(super) feed: Arc<Feed>,
    pub(super) new_clients: Arc<Mutex<Vec<Box<dyn Write + Send>>>>,
    /// Clients held (or being admitted); reserved before the answer starts, so the cap is exact.
    pub(super) clients: Arc<AtomicUsize>,
}

impl Hub {
    /// Reserves a live-feed place, or `false` when all `max` are taken.
    pub(super) fn reserve(&self, max: usize) -> bool {
        self.clients
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(super) fn release(&self, n: usize) {
        self.clients.fetch_sub(n, Ordering::SeqCst);
    }
}

/// Most bytes of formatted events waiting for the hub; beyond it the oldest are dropped and the
/// clients told (`event: lagged`), so a flood of huge records cannot grow memory.
pub const FEED_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Formatted events between the drain thread and the hub, bounded in bytes.
#[derive(Default)]
pub(super) struct Feed {
    queue: Mutex<FeedQueue>,
    ready: Condvar,
}

#[derive(Default)]
pub(super) struct FeedQueue {
    events: std::collections::VecDeque<String>,
    bytes: usize,
    dropped: u64,
}

impl Feed {
    fn push(&self, event: String) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.bytes += event.len();
        q.events.push_back(event);
        while q.bytes > FEED_MAX_BYTES {
            match q.events.pop_front() {
                Some(old) => {
                    q.bytes -= old.len();
                    q.dropped += 1;
                }
                None => break,
            }
        }
        self.ready.notify_one();
    }

    /// Records that never reached this queue (the journal's feed bound): announced like drops.
    fn lagged(&self, n: u64) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.dropped += n;
        self.ready.notify_one();
    }

    /// The next event (or a `lagged` notice after drops), waiting up to `wait`.
    fn pop(&self, wait: Duration) -> Option<String> {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, wait, |q| q.events.is_empty() && q.dropped == 0)
            .unwrap_or_else(|p| p.into_inner());
        if q.dropped > 0 {
            let n = std::mem::take(&mut q.dropped);
            return Some(format!("event: lagged\ndata: {{\"dropped\":{n}}}\n\n"));
        }
        let e = q.events.pop_front()?;
        q.bytes -= e.len();
        Some(e)
    }
}

/// Turns each new record into its event at once (the listing form, bounded in bytes), so the
/// full record is freed immediately whatever the hub is doing.
pub(super) fn drain(records: crate::journal::Subscription, feed: &Feed, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        // Records the journal did not copy to this lagging feed: the clients hear they lagged
        // (as for events this queue drops itself) and reload.
        let skipped = records.take_skipped();
        if skipped > 0 {
            feed.lagged(skipped);
        }
        match records.recv_timeout(Duration::from_millis(500)) {
            Ok(r) => feed.push(format!("event: record\ndata: {}\n\n", listing_json(&r))),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // No more records will come; wait for the stop like the others.
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// The live feed: every event goes to every client; a client whose socket fails (gone, or
/// stalled until the gate dropped it) is dropped and its place freed.
pub(super) fn event_hub(hub: &Hub, keepalive: Duration, stop: &AtomicBool, health: &Health) {
    let mut clients: Vec<Box<dyn Write + Send>> = Vec::new();
    let mut last_write = Instant::now();
    let tick = keepalive.min(Duration::from_millis(500));
    while !stop.load(Ordering::SeqCst) {
        health.hub.store(health.now_ms(), Ordering::SeqCst);
        clients.append(&mut hub.new_clients.lock().unwrap_or_else(|p| p.into_inner()));
        let msg = match hub.feed.pop(tick) {
            Some(m) => Some(m),
            None if last_write.elapsed() >= keepalive => Some(": keep-alive\n\n".to_string()),
            None => None,
        };
        if let Some(msg) = msg {
            // Clients that connected while we waited must get this record too.
            clients.append(&mut hub.new_clients.lock().unwrap_or_else(|p| p.into_inner()));
            last_write = Instant::now();
            let before = clients.len();
            clients.retain_mut(|c| c.write_all(msg.as_bytes()).and_then(|_| c.flush()).is_ok());
            hub.release(before - clients.len());
        }
    }
}
