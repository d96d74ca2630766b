//! The live feed (`/api/events`): the drain thread turns each new record into its bounded
//! event text at once, the [`Feed`] queue holds those events bounded in bytes (`event: lagged`
//! when the oldest are dropped), and the hub thread writes each one to every client, dropping a
//! client whose socket fails.
//!
//! Neither thread wakes on a timer while the box is idle (issue 14 item 4): the drain blocks on
//! the journal's feed and the hub on the queue's condvar, both woken by [`Feed::stop`]; the hub
//! arms a timer only while a client is connected, for that client's next keep-alive.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex};
// Instant, not the box Clock: the keep-alive is for real proxies and phones that drop an idle
// socket in real time, and the hub waits on a Condvar that a fake clock would not wake.
use std::time::{Duration, Instant};

use super::health::{Health, WAITING};
use crate::journal::Woken;
use crate::web::json::listing_json;

/// The live-feed side shared by the workers (which add clients) and the hub.
#[derive(Clone)]
pub(super) struct Hub {
    pub(super) feed: Arc<Feed>,
    /// Added with [`Hub::add_client`], which wakes the hub.
    new_clients: Arc<Mutex<Vec<Box<dyn Write + Send>>>>,
    /// Clients held (or being admitted); reserved before the answer starts, so the cap is exact.
    pub(super) clients: Arc<AtomicUsize>,
}

impl Hub {
    pub(super) fn new() -> Hub {
        Hub {
            feed: Arc::new(Feed::default()),
            new_clients: Arc::new(Mutex::new(Vec::new())),
            clients: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hands a client whose answer has started to the hub, and wakes it (it may be waiting
    /// with no time-out: it arms the keep-alive only for clients it holds).
    pub(super) fn add_client(&self, out: Box<dyn Write + Send>) {
        self.new_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(out);
        let mut q = self.feed.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.woken = true;
        self.feed.ready.notify_one();
    }

    fn take_new_clients(&self, into: &mut Vec<Box<dyn Write + Send>>) {
        into.append(&mut self.new_clients.lock().unwrap_or_else(|p| p.into_inner()));
    }

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
    /// A client was added: the hub must look at its new clients.
    woken: bool,
    /// The server is stopping: the drain and the hub end.
    stopped: bool,
}

/// What [`Feed::pop`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Popped {
    /// An event (or a `lagged` notice) for every client.
    Event(String),
    /// Woken by a new client, or the wait ran out: nothing to send.
    Nothing,
    /// [`Feed::stop`] was called.
    Stopped,
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

    /// Ends [`drain`] and [`event_hub`] (with the drain's own wake-up, see [`drain`]).
    pub(super) fn stop(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.stopped = true;
        self.ready.notify_all();
    }

    /// The next event (or a `lagged` notice after drops), waiting up to `wait` (`None`: with
    /// no time-out) or until a client is added or the feed stopped.
    pub(super) fn pop(&self, wait: Option<Duration>) -> Popped {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let idle =
            |q: &mut FeedQueue| q.events.is_empty() && q.dropped == 0 && !q.woken && !q.stopped;
        let mut q = match wait {
            Some(wait) => {
                self.ready
                    .wait_timeout_while(q, wait, idle)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
            None => self
                .ready
                .wait_while(q, idle)
                .unwrap_or_else(|p| p.into_inner()),
        };
        q.woken = false;
        if q.stopped {
            return Popped::Stopped;
        }
        if q.dropped > 0 {
            let n = std::mem::take(&mut q.dropped);
            return Popped::Event(format!("event: lagged\ndata: {{\"dropped\":{n}}}\n\n"));
        }
        match q.events.pop_front() {
            Some(e) => {
                q.bytes -= e.len();
                Popped::Event(e)
            }
            None => Popped::Nothing,
        }
    }

    /// Waits until [`Feed::stop`].
    fn wait_stopped(&self) {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let _q = self
            .ready
            .wait_while(q, |q| !q.stopped)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// Turns each new record into its event at once (the listing form, bounded in bytes), so the
/// full record is freed immediately whatever the hub is doing.
///
/// A journal's feed is read with no time-out: the server's stop wakes it through `waker` (see
/// [`crate::journal::Subscription::waker`]). A plain channel (a backend without a journal, in
/// tests) cannot be woken, so it is polled every 500 ms.
pub(super) fn drain(records: crate::journal::Subscription, feed: &Feed, stop: &AtomicBool) {
    let woken = records.waker().is_some();
    while !stop.load(Ordering::SeqCst) {
        // Records the journal did not copy to this lagging feed: the clients hear they lagged
        // (as for events this queue drops itself) and reload.
        let skipped = records.take_skipped();
        if skipped > 0 {
            feed.lagged(skipped);
        }
        let next = if woken {
            records.recv().map_err(|w| w == Woken::Disconnected)
        } else {
            records
                .recv_timeout(Duration::from_millis(500))
                .map_err(|e| e == RecvTimeoutError::Disconnected)
        };
        match next {
            Ok(r) => feed.push(format!("event: record\ndata: {}\n\n", listing_json(&r))),
            Err(false) => {}
            Err(true) => {
                // No more records will come; wait for the stop like the others (a thread that
                // ends early reads as a dead server).
                feed.wait_stopped();
            }
        }
    }
}

/// The live feed: every event goes to every client; a client whose socket fails (gone, or
/// stalled until the gate dropped it) is dropped and its place freed.
///
/// With no client it waits for an event, a client or the stop with no time-out; with clients,
/// at most until the next keep-alive is due. The heartbeat says "waiting" while it waits, and
/// the time it started writing otherwise (a write can block on a stalled client).
pub(super) fn event_hub(hub: &Hub, keepalive: Duration, stop: &AtomicBool, health: &Health) {
    let mut clients: Vec<Box<dyn Write + Send>> = Vec::new();
    let mut last_write = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        hub.take_new_clients(&mut clients);
        let wait = (!clients.is_empty()).then(|| keepalive.saturating_sub(last_write.elapsed()));
        health.hub.store(WAITING, Ordering::SeqCst);
        let popped = hub.feed.pop(wait);
        health.hub.store(health.now_ms(), Ordering::SeqCst);
        let msg = match popped {
            Popped::Stopped => break,
            Popped::Event(m) => Some(m),
            Popped::Nothing if !clients.is_empty() && last_write.elapsed() >= keepalive => {
                Some(": keep-alive\n\n".to_string())
            }
            Popped::Nothing => None,
        };
        if let Some(msg) = msg {
            // Clients that connected while we waited must get this record too.
            hub.take_new_clients(&mut clients);
            last_write = Instant::now();
            let before = clients.len();
            clients.retain_mut(|c| c.write_all(msg.as_bytes()).and_then(|_| c.flush()).is_ok());
            hub.release(before - clients.len());
        }
    }
}
