//! The bytes of a Cdr event exactly as Asterisk 22's `cdr_manager` writes them: header order,
//! optional headers, local times, the merged caller ID. Pure; spec: `cdr/cdr_manager.c`
//! `manager_log()` and `main/callerid.c` `ast_callerid_merge`.

use jiff::tz::TimeZone;

use super::{CallGenerator, CdrData};

/// Asterisk's `AST_MAX_EXTENSION` buffers (clid, channel, …) hold 79 bytes plus NUL.
const CLID_MAX: usize = 79;

impl CallGenerator {
    /// The headers of `cdr` in cdr_manager's wire order, with this PBX's options.
    pub fn headers(&self, cdr: &CdrData) -> Vec<(&'static str, String)> {
        let tz = &self.opts.timezone;
        let mut h: Vec<(&'static str, String)> = Vec::with_capacity(26);
        h.push(("Event", "Cdr".into()));
        h.push(("Privilege", "cdr,all".into()));
        if self.opts.timestamp_events {
            h.push((
                "Timestamp",
                format!("{}.{:06}", cdr.dispatched.0, cdr.dispatched.1),
            ));
        }
        if let Some(sys) = &self.opts.system_name {
            h.push(("SystemName", sys.clone()));
        }
        h.push(("AccountCode", cdr.account_code.clone()));
        h.push(("Source", cdr.source.clone()));
        h.push(("Destination", cdr.destination.clone()));
        h.push(("DestinationContext", cdr.destination_context.clone()));
        h.push(("CallerID", cdr.caller_id.clone()));
        h.push(("Channel", cdr.channel.clone()));
        h.push(("DestinationChannel", cdr.destination_channel.clone()));
        h.push(("LastApplication", cdr.last_application.clone()));
        h.push(("LastData", cdr.last_data.clone()));
        h.push(("StartTime", local_time(tz, cdr.start)));
        h.push((
            "AnswerTime",
            cdr.answer.map(|a| local_time(tz, a)).unwrap_or_default(),
        ));
        h.push(("EndTime", local_time(tz, cdr.end)));
        h.push(("Duration", cdr.duration().to_string()));
        h.push(("BillableSeconds", cdr.billable_seconds().to_string()));
        h.push(("Disposition", cdr.disposition.into()));
        h.push(("AMAFlags", cdr.ama_flags.into()));
        h.push(("UniqueID", cdr.unique_id.clone()));
        h.push(("UserField", cdr.user_field.clone()));
        if self.opts.map_linkedid_sequence {
            h.push(("LinkedID", cdr.linked_id.clone()));
            h.push(("Sequence", cdr.sequence.to_string()));
        }
        if self.opts.map_department_campaign {
            h.push(("Department", cdr.department.clone()));
            h.push(("Campaign", cdr.campaign.clone()));
        }
        h
    }

    /// The exact event bytes: `Key: value\r\n` lines (empty values keep the space) and a blank line.
    pub fn render(&self, cdr: &CdrData) -> Vec<u8> {
        let headers = self.headers(cdr);
        let fields: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // The client's encoder: AMI has no escaping, so it turns a CR or LF into a space (a
        // configured system name must not split the event; generated values never hold one).
        crate::ami::encode_action(&fields)
    }
}

/// `ast_callerid_merge`: `"<name>" <<number>>` with `"` and `\` escaped inside the quotes
/// (`ast_escape_quoted`, 127-byte name buffer), or only the name / only the number when the
/// other is absent, or `""` when neither is; the result fits cdr's 80-byte `clid`.
pub fn callerid_merge(name: Option<&str>, number: Option<&str>) -> String {
    let merged = match (name, number) {
        (Some(name), Some(number)) => {
            let mut escaped = String::with_capacity(name.len() + 4);
            for ch in name.chars() {
                let extra = if ch == '"' || ch == '\\' { 1 } else { 0 };
                if escaped.len() + extra + ch.len_utf8() > 127 {
                    break;
                }
                if extra == 1 {
                    escaped.push('\\');
                }
                escaped.push(ch);
            }
            format!("\"{escaped}\" <{number}>")
        }
        (Some(name), None) => name.to_string(),
        (None, Some(number)) => number.to_string(),
        (None, None) => String::new(),
    };
    truncate_at_char(merged, CLID_MAX)
}

/// Cuts to at most `max` bytes at a character boundary (Asterisk cuts at a byte boundary; a
/// `String` cannot hold half a character, and generated values never get this long).
fn truncate_at_char(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// `%Y-%m-%d %H:%M:%S` in the PBX zone, as cdr_manager's `DATE_FORMAT`.
pub fn local_time(tz: &TimeZone, epoch: i64) -> String {
    match jiff::Timestamp::from_second(epoch) {
        Ok(ts) => {
            let dt = tz.to_datetime(ts);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            )
        }
        // Only for epochs outside jiff's range (±9999 years); never produced by a real clock.
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::calls::{default_timezone, GeneratorOptions};

    #[test]
    fn local_time_is_moscow_wall_clock() {
        // cdr_answered.bin: UniqueID epoch 1795331226 ↔ StartTime 10:07:06.
        assert_eq!(
            local_time(&default_timezone(), 1_795_331_226),
            "2026-11-22 10:07:06"
        );
        assert_eq!(local_time(&TimeZone::UTC, 0), "1970-01-01 00:00:00");
    }

    #[test]
    fn callerid_escaping_matches_captures() {
        assert_eq!(
            callerid_merge(Some("Петров, Иван \"Ваня\""), Some("+79161234567")),
            "\"Петров, Иван \\\"Ваня\\\"\" <+79161234567>"
        );
        assert_eq!(
            callerid_merge(Some("Back\\slash, \"Q\" Ltd"), Some("1003")),
            r#""Back\\slash, \"Q\" Ltd" <1003>"#
        );
        assert_eq!(
            callerid_merge(Some("Anonymous"), Some("")),
            "\"Anonymous\" <>"
        );
        assert_eq!(callerid_merge(Some(""), Some("")), "\"\" <>");
        assert_eq!(callerid_merge(None, Some("100")), "100");
        let long = "Я".repeat(100);
        let merged = callerid_merge(Some(&long), Some("1"));
        assert!(merged.len() <= CLID_MAX);
    }

    #[test]
    fn render_matches_cdr_answered_capture_layout() {
        let g = CallGenerator::new(GeneratorOptions {
            map_linkedid_sequence: false,
            map_department_campaign: true,
            ..GeneratorOptions::default()
        });
        let cdr = CdrData {
            account_code: String::new(),
            source: "1001".into(),
            destination: "2001".into(),
            destination_context: "internal".into(),
            caller_id: "\"Alice Smith\" <1001>".into(),
            channel: "Local/2001@internal-00000000;2".into(),
            destination_channel: "Local/2001@sim-answer-00000001;1".into(),
            last_application: "Dial".into(),
            last_data: "Local/2001@sim-answer,20".into(),
            start: 1_795_331_226,
            answer: Some(1_795_331_227),
            end: 1_795_331_230,
            disposition: "ANSWERED",
            ama_flags: "DOCUMENTATION",
            unique_id: "1795331226.1".into(),
            user_field: String::new(),
            linked_id: "1795331226.1".into(),
            sequence: 0,
            department: String::new(),
            campaign: String::new(),
            dispatched: (1_795_331_230, 0),
        };
        let capture = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ami/cdr_answered.bin"
        ))
        .unwrap();
        let rendered = g.render(&cdr);
        let at = capture
            .windows(rendered.len())
            .position(|w| w == rendered.as_slice());
        assert!(at.is_some(), "{}", String::from_utf8_lossy(&rendered));
    }
}
