//! The stats' trend: bucket sizes in the PBX's local calendar (hour, day, week from Monday,
//! month), how a bucket is numbered, coarsened and labelled, and the answer's points with the
//! empty buckets between filled in. Pure arithmetic on local day numbers; [`super`] feeds it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::MAX_TREND_BUCKETS;
use crate::record::civil_from_days;

/// The size of a trend bucket, in the PBX's local calendar (weeks start on Monday).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    #[default]
    Day,
    Week,
    Month,
}

impl Bucket {
    /// The request's spelling (`trend=`); `None` for `auto` or anything else.
    pub fn parse(s: &str) -> Option<Bucket> {
        match s {
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            "week" => Some(Bucket::Week),
            "month" => Some(Bucket::Month),
            _ => None,
        }
    }

    /// The bucket a range of `seconds` reads best in: up to 2 days by hour, up to 62 days by
    /// day, up to a year by week, then by month (a chart of 24–60 bars, never thousands).
    pub fn for_span(seconds: i64) -> Bucket {
        const DAY: i64 = 86_400;
        if seconds <= 2 * DAY {
            Bucket::Hour
        } else if seconds <= 62 * DAY {
            Bucket::Day
        } else if seconds <= 366 * DAY {
            Bucket::Week
        } else {
            Bucket::Month
        }
    }
}

/// One bucket of the trend.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrendPoint {
    /// The bucket's first local hour or day: `2026-12-01 10:00` (hour), `2026-12-01` (day;
    /// week: its Monday), `2026-12` (month).
    pub start: String,
    pub calls: u64,
    pub answered: u64,
    pub missed: u64,
    pub talk_seconds: i64,
}

#[derive(Debug, Default)]
pub(super) struct TrendAcc {
    pub(super) calls: u64,
    pub(super) answered: u64,
    pub(super) missed: u64,
    pub(super) talk: i64,
}

/// Trend buckets are numbered per size: hours and days since the epoch (local), weeks by their
/// Monday's day number, months as `year × 12 + month − 1`.
pub(super) fn day_to(bucket: Bucket, day: i64) -> i64 {
    match bucket {
        Bucket::Hour | Bucket::Day => day,
        // 1970-01-01 was a Thursday: three days after a Monday.
        Bucket::Week => day - (day + 3).rem_euclid(7),
        Bucket::Month => {
            let (y, m, _) = civil_from_days(day);
            y * 12 + m - 1
        }
    }
}

/// Bucket `key` of size `from` as the bucket of size `to` holding it (`to` no finer than
/// `from`; weeks are only made from days and hours).
pub(super) fn coarser(key: i64, from: Bucket, to: Bucket) -> i64 {
    if from == to {
        return key;
    }
    let day = match from {
        Bucket::Hour => key.div_euclid(24),
        _ => key,
    };
    day_to(to, day)
}

/// The next bucket's number.
pub(super) fn next_bucket(bucket: Bucket, key: i64) -> i64 {
    if bucket == Bucket::Week {
        key + 7
    } else {
        key + 1
    }
}

/// How a bucket is shown: see [`TrendPoint::start`].
pub(super) fn bucket_label(bucket: Bucket, key: i64) -> String {
    let ymd = |day: i64| {
        let (y, m, d) = civil_from_days(day);
        format!("{y:04}-{m:02}-{d:02}")
    };
    match bucket {
        Bucket::Hour => format!("{} {:02}:00", ymd(key.div_euclid(24)), key.rem_euclid(24)),
        Bucket::Day | Bucket::Week => ymd(key),
        Bucket::Month => format!("{:04}-{:02}", key.div_euclid(12), key.rem_euclid(12) + 1),
    }
}

/// The kept buckets as the answer's points in the wanted size (or the kept one, when coarser),
/// with the empty buckets between filled in while there are not too many.
pub(super) fn trend_points(
    want: Option<Bucket>,
    kept: Bucket,
    buckets: BTreeMap<i64, TrendAcc>,
) -> (Bucket, Vec<TrendPoint>) {
    let span = match (buckets.keys().next(), buckets.keys().next_back()) {
        (Some(&first), Some(&last)) => match kept {
            Bucket::Hour => (last - first + 1).saturating_mul(3600),
            // Kept in days or months: never finer than days, so the span need not be exact.
            _ => (last - first + 1).saturating_mul(86_400),
        },
        _ => 86_400,
    };
    let bucket = want.unwrap_or_else(|| Bucket::for_span(span)).max(kept);
    let mut folded: BTreeMap<i64, TrendAcc> = BTreeMap::new();
    for (k, t) in buckets {
        let f = folded.entry(coarser(k, kept, bucket)).or_default();
        f.calls += t.calls;
        f.answered += t.answered;
        f.missed += t.missed;
        f.talk += t.talk;
    }
    let point = |k: i64, t: &TrendAcc| TrendPoint {
        start: bucket_label(bucket, k),
        calls: t.calls,
        answered: t.answered,
        missed: t.missed,
        talk_seconds: t.talk,
    };
    let (Some(&first), Some(&last)) = (folded.keys().next(), folded.keys().next_back()) else {
        return (bucket, Vec::new());
    };
    let step = if bucket == Bucket::Week { 7 } else { 1 };
    let filled = (last - first) / step + 1;
    if filled > MAX_TREND_BUCKETS as i64 {
        return (bucket, folded.iter().map(|(&k, t)| point(k, t)).collect());
    }
    let empty = TrendAcc::default();
    let mut out = Vec::with_capacity(filled as usize);
    let mut k = first;
    while k <= last {
        out.push(point(k, folded.get(&k).unwrap_or(&empty)));
        k = next_bucket(bucket, k);
    }
    (bucket, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_bucket_from_the_range_length() {
        assert_eq!(Bucket::for_span(86_400), Bucket::Hour);
        assert_eq!(Bucket::for_span(7 * 86_400), Bucket::Day);
        assert_eq!(Bucket::for_span(31 * 86_400), Bucket::Day);
        assert_eq!(Bucket::for_span(92 * 86_400), Bucket::Week);
        assert_eq!(Bucket::for_span(2 * 365 * 86_400), Bucket::Month);
        assert_eq!(Bucket::parse("week"), Some(Bucket::Week));
        assert_eq!(Bucket::parse("auto"), None);
    }
}
