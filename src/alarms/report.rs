//! The daily report (`[alarms] daily_report = "07:00"`): yesterday's calls in one readable
//! mail — totals, answer rate, missed calls nobody called back, each queue's service level,
//! the gap ledger's open entries and the box's health — with yesterday's calls attached as the
//! CSV profile of `daily_report_profile`.
//!
//! Pure: when a report is due ([`due_day`]), a day's bounds in a zone ([`day_bounds`]), the
//! callback rule ([`missed_not_called_back`]) and the rendering ([`render`]). Counting calls is
//! the stats page's own [`crate::web::stats::StatsBuilder`], so the report and the page agree.
//! The service (`super::service`) reads the journal and queues the message through the outbox.
//!
//! Must not: read the clock, the journal or the network.

use std::collections::HashMap;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde_json::json;

use super::message::{esc, local_time, Attachment, BoxInfo, Message, MessageKind};
use crate::journal::Gap;
use crate::record::{CallRecord, Direction, Disposition};
use crate::status::{LinkState, StatusView};
use crate::web::stats::Stats;

/// `HH:MM` of `daily_report` as (hour, minute).
pub fn parse_time_of_day(s: &str) -> Option<(i8, i8)> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}

/// `[start, end)` of `day` in `tz`, Unix seconds (a DST day is 23 or 25 hours).
pub fn day_bounds(day: Date, tz: &TimeZone) -> Option<(i64, i64)> {
    let start = day
        .to_datetime(Time::midnight())
        .to_zoned(tz.clone())
        .ok()?;
    let end = day
        .tomorrow()
        .ok()?
        .to_datetime(Time::midnight())
        .to_zoned(tz.clone())
        .ok()?;
    Some((start.timestamp().as_second(), end.timestamp().as_second()))
}

/// The day whose report is due at `now_utc`: yesterday (in `tz`) once today's local time has
/// reached `at`, unless `last_sent` is already that day. One report per day; a box that was
/// off for days sends only the latest day's.
pub fn due_day(now_utc: i64, tz: &TimeZone, at: (i8, i8), last_sent: Option<Date>) -> Option<Date> {
    let now = jiff::Timestamp::from_second(now_utc)
        .ok()?
        .to_zoned(tz.clone());
    if (now.hour(), now.minute()) < at {
        return None;
    }
    let yesterday = now.date().yesterday().ok()?;
    match last_sent {
        Some(d) if d >= yesterday => None,
        _ => Some(yesterday),
    }
}

/// When the report for `day` is made: `at` on the following day in `tz` (the message's time
/// and the start of its id, the same after a restart).
pub fn scheduled_utc(day: Date, tz: &TimeZone, at: (i8, i8)) -> Option<i64> {
    let t = jiff::civil::time(at.0, at.1, 0, 0);
    let z = day
        .tomorrow()
        .ok()?
        .to_datetime(t)
        .to_zoned(tz.clone())
        .ok()?;
    Some(z.timestamp().as_second())
}

/// The message id of `day`'s report: time-ordered like every id, and the same whenever it is
/// made, so a report queued again after a crash replaces its own outbox file.
pub fn report_id(day: Date, tz: &TimeZone, at: (i8, i8)) -> String {
    let stamp = scheduled_utc(day, tz, at)
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default();
    format!("{stamp}-daily-{}", day.strftime("%Y%m%d"))
}

/// The day a report id is for (`…-daily-20261130`).
pub fn day_of_report_id(id: &str) -> Option<Date> {
    let (_, d) = id.rsplit_once("-daily-")?;
    jiff::civil::Date::strptime("%Y%m%d", d).ok()
}

/// A missed inbound call that no one returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedCall {
    pub pbx: String,
    /// The caller's number as the PBX gave it.
    pub number: String,
    pub caller_id: String,
    pub start_utc: i64,
    /// Seconds it rang (the longest CDR of the call).
    pub rang_seconds: i64,
}

/// The digits of a number, so `+7 (495) 123-45-67`, `84951234567` and `4951234567` can match.
fn digits(n: &str) -> String {
    n.chars().filter(char::is_ascii_digit).collect()
}

/// Whether two numbers are the same line: equal digits, or (both 7+ digits) the same last
/// 10 digits or the shorter one's length — dial prefixes (`9`, `8`, `+7`) differ, subscribers
/// don't.
pub fn same_number(a: &str, b: &str) -> bool {
    let (a, b) = (digits(a), digits(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    let n = a.len().min(b.len()).min(10);
    n >= 7 && a[a.len() - n..] == b[b.len() - n..]
}

/// What the callback rule needs of one CDR (a day's worth is kept in memory, so not the raw
/// event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub pbx: String,
    /// The call it belongs to: linked id, else unique id (as the stats page groups).
    pub call: String,
    pub start_utc: i64,
    pub answered: bool,
    pub direction: Direction,
    pub source: String,
    pub destination: String,
    pub caller_id: String,
    pub duration: i64,
}

impl Leg {
    pub fn of(r: &CallRecord) -> Leg {
        Leg {
            pbx: r.pbx.clone(),
            call: r
                .linked_id
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or(&r.unique_id)
                .to_owned(),
            start_utc: r.start.utc.unwrap_or(r.received_utc),
            answered: r.disposition == Disposition::Answered,
            direction: r.direction,
            source: r.source.clone(),
            destination: r.destination.clone(),
            caller_id: r.caller_id.clone(),
            duration: r.duration,
        }
    }
}

/// Missed inbound calls that started in `[from_utc, to_utc)` and were not called back: no
/// outbound call to the number, and no answered call from it, started after the missed one and
/// within `window_secs`. A call is the CDRs with the same PBX and linked id (else unique id),
/// as on the stats page; it is missed when none of its CDRs is ANSWERED and inbound when one
/// is. `legs` must hold the day and the `window_secs` after it, in any order.
pub fn missed_not_called_back(
    legs: &[Leg],
    from_utc: i64,
    to_utc: i64,
    window_secs: i64,
) -> Vec<MissedCall> {
    struct Call<'a> {
        first: &'a Leg,
        answered: bool,
        inbound: bool,
        outbound: bool,
        longest: i64,
    }
    let mut calls: HashMap<(&str, &str), Call> = HashMap::new();
    for l in legs {
        let c = calls
            .entry((l.pbx.as_str(), l.call.as_str()))
            .or_insert(Call {
                first: l,
                answered: false,
                inbound: false,
                outbound: false,
                longest: 0,
            });
        if l.start_utc < c.first.start_utc {
            c.first = l;
        }
        c.answered |= l.answered;
        c.inbound |= l.direction == Direction::Inbound;
        c.outbound |= l.direction == Direction::Outbound;
        c.longest = c.longest.max(l.duration);
    }
    let mut all: Vec<&Call> = calls.values().collect();
    all.sort_by(|a, b| {
        (a.first.start_utc, &a.first.pbx, &a.first.call).cmp(&(
            b.first.start_utc,
            &b.first.pbx,
            &b.first.call,
        ))
    });
    let mut out = Vec::new();
    for (i, m) in all.iter().enumerate() {
        let start = m.first.start_utc;
        if !(m.inbound && !m.answered && start >= from_utc && start < to_utc) {
            continue;
        }
        let number = &m.first.source;
        let returned = all[i + 1..]
            .iter()
            .take_while(|c| c.first.start_utc <= start.saturating_add(window_secs))
            .any(|c| {
                c.first.pbx == m.first.pbx
                    && ((c.outbound && same_number(&c.first.destination, number))
                        || (c.answered && c.inbound && same_number(&c.first.source, number)))
            });
        if !returned {
            out.push(MissedCall {
                pbx: m.first.pbx.clone(),
                number: number.clone(),
                caller_id: m.first.caller_id.clone(),
                start_utc: start,
                rang_seconds: m.longest,
            });
        }
    }
    out
}

/// Everything one report says.
#[derive(Debug, Clone)]
pub struct Report {
    pub day: Date,
    /// Call records (CDRs) of the day: the attached CSV's rows.
    pub records: u64,
    pub stats: Stats,
    pub missed: Vec<MissedCall>,
    /// `callback_minutes`, as the text explains the rule.
    pub callback_minutes: u32,
    /// Gaps overlapping the day or later that no import filled.
    pub open_gaps: Vec<Gap>,
    /// The box right now.
    pub health: StatusView,
}

fn percent(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{:.1} %", r * 100.0))
}

/// The report as a message: subject, text, simple HTML, webhook JSON and the CSV.
pub fn render(
    id: String,
    info: &BoxInfo,
    created_utc: i64,
    r: &Report,
    csv: Option<Attachment>,
) -> Message {
    let s = &r.stats;
    let day = r.day.strftime("%Y-%m-%d (%A)").to_string();
    let subject = format!(
        "[{}] Daily report {}: {} calls, {} answered, {} not called back",
        info.name,
        r.day.strftime("%Y-%m-%d"),
        s.calls,
        s.answered,
        r.missed.len()
    );
    let mut text = String::new();
    let mut html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\"><h2>{}</h2>",
        esc(&subject)
    );
    text.push_str(&format!("Calls on {day}, box \"{}\"\n\n", info.name));
    let totals = [
        ("Calls", s.calls.to_string()),
        ("Answered", s.answered.to_string()),
        ("Missed", s.missed.to_string()),
        ("Answer rate", percent(s.answer_rate)),
        ("Missed, not called back", r.missed.len().to_string()),
        ("Call records", r.records.to_string()),
    ];
    html.push_str("<table cellpadding=\"4\">");
    for (k, v) in &totals {
        text.push_str(&format!("{k:<25} {v}\n"));
        html.push_str(&format!(
            "<tr><td>{}</td><td><b>{}</b></td></tr>",
            esc(k),
            esc(v)
        ));
    }
    html.push_str("</table>");

    text.push_str(&format!(
        "\nMissed calls not called back (no call to or answered call from the number within {} min):\n",
        r.callback_minutes
    ));
    html.push_str(&format!(
        "<h3>Missed calls not called back</h3><p>No call to the number, and no answered call \
         from it, within {} min.</p>",
        r.callback_minutes
    ));
    if r.missed.is_empty() {
        text.push_str("  none\n");
        html.push_str("<p>None.</p>");
    } else {
        html.push_str("<table cellpadding=\"4\"><tr><th>Time</th><th>Number</th><th>Caller ID</th><th>PBX</th><th>Rang</th></tr>");
        for m in &r.missed {
            let t = local_time(&info.tz, m.start_utc);
            text.push_str(&format!(
                "  {t}  {:<16} {:<24} {} (rang {} s)\n",
                m.number, m.caller_id, m.pbx, m.rang_seconds
            ));
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} s</td></tr>",
                esc(&t),
                esc(&m.number),
                esc(&m.caller_id),
                esc(&m.pbx),
                m.rang_seconds
            ));
        }
        html.push_str("</table>");
    }

    text.push_str(&format!(
        "\nQueues (service level: answered within {} s):\n",
        s.sla_seconds
    ));
    html.push_str(&format!(
        "<h3>Queues</h3><p>Service level: calls answered within {} s of ringing.</p>",
        s.sla_seconds
    ));
    if s.queues.is_empty() {
        text.push_str("  no queue calls\n");
        html.push_str("<p>No queue calls.</p>");
    } else {
        html.push_str("<table cellpadding=\"4\"><tr><th>Queue</th><th>Calls</th><th>Answered</th><th>Abandoned</th><th>Service level</th></tr>");
        for q in &s.queues {
            text.push_str(&format!(
                "  {:<16} {} calls, {} answered, {} abandoned, service level {}\n",
                q.queue,
                q.calls,
                q.answered,
                q.abandoned,
                percent(q.service_level)
            ));
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&q.queue),
                q.calls,
                q.answered,
                q.abandoned,
                percent(q.service_level)
            ));
        }
        html.push_str("</table>");
    }

    text.push_str("\nOpen gaps (times without recording that no import filled):\n");
    html.push_str("<h3>Open gaps</h3>");
    if r.open_gaps.is_empty() {
        text.push_str("  none\n");
        html.push_str("<p>None.</p>");
    } else {
        html.push_str("<ul>");
        for g in &r.open_gaps {
            let until = g
                .up_utc
                .map_or("still down".to_owned(), |u| local_time(&info.tz, u));
            let line = format!(
                "{}: {} – {}: {}",
                g.pbx,
                local_time(&info.tz, g.down_utc),
                until,
                g.reason
            );
            text.push_str(&format!("  {line}\n"));
            html.push_str(&format!("<li>{}</li>", esc(&line)));
        }
        html.push_str("</ul>");
    }

    text.push_str("\nBox health now:\n");
    html.push_str("<h3>Box health now</h3><ul>");
    let h = &r.health;
    let mut health: Vec<String> = h
        .links
        .iter()
        .map(|l| {
            let state = match &l.state {
                LinkState::Up => "up".to_owned(),
                LinkState::Connecting => "connecting".to_owned(),
                LinkState::Down { reason } => format!("down ({reason})"),
                LinkState::AuthFailed => "login refused".to_owned(),
                LinkState::PbxShutdown => "PBX shut down".to_owned(),
            };
            format!("PBX '{}' ({}): link {state}", l.pbx, l.address)
        })
        .collect();
    let st = &h.storage;
    let used_bytes = st.total_bytes - st.free_bytes.min(st.total_bytes);
    if let Some(used) = used_bytes.saturating_mul(100).checked_div(st.total_bytes) {
        let days = st
            .days_until_full
            .map_or(String::new(), |d| format!(", full in about {d} days"));
        health.push(format!(
            "Storage {used} % used, {} records in the journal{days}",
            st.committed
        ));
    }
    if h.alarms.is_empty() {
        health.push("No alarms".into());
    }
    for a in &h.alarms {
        health.push(format!("ALARM {}: {}", a.code, a.message));
    }
    for line in &health {
        text.push_str(&format!("  {line}\n"));
        html.push_str(&format!("<li>{}</li>", esc(line)));
    }
    html.push_str("</ul>");
    if let Some(a) = &csv {
        text.push_str(&format!(
            "\nAttached: {} ({} call records).\n",
            a.filename, r.records
        ));
        html.push_str(&format!(
            "<p>Attached: {} ({} call records).</p>",
            esc(&a.filename),
            r.records
        ));
    }
    text.push_str(&format!("-- \nmessage {id}\n"));
    html.push_str(&format!(
        "<hr><p style=\"color:#666\">message {}</p></body></html>",
        esc(&id)
    ));
    let body = json!({
        "id": id,
        "type": MessageKind::DailyReport.as_str(),
        "box": info.name,
        "createdUtc": created_utc,
        "subject": subject,
        "day": r.day.strftime("%Y-%m-%d").to_string(),
        "calls": s.calls,
        "answered": s.answered,
        "missed": s.missed,
        "answerRate": s.answer_rate,
        "records": r.records,
        "missedNotCalledBack": r.missed.iter().map(|m| json!({
            "pbx": m.pbx, "number": m.number, "callerId": m.caller_id, "startUtc": m.start_utc,
        })).collect::<Vec<_>>(),
        "queues": s.queues,
        "openGaps": r.open_gaps.len(),
        "alarms": h.alarms.iter().map(|a| a.code.clone()).collect::<Vec<_>>(),
        "text": text,
    });
    Message {
        id,
        kind: MessageKind::DailyReport,
        box_name: info.name.clone(),
        created_utc,
        subject,
        text,
        html,
        json: body,
        attachment: csv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msk() -> TimeZone {
        TimeZone::get("Europe/Moscow").unwrap()
    }

    /// A record of one call: `dir` and `disp` decide how it counts.
    fn rec(
        id: &str,
        start: i64,
        src: &str,
        dst: &str,
        dir: Direction,
        disp: Disposition,
    ) -> CallRecord {
        let mut r = crate::journal::testdata::sample_record(0);
        r.pbx = "office".into();
        r.unique_id = id.into();
        r.linked_id = None;
        r.source = src.into();
        r.destination = dst.into();
        r.caller_id = String::new();
        r.start.utc = Some(start);
        r.duration = 30;
        r.direction = dir;
        r.disposition = disp;
        r
    }

    #[test]
    fn due_once_a_day_after_the_hour_in_the_zone() {
        let tz = msk();
        // 2026-12-01 06:59 and 07:00 in Moscow.
        let at_0700 = 1_796_097_600;
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert_eq!(due_day(at_0700 - 60, &tz, (7, 0), None), None);
        assert_eq!(due_day(at_0700, &tz, (7, 0), None), Some(d("2026-11-30")));
        assert_eq!(
            due_day(at_0700 + 3600, &tz, (7, 0), Some(d("2026-11-29"))),
            Some(d("2026-11-30"))
        );
        assert_eq!(
            due_day(at_0700 + 3600, &tz, (7, 0), Some(d("2026-11-30"))),
            None
        );
        // The next day's is due at the next 07:00.
        assert_eq!(
            due_day(at_0700 + 86_399, &tz, (7, 0), Some(d("2026-11-30"))),
            None
        );
        assert_eq!(
            due_day(at_0700 + 86_400, &tz, (7, 0), Some(d("2026-11-30"))),
            Some(d("2026-12-01"))
        );
        let id = report_id(d("2026-11-30"), &tz, (7, 0));
        assert_eq!(id, "20261201T040000Z-daily-20261130");
        assert_eq!(day_of_report_id(&id), Some(d("2026-11-30")));
        assert_eq!(
            day_bounds(d("2026-11-30"), &tz),
            Some((1_795_986_000, 1_796_072_400))
        );
    }

    #[test]
    fn numbers_match_across_dial_prefixes() {
        assert!(same_number("+7 (495) 123-45-67", "84951234567"));
        assert!(same_number("4951234567", "94951234567"));
        assert!(same_number("1001", "1001"));
        assert!(!same_number("1001", "2001"));
        assert!(!same_number("", ""));
        assert!(
            !same_number("123456", "0123456"),
            "short numbers must be equal"
        );
        assert!(!same_number("4951234567", "4951234568"));
    }

    #[test]
    fn a_missed_call_counts_until_someone_returns_it_in_time() {
        use Direction::*;
        use Disposition::*;
        let day = (1_796_000_000, 1_796_086_400);
        let t = day.0 + 3600;
        let w = 3600;
        let recs = vec![
            // Missed, called back 10 min later (outbound to the same number with a prefix).
            rec("a", t, "84951234567", "100", Inbound, NoAnswer),
            rec("a2", t + 600, "101", "94951234567", Outbound, NoAnswer),
            // Missed, the caller called again and got through.
            rec("b", t + 100, "4957654321", "100", Inbound, Busy),
            rec("b2", t + 200, "4957654321", "100", Inbound, Answered),
            // Missed, called back too late.
            rec("c", t + 300, "4951111111", "100", Inbound, NoAnswer),
            rec(
                "c2",
                t + 300 + w + 1,
                "101",
                "4951111111",
                Outbound,
                Answered,
            ),
            // Missed, the caller tried again, missed again: neither is returned.
            rec("d", t + 400, "4952222222", "100", Inbound, NoAnswer),
            rec("d2", t + 500, "4952222222", "100", Inbound, NoAnswer),
            // Answered inbound and missed internal calls are not "missed calls".
            rec("e", t + 600, "4953333333", "100", Inbound, Answered),
            rec("f", t + 700, "102", "100", Internal, NoAnswer),
            // Missed before the day: not this report's.
            rec("g", day.0 - 10, "4954444444", "100", Inbound, NoAnswer),
            // Missed late in the day, returned after midnight within the window.
            rec("h", day.1 - 60, "4955555555", "100", Inbound, NoAnswer),
            rec("h2", day.1 + 60, "101", "4955555555", Outbound, Answered),
        ];
        let legs: Vec<Leg> = recs.iter().map(Leg::of).collect();
        let got: Vec<String> = missed_not_called_back(&legs, day.0, day.1, w)
            .into_iter()
            .map(|m| m.number)
            .collect();
        assert_eq!(got, ["4951111111", "4952222222", "4952222222"]);
        // A call of several CDRs (a queue): answered by one agent = not missed.
        let mut q1 = rec("q1", t, "4956666666", "600", Inbound, NoAnswer);
        let mut q2 = rec("q2", t + 5, "4956666666", "600", Inbound, Answered);
        q1.linked_id = Some("L".into());
        q2.linked_id = Some("L".into());
        assert!(missed_not_called_back(&[Leg::of(&q1), Leg::of(&q2)], day.0, day.1, w).is_empty());
    }

    #[test]
    fn the_rendered_report_shows_its_numbers_and_escapes_names() {
        let info = BoxInfo {
            name: "front<desk>".into(),
            tz: msk(),
        };
        let mut stats = crate::web::stats::StatsBuilder::new(20);
        let recs = [
            rec(
                "a",
                1_796_000_000,
                "4951111111",
                "100",
                Direction::Inbound,
                Disposition::NoAnswer,
            ),
            rec(
                "b",
                1_796_000_100,
                "4952222222",
                "100",
                Direction::Inbound,
                Disposition::Answered,
            ),
        ];
        for r in &recs {
            stats.add(r);
        }
        let report = Report {
            day: "2026-11-30".parse().unwrap(),
            records: 2,
            stats: stats.finish(),
            missed: missed_not_called_back(
                &recs.iter().map(Leg::of).collect::<Vec<_>>(),
                0,
                i64::MAX,
                3600,
            ),
            callback_minutes: 60,
            open_gaps: Vec::new(),
            health: StatusView::default(),
        };
        let m = render("x-daily-20261130".into(), &info, 1, &report, None);
        assert_eq!(
            m.subject,
            "[front<desk>] Daily report 2026-11-30: 2 calls, 1 answered, 1 not called back"
        );
        assert!(
            m.text.contains("Answer rate               50.0 %"),
            "{}",
            m.text
        );
        assert!(m.text.contains("4951111111"), "{}", m.text);
        assert!(m.html.contains("front&lt;desk&gt;") && !m.html.contains("front<desk>"));
        assert_eq!(m.json["calls"], 2);
        assert_eq!(m.kind, MessageKind::DailyReport);
    }

    #[test]
    fn time_of_day_is_strict() {
        assert_eq!(parse_time_of_day("07:00"), Some((7, 0)));
        assert_eq!(parse_time_of_day("23:59"), Some((23, 59)));
        for bad in ["7:00", "24:00", "07:60", "0700", "", "07:0a"] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }
}
