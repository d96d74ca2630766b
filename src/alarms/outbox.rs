//! The outbox: every message waits on disk, one file per message and channel, until that channel
//! has delivered it — so an alarm raised while the network is down, or just before a reboot, is
//! still sent. [`Outbox`] is the file part, [`Retry`] the pure schedule of attempts.
//!
//! Layout: `<data>/alarms/outbox/<channel>/<message id>.json`, each written atomically (temp
//! file, fsync, rename, directory fsync: [`crate::fsio`]) and owner-only (messages can name
//! internal addresses). A file is deleted only after its channel accepted the message, so a
//! crash in between sends it again: delivery is at-least-once, and the message id (in the file
//! name, the mail's `Message-ID`, the webhook's `id` / `Idempotency-Key`) lets receivers dedupe.
//!
//! Bounded: at most [`MAX_QUEUED`] messages per channel (the oldest go first) and none older
//! than [`MAX_AGE_SECS`]; a file that cannot be read is renamed `*.bad` and reported, never
//! retried forever nor allowed to stop the others.
//!
//! Must not: know how a channel delivers, or block on anything but its own directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::message::Message;
use crate::clock::Mono;
use crate::fsio::{write_atomic, AtomicOptions};

/// Messages kept per channel; beyond this the oldest are dropped (a box that cannot reach its
/// mail server for weeks must not fill its storage with alarms about it).
pub const MAX_QUEUED: usize = 500;
/// Messages older than a week are dropped unsent: by then the news is stale and the status
/// page has said for days that the channel fails.
pub const MAX_AGE_SECS: i64 = 7 * 86_400;

/// A way of reaching people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one outbox file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    /// File format version, for a later change of layout.
    v: u32,
    channel: Channel,
    message: Message,
}

/// The outbox directory of one channel.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    channel: Channel,
}

/// What [`Outbox::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Readable messages, oldest first.
    pub messages: Vec<Message>,
    /// Files that could not be read (renamed to `*.bad`), with the reason.
    pub bad: Vec<String>,
    /// Ids of messages deleted unsent: older than [`MAX_AGE_SECS`] or beyond [`MAX_QUEUED`].
    pub dropped: Vec<String>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Outbox {
    /// `root` is the outbox root (`<data>/alarms/outbox`); the channel's directory is created
    /// (owner-only) when missing.
    pub fn open(root: &Path, channel: Channel) -> io::Result<Outbox> {
        let dir = root.join(channel.as_str());
        fs::create_dir_all(&dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(Outbox { dir, channel })
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, id: &str) -> io::Result<PathBuf> {
        if !valid_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("message id {id:?} is not a safe file name"),
            ));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Stores `message` durably (it survives a power cut once this returns).
    pub fn put(&self, message: &Message) -> io::Result<()> {
        let path = self.path_of(&message.id)?;
        let mut message = message.clone();
        if self.channel == Channel::Webhook {
            // The webhook carries the JSON only; do not store a report's CSV twice.
            message.attachment = None;
        }
        let job = Job {
            v: 1,
            channel: self.channel,
            message,
        };
        let bytes = serde_json::to_vec(&job).map_err(io::Error::other)?;
        write_atomic(&path, &bytes, AtomicOptions::SECRET)
    }

    /// Deletes a delivered (or dropped) message; a missing file is not an error.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.path_of(id)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every stored message, oldest first. Leftover temporary files of an interrupted write are
    /// removed (their message was never acknowledged as queued); unreadable files are renamed
    /// `*.bad`; messages made before `now_utc - MAX_AGE_SECS`, and the oldest beyond
    /// [`MAX_QUEUED`], are deleted and listed in [`Loaded::dropped`].
    pub fn load(&self, now_utc: i64) -> io::Result<Loaded> {
        let mut out = Loaded::default();
        let mut names: Vec<PathBuf> = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if name.ends_with(".partial") {
                let _ = fs::remove_file(&path);
            } else if name.ends_with(".json") {
                names.push(path);
            }
        }
        names.sort();
        for path in names {
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Job>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(job) if job.channel == self.channel && valid_id(&job.message.id) => {
                    out.messages.push(job.message)
                }
                other => {
                    let why = match other {
                        Err(e) => e,
                        Ok(_) => "belongs to another channel or has a bad id".to_owned(),
                    };
                    let mut bad = path.as_os_str().to_owned();
                    bad.push(".bad");
                    let _ = fs::rename(&path, &bad);
                    out.bad.push(format!("{}: {why}", path.display()));
                }
            }
        }
        out.messages.sort_by(|a, b| a.id.cmp(&b.id));
        let stale = out
            .messages
            .iter()
            .take_while(|m| m.created_utc < now_utc.saturating_sub(MAX_AGE_SECS))
            .count();
        let excess = out.messages.len().saturating_sub(MAX_QUEUED);
        for m in out.messages.drain(..stale.max(excess)) {
            self.remove(&m.id)?;
            out.dropped.push(m.id);
        }
        Ok(out)
    }
}

/// Pause before attempt `n + 1` after `n` failures in a row: 5 s, 10 s, 20 s, … up to 5 min.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(5);
    let cap = Duration::from_secs(300);
    if failures == 0 {
        return Duration::ZERO;
    }
    base.checked_mul(1u32 << (failures - 1).min(16))
        .unwrap_or(cap)
        .min(cap)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    failures: u32,
    not_before: Mono,
}

/// When to try which message. Two kinds of failure:
/// - the channel failed (server unreachable, TLS or login refused, time-out): everything waits
///   ([`Retry::channel_failed`]), since the next message would fail the same way;
/// - the channel refused this one message (a permanent SMTP 5xx for it, an HTTP 4xx): only it
///   waits ([`Retry::message_failed`]), so one bad message does not hold up the rest.
///
/// Oldest first otherwise.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    entries: BTreeMap<String, Entry>,
    channel_failures: u32,
    channel_not_before: Mono,
}

impl Retry {
    pub fn new() -> Retry {
        Retry::default()
    }

    /// A message to send as soon as the channel allows.
    pub fn add(&mut self, id: &str, now: Mono) {
        self.entries.entry(id.to_owned()).or_insert(Entry {
            failures: 0,
            not_before: now,
        });
    }

    pub fn remove(&mut self, id: &str) {
        self.entries.remove(id);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queued ids, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The oldest message that may be tried at `now`.
    pub fn due(&self, now: Mono) -> Option<&str> {
        if self.channel_not_before > now {
            return None;
        }
        self.entries
            .iter()
            .find(|(_, e)| e.not_before <= now)
            .map(|(id, _)| id.as_str())
    }

    /// When something becomes due (`None`: nothing queued).
    pub fn next_wake(&self) -> Option<Mono> {
        let first = self.entries.values().map(|e| e.not_before).min()?;
        Some(first.max(self.channel_not_before))
    }

    /// Delivered: gone from the schedule, and the channel works again.
    pub fn sent(&mut self, id: &str) {
        self.entries.remove(id);
        self.channel_failures = 0;
    }

    /// The channel failed; returns the pause before the next attempt.
    pub fn channel_failed(&mut self, now: Mono) -> Duration {
        self.channel_failures = self.channel_failures.saturating_add(1);
        let wait = backoff(self.channel_failures);
        self.channel_not_before = now + wait;
        wait
    }

    /// The channel refused message `id`; returns the pause before that message is tried again.
    pub fn message_failed(&mut self, id: &str, now: Mono) -> Duration {
        let Some(e) = self.entries.get_mut(id) else {
            return Duration::ZERO;
        };
        e.failures = e.failures.saturating_add(1);
        let wait = backoff(e.failures);
        e.not_before = now + wait;
        wait
    }

    /// Failures of the channel in a row (0 after a success).
    pub fn channel_failures(&self) -> u32 {
        self.channel_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::message::{test_message, BoxInfo};

    fn msg(created: i64) -> Message {
        let info = BoxInfo {
            name: "b".into(),
            tz: jiff::tz::TimeZone::UTC,
        };
        test_message(
            super::super::message::new_id(created),
            &info,
            created,
            "unit test",
        )
    }

    /// "Now" for loads: after every test message's time, within a week of it.
    const NOW: i64 = 10_000;

    fn secs(s: u64) -> Mono {
        Mono::ZERO + Duration::from_secs(s)
    }

    #[test]
    fn messages_survive_a_reopen_oldest_first_and_go_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), Channel::Email).unwrap();
        let (a, b) = (msg(2_000), msg(1_000));
        ob.put(&a).unwrap();
        ob.put(&b).unwrap();
        let again = Outbox::open(dir.path(), Channel::Email).unwrap();
        let loaded = again.load(NOW).unwrap();
        assert_eq!(loaded.messages, vec![b.clone(), a.clone()]);
        again.remove(&b.id).unwrap();
        again.remove(&b.id).unwrap();
        assert_eq!(again.load(NOW).unwrap().messages, vec![a]);
        let webhook = Outbox::open(dir.path(), Channel::Webhook).unwrap();
        assert!(
            webhook.load(NOW).unwrap().messages.is_empty(),
            "channels apart"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(ob.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn broken_files_are_set_aside_and_leftovers_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), Channel::Webhook).unwrap();
        let good = msg(1_000);
        ob.put(&good).unwrap();
        fs::write(ob.dir().join("20200101T000000Z-1.json"), b"{not json").unwrap();
        fs::write(ob.dir().join("x.json.partial"), b"half").unwrap();
        let loaded = ob.load(NOW).unwrap();
        assert_eq!(loaded.messages, vec![good]);
        assert_eq!(loaded.bad.len(), 1, "{:?}", loaded.bad);
        assert!(ob.dir().join("20200101T000000Z-1.json.bad").exists());
        assert!(!ob.dir().join("x.json.partial").exists());
        assert!(ob.load(NOW).unwrap().bad.is_empty(), "reported once");
    }

    #[test]
    fn stale_and_excess_messages_are_dropped_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), Channel::Email).unwrap();
        let old = msg(1_000);
        let fresh = msg(1_000 + MAX_AGE_SECS);
        ob.put(&old).unwrap();
        ob.put(&fresh).unwrap();
        let loaded = ob.load(1_001 + MAX_AGE_SECS).unwrap();
        assert_eq!(loaded.messages, vec![fresh]);
        assert_eq!(loaded.dropped, vec![old.id.clone()]);
        assert!(!ob.dir().join(format!("{}.json", old.id)).exists());
        for i in 0..MAX_QUEUED as i64 + 3 {
            ob.put(&msg(2_000_000 + i)).unwrap();
        }
        let loaded = ob.load(2_000_000).unwrap();
        assert_eq!(loaded.messages.len(), MAX_QUEUED);
        assert_eq!(
            loaded.dropped.len(),
            4,
            "the fresh one of before and the 3 oldest"
        );
        assert_eq!(loaded.messages[0].created_utc, 2_000_003);
    }

    #[test]
    fn ids_that_are_not_file_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), Channel::Email).unwrap();
        let mut m = msg(1);
        m.id = "../../etc/passwd".into();
        assert!(ob.put(&m).is_err());
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let s: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, vec![0, 5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn a_channel_failure_holds_everything_a_message_failure_only_that_one() {
        let mut r = Retry::new();
        r.add("a", secs(0));
        r.add("b", secs(0));
        assert_eq!(r.due(secs(0)), Some("a"));
        assert_eq!(r.channel_failed(secs(0)), Duration::from_secs(5));
        assert_eq!(r.due(secs(4)), None);
        assert_eq!(r.next_wake(), Some(secs(5)));
        assert_eq!(r.channel_failed(secs(5)), Duration::from_secs(10));
        assert_eq!(r.due(secs(15)), Some("a"));
        r.message_failed("a", secs(15));
        assert_eq!(r.due(secs(15)), Some("b"), "b is not held up by a");
        r.sent("b");
        assert_eq!(r.channel_failures(), 0);
        assert_eq!(r.due(secs(16)), None);
        assert_eq!(r.due(secs(20)), Some("a"));
        r.sent("a");
        assert!(r.is_empty());
        assert_eq!(r.next_wake(), None);
    }
}
