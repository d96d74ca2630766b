//! Business hours (`[alarms] business_hours = "Mon-Fri 09:00-18:00"`): a pure parser and the
//! question "is this local time inside them, and since when", for the PBX QUIET alarm.
//!
//! Grammar (case-insensitive, spaces around separators allowed):
//!
//! ```text
//! hours   = window ("," window)*
//! window  = days " " HH:MM "-" HH:MM        e.g. "Mon-Fri 09:00-18:00", "Sat 10:00-13:00"
//! days    = day | day "-" day               (a range may wrap: "Fri-Mon")
//! day     = Mon | Tue | Wed | Thu | Fri | Sat | Sun
//! ```
//!
//! A window ends after it starts on the same day (`24:00` is the end of the day); a night shift
//! is written as two windows. Times are wall-clock times of the PBX's zone: the caller turns a
//! Unix time into a local weekday and minute (see [`BusinessHours::window_start_utc`]).
//!
//! Must not: read the clock or the config; errors name the window and what to write instead.

use jiff::civil::Weekday;

/// The parsed value: for each weekday (Monday first) the windows as minutes since midnight,
/// `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    days: [Vec<(u16, u16)>; 7],
}

/// Why a `business_hours` text is not valid; the message names the window and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("business hours {window:?}: {problem} (write e.g. \"Mon-Fri 09:00-18:00\" or \"Mon-Fri 08:00-17:00, Sat 09:00-12:00\")")]
pub struct HoursError {
    /// The window as written.
    pub window: String,
    pub problem: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_TITLES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn day_index(s: &str) -> Option<usize> {
    let l = s.trim().to_ascii_lowercase();
    DAY_NAMES.iter().position(|d| *d == l)
}

/// `HH:MM` → minutes since midnight; `24:00` allowed (the end of the day).
fn minute_of(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Monday = 0.
pub fn weekday_index(w: Weekday) -> usize {
    usize::from(w.to_monday_zero_offset().unsigned_abs())
}

impl BusinessHours {
    /// Parses the config text; see the module documentation.
    pub fn parse(text: &str) -> Result<BusinessHours, HoursError> {
        let mut days: [Vec<(u16, u16)>; 7] = Default::default();
        let err = |window: &str, problem: &str| HoursError {
            window: window.trim().to_owned(),
            problem: problem.to_owned(),
        };
        if text.trim().is_empty() {
            return Err(err(text, "is empty"));
        }
        for window in text.split(',') {
            let w = window.trim();
            let Some((d, t)) = w.split_once(char::is_whitespace) else {
                return Err(err(w, "needs days and a time range separated by a space"));
            };
            let (first, last) = match d.split_once('-') {
                Some((a, b)) => (day_index(a), day_index(b)),
                None => (day_index(d), day_index(d)),
            };
            let (Some(first), Some(last)) = (first, last) else {
                return Err(err(
                    w,
                    &format!("{d:?} is not a day or a day range (Mon, Tue, Wed, Thu, Fri, Sat, Sun; e.g. Mon-Fri)"),
                ));
            };
            let Some((a, b)) = t.trim().split_once('-') else {
                return Err(err(
                    w,
                    &format!("{:?} is not a time range like 09:00-18:00", t.trim()),
                ));
            };
            let (Some(start), Some(end)) = (minute_of(a), minute_of(b)) else {
                return Err(err(
                    w,
                    &format!(
                        "{:?} is not a time range like 09:00-18:00 (hours 00-24, minutes 00-59)",
                        t.trim()
                    ),
                ));
            };
            if start >= end {
                return Err(err(
                    w,
                    "ends before it starts; a window must end on the same day (write a night shift as two windows, e.g. \"Mon 22:00-24:00, Tue 00:00-06:00\")",
                ));
            }
            let mut i = first;
            loop {
                days[i].push((start, end));
                if i == last {
                    break;
                }
                i = (i + 1) % 7;
            }
        }
        for d in &mut days {
            d.sort_unstable();
            // Overlapping or touching windows are one: "since when" must not restart at 12:00
            // for "Mon 09:00-12:00, Mon 12:00-18:00".
            let mut merged: Vec<(u16, u16)> = Vec::with_capacity(d.len());
            for &(s, e) in d.iter() {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            *d = merged;
        }
        Ok(BusinessHours { days })
    }

    /// The canonical text (what the config saves): days grouped into ranges, Monday first.
    pub fn canonical(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < 7 {
            if self.days[i].is_empty() {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < 7 && self.days[j + 1] == self.days[i] {
                j += 1;
            }
            let days = if i == j {
                DAY_TITLES[i].to_owned()
            } else {
                format!("{}-{}", DAY_TITLES[i], DAY_TITLES[j])
            };
            for &(s, e) in &self.days[i] {
                out.push(format!(
                    "{days} {:02}:{:02}-{:02}:{:02}",
                    s / 60,
                    s % 60,
                    e / 60,
                    e % 60
                ));
            }
            i = j + 1;
        }
        out.join(", ")
    }

    /// If `minute` (since midnight) of weekday `day` (Monday = 0) is inside a window: the
    /// window's start minute.
    pub fn window_at(&self, day: usize, minute: u16) -> Option<u16> {
        self.days
            .get(day)?
            .iter()
            .find(|&&(s, e)| s <= minute && minute < e)
            .map(|&(s, _)| s)
    }

    /// If `unix` is inside business hours in `tz`: when the current window began (Unix
    /// seconds). A window start that does not exist in the zone (a DST gap) is resolved as
    /// jiff resolves wall-clock times (compatible: later).
    pub fn window_start_utc(&self, unix: i64, tz: &jiff::tz::TimeZone) -> Option<i64> {
        let ts = jiff::Timestamp::from_second(unix).ok()?;
        let local = ts.to_zoned(tz.clone());
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).ok()?;
        let start = self.window_at(weekday_index(local.weekday()), minute)?;
        let start_time = jiff::civil::time(
            i8::try_from(start / 60).ok()?,
            i8::try_from(start % 60).ok()?,
            0,
            0,
        );
        let z = local
            .date()
            .to_datetime(start_time)
            .to_zoned(tz.clone())
            .ok()?;
        Some(z.timestamp().as_second().min(unix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_examples_parse_and_answer() {
        let h = BusinessHours::parse("Mon-Fri 09:00-18:00").unwrap();
        assert_eq!(h.window_at(0, 9 * 60), Some(540));
        assert_eq!(h.window_at(4, 17 * 60 + 59), Some(540));
        assert_eq!(h.window_at(4, 18 * 60), None, "the end is not inside");
        assert_eq!(h.window_at(5, 12 * 60), None, "Saturday");
        assert_eq!(h.canonical(), "Mon-Fri 09:00-18:00");

        let h = BusinessHours::parse(" sat 10:00-13:00 ,Mon-Fri 08:00-12:00, mon-fri 12:00-17:30")
            .unwrap();
        assert_eq!(h.canonical(), "Mon-Fri 08:00-17:30, Sat 10:00-13:00");
        assert_eq!(
            h.window_at(2, 12 * 60 + 30),
            Some(480),
            "touching windows merge"
        );
        let wrap = BusinessHours::parse("Fri-Mon 00:00-24:00").unwrap();
        assert_eq!(wrap.canonical(), "Mon 00:00-24:00, Fri-Sun 00:00-24:00");
        assert_eq!(wrap.window_at(6, 1439), Some(0));
        assert_eq!(wrap.window_at(1, 600), None);
    }

    #[test]
    fn errors_name_the_window_and_the_fix() {
        for (text, says) in [
            ("", "is empty"),
            ("Mon-Fri", "needs days and a time range"),
            ("Mo-Fr 09:00-18:00", "\"Mo-Fr\" is not a day"),
            ("Mon-Fri 9-18", "not a time range"),
            ("Mon-Fri 09:00-24:30", "not a time range"),
            ("Mon-Fri 09:60-18:00", "not a time range"),
            ("Mon-Fri 18:00-09:00", "night shift as two windows"),
            ("Mon-Fri 09:00-18:00, Sat", "\"Sat\": needs days"),
        ] {
            let e = BusinessHours::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(e.contains("Mon-Fri 09:00-18:00"), "shows an example: {e}");
        }
    }

    #[test]
    fn window_start_is_in_the_pbx_zone() {
        let h = BusinessHours::parse("Mon-Fri 09:00-18:00").unwrap();
        let msk = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        // 2026-12-01 is a Tuesday; 10:30 in Moscow is 07:30 UTC.
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_second();
        assert_eq!(
            h.window_start_utc(at("2026-12-01T07:30:00Z"), &msk),
            Some(at("2026-12-01T06:00:00Z"))
        );
        assert_eq!(h.window_start_utc(at("2026-12-01T05:59:59Z"), &msk), None);
        assert_eq!(
            h.window_start_utc(at("2026-12-01T07:30:00Z"), &jiff::tz::TimeZone::UTC),
            None
        );
        // Friday 21:30 UTC is already Saturday 00:30 in Moscow: the PBX's day counts.
        assert_eq!(h.window_start_utc(at("2026-12-04T21:30:00Z"), &msk), None);
    }

    fn arb_window() -> impl Strategy<Value = (usize, usize, u16, u16)> {
        (0usize..7, 0usize..7, 0u16..1440, 1u16..=1440)
            .prop_filter("start before end", |(_, _, s, e)| s < e)
    }

    /// Windows as a person writes them: `Tue-Fri 09:00-18:00`, joined by `sep`.
    fn written(ws: &[(usize, usize, u16, u16)], sep: &str) -> String {
        ws.iter()
            .map(|&(a, b, s, e)| {
                format!(
                    "{}-{} {:02}:{:02}-{:02}:{:02}",
                    DAY_TITLES[a],
                    DAY_TITLES[b],
                    s / 60,
                    s % 60,
                    e / 60,
                    e % 60
                )
            })
            .collect::<Vec<_>>()
            .join(sep)
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panicking(s in ".{0,60}") {
            let _ = BusinessHours::parse(&s);
        }

        // What the settings page saves (the canonical text) means the same hours.
        #[test]
        fn canonical_text_round_trips(ws in prop::collection::vec(arb_window(), 1..5)) {
            let text = written(&ws, ", ");
            let h = BusinessHours::parse(&text).unwrap();
            let again = BusinessHours::parse(&h.canonical()).unwrap();
            prop_assert_eq!(&again, &h);
            prop_assert_eq!(again.canonical(), h.canonical());
        }

        // A minute is inside exactly when one of the written windows covers it.
        #[test]
        fn inside_matches_the_written_windows(
            ws in prop::collection::vec(arb_window(), 1..5),
            day in 0usize..7,
            minute in 0u16..1440,
        ) {
            let text = written(&ws, ",");
            let h = BusinessHours::parse(&text).unwrap();
            let covers = ws.iter().any(|&(a, b, s, e)| {
                let on = if a <= b { a <= day && day <= b } else { day >= a || day <= b };
                on && s <= minute && minute < e
            });
            let got = h.window_at(day, minute);
            prop_assert_eq!(got.is_some(), covers);
            if let Some(start) = got {
                prop_assert!(start <= minute);
                // Every minute from the start up to now is inside too.
                prop_assert!((start..=minute).all(|m| h.window_at(day, m).is_some()));
            }
        }
    }
}
