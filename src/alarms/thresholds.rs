//! Which alarms stand for the mailer: the status snapshot's alarms filtered and timed by the
//! per-alarm thresholds of `[alarms]`, plus the two alarms only the mailer makes — PBX QUIET
//! (a link up but no call for `quiet_minutes` during `business_hours`, in the PBX's zone) and
//! GAP OPEN (an interval of the gap ledger nobody filled `gap_unfilled_hours` after it ended).
//!
//! Pure: fed the snapshot, the gap ledger and the time; the [`super::policy`] then decides what
//! is mailed (raise, reminder, clear). Storage percentages are not here: the journal's own
//! STORAGE alarms use them (`JournalHandle::set_storage_alarm_percents`), so page, display and
//! mail agree.

use std::collections::BTreeMap;
use std::time::Duration;

use super::hours::BusinessHours;
use super::policy::{AlarmKey, SavedIncident, Standing};
use crate::journal::Gap;
use crate::status::{link_alarms, Alarm, LinkState, LinkStatus, StatusView, LINK_ALARM_CODES};

/// The code of the "no call during business hours" alarm.
pub const QUIET: &str = "PBX QUIET";
/// The code of the "gap not filled" alarm.
pub const GAP_OPEN: &str = "GAP OPEN";
/// Gaps that ended longer ago than this are not mailed about any more: after a week the PBX's
/// own Master.csv has usually rotated, and a year-old gap must not alarm a new owner.
pub const GAP_LOOKBACK: Duration = Duration::from_secs(7 * 86_400);

/// "No call for `after` during business hours" for the PBXs in `zones`.
#[derive(Debug, Clone)]
pub struct Quiet {
    pub after: Duration,
    pub hours: BusinessHours,
    /// Each PBX's zone, by name (business hours are the PBX's local time).
    pub zones: BTreeMap<String, jiff::tz::TimeZone>,
}

/// The per-alarm thresholds of `[alarms]`.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// `link_down_minutes`: LINK DOWN / PBX DOWN after this.
    pub link_down_after: Duration,
    /// `auth_failed_minutes`: AUTH once the PBX has refused the login this long.
    pub auth_after: Duration,
    /// `quiet_minutes` + `business_hours`; `None`: off.
    pub quiet: Option<Quiet>,
    /// `usb_copy_failed`: mail USB ERROR.
    pub usb: bool,
    /// `gap_unfilled_hours`; `None`: off.
    pub gap_after: Option<Duration>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            link_down_after: Duration::from_secs(300),
            auth_after: Duration::ZERO,
            quiet: None,
            usb: true,
            gap_after: None,
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// PBX QUIET for each link that is up, inside business hours, and has had no call record for
/// `quiet.after` — counted from the latest of its last record, the start of today's window,
/// the link's coming up and `watching_since` (when the mailer started looking), so Monday 09:00
/// or a restart does not count the night or the downtime as quiet.
///
/// Once raised (`open`: PBX → when its QUIET was raised, restored after a restart too) it
/// stands until a call record arrives, also after business hours: "calls are back" is the news
/// worth a mail, not the end of the working day.
pub fn quiet_alarms(
    links: &[LinkStatus],
    now_utc: i64,
    watching_since: i64,
    quiet: &Quiet,
    open: &BTreeMap<String, i64>,
) -> Vec<Alarm> {
    let mut out = Vec::new();
    for link in links {
        // A link that is down is LINK DOWN's business; its calls cannot arrive.
        if link.state != LinkState::Up {
            continue;
        }
        if let Some(&raised) = open.get(&link.pbx) {
            if link.last_record_utc.is_none_or(|t| t < raised) {
                out.push(quiet_alarm(
                    link,
                    now_utc.saturating_sub(raised) / 60 + secs(quiet.after) / 60,
                    quiet,
                ));
            }
            continue;
        }
        let tz = quiet
            .zones
            .get(&link.pbx)
            .cloned()
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let Some(window) = quiet.hours.window_start_utc(now_utc, &tz) else {
            continue;
        };
        let from = [
            link.last_record_utc.unwrap_or(i64::MIN),
            window,
            watching_since,
            link.since_utc,
        ]
        .into_iter()
        .max()
        .unwrap_or(now_utc);
        if now_utc.saturating_sub(from) >= secs(quiet.after) {
            out.push(quiet_alarm(link, now_utc.saturating_sub(from) / 60, quiet));
        }
    }
    out
}

fn quiet_alarm(link: &LinkStatus, minutes: i64, quiet: &Quiet) -> Alarm {
    Alarm::about(
        QUIET,
        &link.pbx,
        format!(
            "PBX '{}' ({}) is connected but sent no call record for {minutes} min of business hours ({})",
            link.pbx,
            link.address,
            quiet.hours.canonical()
        ),
    )
}

/// GAP OPEN per PBX: gaps of the ledger that ended at least `after` ago (and within
/// [`GAP_LOOKBACK`]) and that no import filled. A gap still open (the link is down) is LINK
/// DOWN's business.
pub fn gap_alarms(gaps: &[Gap], now_utc: i64, after: Duration) -> Vec<Alarm> {
    let mut per_pbx: BTreeMap<&str, (usize, i64, u64)> = BTreeMap::new();
    for g in gaps {
        let Some(up) = g.up_utc else { continue };
        if g.filled_utc.is_some() {
            continue;
        }
        let age = now_utc.saturating_sub(up);
        if age < secs(after) || age > secs(GAP_LOOKBACK) {
            continue;
        }
        let e = per_pbx.entry(&g.pbx).or_insert((0, i64::MAX, 0));
        e.0 += 1;
        e.1 = e.1.min(g.down_utc);
        e.2 += g.lost;
    }
    per_pbx
        .into_iter()
        .map(|(pbx, (n, oldest, lost))| {
            let lost = if lost > 0 {
                format!(", {lost} records known lost")
            } else {
                String::new()
            };
            let ts = jiff::Timestamp::from_second(oldest)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            Alarm::about(
                GAP_OPEN,
                pbx,
                format!(
                    "PBX '{pbx}': {n} interval(s) without recording since {ts} are not filled{lost}; import the PBX's Master.csv or CDR database for them"
                ),
            )
        })
        .collect()
}

/// The PBXs whose PBX QUIET is open in the policy's incidents, with when it was raised.
pub fn open_quiet(open: &[SavedIncident]) -> BTreeMap<String, i64> {
    open.iter()
        .filter(|i| i.key.code == QUIET)
        .filter_map(|i| Some((i.key.subject.clone()?, i.raised_utc)))
        .collect()
}

/// The alarms standing for the mailer at `now_utc`: the snapshot's own alarms (USB ERROR only
/// with `usb`), the link alarms with the mailer's thresholds, PBX QUIET and GAP OPEN.
/// `open_quiet`: the PBXs whose PBX QUIET is open, with when it was raised ([`quiet_alarms`]).
pub fn standing(
    view: &StatusView,
    gaps: &[Gap],
    now_utc: i64,
    watching_since: i64,
    t: &Thresholds,
    open_quiet: &BTreeMap<String, i64>,
) -> Vec<Standing> {
    let down_after = secs(t.link_down_after);
    let auth_after = secs(t.auth_after);
    let links = link_alarms(&view.links, now_utc, down_after)
        .into_iter()
        .filter(|a| {
            a.code != "AUTH"
                || view.links.iter().any(|l| {
                    Some(&l.pbx) == a.subject.as_ref()
                        && now_utc.saturating_sub(l.since_utc) >= auth_after
                })
        });
    let quiet = t
        .quiet
        .as_ref()
        .map(|q| quiet_alarms(&view.links, now_utc, watching_since, q, open_quiet))
        .unwrap_or_default();
    let gaps = t
        .gap_after
        .map(|after| gap_alarms(gaps, now_utc, after))
        .unwrap_or_default();
    view.alarms
        .iter()
        .filter(|a| !LINK_ALARM_CODES.contains(&a.code.as_str()))
        .filter(|a| t.usb || a.code != "USB ERROR")
        .cloned()
        .chain(links)
        .chain(quiet)
        .chain(gaps)
        .map(|a| Standing {
            key: AlarmKey {
                code: a.code,
                subject: a.subject,
            },
            message: a.message,
        })
        .collect()
}

/// The part of the snapshot [`standing`] reads: the snapshot's alarms and, per link, what its
/// alarms are made of. The mailer is woken only when this changes, not for a PBX clock
/// reading at every keep-alive or the disk's free bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    alarms: Vec<Alarm>,
    links: Vec<(String, String, LinkState, i64, Option<i64>)>,
}

impl Watched {
    pub fn of(view: &StatusView) -> Watched {
        Watched {
            alarms: view.alarms.clone(),
            links: view
                .links
                .iter()
                .map(|l| {
                    (
                        l.pbx.clone(),
                        l.address.clone(),
                        l.state.clone(),
                        l.since_utc,
                        l.last_record_utc,
                    )
                })
                .collect(),
        }
    }
}

/// The next moment (Unix seconds, after `now_utc`) at which a link alarm of [`standing`]
/// starts without anything else changing: a link down or shut down reaching
/// `link_down_after`, a refused login reaching `auth_after`. `None`: none is on its way. The
/// mailer sleeps until then rather than looking every second; PBX QUIET and GAP OPEN, timed in
/// minutes, are looked at on the minute instead.
pub fn next_change(view: &StatusView, now_utc: i64, t: &Thresholds) -> Option<i64> {
    view.links
        .iter()
        .filter_map(|l| {
            let after = match l.state {
                LinkState::Down { .. } | LinkState::PbxShutdown => t.link_down_after,
                LinkState::AuthFailed => t.auth_after,
                _ => return None,
            };
            let at = l.since_utc.saturating_add(secs(after));
            (at > now_utc).then_some(at)
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::policy::{NoticeKind, Now, Policy, Rules};
    use crate::clock::ManualClock;

    // Tuesday 2026-12-01 10:00 in Moscow (07:00 UTC).
    const TUE_10_MSK: i64 = 1_796_108_400;

    fn quiet(minutes: u64) -> Quiet {
        Quiet {
            after: Duration::from_secs(minutes * 60),
            hours: BusinessHours::parse("Mon-Fri 09:00-18:00").unwrap(),
            zones: [(
                "office".to_owned(),
                jiff::tz::TimeZone::get("Europe/Moscow").unwrap(),
            )]
            .into(),
        }
    }

    fn up_link(last: Option<i64>) -> LinkStatus {
        let mut l = LinkStatus::new(
            "office",
            "10.0.0.1:5038",
            LinkState::Up,
            TUE_10_MSK - 86_400,
        );
        l.last_record_utc = last;
        l
    }

    fn codes(s: &[Standing]) -> Vec<String> {
        s.iter().map(|s| s.key.to_string()).collect()
    }

    #[test]
    fn the_watched_part_ignores_clock_readings_and_counters() {
        let mut v = StatusView {
            links: vec![up_link(None)],
            ..StatusView::default()
        };
        let before = Watched::of(&v);
        v.links[0].pbx_clock_skew_ms = Some(12);
        v.links[0].records += 1;
        v.storage.free_bytes += 4096;
        assert_eq!(Watched::of(&v), before);
        v.links[0].last_record_utc = Some(TUE_10_MSK);
        assert_ne!(Watched::of(&v), before, "a call ends PBX QUIET");
        let mut w = StatusView::default();
        w.alarms.push(Alarm::new("USB ERROR", "full"));
        assert_ne!(Watched::of(&w), Watched::of(&StatusView::default()));
    }

    #[test]
    fn the_next_change_is_when_a_link_alarm_would_start() {
        let t = Thresholds {
            link_down_after: Duration::from_secs(300),
            auth_after: Duration::from_secs(120),
            ..Thresholds::default()
        };
        let now = TUE_10_MSK;
        let link = |state: LinkState, since: i64| {
            let mut l = up_link(None);
            l.state = state;
            l.since_utc = since;
            l
        };
        let view = |links: Vec<LinkStatus>| StatusView {
            links,
            ..StatusView::default()
        };
        assert_eq!(next_change(&view(vec![up_link(None)]), now, &t), None);
        let down = LinkState::Down {
            reason: "connection refused".into(),
        };
        let v = view(vec![
            link(down.clone(), now - 100),
            link(LinkState::AuthFailed, now - 10),
        ]);
        assert_eq!(
            next_change(&v, now, &t),
            Some(now + 110),
            "the AUTH at 120 s"
        );
        let v = view(vec![
            link(down.clone(), now - 100),
            link(LinkState::PbxShutdown, now),
        ]);
        assert_eq!(
            next_change(&v, now, &t),
            Some(now + 200),
            "LINK DOWN at 300 s"
        );
        // Already standing: nothing more to wait for; and the alarm is in `standing` then.
        let v = view(vec![link(down, now - 300)]);
        assert_eq!(next_change(&v, now, &t), None);
        assert_eq!(
            codes(&standing(&v, &[], now, now - 3600, &t, &BTreeMap::new())),
            ["LINK DOWN (office)"]
        );
    }

    #[test]
    fn constant_is_tuesday_ten_in_moscow() {
        let z = jiff::Timestamp::from_second(TUE_10_MSK)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get("Europe/Moscow").unwrap());
        assert_eq!(
            (z.weekday(), z.hour(), z.minute()),
            (jiff::civil::Weekday::Tuesday, 10, 0)
        );
    }

    #[test]
    fn quiet_counts_only_business_time_and_only_for_a_link_that_is_up() {
        let q = quiet(60);
        let none = BTreeMap::new();
        let long_ago = TUE_10_MSK - 86_400;
        // The window opened at 09:00: at 10:00 a call-less night is 60 min of business time.
        let a = quiet_alarms(&[up_link(Some(long_ago))], TUE_10_MSK, long_ago, &q, &none);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].code, QUIET);
        assert_eq!(a[0].subject.as_deref(), Some("office"));
        assert!(a[0].message.contains("60 min") && a[0].message.contains("Mon-Fri 09:00-18:00"));
        assert!(quiet_alarms(
            &[up_link(Some(long_ago))],
            TUE_10_MSK - 1,
            long_ago,
            &q,
            &none
        )
        .is_empty());
        // A call at 09:30 restarts the count.
        assert!(quiet_alarms(
            &[up_link(Some(TUE_10_MSK - 1800))],
            TUE_10_MSK,
            long_ago,
            &q,
            &none
        )
        .is_empty());
        // Just started watching: not yet.
        assert!(quiet_alarms(&[up_link(None)], TUE_10_MSK, TUE_10_MSK - 600, &q, &none).is_empty());
        // After hours (19:00 Moscow): never.
        assert!(quiet_alarms(
            &[up_link(Some(long_ago))],
            TUE_10_MSK + 9 * 3600,
            long_ago,
            &q,
            &none
        )
        .is_empty());
        // Down: LINK DOWN says it, not QUIET.
        let mut down = up_link(Some(long_ago));
        down.state = LinkState::Down {
            reason: "refused".into(),
        };
        assert!(quiet_alarms(&[down], TUE_10_MSK, long_ago, &q, &none).is_empty());
        // In UTC the same instant is 07:00, before the window: the PBX's zone counts.
        let mut utc = q.clone();
        utc.zones.clear();
        assert!(quiet_alarms(
            &[up_link(Some(long_ago))],
            TUE_10_MSK,
            long_ago,
            &utc,
            &none
        )
        .is_empty());

        // Once open it stands until a call arrives: after hours, and after a restart (the box
        // just started watching, the link just came up).
        let open: BTreeMap<String, i64> = [("office".to_owned(), TUE_10_MSK)].into();
        let mut restarted = up_link(None);
        restarted.since_utc = TUE_10_MSK + 9 * 3600 - 5;
        assert_eq!(
            quiet_alarms(
                &[restarted.clone()],
                TUE_10_MSK + 9 * 3600,
                TUE_10_MSK + 9 * 3600,
                &q,
                &open
            )
            .len(),
            1
        );
        restarted.last_record_utc = Some(TUE_10_MSK + 9 * 3600 - 1);
        assert!(quiet_alarms(
            &[restarted],
            TUE_10_MSK + 9 * 3600,
            TUE_10_MSK + 9 * 3600,
            &q,
            &open
        )
        .is_empty());
    }

    fn gap(pbx: &str, down: i64, up: Option<i64>, filled: Option<i64>) -> Gap {
        Gap {
            id: down,
            pbx: pbx.into(),
            down_utc: down,
            up_utc: up,
            reason: "connection refused".into(),
            lost: 0,
            filled_from: filled.map(|_| "master-csv".into()),
            filled_records: 0,
            filled_utc: filled,
        }
    }

    #[test]
    fn gap_open_names_the_pbx_once_for_its_unfilled_ended_gaps() {
        let now = TUE_10_MSK;
        let h = 3600;
        let gaps = [
            gap("office", now - 30 * h, Some(now - 29 * h), None),
            gap("office", now - 26 * h, Some(now - 25 * h), None),
            gap("office", now - 28 * h, Some(now - 27 * h), Some(now)),
            gap("branch", now - 2 * h, Some(now - h), None),
            gap("branch", now - 2 * h, None, None),
            gap("old", now - 9 * 86_400, Some(now - 8 * 86_400), None),
        ];
        let a = gap_alarms(&gaps, now, Duration::from_secs(24 * 3600));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].subject.as_deref(), Some("office"));
        assert!(a[0].message.contains("2 interval(s)"), "{}", a[0].message);
        assert_eq!(gap_alarms(&gaps, now, Duration::from_secs(1800)).len(), 2);
    }

    #[test]
    fn auth_waits_for_its_minutes_and_usb_can_be_left_out() {
        let mut view = StatusView::default();
        let mut l = up_link(None);
        l.state = LinkState::AuthFailed;
        l.since_utc = TUE_10_MSK - 120;
        view.links.push(l);
        view.alarms
            .push(Alarm::about("USB ERROR", "usb", "stick read-only"));
        view.alarms
            .push(Alarm::about("AUTH", "office", "the board's own"));
        let mut t = Thresholds::default();
        assert_eq!(
            codes(&standing(&view, &[], TUE_10_MSK, 0, &t, &BTreeMap::new())),
            ["USB ERROR (usb)", "AUTH (office)"]
        );
        t.auth_after = Duration::from_secs(180);
        t.usb = false;
        assert!(standing(&view, &[], TUE_10_MSK, 0, &t, &BTreeMap::new()).is_empty());
        assert_eq!(
            codes(&standing(
                &view,
                &[],
                TUE_10_MSK + 60,
                0,
                &t,
                &BTreeMap::new()
            )),
            ["AUTH (office)"]
        );
    }

    /// Each threshold alarm goes through the existing policy: raised once, reminded, cleared once.
    #[test]
    fn quiet_raises_reminds_and_clears_through_the_policy() {
        let hand = ManualClock::new(TUE_10_MSK - 3600);
        let clock = hand.clock();
        let rules = Rules {
            reminder: Some(Duration::from_secs(3600)),
            ..Rules::default()
        };
        let mut policy = Policy::new(rules);
        let t = Thresholds {
            quiet: Some(quiet(60)),
            ..Thresholds::default()
        };
        let mut view = StatusView::default();
        view.links.push(up_link(Some(TUE_10_MSK - 86_400)));
        let mut kinds = Vec::new();
        // 09:00 → 12:00 Moscow, one observation a minute; a call arrives at 11:30.
        for _ in 0..180 {
            let now = clock.unix();
            if now == TUE_10_MSK + 5400 {
                view.links[0].last_record_utc = Some(now);
            }
            let s = standing(&view, &[], now, 0, &t, &open_quiet(&policy.saved()));
            let n = policy.observe(
                Now {
                    mono: clock.now(),
                    unix: now,
                },
                &s,
            );
            kinds.extend(
                n.into_iter()
                    .map(|n| (n.kind, (n.at_utc - TUE_10_MSK) / 60)),
            );
            hand.advance(Duration::from_secs(60));
        }
        assert_eq!(
            kinds,
            [
                (NoticeKind::Raised, 0),
                (NoticeKind::Reminder, 60),
                (NoticeKind::Cleared, 91)
            ]
        );
    }
}
