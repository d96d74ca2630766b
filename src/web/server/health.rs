//! The web server's heartbeat for the systemd watchdog: each thread's last loop, each page
//! worker's busy-since time, and the threads still running; [`WebProbe::check`] turns them into
//! "answers" or the sentence saying what is stuck.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;

/// Liveness of the server's threads, for the watchdog. Times are [`Health::now_ms`] readings.
pub(super) struct Health {
    /// The box clock's monotonic time: a wall clock stepped by NTP (a Pi boots at its last
    /// shutdown's time) would make every thread look stuck for hours and the watchdog restart
    /// a healthy server.
    pub(super) clock: Clock,
    /// When the dispatcher / hub started on the work in hand, or [`WAITING`] while they wait
    /// for work (blocked in `recv` / on the hub's queue, which a stop wakes): an idle server
    /// needs no tick to look alive.
    pub(super) dispatcher: AtomicI64,
    pub(super) hub: AtomicI64,
    /// Per page worker: since when it is busy with one request, 0 when idle.
    pub(super) busy_since: Vec<AtomicI64>,
    /// Longest a page worker may legitimately be busy.
    pub(super) stuck_after: Duration,
    /// Longest the hub may legitimately go without a loop.
    pub(super) hub_late: Duration,
    /// Threads started and still running; a thread that ends (or panics) before `stop` is a
    /// dead server.
    pub(super) started: AtomicUsize,
    pub(super) running: AtomicUsize,
    pub(super) stopping: AtomicBool,
}

/// The heartbeat of a loop waiting for work: not late however long it waits. ([`Health::now_ms`]
/// is never 0.)
pub(super) const WAITING: i64 = 0;

/// Counts a server thread as running until it ends, however it ends.
pub(super) struct Running(pub(super) Arc<Health>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A cheap, clonable view of the server's health for the watchdog (see [`WebHandle::probe`]).
#[derive(Clone)]
pub struct WebProbe(pub(super) Arc<Health>);

impl WebProbe {
    /// `Ok` while the server answers: its threads run and at least one page worker is not
    /// wedged. `Err` says what is wrong (the watchdog logs it and stops feeding systemd, which
    /// then restarts the service).
    pub fn check(&self) -> Result<(), String> {
        let h = &self.0;
        if h.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (started, running) = (
            h.started.load(Ordering::SeqCst),
            h.running.load(Ordering::SeqCst),
        );
        if running < started {
            return Err(format!("{} web thread(s) ended", started - running));
        }
        let now = h.now_ms();
        let late = |at: &AtomicI64, ms: i64| {
            let since = at.load(Ordering::SeqCst);
            since != WAITING && now - since > ms
        };
        if late(&h.dispatcher, 10_000) {
            return Err("the web dispatcher is stuck".into());
        }
        // The hub may wait on one stalled client until the gate drops it.
        if late(&h.hub, h.hub_late.as_millis() as i64) {
            return Err("the live-feed hub is stuck".into());
        }
        let stuck = h.stuck_after.as_millis() as i64;
        let wedged = h.busy_since.iter().all(|b| {
            let since = b.load(Ordering::SeqCst);
            since != 0 && now - since > stuck
        });
        if wedged {
            return Err(format!(
                "every web page worker has been busy for over {} s",
                stuck / 1000
            ));
        }
        Ok(())
    }
}

impl Health {
    /// Milliseconds on the clock's monotonic timeline, plus one so that a reading is never the
    /// 0 that means "idle" in `busy_since` and [`WAITING`] in the heartbeats (a heartbeat only:
    /// compared with itself, never stored).
    pub(super) fn now_ms(&self) -> i64 {
        self.clock.now().since_start().as_millis() as i64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn health(clock: Clock) -> Arc<Health> {
        let h = Health {
            clock,
            dispatcher: AtomicI64::new(WAITING),
            hub: AtomicI64::new(WAITING),
            busy_since: vec![AtomicI64::new(0)],
            stuck_after: Duration::from_secs(60),
            hub_late: Duration::from_secs(70),
            started: AtomicUsize::new(3),
            running: AtomicUsize::new(3),
            stopping: AtomicBool::new(false),
        };
        Arc::new(h)
    }

    /// Issue 14 item 4: the loops no longer tick while idle, so a loop waiting for work must
    /// look alive however long it waits — and one busy on a piece of work must still look stuck
    /// past its threshold.
    #[test]
    fn a_waiting_loop_is_never_late_and_a_busy_one_is() {
        let hand = ManualClock::new(1_795_331_257);
        let h = health(hand.clock());
        let probe = WebProbe(h.clone());
        hand.advance(Duration::from_secs(3600));
        assert_eq!(probe.check(), Ok(()));

        h.dispatcher.store(h.now_ms(), Ordering::SeqCst);
        hand.advance(Duration::from_secs(9));
        assert_eq!(probe.check(), Ok(()));
        hand.advance(Duration::from_secs(2));
        assert_eq!(probe.check(), Err("the web dispatcher is stuck".into()));
        h.dispatcher.store(WAITING, Ordering::SeqCst);
        assert_eq!(probe.check(), Ok(()));

        h.hub.store(h.now_ms(), Ordering::SeqCst);
        hand.advance(Duration::from_secs(71));
        assert_eq!(probe.check(), Err("the live-feed hub is stuck".into()));
    }
}
