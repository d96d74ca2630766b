//! What a person receives: [`Message`] (subject, plain text, simple HTML, the webhook's JSON,
//! an optional attachment) composed from the policy's notices, a test request or the daily
//! report. Pure code; the e-mail and webhook adapters only carry it.
//!
//! A message has an id fixed when it is made ([`new_id`]): the outbox may send it more than
//! once (at-least-once delivery: a crash between "sent" and "deleted"), and receivers dedupe on
//! it — `Message-ID: <id@box.cdrbox>` in the mail, `"id"` and `Idempotency-Key` on the webhook.
//!
//! Must not: send, store, or read the clock (times come in as arguments).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::policy::{Notice, NoticeKind};

/// Why a message was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Alarms raised, reminded of, or cleared.
    Alarm,
    /// "Send test alarm" (page button, `cdrbox test-alarm`).
    Test,
    /// The daily report.
    DailyReport,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Alarm => "alarm",
            MessageKind::Test => "test",
            MessageKind::DailyReport => "daily_report",
        }
    }
}

/// A file attached to the mail (the daily report's CSV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub data: String,
}

/// One message, ready for either channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Unique, time-ordered (sorts oldest first), safe in a file name and a Message-ID.
    pub id: String,
    pub kind: MessageKind,
    pub box_name: String,
    /// When it was made (Unix seconds); the mail's `Date`.
    pub created_utc: i64,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The webhook body.
    pub json: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

/// A fresh message id: creation time, then 64 random bits (`20261201T100405Z-3f9a…`).
pub fn new_id(created_utc: i64) -> String {
    let stamp = jiff::Timestamp::from_second(created_utc)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|_| created_utc.to_string());
    format!("{stamp}-{:016x}", fastrand::u64(..))
}

/// `2026-12-01 10:04:05 +03:00` in `tz`.
pub fn local_time(tz: &jiff::tz::TimeZone, utc: i64) -> String {
    match jiff::Timestamp::from_second(utc) {
        Ok(t) => t
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        Err(_) => format!("@{utc}"),
    }
}

/// "3 h 20 min", "45 s": how long an incident lasted.
pub fn duration_words(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// What to do about an alarm, by code: the same advice as the README's alarm table.
pub fn advice(code: &str) -> &'static str {
    match code {
        "LINK DOWN" => "Check that the PBX is running and reachable from the box (its Manager port, 5038 by default) and that nothing between them blocks it; the box reconnects by itself. Calls made meanwhile are still in the PBX's Master.csv or CDR database: import them (README, \"Filling the gaps\").",
        "PBX DOWN" => "The PBX announced a shutdown or restart and has not come back: check the PBX itself.",
        "AUTH" => "The PBX refused the box's AMI login: make [[pbx]] username/secret match a user in the PBX's /etc/asterisk/manager.conf (\"read = cdr,system\"), then \"manager reload\" on the PBX.",
        "PBX QUIET" => "The link is up but no call record arrived during business hours: check cdr_manager on the PBX (\"manager show settings\", /etc/asterisk/cdr_manager.conf \"enabled = yes\") and that calls are being made.",
        "DISK FULL" => "The journal cannot write: free space on the storage, or lower [storage] retention_days / max_size_mb. Records wait in memory meanwhile.",
        "GAP OPEN" => "Calls made while the box was not recording are not in the journal yet: import the PBX's Master.csv (the gap card on the status page, or cdrbox import) or let the CDR database puller fill them (README, \"Filling the gaps\").",
        "USB ERROR" => "The USB copy failed: check the stick (full, read-only, damaged) and plug it in again; the next copy resumes where this one stopped.",
        "JOURNAL STOPPED" | "RECORDS LOST" => "The journal writer stopped: restart cdrbox (systemctl restart cdrbox) and read its log (journalctl -u cdrbox).",
        "RING FULL" | "RING ERROR" | "JOURNAL ERROR" | "JOURNAL STALL" | "BACKLOG FULL" => "The journal is in trouble: see the status page and the log (journalctl -u cdrbox).",
        "DB REPLACED" => "The journal database was damaged and set aside; the status page says where the old file is.",
        "TEST" => "Nothing: this is a test. If you read it, alarms reach you.",
        c if c.starts_with("STORAGE") => "Free space on the storage, or lower [storage] retention_days / max_size_mb; copy old calls to a USB stick first if you need them.",
        _ => "See the box's status page.",
    }
}

/// Everything a message needs to know about the box.
#[derive(Debug, Clone)]
pub struct BoxInfo {
    pub name: String,
    /// The zone times are shown in (the first PBX's).
    pub tz: jiff::tz::TimeZone,
}

pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn heading(n: &Notice) -> &'static str {
    match n.kind {
        NoticeKind::Raised => "ALARM",
        NoticeKind::Reminder => "STILL",
        NoticeKind::Cleared => "CLEARED",
    }
}

/// One message for the notices of one moment.
pub fn from_notices(id: String, info: &BoxInfo, now_utc: i64, notices: &[Notice]) -> Message {
    let count = |k: NoticeKind| notices.iter().filter(|n| n.kind == k).count();
    let (raised, reminders, cleared) = (
        count(NoticeKind::Raised),
        count(NoticeKind::Reminder),
        count(NoticeKind::Cleared),
    );
    let subject = match notices {
        [one] => format!("[{}] {}: {}", info.name, heading(one), one.key),
        many => {
            let mut parts = Vec::new();
            for (n, what) in [
                (raised, "raised"),
                (reminders, "still standing"),
                (cleared, "cleared"),
            ] {
                if n > 0 {
                    parts.push(format!("{n} {what}"));
                }
            }
            let names: Vec<String> = many.iter().map(|n| n.key.to_string()).collect();
            format!(
                "[{}] Alarms {}: {}",
                info.name,
                parts.join(", "),
                names.join(", ")
            )
        }
    };
    let mut text = String::new();
    let mut html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\"><h2>{}</h2>",
        esc(&subject)
    );
    for n in notices {
        let raised_at = local_time(&info.tz, n.raised_utc);
        let line = match n.kind {
            NoticeKind::Raised => format!("{} — {}: since {raised_at}", heading(n), n.key),
            NoticeKind::Reminder => format!(
                "{} — {}: standing since {raised_at} ({})",
                heading(n),
                n.key,
                duration_words(n.at_utc - n.raised_utc)
            ),
            NoticeKind::Cleared => format!(
                "{} — {}: over at {} after {}",
                heading(n),
                n.key,
                local_time(&info.tz, n.at_utc),
                duration_words(n.at_utc - n.raised_utc)
            ),
        };
        let flaps = (n.flaps > 0).then(|| {
            format!(
                "It went away and came back {} time{} meanwhile (flapping); this message sums that up.",
                n.flaps,
                if n.flaps == 1 { "" } else { "s" }
            )
        });
        let last = if n.kind == NoticeKind::Cleared {
            "Last seen: "
        } else {
            ""
        };
        text.push_str(&format!("{line}\n{last}{}\n", n.message));
        html.push_str(&format!(
            "<h3>{}</h3><p>{}{}</p>",
            esc(&line),
            esc(last),
            esc(&n.message)
        ));
        if let Some(f) = &flaps {
            text.push_str(f);
            text.push('\n');
            html.push_str(&format!("<p><i>{}</i></p>", esc(f)));
        }
        if n.kind != NoticeKind::Cleared {
            text.push_str(&format!("What to do: {}\n", advice(&n.key.code)));
            html.push_str(&format!(
                "<p><b>What to do:</b> {}</p>",
                esc(advice(&n.key.code))
            ));
        }
        text.push('\n');
    }
    let footer = format!(
        "Sent by cdrbox \"{}\" at {} (message {id}).",
        info.name,
        local_time(&info.tz, now_utc)
    );
    text.push_str("-- \n");
    text.push_str(&footer);
    text.push('\n');
    html.push_str(&format!(
        "<hr><p style=\"color:#666\">{}</p></body></html>",
        esc(&footer)
    ));
    let events: Vec<Value> = notices
        .iter()
        .map(|n| {
            json!({
                "kind": n.kind.as_str(),
                "code": n.key.code,
                "subject": n.key.subject,
                "message": n.message,
                "raisedUtc": n.raised_utc,
                "atUtc": n.at_utc,
                "flaps": n.flaps,
            })
        })
        .collect();
    assemble(
        MessageKind::Alarm,
        id,
        info,
        now_utc,
        [subject, text, html],
        Value::Array(events),
    )
}

/// The message from its parts, with its JSON body (what the webhook channel posts) made from
/// the same parts.
fn assemble(
    kind: MessageKind,
    id: String,
    info: &BoxInfo,
    now_utc: i64,
    [subject, text, html]: [String; 3],
    events: Value,
) -> Message {
    let body = json!({
        "id": id,
        "type": kind.as_str(),
        "box": info.name,
        "createdUtc": now_utc,
        "subject": subject,
        "events": events,
        // Chat services' incoming webhooks (Slack, Mattermost, Rocket.Chat) show `text`.
        "text": text,
    });
    Message {
        id,
        kind,
        box_name: info.name.clone(),
        created_utc: now_utc,
        subject,
        text,
        html,
        json: body,
        attachment: None,
    }
}

/// The "send test alarm" message.
pub fn test_message(id: String, info: &BoxInfo, now_utc: i64, who: &str) -> Message {
    let subject = format!("[{}] TEST: alarms reach you", info.name);
    let text = format!(
        "This is a test alarm from cdrbox \"{}\", sent at {} ({who}).\n\
         If you read this, alarms from this box reach you on this channel. Nothing needs doing.\n\
         -- \nmessage {id}\n",
        info.name,
        local_time(&info.tz, now_utc)
    );
    let html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\"><h2>{}</h2><p>This is a test \
         alarm from cdrbox \"{}\", sent at {} ({}).</p><p>If you read this, alarms from this box \
         reach you on this channel. Nothing needs doing.</p><hr><p style=\"color:#666\">message \
         {}</p></body></html>",
        esc(&subject),
        esc(&info.name),
        esc(&local_time(&info.tz, now_utc)),
        esc(who),
        esc(&id)
    );
    let events = json!([{"kind": "test", "code": "TEST", "subject": null,
                         "message": "test alarm", "raisedUtc": now_utc, "atUtc": now_utc, "flaps": 0}]);
    assemble(
        MessageKind::Test,
        id,
        info,
        now_utc,
        [subject, text, html],
        events,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::policy::AlarmKey;

    fn info() -> BoxInfo {
        BoxInfo {
            name: "office-box".into(),
            tz: jiff::tz::TimeZone::get("Europe/Moscow").unwrap(),
        }
    }

    fn notice(kind: NoticeKind, pbx: &str, flaps: u32) -> Notice {
        Notice {
            kind,
            key: AlarmKey::new("LINK DOWN", Some(pbx)),
            message: format!("PBX '{pbx}' (10.0.0.5:5038) is not connected: refused <x>"),
            raised_utc: 1_795_341_600,
            at_utc: 1_795_341_600 + 3725,
            flaps,
        }
    }

    /// A LINK DOWN notice of the PBX `office`.
    fn office(kind: NoticeKind, flaps: u32) -> Notice {
        notice(kind, "office", flaps)
    }

    /// The message for `notices` from the test box at `now_utc`.
    fn message(id: &str, now_utc: i64, notices: &[Notice]) -> Message {
        from_notices(id.into(), &info(), now_utc, notices)
    }

    #[test]
    fn one_raise_names_the_pbx_in_the_subject() {
        let m = message("id1", 1_795_341_600, &[office(NoticeKind::Raised, 0)]);
        assert_eq!(m.subject, "[office-box] ALARM: LINK DOWN (office)");
        assert!(
            m.text.contains("since 2026-11-22 13:00:00 +03:00"),
            "{}",
            m.text
        );
        assert!(m.text.contains("What to do: Check that the PBX"));
        assert!(m.html.contains("refused &lt;x&gt;"), "HTML is escaped");
        assert_eq!(m.json["events"][0]["subject"], "office");
        assert_eq!(m.json["events"][0]["kind"], "raised");
        assert_eq!(m.json["id"], "id1");
    }

    #[test]
    fn a_clear_says_how_long_and_sums_up_flapping() {
        let m = message("id2", 1_795_345_325, &[office(NoticeKind::Cleared, 19)]);
        assert_eq!(m.subject, "[office-box] CLEARED: LINK DOWN (office)");
        assert!(m.text.contains("after 1 h 2 min"), "{}", m.text);
        assert!(m.text.contains("came back 19 times"), "{}", m.text);
        assert!(!m.text.contains("What to do"));
    }

    #[test]
    fn several_notices_make_one_message() {
        let m = message(
            "id3",
            1_795_341_600,
            &[
                notice(NoticeKind::Raised, "a", 0),
                notice(NoticeKind::Raised, "b", 0),
                notice(NoticeKind::Cleared, "c", 0),
            ],
        );
        assert_eq!(
            m.subject,
            "[office-box] Alarms 2 raised, 1 cleared: LINK DOWN (a), LINK DOWN (b), LINK DOWN (c)"
        );
        assert_eq!(m.json["events"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn ids_sort_by_time_and_differ() {
        let a = new_id(1_795_341_600);
        let b = new_id(1_795_341_601);
        assert!(a.starts_with("20261122T100000Z-"), "{a}");
        assert!(a < b);
        assert_ne!(new_id(1), new_id(1));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
