//! Reconnect pacing built for a logger: every second without a session is calls lost for good
//! (AMI never replays), so a link that was up comes back at once, and only a link that keeps
//! failing slows down. Pure: the random source is injected and `now` is passed in, so every rule
//! is unit- and property-tested without sleeping. Must not: sleep, read a clock, touch sockets.
//!
//! The lanes (issue 10 item 3; Asterisk keeps no history for a client that was away, answers a
//! bad login after about 1 s and closes, and sees a dead client only when a write fails):
//! - **quick** — a session that stayed logged in for `stable_after` and then dropped (network
//!   blip, proxy or firewall reset) reconnects immediately, then `quick_retries` more times
//!   about `quick_interval` apart (±10 %, so several links do not march in lock-step).
//! - **backoff** — after that, ceilings of `quick_interval · factor^k` capped at `cap`, each delay
//!   drawn from `[ceiling/2, ceiling]`: spread out, never a hot loop, never longer than `cap`.
//!   A session shorter than `stable_after` does not re-arm the quick lane, so a PBX that accepts
//!   the login and drops us at once is paced by the ladder instead of hammered.
//! - **restart** — after `Event: Shutdown` + EOF or `Asterisk is shutting down`, the PBX is
//!   restarting: that takes seconds to tens of seconds, and its manager port opens before the
//!   channel drivers load, so polling every `restart_poll` (connection refused is one cheap
//!   SYN/RST on a LAN) for `restart_window` logs in before the first call is possible.
//! - **in use** — `Login Already In Use` (`allowmultiplelogin = no`): a ghost of our own session
//!   clears when Asterisk sees its TCP die — at once for a socket we closed, at the PBX's next
//!   write to it for a cut one — so retry every `in_use_interval` for a while, then double up to
//!   `in_use_cap`. Each attempt costs the PBX a `sleep(1)` and a log line, hence not faster.
//! - **auth** — `Authentication failed` is a configuration error that may be fixed on the PBX
//!   side; each attempt costs a `sleep(1)` and a security-log entry, so it stays slow
//!   (`auth_first` doubling up to `auth_cap`) but never gives up.
//!
//! There is no lane for storage trouble: the journal never asks a link to pause (it drops
//! beyond its bounds and records the loss in the gap ledger), so a link only ever goes down
//! for the PBX's or the network's reasons.

use std::time::Duration;

use crate::clock::Mono;

use crate::sink::DownKind;

/// Pacing tuning; tests use milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Spacing of the quick retries after the immediate one (±10 %).
    pub quick_interval: Duration,
    /// Quick retries after the immediate one, before the ladder starts.
    pub quick_retries: u32,
    /// Growth of the ladder's ceiling per further failure.
    pub factor: u32,
    /// Largest ordinary delay.
    pub cap: Duration,
    /// A session logged in at least this long re-arms the immediate + quick lane when it drops.
    pub stable_after: Duration,
    /// Poll spacing while the PBX restarts (±10 %).
    pub restart_poll: Duration,
    /// How long after the first sign of a shutdown the restart poll lasts.
    pub restart_window: Duration,
    /// Spacing of the first `quick_retries` retries after `Login Already In Use`.
    pub in_use_interval: Duration,
    /// Largest delay after repeated `Login Already In Use`.
    pub in_use_cap: Duration,
    /// Delay before the first retry after an authentication failure.
    pub auth_first: Duration,
    /// Largest delay after repeated authentication failures.
    pub auth_cap: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            quick_interval: Duration::from_secs(1),
            quick_retries: 5,
            factor: 2,
            // One SYN every 10 s to a PBX that is away costs nothing on a LAN; a 30 s cap would
            // cost up to 30 s of calls after it is back.
            cap: Duration::from_secs(10),
            stable_after: Duration::from_secs(2),
            restart_poll: Duration::from_millis(500),
            restart_window: Duration::from_secs(120),
            in_use_interval: Duration::from_secs(2),
            in_use_cap: Duration::from_secs(30),
            auth_first: Duration::from_secs(30),
            auth_cap: Duration::from_secs(300),
        }
    }
}

/// Which rule chose a delay (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Right after a stable session dropped.
    Immediate,
    /// The n-th quick retry (1-based).
    Quick(u32),
    /// The capped exponential ladder.
    Ladder,
    /// Polling a restarting PBX.
    Restart,
    /// After `Login Already In Use`.
    InUse,
    /// After `Authentication failed`.
    Auth,
}

/// The decision for one reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub delay: Duration,
    pub lane: Lane,
}

/// Reconnect pacing state for one link.
#[derive(Debug)]
pub struct Backoff {
    cfg: BackoffConfig,
    /// Consecutive ordinary failures since the last reset.
    failures: u32,
    in_use_failures: u32,
    auth_failures: u32,
    /// When the current restart poll began (first shutdown sign), while it lasts.
    restart_since: Option<Mono>,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig, rng: fastrand::Rng) -> Self {
        Backoff {
            cfg,
            failures: 0,
            in_use_failures: 0,
            auth_failures: 0,
            restart_since: None,
            rng,
        }
    }

    pub fn config(&self) -> &BackoffConfig {
        &self.cfg
    }

    /// Consecutive failures counted so far (ordinary, authentication).
    pub fn failures(&self) -> (u32, u32) {
        (self.failures, self.auth_failures)
    }

    /// Forget past failures (and any restart in progress).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.in_use_failures = 0;
        self.auth_failures = 0;
        self.restart_since = None;
    }

    /// The delay before the next connection attempt, after a link went down for `kind` at
    /// `now`. `logged_in_for` is how long that connection had been logged in (`None`: it never
    /// was, e.g. the TCP connect failed).
    pub fn next_delay(
        &mut self,
        kind: DownKind,
        logged_in_for: Option<Duration>,
        now: Mono,
    ) -> Retry {
        let was_stable = logged_in_for.is_some_and(|d| d >= self.cfg.stable_after);
        if was_stable {
            self.reset();
        } else if logged_in_for.is_some() {
            // Logged in, however briefly: the PBX is back, so a restart poll is over; the
            // ladder position is kept (a flapping PBX keeps climbing it).
            self.restart_since = None;
        }
        match kind {
            DownKind::AuthFailed => {
                let d = grow(self.cfg.auth_first, self.cfg.factor, self.auth_failures)
                    .min(self.cfg.auth_cap);
                self.auth_failures = self.auth_failures.saturating_add(1);
                // A little jitter on top, never below the floor: the PBX owner can count on
                // "at least auth_first between rejected logins".
                let extra = self.uniform(Duration::ZERO, d / 10);
                Retry {
                    delay: d.saturating_add(extra).min(self.cfg.auth_cap.max(d)),
                    lane: Lane::Auth,
                }
            }
            DownKind::LoginInUse => {
                let n = self.in_use_failures;
                self.in_use_failures = self.in_use_failures.saturating_add(1);
                let ceiling = if n < self.cfg.quick_retries {
                    self.cfg.in_use_interval
                } else {
                    grow(
                        self.cfg.in_use_interval,
                        self.cfg.factor,
                        n - self.cfg.quick_retries + 1,
                    )
                    .min(self.cfg.in_use_cap.max(self.cfg.in_use_interval))
                };
                Retry {
                    delay: self.around(ceiling),
                    lane: Lane::InUse,
                }
            }
            DownKind::PbxShutdown => {
                self.restart_since.get_or_insert(now);
                Retry {
                    delay: self.around(self.cfg.restart_poll),
                    lane: Lane::Restart,
                }
            }
            DownKind::Transient => {
                if let Some(since) = self.restart_since {
                    if now.saturating_duration_since(since) < self.cfg.restart_window {
                        return Retry {
                            delay: self.around(self.cfg.restart_poll),
                            lane: Lane::Restart,
                        };
                    }
                    self.restart_since = None;
                }
                let step = self.failures;
                self.failures = self.failures.saturating_add(1);
                if step == 0 && was_stable {
                    Retry {
                        delay: Duration::ZERO,
                        lane: Lane::Immediate,
                    }
                } else if step <= self.cfg.quick_retries {
                    // Step 0 without a stable session (first start, or a login that did not
                    // last) is the first quick retry: never immediate.
                    Retry {
                        delay: self.around(self.cfg.quick_interval),
                        lane: Lane::Quick(step.max(1)),
                    }
                } else {
                    let k = step - self.cfg.quick_retries;
                    let ceiling = grow(self.cfg.quick_interval, self.cfg.factor, k)
                        .min(self.cfg.cap.max(self.cfg.quick_interval));
                    Retry {
                        delay: self.uniform(ceiling / 2, ceiling),
                        lane: Lane::Ladder,
                    }
                }
            }
        }
    }

    /// Uniform in `[lo, hi]` (`lo` when `hi < lo`).
    fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        let lo_n = u64::try_from(lo.as_nanos()).unwrap_or(u64::MAX);
        let hi_n = u64::try_from(hi.as_nanos()).unwrap_or(u64::MAX).max(lo_n);
        Duration::from_nanos(self.rng.u64(lo_n..=hi_n))
    }

    /// `d` ± 10 %.
    fn around(&mut self, d: Duration) -> Duration {
        let tenth = d / 10;
        self.uniform(d.saturating_sub(tenth), d.saturating_add(tenth))
    }
}

fn grow(base: Duration, factor: u32, n: u32) -> Duration {
    base.saturating_mul(factor.max(1).saturating_pow(n.min(64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn backoff() -> Backoff {
        Backoff::new(BackoffConfig::default(), fastrand::Rng::with_seed(7))
    }

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn stable_session_drop_reconnects_at_once_then_about_a_second_apart_then_ladder() {
        let t0 = Mono::ZERO;
        let mut b = backoff();
        let r = b.next_delay(DownKind::Transient, Some(60 * S), t0);
        assert_eq!(
            r,
            Retry {
                delay: Duration::ZERO,
                lane: Lane::Immediate
            }
        );
        for n in 1..=5 {
            let r = b.next_delay(DownKind::Transient, None, t0);
            assert_eq!(r.lane, Lane::Quick(n));
            assert!(r.delay >= 900 * MS && r.delay <= 1100 * MS, "{r:?}");
        }
        // Then ceilings 2, 4, 8, 10, 10 s; each delay in [ceiling/2, ceiling].
        for ceiling in [2, 4, 8, 10, 10, 10].map(|s| s * S) {
            let r = b.next_delay(DownKind::Transient, None, t0);
            assert_eq!(r.lane, Lane::Ladder);
            assert!(
                r.delay >= ceiling / 2 && r.delay <= ceiling,
                "{r:?} vs {ceiling:?}"
            );
        }
    }

    #[test]
    fn first_start_failure_is_a_quick_retry_not_immediate() {
        let t0 = Mono::ZERO;
        let mut b = backoff();
        let r = b.next_delay(DownKind::Transient, None, t0);
        assert_eq!(r.lane, Lane::Quick(1));
        assert!(r.delay >= 900 * MS);
    }

    #[test]
    fn a_short_session_does_not_rearm_the_quick_lane() {
        // Issue 10 changed the reset rule on purpose: it was "logged in ≥ 60 s"; now a session
        // of stable_after (2 s) re-arms the immediate reconnect, and a shorter one keeps the
        // ladder position, so a PBX that drops us right after login is not hammered.
        let t0 = Mono::ZERO;
        let mut b = backoff();
        for _ in 0..8 {
            b.next_delay(DownKind::Transient, None, t0);
        }
        let r = b.next_delay(DownKind::Transient, Some(1999 * MS), t0);
        assert_eq!(r.lane, Lane::Ladder);
        assert_eq!(b.failures().0, 9);
        let r = b.next_delay(DownKind::Transient, Some(2 * S), t0);
        assert_eq!(r.lane, Lane::Immediate);
        assert_eq!(b.failures().0, 1);
        // Logged in briefly right after the immediate reconnect: the quick lane, not another
        // immediate one.
        let r = b.next_delay(DownKind::Transient, Some(10 * MS), t0);
        assert_eq!(r.lane, Lane::Quick(1));
    }

    #[test]
    fn restart_polls_for_the_window_then_falls_back_to_the_ladder() {
        let t0 = Mono::ZERO;
        let mut b = backoff();
        // Event: Shutdown, then EOF, on a session that was up for an hour.
        let r = b.next_delay(DownKind::PbxShutdown, Some(3600 * S), t0);
        assert_eq!(r.lane, Lane::Restart);
        assert!(r.delay >= 450 * MS && r.delay <= 550 * MS, "{r:?}");
        // Connection refused while it restarts: still the restart poll.
        let mut t = t0;
        while t < t0 + 119 * S {
            t += S / 2;
            let r = b.next_delay(DownKind::Transient, None, t);
            assert_eq!(r.lane, Lane::Restart, "at {:?}", t - t0);
        }
        assert_eq!(
            b.failures().0,
            0,
            "the restart poll does not climb the ladder"
        );
        // Still refused after the window: the ordinary lanes take over.
        let r = b.next_delay(DownKind::Transient, None, t0 + 120 * S);
        assert_eq!(r.lane, Lane::Quick(1));
        // "Asterisk is shutting down" on a later attempt starts a new window.
        let r = b.next_delay(DownKind::PbxShutdown, None, t0 + 200 * S);
        assert_eq!(r.lane, Lane::Restart);
        assert_eq!(
            b.next_delay(DownKind::Transient, None, t0 + 300 * S).lane,
            Lane::Restart
        );
    }

    #[test]
    fn a_login_ends_the_restart_poll() {
        let t0 = Mono::ZERO;
        let mut b = backoff();
        b.next_delay(DownKind::PbxShutdown, Some(60 * S), t0);
        // Back and logged in, but dropped within a second: not a restart any more.
        let r = b.next_delay(DownKind::Transient, Some(500 * MS), t0 + 5 * S);
        assert_eq!(r.lane, Lane::Quick(1));
    }

    #[test]
    fn login_in_use_is_paced_by_its_own_lane() {
        let t0 = Mono::ZERO;
        let mut b = backoff();
        for _ in 0..5 {
            let r = b.next_delay(DownKind::LoginInUse, None, t0);
            assert_eq!(r.lane, Lane::InUse);
            assert!(r.delay >= 1800 * MS && r.delay <= 2200 * MS, "{r:?}");
        }
        let r = b.next_delay(DownKind::LoginInUse, None, t0);
        assert!(r.delay >= 3600 * MS && r.delay <= 4400 * MS, "{r:?}");
        for _ in 0..20 {
            b.next_delay(DownKind::LoginInUse, None, t0);
        }
        let r = b.next_delay(DownKind::LoginInUse, None, t0);
        assert!(r.delay >= 27 * S && r.delay <= 33 * S, "capped: {r:?}");
        // Ordinary failures keep their own ladder.
        assert_eq!(
            b.next_delay(DownKind::Transient, None, t0).lane,
            Lane::Quick(1)
        );
        // A stable session resets the in-use lane too.
        b.next_delay(DownKind::Transient, Some(10 * S), t0);
        let r = b.next_delay(DownKind::LoginInUse, None, t0);
        assert!(r.delay <= 2200 * MS, "{r:?}");
    }

    #[test]
    fn auth_failures_are_paced_slowly_with_a_floor() {
        let t0 = Mono::ZERO;
        let mut b = backoff();
        let first = b.next_delay(DownKind::AuthFailed, None, t0);
        assert_eq!(first.lane, Lane::Auth);
        assert!(first.delay >= 30 * S && first.delay <= 33 * S, "{first:?}");
        let second = b.next_delay(DownKind::AuthFailed, None, t0);
        assert!(second.delay >= 60 * S, "{second:?}");
        for _ in 0..20 {
            let d = b.next_delay(DownKind::AuthFailed, None, t0).delay;
            assert!(d >= 30 * S && d <= 300 * S, "{d:?}");
        }
        assert_eq!(
            b.next_delay(DownKind::AuthFailed, None, t0).delay,
            300 * S,
            "at the cap"
        );
        // Ordinary failures keep their own, fast ladder.
        assert!(b.next_delay(DownKind::Transient, None, t0).delay <= 1100 * MS);
    }

    #[test]
    fn same_seed_same_delays() {
        let t0 = Mono::ZERO;
        let mut a = backoff();
        let mut b = backoff();
        for _ in 0..20 {
            assert_eq!(
                a.next_delay(DownKind::Transient, None, t0),
                b.next_delay(DownKind::Transient, None, t0)
            );
        }
    }

    #[test]
    fn zero_and_huge_settings_do_not_panic() {
        let t0 = Mono::ZERO;
        let mut b = Backoff::new(
            BackoffConfig {
                quick_interval: Duration::ZERO,
                quick_retries: u32::MAX,
                factor: 0,
                cap: Duration::MAX,
                stable_after: Duration::ZERO,
                restart_poll: Duration::MAX,
                restart_window: Duration::MAX,
                in_use_interval: Duration::MAX,
                in_use_cap: Duration::ZERO,
                auth_first: Duration::MAX,
                auth_cap: Duration::MAX,
            },
            fastrand::Rng::with_seed(1),
        );
        assert_eq!(
            b.next_delay(DownKind::Transient, None, t0).delay,
            Duration::ZERO
        );
        for _ in 0..100 {
            b.next_delay(DownKind::Transient, None, t0);
            b.next_delay(DownKind::AuthFailed, Some(Duration::MAX), t0);
            b.next_delay(DownKind::LoginInUse, None, t0);
            b.next_delay(DownKind::PbxShutdown, None, t0);
        }
    }

    fn kind() -> impl Strategy<Value = DownKind> {
        prop_oneof![
            4 => Just(DownKind::Transient),
            1 => Just(DownKind::AuthFailed),
            1 => Just(DownKind::LoginInUse),
            1 => Just(DownKind::PbxShutdown),
        ]
    }

    /// A down event: its kind, how long the session was logged in (ms; None = never), and how
    /// much time passed since the previous one (ms).
    fn downs() -> impl Strategy<Value = Vec<(DownKind, Option<u64>, u64)>> {
        proptest::collection::vec(
            (kind(), proptest::option::of(0u64..10_000), 0u64..200_000),
            1..200,
        )
    }

    proptest! {
        /// Whatever happens: no delay above the largest configured cap, authentication failures
        /// never faster than `auth_first`, and no immediate reconnect unless the session that
        /// just ended was stable — the rule that prevents a hot loop.
        #[test]
        fn delays_are_bounded_and_immediate_only_after_a_stable_session(
            seed in any::<u64>(),
            events in downs(),
        ) {
            let cfg = BackoffConfig::default();
            let bound = [cfg.cap, cfg.in_use_cap, cfg.auth_cap, cfg.restart_poll, cfg.quick_interval]
                .into_iter()
                .max()
                .unwrap()
                .mul_f64(1.1);
            let mut b = Backoff::new(cfg.clone(), fastrand::Rng::with_seed(seed));
            let mut now = Mono::ZERO;
            for (kind, logged_ms, gap_ms) in events {
                now += Duration::from_millis(gap_ms);
                let logged = logged_ms.map(Duration::from_millis);
                let r = b.next_delay(kind, logged, now);
                prop_assert!(r.delay <= bound, "{r:?}");
                if kind == DownKind::AuthFailed {
                    prop_assert!(r.delay >= cfg.auth_first, "{r:?}");
                }
                if r.delay.is_zero() {
                    let stable = logged.is_some_and(|d| d >= cfg.stable_after);
                    prop_assert!(
                        kind == DownKind::Transient && stable,
                        "immediate reconnect after {kind:?} with {logged:?}"
                    );
                }
                now += r.delay;
            }
        }

        /// A PBX that keeps dropping sessions shorter than `stable_after` is never reconnected
        /// to more than about once per quick interval on average, however long it goes on.
        #[test]
        fn flapping_sessions_are_rate_limited(
            seed in any::<u64>(),
            sessions in proptest::collection::vec(0u64..1_999, 20..200),
        ) {
            let cfg = BackoffConfig::default();
            let mut b = Backoff::new(cfg.clone(), fastrand::Rng::with_seed(seed));
            let t0 = Mono::ZERO;
            let mut now = t0;
            for ms in &sessions {
                now += Duration::from_millis(*ms);
                let r = b.next_delay(DownKind::Transient, Some(Duration::from_millis(*ms)), now);
                prop_assert!(r.delay >= cfg.quick_interval.mul_f64(0.9), "{r:?}");
                now += r.delay;
            }
            prop_assert!(now - t0 >= cfg.quick_interval.mul_f64(0.9) * sessions.len() as u32);
        }

        /// The restart poll never outlives its window: once `restart_window` has passed since
        /// the first shutdown sign, refused connects go back to the ordinary lanes.
        #[test]
        fn restart_poll_ends_with_its_window(
            seed in any::<u64>(),
            gaps in proptest::collection::vec(1u64..5_000, 1..400),
        ) {
            let cfg = BackoffConfig::default();
            let mut b = Backoff::new(cfg.clone(), fastrand::Rng::with_seed(seed));
            let t0 = Mono::ZERO;
            b.next_delay(DownKind::PbxShutdown, Some(Duration::from_secs(60)), t0);
            let mut now = t0;
            for g in gaps {
                now += Duration::from_millis(g);
                let r = b.next_delay(DownKind::Transient, None, now);
                let in_window = now - t0 < cfg.restart_window;
                prop_assert_eq!(r.lane == Lane::Restart, in_window, "at {:?}", now - t0);
                if !in_window {
                    break;
                }
            }
        }
    }
}
