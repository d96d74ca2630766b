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

/// What travels to a subscriber: a record copy (charged its bytes), or `None`, a wake-up from
/// [`FeedWaker::wake`] (so the reader can block with no time-out and still see a stop).
type Note = Option<(CallRecord, u64)>;

/// The journal's end of one subscription.
pub(crate) struct Subscriber {
    tx: mpsc::Sender<Note>,
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
        if self.tx.send(Some((record.clone(), bytes))).is_err() {
            sub(&self.waiting.bytes, bytes);
            return false;
        }
        true
    }
}

/// A new subscription: the journal's end and the subscriber's.
pub(crate) fn subscription() -> (Subscriber, Subscription) {
    let (tx, rx) = mpsc::channel();
    let wake = tx.clone();
    let waiting = Arc::new(Waiting::default());
    (
        Subscriber {
            tx,
            waiting: waiting.clone(),
        },
        Subscription {
            rx: Source::Journal(rx, wake),
            waiting,
        },
    )
}

enum Source {
    /// The journal's records, and a sender kept only to wake the reader (so this channel never
    /// reads as disconnected while the subscription lives: the reader waits for its stop).
    Journal(mpsc::Receiver<Note>, mpsc::Sender<Note>),
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

/// Wakes a reader blocked in [`Subscription::recv`] (see [`Subscription::waker`]).
#[derive(Clone)]
pub struct FeedWaker(mpsc::Sender<Note>);

impl FeedWaker {
    /// The blocked [`Subscription::recv`] returns [`Woken::Woken`] (or the next call does).
    pub fn wake(&self) {
        let _ = self.0.send(None);
    }
}

/// Why [`Subscription::recv`] returned without a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Woken {
    /// [`FeedWaker::wake`] was called.
    Woken,
    /// A plain channel's senders are gone: no record will ever come.
    Disconnected,
}

impl Subscription {
    /// The next record, waiting at most `wait`.
    pub fn recv_timeout(&self, wait: Duration) -> Result<CallRecord, mpsc::RecvTimeoutError> {
        let deadline = std::time::Instant::now() + wait;
        match &self.rx {
            Source::Journal(rx, _) => loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left)? {
                    Some(r) => return Ok(self.took(r)),
                    // A wake-up meant for `recv`: nothing to deliver here.
                    None => continue,
                }
            },
            Source::Plain(rx) => rx.recv_timeout(wait),
        }
    }

    /// The next record, waiting with no time-out until one comes or [`FeedWaker::wake`].
    pub fn recv(&self) -> Result<CallRecord, Woken> {
        match &self.rx {
            Source::Journal(rx, _) => match rx.recv() {
                Ok(Some(r)) => Ok(self.took(r)),
                // The channel cannot disconnect: this subscription holds a sender.
                Ok(None) | Err(_) => Err(Woken::Woken),
            },
            Source::Plain(rx) => rx.recv().map_err(|_| Woken::Disconnected),
        }
    }

    /// A handle that wakes [`Subscription::recv`] from another thread; `None` for a plain
    /// channel (its reader must poll with [`Subscription::recv_timeout`] to see a stop).
    pub fn waker(&self) -> Option<FeedWaker> {
        match &self.rx {
            Source::Journal(_, tx) => Some(FeedWaker(tx.clone())),
            Source::Plain(_) => None,
        }
    }

    /// The next record if one is waiting.
    pub fn try_recv(&self) -> Result<CallRecord, mpsc::TryRecvError> {
        match &self.rx {
            Source::Journal(rx, _) => loop {
                match rx.try_recv()? {
                    Some(r) => return Ok(self.took(r)),
                    None => continue,
                }
            },
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

    /// Issue 14 item 4: the web's drain blocks in `recv` with no time-out; a stop wakes it
    /// through the waker, and records sent before the wake still come first.
    #[test]
    fn recv_blocks_until_a_record_or_a_wake() {
        let (tx, rx) = subscription();
        let waker = rx.waker().expect("a journal subscription can be woken");
        let r = sample_record(3);
        assert!(tx.offer(&r, 10));
        waker.wake();
        assert_eq!(rx.recv().map(|x| x.unique_id), Ok(r.unique_id.clone()));
        assert_eq!(rx.recv().map(|x| x.unique_id), Err(Woken::Woken));
        // From another thread, while blocked.
        let t = std::thread::spawn(move || rx.recv().map(|x| x.unique_id));
        std::thread::sleep(Duration::from_millis(50));
        waker.wake();
        assert_eq!(t.join().unwrap(), Err(Woken::Woken));
        // A wake-up is not a record to the polling reader.
        let (tx, rx) = subscription();
        rx.waker().unwrap().wake();
        assert!(tx.offer(&r, 10));
        assert_eq!(rx.try_iter().count(), 1);
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
