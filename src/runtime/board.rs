//! `StatusBoard`: collects what the links, the journal and the USB watcher report and publishes
//! one [`StatusView`] snapshot on a `watch` channel for the web page and the OLED.
//!
//! Counting rule for "today": a *call* is [`crate::calls::call_key`] (LinkedID when mapped, else
//! the Local channel or UniqueID — the same key the calls page and the journal count), and is
//! answered when any of its CDRs is ANSWERED. Counting CDRs instead would show a queue call with
//! two members, or a no-answer call with its 0 s leftover CDR, as several missed calls — the
//! "wrong missed counts" users of CDR viewers complain about.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::{watch, Notify};

use crate::record::{CallRecord, Disposition};
use crate::sink::{DownKind, LinkEvent};
use crate::status::{
    link_alarms, Alarm, AlarmChannelStatus, BoxHealth, DayTotals, LinkState, LinkStatus,
    StatusView, StorageStatus, UplinkStatus, UsbState,
};

/// A link that stays down longer than this raises an alarm (shorter blips are normal restarts).
const LINK_DOWN_ALARM_SECS: i64 = 60;

#[derive(Debug)]
struct State {
    view: StatusView,
    /// Local day number (days since epoch in the display zone) that `calls` counts.
    day: i64,
    /// Call key → answered.
    calls: HashMap<String, bool>,
    storage_alarms: Vec<Alarm>,
    usb_alarm: Option<Alarm>,
    display_alarm: Option<Alarm>,
    web_alarm: Option<Alarm>,
    uplink_alarm: Option<Alarm>,
    alarm_mail_alarm: Option<Alarm>,
    /// Standing alarms from the configuration (a PBX switched off or removed, a saved file that
    /// could not be read at restart).
    config_alarms: Vec<Alarm>,
}

/// Wakes the publisher when dropped: after the report's lock is released, so the publisher
/// never waits on it.
struct Reported<'a>(&'a StatusBoard);

impl Drop for Reported<'_> {
    fn drop(&mut self) {
        self.0.report();
    }
}

/// Shared, thread-safe collector of status parts.
#[derive(Debug)]
pub struct StatusBoard {
    state: Mutex<State>,
    tx: watch::Sender<StatusView>,
    tz: jiff::tz::TimeZone,
    /// Woken by every report from outside (a record, a link event, the USB state, …), so the
    /// publisher publishes it at once and otherwise sleeps until its next real deadline
    /// (issue 14 item 4: no 1 s tick on an idle box). Not by the parts the publisher itself
    /// refreshes (storage, CDR databases, setup code, IP, health).
    reported: Notify,
    /// What the journal was handed so far ([`StatusBoard::journal_news`]).
    journal_news: AtomicU64,
}

fn local_day(tz: &jiff::tz::TimeZone, utc: i64) -> i64 {
    let offset = jiff::Timestamp::from_second(utc)
        .map(|ts| tz.to_offset(ts).seconds())
        .unwrap_or(0);
    (utc + i64::from(offset)).div_euclid(86_400)
}

fn offset_at(tz: &jiff::tz::TimeZone, utc: i64) -> i32 {
    jiff::Timestamp::from_second(utc)
        .map(|ts| tz.to_offset(ts).seconds())
        .unwrap_or(0)
}

impl StatusBoard {
    /// `links` are `(pbx name, "host:port")`; `tz` is the zone "today" is counted in.
    pub fn new(
        box_name: &str,
        links: &[(String, String)],
        tz: jiff::tz::TimeZone,
        now: i64,
    ) -> Self {
        let view = StatusView {
            now_utc: now,
            local_offset_seconds: offset_at(&tz, now),
            box_name: box_name.to_string(),
            ip_address: None,
            links: links
                .iter()
                .map(|(pbx, address)| LinkStatus::new(pbx, address, LinkState::Connecting, now))
                .collect(),
            today: DayTotals::default(),
            last_call_utc: None,
            storage: StorageStatus::default(),
            usb: UsbState::NoStick,
            alarms: Vec::new(),
            cdr_db: Vec::new(),
            setup_code: None,
            tls_fingerprint: None,
            alarm_channels: Vec::new(),
            uplink: None,
            health: BoxHealth::default(),
            warnings: Vec::new(),
        };
        let (tx, _rx) = watch::channel(view.clone());
        StatusBoard {
            state: Mutex::new(State {
                view,
                day: local_day(&tz, now),
                calls: HashMap::new(),
                storage_alarms: Vec::new(),
                usb_alarm: None,
                display_alarm: None,
                web_alarm: None,
                uplink_alarm: None,
                alarm_mail_alarm: None,
                config_alarms: Vec::new(),
            }),
            tx,
            tz,
            reported: Notify::new(),
            journal_news: AtomicU64::new(0),
        }
    }

    /// Completes when something was reported since the last time it completed (a report made
    /// while nobody waits is kept for the next wait).
    pub async fn reported(&self) {
        self.reported.notified().await
    }

    /// Records and link events (all but the PBX clock readings, which the journal is not
    /// sent) counted since start: the journal's part of the status changes with their commit,
    /// within `[storage] flush_interval_ms`, which nobody reports, so the publisher refreshes
    /// it for a while after this grows — and otherwise once a minute (its free-space figure
    /// moves with every write anyone makes to the disk, which is no news worth a publish).
    pub fn journal_news(&self) -> u64 {
        self.journal_news.load(Ordering::SeqCst)
    }

    fn report(&self) {
        self.reported.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock would poison it; the data is plain counters, so keep
        // serving them rather than taking the whole box down.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// New subscriber; it sees the latest published snapshot.
    pub fn subscribe(&self) -> watch::Receiver<StatusView> {
        self.tx.subscribe()
    }

    /// The last published snapshot.
    pub fn snapshot(&self) -> StatusView {
        self.tx.borrow().clone()
    }

    /// Counts a record (call it once per newly received record).
    pub fn on_record(&self, rec: &CallRecord) {
        self.journal_news.fetch_add(1, Ordering::SeqCst);
        let _reported = Reported(self);
        let mut st = self.lock();
        if let Some(link) = st.view.links.iter_mut().find(|l| l.pbx == rec.pbx) {
            link.records += 1;
            link.last_record_utc = Some(rec.received_utc);
        }
        let start = rec.start.utc.unwrap_or(rec.received_utc);
        if st.view.last_call_utc.is_none_or(|t| start > t) {
            st.view.last_call_utc = Some(start);
        }
        if local_day(&self.tz, start) == st.day {
            let key = crate::calls::call_key(rec);
            let answered = rec.disposition == Disposition::Answered;
            let entry = st.calls.entry(key).or_insert(false);
            *entry |= answered;
            st.view.today = totals(&st.calls);
        }
    }

    /// Seeds today's counters from the journal at start-up: `(call key, answered)` pairs.
    pub fn seed_today(&self, calls: impl IntoIterator<Item = (String, bool)>) {
        let _reported = Reported(self);
        let mut st = self.lock();
        for (k, a) in calls {
            *st.calls.entry(k).or_insert(false) |= a;
        }
        st.view.today = totals(&st.calls);
    }

    /// Applies a link event.
    pub fn on_link_event(&self, pbx: &str, at: i64, event: &LinkEvent) {
        if !matches!(event, LinkEvent::PbxClock { .. }) {
            self.journal_news.fetch_add(1, Ordering::SeqCst);
        }
        let _reported = Reported(self);
        let mut st = self.lock();
        let Some(link) = st.view.links.iter_mut().find(|l| l.pbx == pbx) else {
            return;
        };
        let new_state = match event {
            LinkEvent::Connecting { attempt } => {
                if *attempt > 1 {
                    link.reconnects += 1;
                }
                // Keep showing "down/auth failed since" while retrying: a reconnect attempt
                // every few seconds must not reset the clock a person reads.
                match link.state {
                    LinkState::Up => Some(LinkState::Connecting),
                    _ => None,
                }
            }
            LinkEvent::Up { banner, .. } => {
                link.banner = banner.clone();
                Some(LinkState::Up)
            }
            LinkEvent::Down { reason, kind } => Some(match kind {
                DownKind::AuthFailed => LinkState::AuthFailed,
                DownKind::PbxShutdown => LinkState::PbxShutdown,
                _ => LinkState::Down {
                    reason: reason.clone(),
                },
            }),
            LinkEvent::Discarded { .. } => {
                link.discarded_frames += 1;
                None
            }
            LinkEvent::PbxClock { skew_ms } => {
                link.pbx_clock_skew_ms = Some(*skew_ms);
                None
            }
        };
        if let Some(s) = new_state {
            let same_kind = std::mem::discriminant(&s) == std::mem::discriminant(&link.state);
            if !same_kind {
                link.since_utc = at;
            }
            link.state = s;
        }
    }

    /// Replaces the journal's part of the snapshot.
    pub fn set_storage(&self, storage: StorageStatus, alarms: Vec<Alarm>) {
        let mut st = self.lock();
        st.view.storage = storage;
        st.storage_alarms = alarms;
    }

    /// Replaces the USB part.
    pub fn set_usb(&self, usb: UsbState) {
        let _reported = Reported(self);
        let mut st = self.lock();
        st.usb_alarm = match &usb {
            // One stick at a time: the subject is the USB port, not a mount point that
            // changes with every stick.
            UsbState::Error { message } => Some(Alarm::about("USB ERROR", "usb", message.clone())),
            _ => None,
        };
        st.view.usb = usb;
    }

    /// Reports a display problem (shown on the page; the OLED obviously can't show it).
    /// Reported only when it changes: the display tells its health after every frame, and a
    /// frame follows every publish.
    pub fn set_display_problem(&self, problem: Option<String>) {
        let alarm = problem.map(|message| Alarm::new("DISPLAY", message));
        let changed = {
            let mut st = self.lock();
            let changed = st.display_alarm != alarm;
            st.display_alarm = alarm;
            changed
        };
        if changed {
            self.report();
        }
    }

    /// Reports that alarm messages cannot be sent as configured (`[alarms]` invalid).
    pub fn set_alarm_mail_problem(&self, problem: Option<String>) {
        let _reported = Reported(self);
        self.lock().alarm_mail_alarm = problem.map(|message| Alarm::new("ALARM MAIL", message));
    }

    /// The alarm channels' delivery results (shown on the page and in `/api/status`).
    pub fn set_alarm_channels(&self, channels: Vec<AlarmChannelStatus>) {
        let _reported = Reported(self);
        self.lock().view.alarm_channels = channels;
    }

    /// Reports that the web page could not start (the OLED shows the code).
    pub fn set_web_problem(&self, problem: Option<String>) {
        let _reported = Reported(self);
        self.lock().web_alarm = problem.map(|message| Alarm::new("WEB", message));
    }

    /// The uplink's state; its last error stands as the UPLINK alarm until a batch commits
    /// (records are kept meanwhile, so it is a warning about lag, not about loss).
    pub fn set_uplink(&self, uplink: UplinkStatus) {
        let _reported = Reported(self);
        let mut st = self.lock();
        st.uplink_alarm = uplink.last_error.as_ref().map(|e| {
            Alarm::new(
                "UPLINK",
                format!(
                    "central database {}: {e} — {} records wait on the box",
                    uplink.target, uplink.lag_records
                ),
            )
        });
        st.view.uplink = Some(uplink);
    }

    /// The one-time setup code shown on the OLED (`None` once the admin password is set).
    pub fn set_setup_code(&self, code: Option<String>) {
        // Reported only when it changes: the publisher re-reads the file while a code is
        // shown, and the web page clears it when the first password is set.
        let changed = {
            let mut st = self.lock();
            let changed = st.view.setup_code != code;
            st.view.setup_code = code;
            changed
        };
        if changed {
            self.report();
        }
    }

    /// True while a setup code is shown.
    pub fn setup_code_shown(&self) -> bool {
        self.lock().view.setup_code.is_some()
    }

    /// The HTTPS certificate's fingerprint for the OLED and the status page.
    pub fn set_tls_fingerprint(&self, fingerprint: Option<String>) {
        let _reported = Reported(self);
        self.lock().view.tls_fingerprint = fingerprint;
    }

    /// The CDR databases' pull states (their alarms are made at [`publish`](Self::publish)).
    pub fn set_cdr_db(&self, dbs: Vec<crate::status::CdrDbStatus>) {
        self.lock().view.cdr_db = dbs;
    }

    /// Replaces the alarms that come from the configuration itself.
    pub fn set_config_alarms(&self, alarms: Vec<Alarm>) {
        let _reported = Reported(self);
        self.lock().config_alarms = alarms;
    }

    /// A new box name from the settings page.
    pub fn set_box_name(&self, name: &str) {
        let _reported = Reported(self);
        self.lock().view.box_name = name.to_string();
    }

    /// Replaces the set of links after a configuration change, keeping the state of links that
    /// stay (a renamed or re-addressed link starts again as connecting).
    pub fn set_links(&self, links: &[(String, String)], now: i64) {
        let _reported = Reported(self);
        let mut st = self.lock();
        let old = std::mem::take(&mut st.view.links);
        st.view.links = links
            .iter()
            .map(|(pbx, address)| {
                old.iter()
                    .find(|l| &l.pbx == pbx && &l.address == address)
                    .cloned()
                    .unwrap_or_else(|| LinkStatus::new(pbx, address, LinkState::Connecting, now))
            })
            .collect();
    }

    /// A new health sample (`crate::health::sample`); its warnings stand from the next publish.
    pub fn set_health(&self, health: BoxHealth) {
        self.lock().view.health = health;
    }

    /// Sets the address shown on the OLED.
    pub fn set_ip(&self, ip: Option<String>) {
        self.lock().view.ip_address = ip;
    }

    /// The published snapshot as of `now` (Unix seconds): what a page answering now shows.
    /// The snapshot is published only when something changes (and on the minute), so the
    /// parts that are pure time — `now_utc`, the uptimes — are brought forward here, at the
    /// moment of the answer ([`view_at`]).
    pub fn view_at(&self, now: i64) -> StatusView {
        view_at(self.snapshot(), now)
    }

    /// The next moment (Unix seconds, after `now`) a link down or shut down raises its alarm on
    /// the page and the OLED ([`LINK_DOWN_ALARM_SECS`]) without another report: the publisher
    /// publishes then rather than every second.
    pub fn next_link_alarm(&self, now: i64) -> Option<i64> {
        next_link_alarm(&self.snapshot().links, now, LINK_DOWN_ALARM_SECS)
    }

    /// Rolls the day over if needed, recomputes alarms and publishes when anything changed.
    pub fn publish(&self, now: i64) {
        let mut st = self.lock();
        let day = local_day(&self.tz, now);
        if day != st.day {
            st.day = day;
            st.calls.clear();
            st.view.today = DayTotals::default();
        }
        st.view.now_utc = now;
        st.view.local_offset_seconds = offset_at(&self.tz, now);
        let mut alarms = link_alarms(&st.view.links, now, LINK_DOWN_ALARM_SECS);
        alarms.extend(st.storage_alarms.iter().cloned());
        alarms.extend(st.usb_alarm.iter().cloned());
        alarms.extend(st.display_alarm.iter().cloned());
        alarms.extend(st.web_alarm.iter().cloned());
        alarms.extend(st.uplink_alarm.iter().cloned());
        alarms.extend(st.alarm_mail_alarm.iter().cloned());
        alarms.extend(st.config_alarms.iter().cloned());
        alarms.extend(st.view.cdr_db.iter().filter_map(|d| d.alarm()));
        st.view.alarms = alarms;
        let mut warnings: Vec<Alarm> = st.view.health.clock.warning().into_iter().collect();
        warnings.extend(crate::status::pbx_clock_warnings(&st.view.links));
        st.view.warnings = warnings;
        let view = st.view.clone();
        drop(st);
        self.tx.send_if_modified(|old| {
            // `now_utc` changes every second; only wake renderers for a visible change or a
            // new minute (the OLED shows HH:MM).
            let changed = {
                let mut a = old.clone();
                a.now_utc = view.now_utc;
                a != view || old.now_utc / 60 != view.now_utc / 60
            };
            if changed {
                *old = view;
            }
            changed
        });
    }
}

/// `view` with its time-derived parts at `now`: the health sample was taken at
/// `started_utc + uptime_seconds`, so both uptimes grow by the time since.
pub fn view_at(mut view: StatusView, now: i64) -> StatusView {
    let h = &mut view.health;
    let sampled = h.started_utc.saturating_add(h.uptime_seconds);
    let since = now.saturating_sub(sampled).max(0);
    if h.started_utc != 0 {
        h.uptime_seconds = h.uptime_seconds.saturating_add(since);
        h.system_uptime_seconds = h
            .system_uptime_seconds
            .map(|s| s.saturating_add(u64::try_from(since).unwrap_or(0)));
    }
    view.now_utc = now;
    view
}

/// See [`StatusBoard::next_link_alarm`].
fn next_link_alarm(links: &[LinkStatus], now: i64, after_secs: i64) -> Option<i64> {
    links
        .iter()
        .filter(|l| matches!(l.state, LinkState::Down { .. } | LinkState::PbxShutdown))
        .map(|l| l.since_utc.saturating_add(after_secs))
        .filter(|at| *at > now)
        .min()
}

fn totals(calls: &HashMap<String, bool>) -> DayTotals {
    let answered = calls.values().filter(|a| **a).count() as u64;
    DayTotals {
        total: calls.len() as u64,
        answered,
        missed: calls.len() as u64 - answered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ami::AmiMessage;
    use crate::record::PbxContext;
    use std::time::Duration;

    fn record(unique: &str, linked: &str, dispo: &str, start: &str) -> CallRecord {
        let raw = format!(
            "Event: Cdr\r\nPrivilege: cdr,all\r\nAccountCode: \r\nSource: 1001\r\nDestination: 2001\r\nDestinationContext: internal\r\nCallerID: \"A\" <1001>\r\nChannel: PJSIP/1001-00000001\r\nDestinationChannel: PJSIP/2001-00000002\r\nLastApplication: Dial\r\nLastData: PJSIP/2001\r\nStartTime: {start}\r\nAnswerTime: \r\nEndTime: {start}\r\nDuration: 0\r\nBillableSeconds: 0\r\nDisposition: {dispo}\r\nAMAFlags: DOCUMENTATION\r\nUniqueID: {unique}\r\nUserField: \r\nLinkedID: {linked}\r\nSequence: 1\r\n\r\n"
        );
        let ctx = PbxContext::new("pbx", "UTC", "windows-1252", &["^PJSIP/trunk"]).unwrap();
        CallRecord::from_event(&AmiMessage::parse(raw.as_bytes()).unwrap(), &ctx, 0)
    }

    fn down(reason: &str, kind: DownKind) -> LinkEvent {
        LinkEvent::Down {
            reason: reason.into(),
            kind,
        }
    }

    fn board(now: i64) -> StatusBoard {
        StatusBoard::new(
            "box",
            &[("pbx".into(), "127.0.0.1:5038".into())],
            jiff::tz::TimeZone::UTC,
            now,
        )
    }

    // 2026-11-22 10:00:00 UTC
    const NOW: i64 = 1_795_341_600;

    #[test]
    fn counts_calls_not_cdrs() {
        let b = board(NOW);
        // A queue call: two CDRs for one call, one answered → one answered call.
        b.on_record(&record("1.1", "1.1", "ANSWERED", "2026-11-22 09:00:00"));
        b.on_record(&record("1.1", "1.1", "NO ANSWER", "2026-11-22 09:00:00"));
        // A missed call with its 0 s leftover CDR → one missed call.
        b.on_record(&record("2.1", "2.1", "NO ANSWER", "2026-11-22 09:05:00"));
        b.on_record(&record("2.1", "2.1", "NO ANSWER", "2026-11-22 09:05:00"));
        // Yesterday's call does not count today.
        b.on_record(&record("3.1", "3.1", "ANSWERED", "2026-11-21 23:59:59"));
        b.publish(NOW);
        let v = b.snapshot();
        assert_eq!(
            v.today,
            DayTotals {
                total: 2,
                answered: 1,
                missed: 1
            }
        );
        assert_eq!(v.links[0].records, 5);
    }

    #[test]
    fn day_rollover_resets_totals() {
        let b = board(NOW);
        b.on_record(&record("1.1", "1.1", "ANSWERED", "2026-11-22 09:00:00"));
        b.publish(NOW + 86_400);
        assert_eq!(b.snapshot().today, DayTotals::default());
    }

    #[test]
    fn link_states_and_alarms() {
        let b = board(NOW);
        b.on_link_event(
            "pbx",
            NOW,
            &LinkEvent::Up {
                banner: Some("Asterisk Call Manager/11.0.0".into()),
                pbx_restarted: false,
            },
        );
        b.publish(NOW);
        assert_eq!(b.snapshot().links[0].state, LinkState::Up);
        assert!(b.snapshot().alarms.is_empty());

        b.on_link_event(
            "pbx",
            NOW + 10,
            &down("connection refused", DownKind::Transient),
        );
        // Retries keep the original "down since" time.
        b.on_link_event("pbx", NOW + 20, &LinkEvent::Connecting { attempt: 2 });
        b.on_link_event(
            "pbx",
            NOW + 21,
            &down("connection refused", DownKind::Transient),
        );
        b.publish(NOW + 30);
        let v = b.snapshot();
        assert_eq!(v.links[0].since_utc, NOW + 10);
        assert!(v.alarms.is_empty(), "a short blip raises no alarm");
        b.publish(NOW + 10 + LINK_DOWN_ALARM_SECS);
        assert_eq!(b.snapshot().alarms[0].code, "LINK DOWN");

        b.on_link_event("pbx", NOW + 100, &down("x", DownKind::AuthFailed));
        b.publish(NOW + 100);
        let v = b.snapshot();
        assert_eq!(v.links[0].state, LinkState::AuthFailed);
        assert_eq!(v.alarms[0].code, "AUTH");
        assert!(v.alarms[0].message.contains("manager.conf"));
    }

    #[test]
    fn publish_only_wakes_on_visible_change() {
        let b = board(NOW);
        let mut rx = b.subscribe();
        b.publish(NOW);
        rx.borrow_and_update();
        b.publish(NOW + 1);
        assert!(
            !rx.has_changed().unwrap(),
            "a new second alone is not a change"
        );
        b.publish(NOW + 61);
        assert!(
            rx.has_changed().unwrap(),
            "a new minute is (the OLED shows HH:MM)"
        );
    }

    #[test]
    fn a_report_wakes_the_publisher_and_its_own_refreshes_do_not() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let b = board(NOW);
        let woken = |b: &StatusBoard| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(50), b.reported())
                    .await
                    .is_ok()
            })
        };
        assert!(!woken(&b), "nothing reported yet");
        b.on_link_event("pbx", NOW, &LinkEvent::Connecting { attempt: 1 });
        assert!(woken(&b), "a link event is reported");
        assert!(!woken(&b), "and only once");
        b.set_display_problem(None);
        assert!(!woken(&b), "an unchanged display health is no news");
        b.set_display_problem(Some("no ACK".into()));
        assert!(woken(&b));
        b.set_setup_code(Some("ABCD-EFGH".into()));
        assert!(woken(&b));
        b.set_setup_code(Some("ABCD-EFGH".into()));
        assert!(!woken(&b), "the publisher re-reading the same code");
        b.set_health(BoxHealth::default());
        b.set_ip(None);
        assert!(!woken(&b), "the publisher's own refreshes");
    }

    #[test]
    fn the_page_sees_uptime_and_now_at_the_answer_not_at_the_sample() {
        let mut v = StatusView::default();
        v.health.started_utc = NOW;
        v.health.uptime_seconds = 100;
        v.health.system_uptime_seconds = Some(5000);
        v.now_utc = NOW + 100;
        let at = view_at(v.clone(), NOW + 145);
        assert_eq!(at.now_utc, NOW + 145);
        assert_eq!(at.health.uptime_seconds, 145);
        assert_eq!(at.health.system_uptime_seconds, Some(5045));
        // No sample yet: nothing to bring forward but the time.
        let none = view_at(StatusView::default(), NOW);
        assert_eq!(none.health, StatusView::default().health);
    }

    #[test]
    fn the_next_link_alarm_is_a_minute_after_the_link_fell() {
        let b = board(NOW);
        assert_eq!(b.next_link_alarm(NOW), None, "connecting is not down");
        b.on_link_event("pbx", NOW + 5, &down("refused", DownKind::Transient));
        b.publish(NOW + 5);
        assert_eq!(
            b.next_link_alarm(NOW + 5),
            Some(NOW + 5 + LINK_DOWN_ALARM_SECS)
        );
        assert_eq!(b.next_link_alarm(NOW + 5 + LINK_DOWN_ALARM_SECS), None);
        b.publish(NOW + 5 + LINK_DOWN_ALARM_SECS);
        assert!(b.snapshot().alarms.iter().any(|a| a.code == "LINK DOWN"));
    }
}
