//! Reconnect pacing: capped exponential backoff with full jitter, a slow lane for rejected
//! logins, and a reset only after a stable logged-in period. Pure: the random source is
//! injected and time is passed in, so the rules are unit-tested without sleeping.
//!
//! Why these rules (`../shared/research/ami-protocol.md` §4): full jitter keeps several boxes
//! (or several PBX links) from reconnecting in lock-step after a PBX restart; resetting on TCP
//! connect would let a PBX that accepts and immediately drops us be hammered at the base rate;
//! and a wrong secret costs the PBX a `sleep(1)` per attempt and fills its security log, so it
//! is retried slowly (it may be fixed on the PBX side without touching the box).

use std::time::Duration;

use crate::sink::DownKind;

/// Backoff tuning; tests use milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first retry delay.
    pub base: Duration,
    /// Growth of the ceiling per consecutive failure.
    pub factor: u32,
    /// Largest ceiling for ordinary failures.
    pub cap: Duration,
    /// Delay before the first retry after an authentication failure.
    pub auth_first: Duration,
    /// Largest delay after repeated authentication failures.
    pub auth_cap: Duration,
    /// A link logged in for at least this long resets the backoff when it goes down.
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(500),
            factor: 2,
            cap: Duration::from_secs(30),
            auth_first: Duration::from_secs(30),
            auth_cap: Duration::from_secs(300),
            stable_after: Duration::from_secs(60),
        }
    }
}

/// Reconnect pacing state for one link.
#[derive(Debug)]
pub struct Backoff {
    cfg: BackoffConfig,
    failures: u32,
    auth_failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig, rng: fastrand::Rng) -> Self {
        Backoff {
            cfg,
            failures: 0,
            auth_failures: 0,
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

    /// Forget past failures.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.auth_failures = 0;
    }

    /// The delay before the next connection attempt, after a link went down for `kind`.
    /// `logged_in_for` is how long that link had been logged in (`None`: it never was); only a
    /// stable link resets the backoff.
    pub fn next_delay(&mut self, kind: DownKind, logged_in_for: Option<Duration>) -> Duration {
        if logged_in_for.is_some_and(|d| d >= self.cfg.stable_after) {
            self.reset();
        }
        match kind {
            DownKind::AuthFailed => {
                let d = grow(self.cfg.auth_first, self.cfg.factor, self.auth_failures)
                    .min(self.cfg.auth_cap);
                self.auth_failures = self.auth_failures.saturating_add(1);
                // A little jitter on top, never below the floor: the PBX owner should be able
                // to count on "at least auth_first between rejected logins".
                let extra = self.jitter(d / 10);
                d.saturating_add(extra).min(self.cfg.auth_cap.max(d))
            }
            _ => {
                let ceiling = grow(self.cfg.base, self.cfg.factor, self.failures).min(self.cfg.cap);
                self.failures = self.failures.saturating_add(1);
                self.jitter(ceiling)
            }
        }
    }

    /// Uniform in `[0, max]`.
    fn jitter(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.u64(0..=nanos))
    }
}

fn grow(base: Duration, factor: u32, n: u32) -> Duration {
    base.saturating_mul(factor.max(1).saturating_pow(n.min(64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(BackoffConfig::default(), fastrand::Rng::with_seed(7))
    }

    #[test]
    fn ceiling_doubles_up_to_the_cap_with_full_jitter() {
        let mut b = backoff();
        let mut max_seen = Duration::ZERO;
        for n in 0..40u32 {
            let ceiling = (Duration::from_millis(500) * 2u32.saturating_pow(n.min(20)))
                .min(Duration::from_secs(30));
            let d = b.next_delay(DownKind::Transient, None);
            assert!(d <= ceiling, "attempt {n}: {d:?} > {ceiling:?}");
            max_seen = max_seen.max(d);
        }
        assert!(max_seen <= Duration::from_secs(30));
        assert!(
            max_seen > Duration::from_secs(15),
            "jitter reaches the upper half of the cap"
        );
    }

    #[test]
    fn jitter_spreads_over_the_whole_range() {
        // At the cap, many draws cover both low and high parts of [0, 30 s].
        let mut b = backoff();
        for _ in 0..10 {
            b.next_delay(DownKind::Transient, None);
        }
        let draws: Vec<_> = (0..200)
            .map(|_| b.next_delay(DownKind::Transient, None))
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_secs(5)));
        assert!(draws.iter().any(|d| *d > Duration::from_secs(25)));
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(30)));
    }

    #[test]
    fn same_seed_same_delays() {
        let mut a = backoff();
        let mut b = backoff();
        for _ in 0..10 {
            assert_eq!(
                a.next_delay(DownKind::Transient, None),
                b.next_delay(DownKind::Transient, None)
            );
        }
    }

    #[test]
    fn reset_only_after_a_stable_logged_in_period() {
        let mut b = backoff();
        for _ in 0..10 {
            b.next_delay(DownKind::Transient, None);
        }
        // Connected and even logged in briefly: no reset (a PBX that drops us after login).
        b.next_delay(DownKind::Transient, Some(Duration::from_secs(59)));
        assert_eq!(b.failures().0, 11);
        // Stable for a minute: back to the base ceiling.
        let d = b.next_delay(DownKind::Transient, Some(Duration::from_secs(60)));
        assert!(d <= Duration::from_millis(500), "{d:?}");
        assert_eq!(b.failures().0, 1);
    }

    #[test]
    fn auth_failures_are_paced_slowly_with_a_floor() {
        let mut b = backoff();
        let first = b.next_delay(DownKind::AuthFailed, None);
        assert!(
            first >= Duration::from_secs(30) && first <= Duration::from_secs(33),
            "{first:?}"
        );
        let second = b.next_delay(DownKind::AuthFailed, None);
        assert!(second >= Duration::from_secs(60), "{second:?}");
        for _ in 0..20 {
            let d = b.next_delay(DownKind::AuthFailed, None);
            assert!(
                d >= Duration::from_secs(30) && d <= Duration::from_secs(300),
                "{d:?}"
            );
        }
        assert_eq!(
            b.next_delay(DownKind::AuthFailed, None),
            Duration::from_secs(300),
            "at the cap"
        );
        // Ordinary failures keep their own, fast ladder.
        assert!(b.next_delay(DownKind::Transient, None) <= Duration::from_millis(500));
    }

    #[test]
    fn zero_and_huge_settings_do_not_panic() {
        let mut b = Backoff::new(
            BackoffConfig {
                base: Duration::ZERO,
                factor: 0,
                cap: Duration::MAX,
                auth_first: Duration::MAX,
                auth_cap: Duration::MAX,
                stable_after: Duration::ZERO,
            },
            fastrand::Rng::with_seed(1),
        );
        for _ in 0..100 {
            assert_eq!(b.next_delay(DownKind::Transient, None), Duration::ZERO);
            b.next_delay(DownKind::AuthFailed, None);
        }
    }
}
