//! Record filters shared by the web API, the CLI export and the USB copy. Pure code.
//!
//! One `Filter` value means the same set everywhere: the journal turns it into SQL, and
//! [`Filter::matches`] applies it to records still in memory, so both must agree. The text a
//! person types for it — `cdrbox export --disposition …` or `/api/calls?disposition=…` — is read
//! by ONE parser, [`input::FilterInput`], so both accept the same spellings and refuse the same
//! mistakes with the same sentence.

use crate::record::{CallRecord, Direction, Disposition};

pub mod input;
pub use input::{Field, FilterError, FilterInput, Naming};

/// Which records to return. Every `Some`/non-empty criterion must hold (AND); within a list any
/// value may match (OR).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Inclusive lower bound on the call's start, Unix seconds (UTC).
    pub from_utc: Option<i64>,
    /// Exclusive upper bound on the call's start, Unix seconds (UTC).
    pub to_utc: Option<i64>,
    pub dispositions: Vec<Disposition>,
    pub directions: Vec<Direction>,
    pub pbx: Vec<String>,
    /// Case-insensitive substring of `source` or `callerId`.
    pub source_contains: Option<String>,
    /// Case-insensitive substring of `destination`.
    pub destination_contains: Option<String>,
    pub account_code: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub min_duration: Option<i64>,
    pub max_duration: Option<i64>,
    /// Numbers whose person's name contains `source_contains` (`crate::names`, filled in by the
    /// web layer): a record from one of them matches that text too, so "Петрова" finds the calls
    /// from 101 when `[names]` says 101 is Анна Петрова (issue 13, item 2).
    pub source_numbers: Vec<String>,
    /// The same for `destination_contains`: calls to those numbers.
    pub destination_numbers: Vec<String>,
}

/// Sort orders offered to users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Newest start first (the calls page default).
    #[default]
    StartDesc,
    StartAsc,
    DurationDesc,
    DurationAsc,
}

/// A page of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u64,
}

impl Filter {
    /// True when `record` is in the set this filter describes. Must agree with the journal's SQL
    /// translation (`journal::query`), which calls the same helpers for text matching.
    pub fn matches(&self, record: &CallRecord) -> bool {
        let start = record.start.utc;
        if let Some(from) = self.from_utc {
            if start.is_none_or(|t| t < from) {
                return false;
            }
        }
        if let Some(to) = self.to_utc {
            if start.is_none_or(|t| t >= to) {
                return false;
            }
        }
        if !self.dispositions.is_empty() && !self.dispositions.contains(&record.disposition) {
            return false;
        }
        if !self.directions.is_empty() && !self.directions.contains(&record.direction) {
            return false;
        }
        if !self.pbx.is_empty() && !self.pbx.contains(&record.pbx) {
            return false;
        }
        if let Some(needle) = &self.source_contains {
            let needle = fold_case(needle);
            if !contains_folded(&record.source, &needle)
                && !contains_folded(&record.caller_id, &needle)
                && !self.source_numbers.contains(&record.source)
            {
                return false;
            }
        }
        if let Some(needle) = &self.destination_contains {
            if !contains_folded(&record.destination, &fold_case(needle))
                && !self.destination_numbers.contains(&record.destination)
            {
                return false;
            }
        }
        if let Some(code) = &self.account_code {
            if *code != record.account_code {
                return false;
            }
        }
        if let Some(queue) = &self.queue {
            if record.queue.as_deref() != Some(queue.as_str()) {
                return false;
            }
        }
        if let Some(agent) = &self.agent {
            if record.agent.as_deref() != Some(agent.as_str()) {
                return false;
            }
        }
        if let Some(min) = self.min_duration {
            if record.duration < min {
                return false;
            }
        }
        if let Some(max) = self.max_duration {
            if record.duration > max {
                return false;
            }
        }
        true
    }
}

/// Case folding used by every substring filter: per-character Unicode lowercase, without
/// context rules (so `Σ` always folds to `σ`), which makes "contains" behave the same on
/// Cyrillic caller names as on ASCII. SQLite's own `lower()`/`LIKE` fold ASCII only, so the
/// journal registers a SQL function that calls [`contains_folded`] instead.
pub fn fold_case(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// True when `haystack`, case-folded, contains `folded_needle` (already passed through
/// [`fold_case`]).
pub fn contains_folded(haystack: &str, folded_needle: &str) -> bool {
    if folded_needle.is_empty() {
        return true;
    }
    fold_case(haystack).contains(folded_needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::CdrTime;

    fn rec() -> CallRecord {
        CallRecord {
            pbx: "main".into(),
            unique_id: "1.1".into(),
            account_code: "acc".into(),
            source: "1001".into(),
            destination: "79161234567".into(),
            destination_context: "from-internal".into(),
            caller_id: "\"Иван Петров\" <1001>".into(),
            channel: "PJSIP/1001-1".into(),
            destination_channel: "PJSIP/trunk-2".into(),
            last_application: "Dial".into(),
            last_data: "".into(),
            start: CdrTime {
                raw: "2026-01-01 10:00:00".into(),
                utc: Some(1000),
                offset_seconds: 0,
            },
            answer: None,
            end: CdrTime {
                raw: "2026-01-01 10:01:00".into(),
                utc: Some(1060),
                offset_seconds: 0,
            },
            duration: 60,
            billable_seconds: 50,
            disposition: Disposition::Answered,
            ama_flags: "DOCUMENTATION".into(),
            user_field: "".into(),
            direction: Direction::Outbound,
            ring_seconds: 10,
            queue: None,
            agent: Some("1001".into()),
            linked_id: None,
            sequence: None,
            custom_fields: vec![],
            raw: vec![],
            received_utc: 1061,
            identity: [0; 16],
            origin: Default::default(),
        }
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(Filter::default().matches(&rec()));
    }

    #[test]
    fn time_range_is_half_open_and_needs_a_start() {
        let r = rec();
        let f = |from, to| Filter {
            from_utc: from,
            to_utc: to,
            ..Filter::default()
        };
        assert!(f(Some(1000), Some(1001)).matches(&r));
        assert!(!f(Some(1001), None).matches(&r));
        assert!(!f(None, Some(1000)).matches(&r));
        let mut no_start = r.clone();
        no_start.start.utc = None;
        assert!(!f(Some(0), None).matches(&no_start));
        assert!(f(None, None).matches(&no_start));
    }

    #[test]
    fn substring_is_case_insensitive_beyond_ascii() {
        let r = rec();
        let f = Filter {
            source_contains: Some("ИВАН".into()),
            ..Filter::default()
        };
        assert!(f.matches(&r), "caller id matches in any case");
        let f = Filter {
            source_contains: Some("100".into()),
            ..Filter::default()
        };
        assert!(f.matches(&r));
        let f = Filter {
            destination_contains: Some("9161".into()),
            ..Filter::default()
        };
        assert!(f.matches(&r));
        let f = Filter {
            destination_contains: Some("1001".into()),
            ..Filter::default()
        };
        assert!(
            !f.matches(&r),
            "destination filter does not look at the source"
        );
    }

    #[test]
    fn lists_are_or_and_criteria_are_and() {
        let r = rec();
        let f = Filter {
            dispositions: vec![Disposition::Busy, Disposition::Answered],
            directions: vec![Direction::Outbound],
            pbx: vec!["other".into(), "main".into()],
            ..Filter::default()
        };
        assert!(f.matches(&r));
        let f = Filter {
            dispositions: vec![Disposition::Busy],
            directions: vec![Direction::Outbound],
            ..Filter::default()
        };
        assert!(!f.matches(&r));
    }

    #[test]
    fn optional_fields_and_durations() {
        let r = rec();
        let f = |g: fn(&mut Filter)| {
            let mut f = Filter::default();
            g(&mut f);
            f.matches(&r)
        };
        assert!(f(|f| f.agent = Some("1001".into())));
        assert!(!f(|f| f.queue = Some("support".into())));
        assert!(f(|f| f.account_code = Some("acc".into())));
        assert!(!f(|f| f.account_code = Some("ACC".into())));
        assert!(f(|f| f.min_duration = Some(60)));
        assert!(!f(|f| f.min_duration = Some(61)));
        assert!(f(|f| f.max_duration = Some(60)));
        assert!(!f(|f| f.max_duration = Some(59)));
    }
}
