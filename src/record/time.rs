//! PBX wall-clock times: the one strict parser of `YYYY-MM-DD HH:MM:SS` (jiff does the
//! calendar), the instants a local time can mean in the PBX zone (none, one, two in an autumn
//! fold), resolving start/answer/end together, the RFC 3339 form, and the zone-less sort key the
//! identity starts with. Pure code, no I/O.

use super::CdrTime;

/// One candidate instant for a PBX wall-clock time: (UTC seconds, offset seconds).
type Candidate = (i64, i32);

/// Parses `YYYY-MM-DD HH:MM:SS` strictly (what `cdr_manager` and `cdr_csv` write).
pub fn parse_wall_clock(raw: &str) -> Option<jiff::civil::DateTime> {
    let b = raw.trim().as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = &b[r];
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    jiff::civil::DateTime::new(
        i16::try_from(num(0..4)?).ok()?,
        i8::try_from(num(5..7)?).ok()?,
        i8::try_from(num(8..10)?).ok()?,
        i8::try_from(num(11..13)?).ok()?,
        i8::try_from(num(14..16)?).ok()?,
        i8::try_from(num(17..19)?).ok()?,
        0,
    )
    .ok()
}

/// Every instant the wall-clock `raw` can mean in `tz`: one normally, two in an autumn fold
/// (earlier first), none when unparseable. In a spring gap the time never existed on the clock;
/// we use the offset in force before the gap (the "compatible" instant, later than the gap's
/// start), which keeps the wall-clock digits in the RFC 3339 form.
fn candidates(raw: &str, tz: &jiff::tz::TimeZone) -> Vec<Candidate> {
    use jiff::tz::AmbiguousOffset;
    let Some(dt) = parse_wall_clock(raw) else {
        return Vec::new();
    };
    let at = |off: jiff::tz::Offset| -> Option<Candidate> {
        off.to_timestamp(dt)
            .ok()
            .map(|ts| (ts.as_second(), off.seconds()))
    };
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => at(offset).into_iter().collect(),
        AmbiguousOffset::Gap { before, .. } => at(before).into_iter().collect(),
        AmbiguousOffset::Fold { before, after } => {
            let mut v: Vec<Candidate> = [at(before), at(after)].into_iter().flatten().collect();
            v.sort_unstable();
            v
        }
    }
}

/// The candidate closest to `target`, earlier on ties.
fn closest(c: &[Candidate], target: i64) -> Option<Candidate> {
    c.iter()
        .copied()
        .min_by_key(|(t, _)| ((t - target).abs(), *t))
}

pub(super) fn cdr_time(raw: String, pick: Option<Candidate>) -> CdrTime {
    CdrTime {
        raw,
        utc: pick.map(|p| p.0),
        offset_seconds: pick.map_or(0, |p| p.1),
    }
}

/// The channel-creation epoch in a UniqueID `[systemname-]<epoch>.<n>`.
pub fn unique_id_epoch(unique_id: &str) -> Option<i64> {
    let tail = unique_id.rsplit('-').next()?;
    let (epoch, seq) = tail.split_once('.')?;
    if epoch.is_empty()
        || !epoch.bytes().all(|b| b.is_ascii_digit())
        || !seq.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    epoch.parse().ok()
}

/// Resolves start, answer and end together, so a time in an autumn fold gets the instant that
/// agrees with the rest of the record (see [`CallRecord::from_event`]).
pub(super) fn resolve_times(
    start: &str,
    answer: &str,
    end: &str,
    duration: i64,
    billable: i64,
    unique_id: &str,
    tz: &jiff::tz::TimeZone,
) -> (Option<Candidate>, Option<Candidate>, Option<Candidate>) {
    let s = candidates(start, tz);
    let e = candidates(end, tz);
    let a = candidates(answer, tz);
    let start_pick = if s.len() <= 1 {
        s.first().copied()
    } else if let Some(epoch) = unique_id_epoch(unique_id) {
        // The CDR starts at or after the channel was created (a later CDR of the same channel,
        // e.g. after a transfer, starts later still): the first candidate not before the epoch
        // (1 s of rounding allowed), else the latest.
        s.iter()
            .copied()
            .find(|(t, _)| *t >= epoch - 1)
            .or_else(|| s.last().copied())
    } else if !e.is_empty() {
        // The pair whose difference is closest to Duration; earliest start on ties.
        let mut best: Option<(i64, Candidate)> = None;
        for sc in &s {
            for ec in &e {
                let err = ((ec.0 - sc.0) - duration).abs();
                if best.is_none_or(|(b, _)| err < b) {
                    best = Some((err, *sc));
                }
            }
        }
        best.map(|(_, c)| c)
    } else {
        s.first().copied()
    };
    let end_pick = match start_pick {
        Some(sp) => closest(&e, sp.0 + duration),
        None => e.first().copied(),
    };
    let answer_pick = match (end_pick, start_pick) {
        (Some(ep), _) => closest(&a, ep.0 - billable),
        (None, Some(sp)) => closest(&a, sp.0 + duration - billable),
        (None, None) => a.first().copied(),
    };
    (start_pick, answer_pick, end_pick)
}

impl CdrTime {
    /// Parses a PBX wall-clock string in `tz` (no fold resolution: the earlier instant).
    pub fn parse(raw: &str, tz: &jiff::tz::TimeZone) -> CdrTime {
        cdr_time(raw.to_owned(), candidates(raw, tz).first().copied())
    }

    /// RFC 3339 with the PBX zone's offset (`2026-11-22T10:04:05+03:00`); the raw string when
    /// it did not parse.
    pub fn rfc3339(&self) -> String {
        match self.utc.and_then(|u| self.zoned(u)) {
            Some(z) => z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            None => self.raw.clone(),
        }
    }

    /// PBX local wall-clock time `YYYY-MM-DD HH:MM:SS` (what cdr_csv writes): recomputed from
    /// the instant when known, else the raw string.
    pub fn local(&self) -> String {
        match self.utc.and_then(|u| self.zoned(u)) {
            Some(z) => z.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            None => self.raw.clone(),
        }
    }

    fn zoned(&self, utc: i64) -> Option<jiff::Zoned> {
        let ts = jiff::Timestamp::from_second(utc).ok()?;
        let off = jiff::tz::Offset::from_seconds(self.offset_seconds).ok()?;
        Some(ts.to_zoned(jiff::tz::TimeZone::fixed(off)))
    }

    /// Reads the JSON form back: an RFC 3339 string becomes (local wall clock, UTC, offset);
    /// anything else is kept as an unparsed raw string.
    pub fn from_rfc3339(s: &str) -> CdrTime {
        let parsed = (|| {
            let b = s.as_bytes();
            if b.len() < 20 || b[10] != b'T' {
                return None;
            }
            let wall = format!("{} {}", s.get(..10)?, s.get(11..19)?);
            let dt = parse_wall_clock(&wall)?;
            let pieces = jiff::fmt::temporal::Pieces::parse(s).ok()?;
            let off = pieces.to_numeric_offset()?;
            let ts = off.to_timestamp(dt).ok()?;
            Some(CdrTime {
                raw: wall,
                utc: Some(ts.as_second()),
                offset_seconds: off.seconds(),
            })
        })();
        match parsed {
            // Only canonical strings (the ones we write) are taken apart; anything else stays
            // an unparsed raw string, so the JSON view reproduces it exactly.
            Some(t) if t.rfc3339() == s => t,
            _ => cdr_time(s.to_owned(), None),
        }
    }
}

/// Where the identity's time key counts from: 2000-01-01 00:00:00 on the same zone-less clock.
const KEY_EPOCH: jiff::civil::DateTime = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);

/// `YYYY-MM-DD HH:MM:SS` as seconds since [`KEY_EPOCH`] of the same (zone-less) clock; 0 when
/// the text is not exactly a valid time in that form, or is before 2000 or after 2136.
///
/// Civil arithmetic without a zone, so the same bytes always give the same key whatever the
/// configured time zone (an identity must never depend on configuration).
pub(super) fn wall_clock_key(t: &[u8]) -> u32 {
    let Some(dt) = std::str::from_utf8(t)
        .ok()
        .filter(|s| s.len() == 19)
        .and_then(parse_wall_clock)
    else {
        return 0;
    };
    u32::try_from(dt.duration_since(KEY_EPOCH).as_secs()).unwrap_or(0)
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`: exact for every day an `i64` of seconds can name, where jiff's
/// dates stop at year 9999). For pages that number local days (the OLED's date, the stats' trend).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn day_numbers_are_calendar_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    use super::*;
    use proptest::prelude::*;

    /// The key as computed before it used jiff (Howard Hinnant's days-from-civil), kept as the
    /// oracle: identities are stored, so every valid time must keep its key.
    fn days_from_civil_key(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> u32 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 730_425;
        u32::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).unwrap_or(0)
    }

    proptest! {
        #[test]
        fn wall_clock_key_equals_days_from_civil(
            y in 1990i64..2150, m in 1i64..=12, d in 1i64..=31,
            hh in 0i64..24, mm in 0i64..60, ss in 0i64..60,
        ) {
            let text = format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}");
            let valid = jiff::civil::Date::new(y as i16, m as i8, d as i8).is_ok();
            let expect = if valid { days_from_civil_key(y, m, d, hh, mm, ss) } else { 0 };
            prop_assert_eq!(wall_clock_key(text.as_bytes()), expect, "{}", text);
        }
    }

    #[test]
    fn wall_clock_key_refuses_what_is_not_a_time() {
        for t in [
            "",
            "2026-11-22",
            " 2026-11-22 10:07:3",
            "2026-11-22T10:07:37",
            "2026-02-30 10:00:00",
            "2026-11-22 24:00:00",
            "1999-12-31 23:59:59",
            "2137-01-01 00:00:00",
        ] {
            assert_eq!(wall_clock_key(t.as_bytes()), 0, "{t:?}");
        }
        assert_eq!(wall_clock_key(b"2136-02-07 06:28:15"), u32::MAX);
    }
}
