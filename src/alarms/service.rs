//! The running alarm mailer: one thread that looks at the status snapshot whenever it changes
//! ([`StatusChanged`]) and at its next deadline, runs the [`Policy`] and queues each moment's
//! notices as one [`Message`] in every channel's [`Outbox`]; and one delivery thread per
//! channel that sends what is queued, oldest first, with [`Retry`]'s backoff, deleting a file
//! only once its channel accepted it.
//!
//! Neither wakes on a tick (issue 14 item 4: an idle box must not wake every second): the
//! watcher sleeps until the snapshot changes or the earliest of the policy's deadline (a hold,
//! a reminder), a link threshold ([`thresholds::next_change`]) and — only with a daily report,
//! PBX QUIET or GAP OPEN configured, whose timing is in minutes — the next wall-clock minute;
//! a delivery thread sleeps until a message is queued or its retry is due.
//!
//! What stands: every alarm of the snapshot, except that the link alarms (LINK DOWN, PBX DOWN,
//! AUTH) are made here from the links' states with `[alarms] link_down_minutes` (the page keeps
//! its own, shorter threshold). The open incidents are saved in `<storage>/alarms/open.json`
//! so a restart neither repeats a raise nor forgets a clear.
//!
//! Must not: block the box (a mail server that hangs holds up only its own thread) or lose a
//! queued message (the outbox is written before anything is sent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::daily::Daily;
use super::message::{self, BoxInfo, Message};
use super::outbox::{Channel, Outbox, Retry};
use super::policy::{Now, Policy, Rules, SavedIncident};
use super::thresholds::{self, Thresholds};
use super::Failure;
use crate::clock::{Clock, Mono};
use crate::config::Config;
use crate::fsio::{write_atomic, AtomicOptions};
use crate::journal::{Gap, JournalPaths, JournalReader};
use crate::status::StatusView;

pub use super::settings::{
    box_info, daily_from_config, senders_from_config, settings_from_config, thresholds_from_config,
    Sender, Settings,
};

/// What the status page shows per channel.
pub type DeliveryStatus = crate::status::AlarmChannelStatus;

enum Cmd {
    Queued(Box<Message>),
    Stop,
}

/// What wakes the watcher besides its deadline.
enum Wake {
    /// The status snapshot changed (or a manual test clock moved): look again.
    Look,
    Stop,
}

/// Tells a running [`AlarmService`] that the status snapshot changed. The watcher looks at
/// the snapshot only then and at its own deadlines, so whoever publishes the snapshot must call
/// [`StatusChanged::changed`] after every publish (`runtime::run` relays the board's `watch`).
#[derive(Clone)]
pub struct StatusChanged(mpsc::Sender<Wake>);

impl StatusChanged {
    /// `false` once the service has stopped (the caller can stop relaying).
    pub fn changed(&self) -> bool {
        self.0.send(Wake::Look).is_ok()
    }
}

/// The running service; [`AlarmService::stop`] ends its threads.
pub struct AlarmService {
    wake_tx: mpsc::Sender<Wake>,
    queues: Vec<(Channel, mpsc::Sender<Cmd>, Outbox)>,
    threads: Vec<JoinHandle<()>>,
    status: Arc<Mutex<Vec<DeliveryStatus>>>,
    info: BoxInfo,
    clock: Clock,
}

/// The current snapshot, however the caller keeps it.
pub type ViewFn = Box<dyn Fn() -> StatusView + Send>;

/// Told each channel's delivery status whenever it changes.
pub type StatusFn = Arc<dyn Fn(Vec<DeliveryStatus>) + Send + Sync>;

fn open_path(dir: &Path) -> PathBuf {
    dir.join("open.json")
}

fn load_open(dir: &Path) -> Vec<SavedIncident> {
    match std::fs::read(open_path(dir)) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(target: "cdrbox::alarms", error = %e, "open.json unreadable; starting with no open alarms");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
}

impl AlarmService {
    /// Starts the watcher and one delivery thread per channel; queued messages from a previous
    /// run are sent first.
    pub fn spawn(
        settings: Settings,
        view: ViewFn,
        on_status: StatusFn,
        clock: Clock,
    ) -> std::io::Result<AlarmService> {
        std::fs::create_dir_all(&settings.dir)?;
        let root = settings.dir.join("outbox");
        // Before any delivery thread runs: a report already queued counts as made.
        let daily = settings.daily.clone().map(|d| {
            let dirs: Vec<PathBuf> = settings
                .senders
                .iter()
                .map(|s| root.join(s.channel().as_str()))
                .collect();
            let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
            Daily::new(d, settings.journal.clone(), &settings.dir, &dirs)
        });
        let status = Arc::new(Mutex::new(
            settings
                .senders
                .iter()
                .map(|s| DeliveryStatus {
                    channel: s.channel().as_str().into(),
                    target: s.describe(),
                    ..DeliveryStatus::default()
                })
                .collect::<Vec<_>>(),
        ));
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for (i, sender) in settings.senders.into_iter().enumerate() {
            let outbox = Outbox::open(&root, sender.channel())?;
            let (tx, rx) = mpsc::channel();
            let d = Delivery {
                index: i,
                sender,
                outbox: outbox.clone(),
                rx,
                status: status.clone(),
                on_status: on_status.clone(),
                clock: clock.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("alarms-{}", outbox.channel()))
                    .spawn(move || d.run())?,
            );
            queues.push((outbox.channel(), tx, outbox));
        }
        let (wake_tx, wake_rx) = mpsc::channel();
        let watcher = Watcher {
            dir: settings.dir.clone(),
            info: settings.info.clone(),
            rules: settings.rules,
            thresholds: settings.thresholds,
            view,
            journal: settings.journal.clone(),
            daily,
            queues: queues
                .iter()
                .map(|(_, tx, ob)| (tx.clone(), ob.clone()))
                .collect(),
            clock: clock.clone(),
            clock_wake: Some(wake_tx.clone()),
        };
        threads.push(
            std::thread::Builder::new()
                .name("alarms".into())
                .spawn(move || watcher.run(wake_rx))?,
        );
        Ok(AlarmService {
            wake_tx,
            queues,
            threads,
            status,
            info: settings.info,
            clock,
        })
    }

    /// The handle that wakes the watcher when the snapshot changes.
    pub fn status_changed(&self) -> StatusChanged {
        StatusChanged(self.wake_tx.clone())
    }

    /// Per channel: where, queued, last result.
    pub fn status(&self) -> Vec<DeliveryStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A handle that queues test messages ("send test alarm" on the page).
    pub fn tester(&self) -> AlarmTester {
        AlarmTester {
            queues: self
                .queues
                .iter()
                .map(|(_, tx, ob)| (tx.clone(), ob.clone()))
                .collect(),
            info: self.info.clone(),
            clock: self.clock.clone(),
        }
    }

    /// Stops the threads; a delivery in progress gets up to `grace` to finish (its message is
    /// still in the outbox if it does not, and goes out after the next start).
    pub fn stop(self, grace: Duration) {
        let _ = self.wake_tx.send(Wake::Stop);
        for (_, tx, _) in &self.queues {
            let _ = tx.send(Cmd::Stop);
        }
        // Instant, not the Clock: the grace waits on real OS threads (a delivery on a real
        // socket), which a paused test clock would never let finish.
        let until = std::time::Instant::now() + grace;
        for t in self.threads {
            while !t.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(target: "cdrbox::alarms", "an alarm delivery is still running at stop; its message stays queued");
            }
        }
    }
}

/// Queues a test message on every channel of a running [`AlarmService`]; it goes through the
/// outbox and the delivery threads like any alarm, so the page shows its result per channel.
#[derive(Clone)]
pub struct AlarmTester {
    queues: Vec<(mpsc::Sender<Cmd>, Outbox)>,
    info: BoxInfo,
    clock: Clock,
}

impl AlarmTester {
    /// Returns the message id.
    pub fn send_test(&self, who: &str) -> std::io::Result<String> {
        let now = self.clock.unix();
        let m = message::test_message(message::new_id(now), &self.info, now, who);
        for (tx, ob) in &self.queues {
            ob.put(&m)?;
            let _ = tx.send(Cmd::Queued(Box::new(m.clone())));
        }
        Ok(m.id)
    }
}

struct Watcher {
    dir: PathBuf,
    info: BoxInfo,
    rules: Rules,
    thresholds: Thresholds,
    view: ViewFn,
    journal: JournalPaths,
    daily: Option<Daily>,
    queues: Vec<(mpsc::Sender<Cmd>, Outbox)>,
    clock: Clock,
    /// Wakes the watcher when a manual test clock moves (taken by `run`).
    clock_wake: Option<mpsc::Sender<Wake>>,
}

/// How often the gap ledger is read for GAP OPEN: its threshold is hours, and a read is a
/// query on the journal's database.
const GAP_READ_EVERY: Duration = Duration::from_secs(60);

/// A report that could not be made (the journal busy or unreadable) is tried again after this.
const REPORT_RETRY: Duration = Duration::from_secs(60);

/// The longest the watcher sleeps with nothing timed pending: a re-check against what no
/// deadline covers (a wall clock set by hand, a snapshot relay that died), 1 wake an hour.
const IDLE_RECHECK: Duration = Duration::from_secs(3600);

impl Watcher {
    /// Stores `m` in every outbox; the channels it was stored for.
    fn put(&self, m: &Message) -> Vec<bool> {
        self.queues
            .iter()
            .map(|(_, ob)| match ob.put(m) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(target: "cdrbox::alarms", channel = %ob.channel(), id = %m.id, error = %e, "cannot queue the message");
                    false
                }
            })
            .collect()
    }

    /// Tells the delivery threads of the channels `m` was stored for.
    fn notify(&self, m: &Message, stored: &[bool]) {
        for ((tx, _), ok) in self.queues.iter().zip(stored) {
            if *ok {
                let _ = tx.send(Cmd::Queued(Box::new(m.clone())));
            }
        }
    }

    /// Makes and queues the daily report when it is due: queued, then the day saved, then
    /// the delivery threads told (see `super::daily` for why this order).
    fn daily_report(
        &mut self,
        now: Now,
        view: &StatusView,
        failed: &mut Option<crate::clock::Mono>,
    ) {
        let Some(daily) = &self.daily else { return };
        let Some(day) = daily.due(now.unix) else {
            return;
        };
        if failed.is_some_and(|f| now.mono.duration_since(f) < REPORT_RETRY) {
            return;
        }
        let m = match daily.build(day, &self.info, view) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target: "cdrbox::alarms", error = %e, "daily report not made; trying again in a minute");
                *failed = Some(now.mono);
                return;
            }
        };
        let stored = self.put(&m);
        if !stored.iter().any(|ok| *ok) {
            *failed = Some(now.mono);
            return;
        }
        if let Some(d) = &mut self.daily {
            if let Err(e) = d.mark(day) {
                tracing::warn!(target: "cdrbox::alarms", error = %e, "cannot save the daily report's day; the queued report still counts at the next start");
            }
        }
        tracing::info!(target: "cdrbox::alarms", id = %m.id, day = %day, "daily report queued");
        *failed = None;
        self.notify(&m, &stored);
    }

    fn refresh_gaps(&self, gaps: &mut Vec<Gap>, read: &mut Option<crate::clock::Mono>, now: Now) {
        if self.thresholds.gap_after.is_none() {
            return;
        }
        if read.is_some_and(|r| now.mono.duration_since(r) < GAP_READ_EVERY) {
            return;
        }
        *read = Some(now.mono);
        let since = now.unix - i64::try_from(thresholds::GAP_LOOKBACK.as_secs()).unwrap_or(0);
        match JournalReader::open(&self.journal).and_then(|r| r.gaps(Some(since), None)) {
            Ok(g) => *gaps = g,
            Err(e) => {
                tracing::warn!(target: "cdrbox::alarms", error = %e, "cannot read the gap ledger; GAP OPEN uses the last reading")
            }
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.clock.now(),
            unix: self.clock.unix(),
        }
    }

    /// Whether the next wall-clock minute is a deadline: the daily report (HH:MM), PBX QUIET
    /// (minutes of business hours, whose window opens on the clock) and GAP OPEN (hours, from
    /// the ledger on disk, which no snapshot change announces) are timed in minutes.
    fn minutely(&self) -> bool {
        self.daily.is_some()
            || self.thresholds.quiet.is_some()
            || self.thresholds.gap_after.is_some()
    }

    /// How long to sleep after a look at `now`: until the earliest deadline. `policy_deadline`
    /// and `link_change` come from the look itself.
    fn sleep_for(
        &self,
        now: Now,
        policy_deadline: Option<Mono>,
        link_change: Option<i64>,
    ) -> Duration {
        let wall = |unix: i64| {
            Duration::from_secs(u64::try_from(unix.saturating_sub(now.unix)).unwrap_or(0))
        };
        let minute = self
            .minutely()
            .then(|| wall(now.unix - now.unix.rem_euclid(60) + 60));
        [
            policy_deadline.map(|d| self.clock.until(d)),
            link_change.map(wall),
            minute,
        ]
        .into_iter()
        .flatten()
        .min()
        // Nothing timed is pending: only a change of the snapshot (or stop) can matter.
        .unwrap_or(IDLE_RECHECK)
        .min(IDLE_RECHECK)
    }

    fn run(mut self, wake: mpsc::Receiver<Wake>) {
        // A manual test clock moves by hand: look again whenever it does.
        let tx = self.clock_wake.take();
        let _advanced = tx.map(|tx| {
            self.clock.on_advance(move || {
                let _ = tx.send(Wake::Look);
            })
        });
        let saved = load_open(&self.dir);
        let mut policy = Policy::restore(self.rules, saved.clone(), self.now());
        let mut last_saved = saved;
        let watching_since = self.clock.unix();
        let mut gaps: Vec<Gap> = Vec::new();
        let mut gaps_read: Option<crate::clock::Mono> = None;
        let mut report_failed: Option<crate::clock::Mono> = None;
        loop {
            let now = self.now();
            let view = (self.view)();
            self.refresh_gaps(&mut gaps, &mut gaps_read, now);
            let open_quiet = thresholds::open_quiet(&policy.saved());
            let standing = thresholds::standing(
                &view,
                &gaps,
                now.unix,
                watching_since,
                &self.thresholds,
                &open_quiet,
            );
            let notices = policy.observe(now, &standing);
            let policy_deadline = policy.next_deadline();
            let link_change = thresholds::next_change(&view, now.unix, &self.thresholds);
            if !notices.is_empty() {
                let m = message::from_notices(
                    message::new_id(now.unix),
                    &self.info,
                    now.unix,
                    &notices,
                );
                tracing::info!(target: "cdrbox::alarms", id = %m.id, subject = %m.subject, "alarm message queued");
                let queued = self.put(&m);
                self.notify(&m, &queued);
            }
            self.daily_report(now, &view, &mut report_failed);
            let open = policy.saved();
            if open != last_saved {
                let bytes = serde_json::to_vec_pretty(&open).unwrap_or_default();
                match write_atomic(&open_path(&self.dir), &bytes, AtomicOptions::SECRET) {
                    Ok(()) => last_saved = open,
                    Err(e) => {
                        tracing::warn!(target: "cdrbox::alarms", error = %e, "cannot save the open alarms")
                    }
                }
            }
            match wake.recv_timeout(self.sleep_for(now, policy_deadline, link_change)) {
                Ok(Wake::Look) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            // A burst of changes is one look at the latest snapshot.
            loop {
                match wake.try_recv() {
                    Ok(Wake::Look) => {}
                    Ok(Wake::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
        }
    }
}

struct Delivery {
    index: usize,
    sender: Sender,
    outbox: Outbox,
    rx: mpsc::Receiver<Cmd>,
    status: Arc<Mutex<Vec<DeliveryStatus>>>,
    on_status: StatusFn,
    clock: Clock,
}

impl Delivery {
    fn update(&self, f: impl FnOnce(&mut DeliveryStatus)) {
        let all = {
            let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = st.get_mut(self.index) {
                f(s);
            }
            st.clone()
        };
        (self.on_status)(all);
    }

    fn run(self) {
        let mut pending: BTreeMap<String, Message> = BTreeMap::new();
        let mut retry = Retry::new();
        match self.outbox.load(self.clock.unix()) {
            Ok(loaded) => {
                for b in &loaded.bad {
                    tracing::warn!(target: "cdrbox::alarms", file = %b, "unreadable outbox file set aside");
                }
                if !loaded.dropped.is_empty() {
                    tracing::warn!(target: "cdrbox::alarms", channel = %self.outbox.channel(), count = loaded.dropped.len(), "stale or excess queued alarms dropped unsent");
                }
                for m in loaded.messages {
                    retry.add(&m.id, self.clock.now());
                    pending.insert(m.id.clone(), m);
                }
            }
            Err(e) => {
                tracing::error!(target: "cdrbox::alarms", channel = %self.outbox.channel(), error = %e, "cannot read the outbox")
            }
        }
        let n = pending.len();
        self.update(|s| s.queued = n);
        loop {
            let now = self.clock.now();
            // Nothing queued: sleep until a message is (`Cmd::Queued` ends the wait).
            let wait = retry
                .next_wake()
                .map_or(IDLE_RECHECK, |w| self.clock.until(w))
                .min(IDLE_RECHECK);
            match self.rx.recv_timeout(if retry.due(now).is_some() {
                Duration::ZERO
            } else {
                wait
            }) {
                Ok(Cmd::Queued(m)) => {
                    retry.add(&m.id, self.clock.now());
                    pending.insert(m.id.clone(), *m);
                    let n = pending.len();
                    self.update(|s| s.queued = n);
                    continue;
                }
                Ok(Cmd::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let Some(id) = retry.due(self.clock.now()).map(str::to_owned) else {
                continue;
            };
            let Some(m) = pending.get(&id) else {
                retry.remove(&id);
                continue;
            };
            let at = self.clock.unix();
            match self.sender.send(m) {
                Ok(()) => {
                    tracing::info!(target: "cdrbox::alarms", channel = %self.outbox.channel(), id = %id, "alarm message delivered");
                    if let Err(e) = self.outbox.remove(&id) {
                        tracing::warn!(target: "cdrbox::alarms", error = %e, "delivered, but the outbox file stays (it may be sent again)");
                    }
                    retry.sent(&id);
                    pending.remove(&id);
                    let n = pending.len();
                    self.update(|s| {
                        s.queued = n;
                        s.last_attempt_utc = Some(at);
                        s.last_ok_utc = Some(at);
                        s.last_error = None;
                    });
                }
                Err(Failure::Channel(e)) => {
                    let wait = retry.channel_failed(self.clock.now());
                    tracing::warn!(target: "cdrbox::alarms", channel = %self.outbox.channel(), error = %e, retry_in_s = wait.as_secs(), "alarm delivery failed");
                    self.update(|s| {
                        s.last_attempt_utc = Some(at);
                        s.last_error = Some(e);
                    });
                }
                Err(Failure::Message(e)) => {
                    let wait = retry.message_failed(&id, self.clock.now());
                    tracing::warn!(target: "cdrbox::alarms", channel = %self.outbox.channel(), id = %id, error = %e, retry_in_s = wait.as_secs(), "alarm message refused");
                    self.update(|s| {
                        s.last_attempt_utc = Some(at);
                        s.last_error = Some(e);
                    });
                }
            }
        }
    }
}

/// `cdrbox test-alarm`: sends a test message on every configured channel now, without the
/// outbox; one line per channel, `Err` if any failed.
pub fn send_test_now(cfg: &Config, clock: &Clock, who: &str) -> Result<Vec<String>, Vec<String>> {
    let senders = senders_from_config(cfg).map_err(|e| vec![e])?;
    if senders.is_empty() {
        return Err(vec![
            "no alarm channel is configured: set [alarms] smtp_url (with from and to) or webhook_url".into(),
        ]);
    }
    let info = box_info(cfg);
    let now = clock.unix();
    let m = message::test_message(message::new_id(now), &info, now, who);
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for s in &senders {
        match s.send(&m) {
            Ok(()) => ok.push(format!(
                "{}: test alarm sent via {}",
                s.channel(),
                s.describe()
            )),
            Err(Failure::Channel(e) | Failure::Message(e)) => {
                bad.push(format!("{}: FAILED: {e}", s.channel()))
            }
        }
    }
    if bad.is_empty() {
        Ok(ok)
    } else {
        bad.extend(ok);
        Err(bad)
    }
}
