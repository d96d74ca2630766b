//! The live feed of new records (the web's Server-Sent Events), bounded by bytes per subscriber.
//!
//! Measured (heaptrack on `cdrbox run` under the 50,000-CDR burst of `cdrbox-bench proc`): an
//! unbounded channel of record copies was 36 MB of the 58 MB heap peak — the web's feed thread
//! renders each record to JSON slower than the ring thread accepts a burst, so the copies piled
//! up in the channel. Now each subscriber holds at most [`FEED_BYTES`] of copies (charged with
//! [`budget::record_bytes`], at least one record however big); beyond that the copy is skipped
//! and counted, and the subscriber learns how many it missed ([`Subscription::take_skipped`]) —
//! the page then says it lagged and reloads. The journal itself never loses a record here: this
//! is only the notification that one arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[cfg(test)]
use super::budget;
use crate::record::CallRecord;

/// Bytes of record copies one subscriber may have waiting (~500 ordinary records: a burst's
/// worth of rows for a page that shows the newest first).
pub const FEED_BYTES: u64 = 1 << 20;

/// What a subscriber has waiting, shared by both ends.
#[derive(Debug, Default)]
struct Waiting {
    bytes: AtomicU64,
    skipped: AtomicU64,
}

/// The journal's end of one subscription.
pub(crate) struct Subscriber {
    tx: mpsc::Sender<(CallRecord, u64)>,
    waiting: Arc<Waiting>,
}

impl Subscriber {
    /// Sends a copy of `record` (charged `bytes`) unless the subscriber already has
    /// [`FEED_BYTES`] waiting (then counts it skipped). False once the receiver is gone.
    pub(crate) fn offer(&self, record: &CallRecord, bytes: u64) -> bool {
        if Arc::strong_count(&self.waiting) < 2 {
            return false;
        }
        let held = self.waiting.bytes.load(Ordering::SeqCst);
        if held > 0 && held.saturating_add(bytes) > FEED_BYTES {
            self.waiting.skipped.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        self.waiting.bytes.fetch_add(bytes, Ordering::SeqCst);
        if self.tx.send((record.clone(), bytes)).is_err() {
            sub(&self.waiting.bytes, bytes);
            return false;
        }
        true
    }
}

/// A new subscription: the journal's end and the subscriber's.
pub(crate) fn subscription() -> (Subscriber, Subscription) {
    let (tx, rx) = mpsc::channel();
    let waiting = Arc::new(Waiting::default());
    (
        Subscriber {
            tx,
            waiting: waiting.clone(),
        },
        Subscription {
            rx: Source::Journal(rx),
            waiting,
        },
    )
}

enum Source {
    Journal(mpsc::Receiver<(CallRecord, u64)>),
    /// A plain channel (a backend without a journal, tests): nothing charged, nothing skipped.
    Plain(mpsc::Receiver<CallRecord>),
}

/// Receives new records as they become durable (see [`super::JournalHandle::subscribe`]).
/// Dropping it unsubscribes.
pub struct Subscription {
    rx: Source,
    waiting: Arc<Waiting>,
}

impl From<mpsc::Receiver<CallRecord>> for Subscription {
    /// Records from a plain channel, unbounded (for a [`crate::web::Backend`] without a
    /// journal).
    fn from(rx: mpsc::Receiver<CallRecord>) -> Subscription {
        Subscription {
            rx: Source::Plain(rx),
            waiting: Arc::new(Waiting::default()),
        }
    }
}

impl Subscription {
    /// The next record, waiting at most `wait`.
    pub fn recv_timeout(&self, wait: Duration) -> Result<CallRecord, mpsc::RecvTimeoutError> {
        match &self.rx {
            Source::Journal(rx) => rx.recv_timeout(wait).map(|r| self.took(r)),
            Source::Plain(rx) => rx.recv_timeout(wait),
        }
    }

    /// The next record if one is waiting.
    pub fn try_recv(&self) -> Result<CallRecord, mpsc::TryRecvError> {
        match &self.rx {
            Source::Journal(rx) => rx.try_recv().map(|r| self.took(r)),
            Source::Plain(rx) => rx.try_recv(),
        }
    }

    /// Every record waiting now.
    pub fn try_iter(&self) -> impl Iterator<Item = CallRecord> + '_ {
        std::iter::from_fn(|| self.try_recv().ok())
    }

    /// Records not sent to this subscriber since the last call, because it had
    /// [`FEED_BYTES`] waiting.
    pub fn take_skipped(&self) -> u64 {
        self.waiting.skipped.swap(0, Ordering::SeqCst)
    }

    fn took(&self, (record, bytes): (CallRecord, u64)) -> CallRecord {
        sub(&self.waiting.bytes, bytes);
        record
    }
}

fn sub(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        Some(v.saturating_sub(n))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::testdata::sample_record;

    #[test]
    fn a_slow_subscriber_holds_at_most_the_byte_bound_and_learns_what_it_missed() {
        let (tx, rx) = subscription();
        let r = sample_record(1);
        let bytes = budget::record_bytes(&r);
        let fit = (FEED_BYTES / bytes) as usize;
        for _ in 0..fit + 10 {
            assert!(tx.offer(&r, bytes));
        }
        assert_eq!(rx.try_iter().count(), fit);
        assert_eq!(rx.take_skipped(), 10);
        assert_eq!(rx.take_skipped(), 0, "taken once");
        // Drained: copies flow again.
        assert!(tx.offer(&r, bytes));
        assert_eq!(rx.try_iter().count(), 1);
    }

    #[test]
    fn one_record_bigger_than_the_bound_still_goes_through() {
        let (tx, rx) = subscription();
        let r = sample_record(1);
        assert!(tx.offer(&r, FEED_BYTES * 5));
        assert!(tx.offer(&r, 10), "skipped, subscriber still there");
        assert_eq!(rx.try_iter().count(), 1);
        assert_eq!(rx.take_skipped(), 1);
    }

    #[test]
    fn a_dropped_subscription_is_noticed() {
        let (tx, rx) = subscription();
        drop(rx);
        assert!(!tx.offer(&sample_record(1), 10));
    }

    #[test]
    fn a_plain_channel_is_a_subscription() {
        let (tx, rx) = mpsc::channel();
        let s: Subscription = rx.into();
        tx.send(sample_record(2)).unwrap();
        assert_eq!(s.try_iter().count(), 1);
        assert_eq!(s.take_skipped(), 0);
    }
}
