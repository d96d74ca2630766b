//! Parsing of user-typed time bounds (`--from`, `--to`, `?from=`), shared by the CLI and the web
//! API. Pure code.
//!
//! Accepted: RFC 3339 with an offset (`2026-11-22T10:00:00+03:00`, `…Z`), a Unix timestamp in
//! seconds (`@1795331257`), or a wall-clock time without offset (`2026-11-22`,
//! `2026-11-22 10:00`, `2026-11-22T10:00:05`), which is read in the PBX's zone because that is
//! the clock the office sees on its phones. A date alone as an upper bound means "to the end of
//! that day", so `--from 2026-11-01 --to 2026-11-30` covers all of November's 30th.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Which end of a range a bound is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Inclusive start.
    Lower,
    /// Exclusive end.
    Upper,
}

/// Parses `text` into Unix seconds. The error names the accepted forms.
pub fn parse_time(text: &str, tz: &TimeZone, bound: Bound) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "{t:?} is not a time: use 2026-11-22, \"2026-11-22 10:00\", 2026-11-22T10:00:00+03:00 or @<unix seconds>"
        )
    };
    if let Some(secs) = t.strip_prefix('@') {
        return secs.parse::<i64>().map_err(|_| bad());
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts.as_second());
    }
    // jiff's Date parser also accepts a full datetime, so only a bare date takes this path.
    if let Some(date) = (t.len() == 10).then(|| t.parse::<Date>().ok()).flatten() {
        let date = match bound {
            Bound::Lower => date,
            Bound::Upper => date.tomorrow().map_err(|_| bad())?,
        };
        return tz
            .to_zoned(date.to_datetime(jiff::civil::Time::midnight()))
            .map(|z| z.timestamp().as_second())
            .map_err(|_| bad());
    }
    let normalized = t.replacen(' ', "T", 1);
    let dt = normalized.parse::<DateTime>().map_err(|_| bad())?;
    tz.to_zoned(dt)
        .map(|z| z.timestamp().as_second())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moscow() -> TimeZone {
        TimeZone::get("Europe/Moscow").unwrap()
    }

    #[test]
    fn forms() {
        let tz = moscow();
        let cases: &[(&str, Bound, i64)] = &[
            ("2026-11-22T07:07:37Z", Bound::Lower, 1_795_331_257),
            ("2026-11-22T10:07:37+03:00", Bound::Lower, 1_795_331_257),
            ("2026-11-22 10:07:37", Bound::Lower, 1_795_331_257),
            ("2026-11-22T10:07:37", Bound::Lower, 1_795_331_257),
            ("@1795331257", Bound::Upper, 1_795_331_257),
            // Midnight in Moscow is 21:00 UTC the day before.
            ("2026-11-22", Bound::Lower, 1_795_294_800),
            ("2026-11-22", Bound::Upper, 1_795_381_200),
        ];
        for (text, bound, want) in cases {
            assert_eq!(parse_time(text, &tz, *bound), Ok(*want), "{text}");
        }
    }

    #[test]
    fn errors_name_the_forms() {
        let err = parse_time("yesterday", &moscow(), Bound::Lower).unwrap_err();
        assert!(
            err.contains("\"yesterday\"") && err.contains("2026-11-22"),
            "{err}"
        );
    }
}
