//! The box's one clock: wall time (Unix seconds, stamped on records and shown to people) and
//! monotonic time ([`Mono`], for timers), injected everywhere so tests stop and move time by hand.
//!
//! Two readings because they answer different questions. The wall clock says what time it is and
//! may jump (a Pi has no RTC: it boots at the last shutdown's time and NTP steps it later); a timer
//! measured on it would fire early or never. [`Mono`] only moves forward and is what every
//! deadline (flush interval, ping time-out, poll period, retry back-off) is measured on.
//!
//! Kinds of clock, one type ([`Clock`], cheap to clone, `Send + Sync`):
//! - [`Clock::system`]: the real wall clock and `std::time::Instant`. What the binary uses.
//! - [`Clock::fixed_wall`]: real monotonic time, a wall clock that always reads one given second
//!   (benchmarks and tests that want reproducible dates but real timers).
//! - `ManualClock` (feature `testing`): nothing moves until the test calls `advance`; waiting
//!   threads and tasks are woken when it does, so timer tests never sleep for real.
//! - `Clock::tokio` (feature `testing`): monotonic time from tokio's clock, for async tests on a
//!   paused runtime (`#[tokio::test(start_paused = true)]`), which advances by itself while every
//!   task waits.
//!
//! How code waits on it (the clock never owns a thread):
//! - a std thread blocked on a channel: `rx.recv_timeout(clock.until(deadline))`, plus
//!   [`Clock::on_advance`] registering a waker that sends it a message (or unparks it), so a
//!   manual clock's `advance` ends the wait; [`Clock::block_until`] when there is nothing else
//!   to wait on;
//! - async code: `clock.sleep_until(deadline).await` inside a `select!`.
//!
//! What stays on `std::time::Instant`, on purpose: deadlines handed to the kernel (socket read
//! and write time-outs in `web::gate`, `web::tls`, `web::server`; a reply wait on a channel in
//! `journal::handle`), the short grace loops that join threads at shutdown, and elapsed times
//! written to the log. The kernel's time-outs run on real time whatever a fake clock says, so
//! routing them through one would only make a test believe in a deadline nothing enforces.
//!
//! Must not: read any other clock, spawn anything, or know who uses it.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point on a clock's monotonic timeline: the time since that clock started. Like
/// `std::time::Instant` (same operators, subtraction saturates at zero), but fakeable, and
/// meaningful only against other `Mono`s of the same [`Clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(Duration);

impl Mono {
    /// The clock's start.
    pub const ZERO: Mono = Mono(Duration::ZERO);

    /// Time since the clock's start.
    pub fn since_start(self) -> Duration {
        self.0
    }

    /// `self - earlier`, zero when `earlier` is later (as `Instant::duration_since`).
    pub fn duration_since(self, earlier: Mono) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Same as [`Mono::duration_since`]; the name `Instant` users look for.
    pub fn saturating_duration_since(self, earlier: Mono) -> Duration {
        self.duration_since(earlier)
    }

    /// `self - earlier`, `None` when `earlier` is later.
    pub fn checked_duration_since(self, earlier: Mono) -> Option<Duration> {
        self.0.checked_sub(earlier.0)
    }

    pub fn checked_add(self, d: Duration) -> Option<Mono> {
        self.0.checked_add(d).map(Mono)
    }

    /// `None` before the clock's start.
    pub fn checked_sub(self, d: Duration) -> Option<Mono> {
        self.0.checked_sub(d).map(Mono)
    }
}

impl Add<Duration> for Mono {
    type Output = Mono;
    /// Saturates at ~584 years instead of overflowing.
    fn add(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(d))
    }
}

impl AddAssign<Duration> for Mono {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Mono {
    type Output = Mono;
    /// Saturates at the clock's start.
    fn sub(self, d: Duration) -> Mono {
        Mono(self.0.saturating_sub(d))
    }
}

impl SubAssign<Duration> for Mono {
    fn sub_assign(&mut self, d: Duration) {
        *self = *self - d;
    }
}

impl Sub<Mono> for Mono {
    type Output = Duration;
    /// Saturates at zero, as `Instant - Instant` does.
    fn sub(self, earlier: Mono) -> Duration {
        self.duration_since(earlier)
    }
}

/// The injected clock. Clones share one timeline.
#[derive(Clone)]
pub struct Clock(Arc<Source>);

enum Source {
    System {
        start: std::time::Instant,
        /// `Some`: the wall clock always reads this.
        fixed_wall: Option<SystemTime>,
        /// Added to the system's wall clock (a PBX whose clock is wrong, in the simulator).
        wall_offset: Offset,
    },
    #[cfg(any(test, feature = "testing"))]
    Tokio {
        start: tokio::time::Instant,
        wall_start: SystemTime,
    },
    #[cfg(any(test, feature = "testing"))]
    Manual(manual::Shared),
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &*self.0 {
            Source::System {
                fixed_wall: None, ..
            } => "system",
            Source::System { .. } => "system timers, fixed wall clock",
            #[cfg(any(test, feature = "testing"))]
            Source::Tokio { .. } => "tokio",
            #[cfg(any(test, feature = "testing"))]
            Source::Manual(_) => "manual",
        };
        f.debug_struct("Clock")
            .field("kind", &kind)
            .field("unix", &self.unix())
            .field("mono", &self.now())
            .finish()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The real clocks: `SystemTime::now()` and `Instant::now()`.
    pub fn system() -> Clock {
        Clock::system_offset(0)
    }

    /// The real clocks, with the wall clock reading `offset_ms` ahead (negative: behind). The
    /// simulated PBX uses it to play an Asterisk whose clock is wrong (`sim-pbx
    /// --clock-offset`); the box itself always runs [`Clock::system`].
    pub fn system_offset(offset_ms: i64) -> Clock {
        Clock(Arc::new(Source::System {
            start: std::time::Instant::now(),
            fixed_wall: None,
            wall_offset: Offset(offset_ms),
        }))
    }

    /// Real monotonic time (timers fire as on the box); the wall clock always reads `unix`. For
    /// benchmarks and tests that need reproducible dates, folder names and stamps.
    pub fn fixed_wall(unix: i64) -> Clock {
        Clock(Arc::new(Source::System {
            start: std::time::Instant::now(),
            fixed_wall: Some(from_unix(unix)),
            wall_offset: Offset(0),
        }))
    }

    /// Monotonic time from `tokio::time::Instant` (so it follows a paused test runtime, which
    /// advances by itself while all tasks wait), the wall clock runs with it from the real
    /// time of creation. Read it only from tasks on that runtime: outside it tokio's clock is
    /// the real one, and the two timelines do not match.
    #[cfg(any(test, feature = "testing"))]
    pub fn tokio() -> Clock {
        Clock(Arc::new(Source::Tokio {
            start: tokio::time::Instant::now(),
            wall_start: SystemTime::now(),
        }))
    }

    /// Monotonic now.
    pub fn now(&self) -> Mono {
        match &*self.0 {
            Source::System { start, .. } => Mono(start.elapsed()),
            #[cfg(any(test, feature = "testing"))]
            Source::Tokio { start, .. } => Mono(tokio::time::Instant::now() - *start),
            #[cfg(any(test, feature = "testing"))]
            Source::Manual(m) => m.lock().mono,
        }
    }

    /// Wall-clock now.
    pub fn wall(&self) -> SystemTime {
        match &*self.0 {
            Source::System {
                fixed_wall: None,
                wall_offset,
                ..
            } => wall_offset.apply(SystemTime::now()),
            Source::System {
                fixed_wall: Some(w),
                ..
            } => *w,
            #[cfg(any(test, feature = "testing"))]
            Source::Tokio { start, wall_start } => {
                *wall_start + (tokio::time::Instant::now() - *start)
            }
            #[cfg(any(test, feature = "testing"))]
            Source::Manual(m) => m.lock().wall,
        }
    }

    /// Wall-clock now in whole Unix seconds (negative before 1970, which a Pi without RTC and
    /// network can show; nothing here treats that as an error).
    pub fn unix(&self) -> i64 {
        to_unix(self.wall())
    }

    /// How long a blocking wait for `deadline` may last in real time (zero once it passed): the
    /// timeout for `recv_timeout`, `park_timeout` or `Condvar::wait_timeout`.
    ///
    /// On a manual clock time only moves by `advance`, so this is a long re-check period
    /// ([`MANUAL_RECHECK`]) until the deadline is reached: register a waker with
    /// [`Clock::on_advance`] so `advance` ends the wait at once.
    pub fn until(&self, deadline: Mono) -> Duration {
        let left = deadline.duration_since(self.now());
        #[cfg(any(test, feature = "testing"))]
        if matches!(&*self.0, Source::Manual(_)) && !left.is_zero() {
            return MANUAL_RECHECK;
        }
        left
    }

    /// Blocks this thread until `deadline` (returns at once when it passed). On a manual clock
    /// it wakes when `advance` reaches it; no waker is needed.
    pub fn block_until(&self, deadline: Mono) {
        #[cfg(any(test, feature = "testing"))]
        if let Source::Manual(m) = &*self.0 {
            return m.block_until(deadline);
        }
        loop {
            // Sleep again for the rest if `thread::sleep` came back early.
            let left = self.until(deadline);
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left);
        }
    }

    /// Completes at `deadline` (at once when it passed). Cancel-safe: drop it in a `select!`.
    pub async fn sleep_until(&self, deadline: Mono) {
        #[cfg(any(test, feature = "testing"))]
        match &*self.0 {
            Source::Tokio { start, .. } => {
                return tokio::time::sleep_until(*start + deadline.since_start()).await;
            }
            Source::Manual(m) => return m.sleep_until(deadline).await,
            Source::System { .. } => {}
        }
        loop {
            let left = self.until(deadline);
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left).await;
        }
    }

    /// Completes after `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        self.sleep_until(self.now() + d).await
    }

    /// Calls `wake` (on the advancing thread, after the new time is visible) whenever a manual
    /// clock moves; never on the real clocks, whose waits end by their own timeouts. Keep it
    /// short and non-blocking: send a message, unpark a thread. Registered until the returned
    /// [`Waker`] is dropped.
    pub fn on_advance(&self, wake: impl Fn() + Send + Sync + 'static) -> Waker {
        #[cfg(any(test, feature = "testing"))]
        if let Source::Manual(m) = &*self.0 {
            return Waker(Some((m.clone(), m.register(Box::new(wake)))));
        }
        drop(wake);
        Waker(None)
    }
}

/// How long a wait on a manual clock lasts in real time before re-checking, when nothing wakes
/// it: long enough that a test never depends on it, short enough that a missing waker makes a
/// test slow rather than hang.
pub const MANUAL_RECHECK: Duration = Duration::from_secs(1);

/// Registration of an [`Clock::on_advance`] callback; dropping it unregisters.
#[must_use = "the callback is unregistered when this is dropped"]
pub struct Waker(#[allow(dead_code)] WakerInner);

#[cfg(any(test, feature = "testing"))]
type WakerInner = Option<(manual::Shared, u64)>;
#[cfg(not(any(test, feature = "testing")))]
type WakerInner = Option<std::convert::Infallible>;

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waker")
    }
}

#[cfg(any(test, feature = "testing"))]
impl Drop for Waker {
    fn drop(&mut self) {
        if let Some((m, id)) = self.0.take() {
            m.unregister(id);
        }
    }
}

/// Milliseconds added to a wall-clock reading.
#[derive(Clone, Copy)]
struct Offset(i64);

impl Offset {
    fn apply(self, t: SystemTime) -> SystemTime {
        let d = Duration::from_millis(self.0.unsigned_abs());
        let moved = if self.0 >= 0 {
            t.checked_add(d)
        } else {
            t.checked_sub(d)
        };
        moved.unwrap_or(t)
    }
}

/// Milliseconds from the Unix epoch to `t` (negative before 1970).
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |m| -m),
    }
}

fn from_unix(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

fn to_unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Before 1970: round towards the past, as Unix time does.
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

#[cfg(any(test, feature = "testing"))]
pub use manual::ManualClock;

#[cfg(any(test, feature = "testing"))]
mod manual {
    use super::*;
    use std::sync::{Condvar, Mutex, MutexGuard};

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        // A panicking test thread must not poison the clock for the others.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    type Wake = Box<dyn Fn() + Send + Sync>;

    pub(super) struct State {
        pub(super) mono: Mono,
        pub(super) wall: SystemTime,
        pub(super) wakers: Vec<(u64, Arc<Wake>)>,
        next_id: u64,
    }

    struct Inner {
        state: Mutex<State>,
        /// Threads in `block_until`.
        moved: Condvar,
        /// Tasks in `sleep_until`.
        notify: tokio::sync::Notify,
    }

    #[derive(Clone)]
    pub(super) struct Shared(Arc<Inner>);

    impl Shared {
        pub(super) fn lock(&self) -> MutexGuard<'_, State> {
            lock(&self.0.state)
        }

        pub(super) fn register(&self, wake: Wake) -> u64 {
            let mut s = self.lock();
            let id = s.next_id;
            s.next_id += 1;
            s.wakers.push((id, Arc::new(wake)));
            id
        }

        pub(super) fn unregister(&self, id: u64) {
            self.lock().wakers.retain(|(i, _)| *i != id);
        }

        pub(super) fn block_until(&self, deadline: Mono) {
            let mut s = self.lock();
            while s.mono < deadline {
                s = self
                    .0
                    .moved
                    .wait_timeout(s, MANUAL_RECHECK)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }

        pub(super) async fn sleep_until(&self, deadline: Mono) {
            loop {
                // Registered before the check, so an `advance` between the check and the await
                // is not lost.
                let notified = self.0.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.lock().mono >= deadline {
                    return;
                }
                notified.await;
            }
        }

        fn moved(&self, change: impl FnOnce(&mut State)) {
            let wakers: Vec<Arc<Wake>> = {
                let mut s = self.lock();
                change(&mut s);
                s.wakers.iter().map(|(_, w)| w.clone()).collect()
            };
            // Outside the lock: a waker may read the clock.
            self.0.moved.notify_all();
            self.0.notify.notify_waiters();
            for w in wakers {
                w();
            }
        }
    }

    /// A clock that moves only when told to (feature `testing`). `clock()` is what the code
    /// under test gets; the test keeps this handle and calls [`ManualClock::advance`]. Derefs
    /// to [`Clock`], so `hand.unix()` and `hand.now()` read it.
    #[derive(Clone)]
    pub struct ManualClock {
        clock: Clock,
        pub(super) shared: Shared,
    }

    impl fmt::Debug for ManualClock {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.clock.fmt(f)
        }
    }

    impl ManualClock {
        /// Monotonic time at [`Mono::ZERO`], the wall clock at Unix second `unix`.
        pub fn new(unix: i64) -> ManualClock {
            let shared = Shared(Arc::new(Inner {
                state: Mutex::new(State {
                    mono: Mono::ZERO,
                    wall: from_unix(unix),
                    wakers: Vec::new(),
                    next_id: 0,
                }),
                moved: Condvar::new(),
                notify: tokio::sync::Notify::new(),
            }));
            ManualClock {
                clock: Clock(Arc::new(Source::Manual(shared.clone()))),
                shared,
            }
        }

        /// The clock to hand to the code under test.
        pub fn clock(&self) -> Clock {
            self.clock.clone()
        }

        /// Moves both the monotonic and the wall clock forward by `d`, then wakes every waiter.
        pub fn advance(&self, d: Duration) {
            self.shared.moved(|s| {
                s.mono += d;
                s.wall += d;
            });
        }

        /// Sets the wall clock alone (an NTP step, or a test's "it is now the next day");
        /// monotonic time does not move. Wakes waiters too, so they re-read the date.
        pub fn set_unix(&self, unix: i64) {
            self.shared.moved(|s| s.wall = from_unix(unix));
        }
    }

    impl std::ops::Deref for ManualClock {
        type Target = Clock;
        fn deref(&self) -> &Clock {
            &self.clock
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const S: Duration = Duration::from_secs(1);
    /// A bound for "the waiter reacted", far above any scheduling delay; never a proof by
    /// sleeping (the tests would pass with it at an hour).
    const REACT: Duration = Duration::from_secs(30);

    #[test]
    fn mono_arithmetic_saturates_like_instant() {
        let a = Mono::ZERO + 5 * S;
        assert_eq!(a - (Mono::ZERO + 7 * S), Duration::ZERO);
        assert_eq!((a + 2 * S) - a, 2 * S);
        assert_eq!(a - 10 * S, Mono::ZERO);
        assert_eq!(a.checked_sub(10 * S), None);
        assert_eq!(a.checked_duration_since(a + S), None);
        assert_eq!(a.since_start(), 5 * S);
        let mut b = a;
        b += S;
        b -= 3 * S;
        assert_eq!(b, Mono::ZERO + 3 * S);
    }

    #[test]
    fn an_offset_clock_reads_ahead_or_behind_the_system_wall_clock() {
        let real = unix_millis(SystemTime::now());
        let ahead = unix_millis(Clock::system_offset(42_000).wall()) - real;
        let behind = unix_millis(Clock::system_offset(-90_500).wall()) - real;
        // The reads are microseconds apart; a second of slack is only for a descheduled test.
        assert!((42_000..43_000).contains(&ahead), "{ahead}");
        assert!((-90_500..-89_500).contains(&behind), "{behind}");
        assert_eq!(unix_millis(from_unix(-2)), -2_000);
        assert_eq!(unix_millis(UNIX_EPOCH + Duration::from_micros(1_500)), 1);
    }

    #[test]
    fn unix_seconds_round_towards_the_past() {
        assert_eq!(to_unix(from_unix(1_795_331_257)), 1_795_331_257);
        assert_eq!(to_unix(from_unix(-5)), -5);
        assert_eq!(to_unix(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(to_unix(UNIX_EPOCH + Duration::from_millis(1999)), 1);
    }

    #[test]
    fn system_clock_runs() {
        let c = Clock::system();
        let wall = c.unix();
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        assert!((wall - real).abs() <= 1, "{wall} vs {real}");
        let t0 = c.now();
        let t1 = c.now();
        assert!(t1 >= t0);
        assert_eq!(c.until(t0), Duration::ZERO, "a passed deadline waits zero");
        c.block_until(t0);
    }

    #[test]
    fn fixed_wall_pins_the_date_only() {
        let c = Clock::fixed_wall(1_795_331_257);
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.clone().unix(), 1_795_331_257);
        assert!(c.now() > t0, "timers still run on real time");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let hand = ManualClock::new(1_000);
        let c = hand.clock();
        assert_eq!((c.unix(), c.now()), (1_000, Mono::ZERO));
        hand.advance(90 * S);
        assert_eq!((c.unix(), c.now()), (1_090, Mono::ZERO + 90 * S));
        hand.set_unix(5_000);
        assert_eq!(
            (c.unix(), c.now()),
            (5_000, Mono::ZERO + 90 * S),
            "a wall step leaves timers alone"
        );
        assert_eq!(c.until(c.now()), Duration::ZERO);
        assert_eq!(c.until(c.now() + S), MANUAL_RECHECK);
    }

    #[test]
    fn manual_advance_ends_a_blocking_wait() {
        let hand = ManualClock::new(0);
        let c = hand.clock();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            c.block_until(Mono::ZERO + 10 * S);
            tx.send(c.now()).unwrap();
        });
        hand.advance(4 * S);
        hand.advance(6 * S);
        assert_eq!(rx.recv_timeout(REACT).unwrap(), Mono::ZERO + 10 * S);
        t.join().unwrap();
    }

    #[test]
    fn wakers_end_a_recv_timeout_and_unregister_on_drop() {
        // The journal writer's shape: a thread waiting on its channel until a deadline.
        let hand = ManualClock::new(0);
        let c = hand.clock();
        let (tx, rx) = mpsc::channel::<&str>();
        let waker_tx = tx.clone();
        let waker = c.on_advance(move || {
            let _ = waker_tx.send("tick");
        });
        let (done_tx, done_rx) = mpsc::channel();
        let deadline = c.now() + 5 * S;
        let t = std::thread::spawn(move || {
            while c.now() < deadline {
                // Without the waker this would wait MANUAL_RECHECK per turn.
                let _ = rx.recv_timeout(c.until(deadline));
            }
            done_tx.send(c.now()).unwrap();
        });
        hand.advance(5 * S);
        assert_eq!(done_rx.recv_timeout(REACT).unwrap(), Mono::ZERO + 5 * S);
        t.join().unwrap();
        drop(waker);
        assert!(hand.shared.lock().wakers.is_empty());
        drop(tx);
    }

    #[test]
    fn manual_advance_wakes_async_sleepers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let hand = ManualClock::new(0);
        let c = hand.clock();
        rt.block_on(async {
            let sleeper = tokio::spawn({
                let c = c.clone();
                async move {
                    c.sleep(30 * S).await;
                    c.now()
                }
            });
            // Let the sleeper register, then move time in two steps.
            tokio::task::yield_now().await;
            hand.advance(10 * S);
            tokio::task::yield_now().await;
            assert!(!sleeper.is_finished(), "woke before its deadline");
            hand.advance(20 * S);
            let woke = tokio::time::timeout(REACT, sleeper).await.unwrap().unwrap();
            assert_eq!(woke, Mono::ZERO + 30 * S);
        });
    }

    #[test]
    fn tokio_clock_follows_a_paused_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let c = Clock::tokio();
            let w0 = c.unix();
            // An hour passes at once: the paused runtime advances while every task waits.
            c.sleep(3600 * S).await;
            assert!(c.now() >= Mono::ZERO + 3600 * S);
            assert!(c.unix() - w0 >= 3600);
        });
    }

    #[test]
    fn system_waker_is_inert() {
        let c = Clock::system();
        let w = c.on_advance(|| panic!("never called"));
        drop(w);
    }
}
