//! When the link stops reading for a moment so the journal's ring thread can catch up with a burst.
//!
//! The journal's memory queue is small on purpose (`[storage] memory_queue_kb`: RSS stays near
//! its floor through a 50,000-CDR burst). A blast from the PBX can outrun the ring thread's
//! `pwrite`+`fdatasync` for a moment; records that then find the queue full would be dropped
//! (counted and ledgered, but gone). Not reading for a moment instead leaves them in the
//! kernel's socket buffers, where they cost the box nothing.
//!
//! The pause is bounded because a paused reader eventually blocks the PBX's writes, and Asterisk
//! ends a session whose write blocks past `writetimeout` (README "The link's wait"): at most
//! [`MAX_PAUSE`] at a stretch, then at least [`MIN_READ`] of reading whatever the queue says.
//! It is asked only while storage works (the sink's `behind`): when SQLite or the ring fails,
//! waiting would not help, and the link must go on reading so records are counted, not stalled.
//!
//! Pure: fed `behind` and `now`, it answers whether to wait and until when.

use std::time::Duration;

use crate::clock::Mono;

/// The longest stretch the link goes without reading.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);
/// After a full pause, the link reads at least this long before it may pause again.
pub const MIN_READ: Duration = Duration::from_millis(200);
/// How often a paused link asks the journal again.
pub const RECHECK: Duration = Duration::from_millis(10);

/// The pause state of one connection.
#[derive(Debug, Default, Clone)]
pub struct JournalPause {
    /// Start of the current stretch without reading.
    stretch_start: Option<Mono>,
    /// When the last answer said "wait" (the time since is added to `paused_total`).
    asked_at: Option<Mono>,
    /// After a full stretch, reading goes on at least until then.
    reading_until: Option<Mono>,
    paused_total: Duration,
}

impl JournalPause {
    /// `Some(t)`: do not read before `t`, then ask again. `None`: read now.
    pub fn wait(&mut self, behind: bool, now: Mono) -> Option<Mono> {
        if let Some(at) = self.asked_at.take() {
            self.paused_total += now.duration_since(at);
        }
        if !behind {
            self.stretch_start = None;
            self.reading_until = None;
            return None;
        }
        if self.reading_until.is_some_and(|until| now < until) {
            return None;
        }
        let started = *self.stretch_start.get_or_insert(now);
        if now.duration_since(started) >= MAX_PAUSE {
            self.stretch_start = None;
            self.reading_until = Some(now + MIN_READ);
            return None;
        }
        self.asked_at = Some(now);
        Some((now + RECHECK).min(started + MAX_PAUSE))
    }

    /// Time spent not reading so far.
    pub fn paused_total(&self) -> Duration {
        self.paused_total
    }

    /// [`paused_total`](Self::paused_total), then counts again from zero (for a log line per
    /// so much waiting; the pause state itself is kept).
    pub fn take_paused_total(&mut self) -> Duration {
        std::mem::take(&mut self.paused_total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Mono {
        Mono::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn reads_at_once_while_the_journal_keeps_up() {
        let mut p = JournalPause::default();
        for ms in (0..5000).step_by(7) {
            assert_eq!(p.wait(false, at(ms)), None);
        }
        assert_eq!(p.paused_total(), Duration::ZERO);
    }

    #[test]
    fn waits_in_short_steps_while_behind() {
        let mut p = JournalPause::default();
        assert_eq!(p.wait(true, at(0)), Some(at(10)));
        assert_eq!(p.wait(true, at(10)), Some(at(20)));
        // Caught up: reading resumes at once and the stretch ends.
        assert_eq!(p.wait(false, at(15 + 10)), None);
        assert_eq!(p.paused_total(), Duration::from_millis(25));
        assert_eq!(p.wait(true, at(30)), Some(at(40)), "a new stretch starts");
    }

    #[test]
    fn never_stops_reading_longer_than_max_pause_then_reads_min_read() {
        let mut p = JournalPause::default();
        let mut now = 0;
        let mut longest = Duration::ZERO;
        let mut stretch = 0;
        let mut read_windows = Vec::new();
        let mut reading_since = None;
        // Behind for 10 s straight, woken exactly when told.
        while now < 10_000 {
            match p.wait(true, at(now)) {
                Some(t) => {
                    if let Some(since) = reading_since.take() {
                        read_windows.push(now - since);
                    }
                    let next = t.since_start().as_millis() as u64;
                    assert!(next > now);
                    stretch += next - now;
                    now = next;
                }
                None => {
                    longest = longest.max(Duration::from_millis(stretch));
                    stretch = 0;
                    reading_since.get_or_insert(now);
                    now += 5; // one read
                }
            }
        }
        assert!(longest <= MAX_PAUSE, "paused {longest:?} at a stretch");
        assert!(longest >= MAX_PAUSE - RECHECK);
        assert!(!read_windows.is_empty());
        for w in &read_windows {
            assert!(Duration::from_millis(*w) >= MIN_READ, "read only {w} ms");
        }
    }
}
