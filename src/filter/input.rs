//! The one parser for filter values as people type them: `cdrbox export --disposition …` and
//! `/api/calls?disposition=…` / `/export.csv?…` both build a [`FilterInput`] and call
//! [`FilterInput::parse`]. Pure code.
//!
//! Why one parser: the CLI and the API used to disagree (`--direction in` refused, `?direction=in`
//! accepted) and the CLI turned a misspelt `--disposition ANSWRED` into an empty export without a
//! word (issue 13 item 7). Now both accept the same spellings and refuse the same mistakes with
//! the same sentence; only the name of the thing to fix differs (`--account-code` on the command
//! line, `accountCode` in a query string), chosen by [`Naming`].

use jiff::tz::TimeZone;

use super::Filter;
use crate::record::{Direction, Disposition};
use crate::timearg::{parse_time, Bound};

/// One filter criterion, named the way each surface spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    From,
    To,
    Disposition,
    Direction,
    Pbx,
    Source,
    Destination,
    AccountCode,
    Queue,
    Agent,
    MinDuration,
    MaxDuration,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::From,
        Field::To,
        Field::Disposition,
        Field::Direction,
        Field::Pbx,
        Field::Source,
        Field::Destination,
        Field::AccountCode,
        Field::Queue,
        Field::Agent,
        Field::MinDuration,
        Field::MaxDuration,
    ];

    /// The query-string parameter (`accountCode`).
    pub fn param(self) -> &'static str {
        match self {
            Field::From => "from",
            Field::To => "to",
            Field::Disposition => "disposition",
            Field::Direction => "direction",
            Field::Pbx => "pbx",
            Field::Source => "source",
            Field::Destination => "destination",
            Field::AccountCode => "accountCode",
            Field::Queue => "queue",
            Field::Agent => "agent",
            Field::MinDuration => "minDuration",
            Field::MaxDuration => "maxDuration",
        }
    }

    /// The command-line option (`--account-code`).
    pub fn flag(self) -> &'static str {
        match self {
            Field::From => "--from",
            Field::To => "--to",
            Field::Disposition => "--disposition",
            Field::Direction => "--direction",
            Field::Pbx => "--pbx",
            Field::Source => "--source",
            Field::Destination => "--destination",
            Field::AccountCode => "--account-code",
            Field::Queue => "--queue",
            Field::Agent => "--agent",
            Field::MinDuration => "--min-duration",
            Field::MaxDuration => "--max-duration",
        }
    }

    /// This field's name on `surface`.
    pub fn name(self, surface: Naming) -> &'static str {
        match surface {
            Naming::Cli => self.flag(),
            Naming::Api => self.param(),
        }
    }
}

/// Where the values were typed, which decides how a message names the field to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `cdrbox export --from …`
    Cli,
    /// `/api/calls?from=…`
    Api,
}

/// The dispositions a filter accepts, as Asterisk spells them.
pub const DISPOSITIONS: &[&str] = &[
    "ANSWERED",
    "NO ANSWER",
    "BUSY",
    "FAILED",
    "CONGESTION",
    "CANCEL",
    "UNKNOWN",
];

/// Largest duration bound: a CDR's duration is a 32-bit count of seconds.
const MAX_SECONDS: i64 = i32::MAX as i64;

/// What is wrong with one field's value. The sentence is [`FilterError::message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The value was given but is blank.
    Empty,
    /// Not a time in any accepted form (the sentence comes from [`parse_time`]).
    BadTime(String),
    /// `to` is not after `from`: nothing could match.
    Reversed {
        from: String,
        to: String,
    },
    BadDisposition {
        value: String,
    },
    BadDirection {
        value: String,
    },
    NotWhole {
        value: String,
    },
    OutOfRange {
        value: i64,
    },
    /// `maxDuration` below `minDuration`: nothing could match.
    MaxBelowMin {
        min: i64,
        max: i64,
    },
}

/// A filter value refused, with the field it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", field.param(), self.message(Naming::Api))]
pub struct FilterError {
    pub field: Field,
    pub problem: Problem,
}

impl FilterError {
    fn new(field: Field, problem: Problem) -> Self {
        Self { field, problem }
    }

    /// The sentence, without the field's own name in front; another field it mentions is
    /// named as `surface` spells it.
    pub fn message(&self, surface: Naming) -> String {
        let dispositions = || {
            let (last, rest) = DISPOSITIONS.split_last().unwrap_or((&"", &[]));
            format!("{} or {last}", rest.join(", "))
        };
        match &self.problem {
            Problem::Empty => match self.field {
                Field::From | Field::To => {
                    "empty value: give a time (2026-11-22, \"2026-11-22 10:00\", RFC 3339 or @<unix seconds>)".into()
                }
                Field::Disposition => format!("empty value: give {}", dispositions()),
                Field::Direction => {
                    "empty value: give inbound, outbound, internal or unknown".into()
                }
                _ => "empty value: give a whole number of seconds".into(),
            },
            Problem::BadTime(sentence) => sentence.clone(),
            Problem::Reversed { from, to } => format!(
                "{to:?} is not later than {} {from:?}: no call could match (swap the two?)",
                Field::From.name(surface)
            ),
            Problem::BadDisposition { value } => {
                let hint = crate::config::parse::did_you_mean(value, DISPOSITIONS.iter().copied())
                    .map(|d| format!(" (did you mean {d}?)"))
                    .unwrap_or_default();
                format!(
                    "{value:?} is not a disposition{hint}: use {} (any case; NO_ANSWER works too)",
                    dispositions()
                )
            }
            Problem::BadDirection { value } => format!(
                "{value:?} is not a direction: use inbound, outbound, internal or unknown (in and out work too)"
            ),
            Problem::NotWhole { value } => {
                format!("{value:?} is not a whole number of seconds")
            }
            Problem::OutOfRange { value } => {
                format!("{value} is out of range (allowed 0–{MAX_SECONDS} seconds)")
            }
            Problem::MaxBelowMin { min, max } => format!(
                "{max} is less than {} {min}: no call could match",
                Field::MinDuration.name(surface)
            ),
        }
    }

    /// `--disposition: "ANSWRED" is not …` — the whole line for `surface`.
    pub fn render(&self, surface: Naming) -> String {
        format!("{}: {}", self.field.name(surface), self.message(surface))
    }
}

/// Filter values as typed. Each list entry is one occurrence of the option or parameter and may
/// itself hold a comma list (`ANSWERED,BUSY`); free-text fields left empty mean "no filter"
/// (a web form sends its empty fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterInput {
    pub from: Option<String>,
    pub to: Option<String>,
    pub dispositions: Vec<String>,
    pub directions: Vec<String>,
    pub pbx: Vec<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub account_code: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub min_duration: Option<String>,
    pub max_duration: Option<String>,
}

impl FilterInput {
    /// The [`Filter`] these values mean; times without an offset are read in `tz`. The first
    /// problem found (in [`Field::ALL`] order) is the error.
    pub fn parse(&self, tz: &TimeZone) -> Result<Filter, FilterError> {
        let from_utc = time(Field::From, self.from.as_deref(), tz, Bound::Lower)?;
        let to_utc = time(Field::To, self.to.as_deref(), tz, Bound::Upper)?;
        if let (Some(f), Some(t)) = (from_utc, to_utc) {
            if t <= f {
                return Err(FilterError::new(
                    Field::To,
                    Problem::Reversed {
                        from: self.from.as_deref().unwrap_or_default().trim().to_owned(),
                        to: self.to.as_deref().unwrap_or_default().trim().to_owned(),
                    },
                ));
            }
        }
        let dispositions = items(Field::Disposition, &self.dispositions)?
            .into_iter()
            .map(|d| {
                parse_disposition(&d).ok_or_else(|| {
                    FilterError::new(Field::Disposition, Problem::BadDisposition { value: d })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let directions = items(Field::Direction, &self.directions)?
            .into_iter()
            .map(|d| {
                parse_direction(&d).ok_or_else(|| {
                    FilterError::new(Field::Direction, Problem::BadDirection { value: d })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A PBX name is free text; blanks from `pbx=a,,b` or an empty form field are no filter.
        let pbx = split(&self.pbx).collect();
        let min_duration = seconds(Field::MinDuration, self.min_duration.as_deref())?;
        let max_duration = seconds(Field::MaxDuration, self.max_duration.as_deref())?;
        if let (Some(min), Some(max)) = (min_duration, max_duration) {
            if max < min {
                return Err(FilterError::new(
                    Field::MaxDuration,
                    Problem::MaxBelowMin { min, max },
                ));
            }
        }
        Ok(Filter {
            from_utc,
            to_utc,
            dispositions,
            directions,
            pbx,
            source_contains: text(&self.source),
            destination_contains: text(&self.destination),
            account_code: text(&self.account_code),
            queue: text(&self.queue),
            agent: text(&self.agent),
            min_duration,
            max_duration,
            ..Filter::default()
        })
    }
}

fn time(
    field: Field,
    value: Option<&str>,
    tz: &TimeZone,
    bound: Bound,
) -> Result<Option<i64>, FilterError> {
    match value.map(str::trim) {
        None => Ok(None),
        Some("") => Err(FilterError::new(field, Problem::Empty)),
        Some(v) => parse_time(v, tz, bound)
            .map(Some)
            .map_err(|m| FilterError::new(field, Problem::BadTime(m))),
    }
}

/// Comma-split, trimmed, non-blank entries of every occurrence.
fn split(values: &[String]) -> impl Iterator<Item = String> + '_ {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Like [`split`], but an occurrence that is blank is refused: `disposition=` would otherwise
/// mean "every disposition" while looking like "none".
fn items(field: Field, values: &[String]) -> Result<Vec<String>, FilterError> {
    if values.iter().any(|v| v.trim().is_empty()) {
        return Err(FilterError::new(field, Problem::Empty));
    }
    Ok(split(values).collect())
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

fn seconds(field: Field, value: Option<&str>) -> Result<Option<i64>, FilterError> {
    let Some(v) = value.map(str::trim) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Err(FilterError::new(field, Problem::Empty));
    }
    let n: i64 = v.parse().map_err(|_| {
        FilterError::new(
            field,
            Problem::NotWhole {
                value: v.to_owned(),
            },
        )
    })?;
    if !(0..=MAX_SECONDS).contains(&n) {
        return Err(FilterError::new(field, Problem::OutOfRange { value: n }));
    }
    Ok(Some(n))
}

/// Accepts Asterisk's spelling and forms without the space (`NO ANSWER`, `NO_ANSWER`,
/// `noanswer`), any case.
pub fn parse_disposition(s: &str) -> Option<Disposition> {
    let norm: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .collect::<String>()
        .to_ascii_uppercase();
    Some(match norm.as_str() {
        "ANSWERED" => Disposition::Answered,
        "NOANSWER" => Disposition::NoAnswer,
        "BUSY" => Disposition::Busy,
        "FAILED" => Disposition::Failed,
        "CONGESTION" => Disposition::Congestion,
        "CANCEL" => Disposition::Cancel,
        "UNKNOWN" => Disposition::Unknown,
        _ => return None,
    })
}

/// `inbound`/`in`, `outbound`/`out`, `internal`, `unknown`, any case.
pub fn parse_direction(s: &str) -> Option<Direction> {
    Some(match s.to_ascii_lowercase().as_str() {
        "inbound" | "in" => Direction::Inbound,
        "outbound" | "out" => Direction::Outbound,
        "internal" => Direction::Internal,
        "unknown" => Direction::Unknown,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(input: FilterInput) -> Result<Filter, FilterError> {
        input.parse(&TimeZone::UTC)
    }

    /// The exact sentences both surfaces print (golden text: a change here is a change users see).
    #[test]
    fn messages_name_the_field_and_what_is_accepted() {
        let cases: &[(FilterInput, &str, &str)] = &[
            (
                FilterInput {
                    dispositions: vec!["ANSWRED".into()],
                    ..FilterInput::default()
                },
                r#"--disposition: "ANSWRED" is not a disposition (did you mean ANSWERED?): use ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION, CANCEL or UNKNOWN (any case; NO_ANSWER works too)"#,
                r#"disposition: "ANSWRED" is not a disposition (did you mean ANSWERED?): use ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION, CANCEL or UNKNOWN (any case; NO_ANSWER works too)"#,
            ),
            (
                FilterInput {
                    from: Some("2026-12-01".into()),
                    to: Some("2026-11-01".into()),
                    ..FilterInput::default()
                },
                r#"--to: "2026-11-01" is not later than --from "2026-12-01": no call could match (swap the two?)"#,
                r#"to: "2026-11-01" is not later than from "2026-12-01": no call could match (swap the two?)"#,
            ),
            (
                FilterInput {
                    directions: vec!["sideways".into()],
                    ..FilterInput::default()
                },
                r#"--direction: "sideways" is not a direction: use inbound, outbound, internal or unknown (in and out work too)"#,
                r#"direction: "sideways" is not a direction: use inbound, outbound, internal or unknown (in and out work too)"#,
            ),
            (
                FilterInput {
                    from: Some("yesterday".into()),
                    ..FilterInput::default()
                },
                r#"--from: "yesterday" is not a time: use 2026-11-22, "2026-11-22 10:00", 2026-11-22T10:00:00+03:00 or @<unix seconds>"#,
                r#"from: "yesterday" is not a time: use 2026-11-22, "2026-11-22 10:00", 2026-11-22T10:00:00+03:00 or @<unix seconds>"#,
            ),
            (
                FilterInput {
                    min_duration: Some("10".into()),
                    max_duration: Some("5".into()),
                    ..FilterInput::default()
                },
                "--max-duration: 5 is less than --min-duration 10: no call could match",
                "maxDuration: 5 is less than minDuration 10: no call could match",
            ),
            (
                FilterInput {
                    min_duration: Some("-1".into()),
                    ..FilterInput::default()
                },
                "--min-duration: -1 is out of range (allowed 0–2147483647 seconds)",
                "minDuration: -1 is out of range (allowed 0–2147483647 seconds)",
            ),
            (
                FilterInput {
                    max_duration: Some("1m".into()),
                    ..FilterInput::default()
                },
                r#"--max-duration: "1m" is not a whole number of seconds"#,
                r#"maxDuration: "1m" is not a whole number of seconds"#,
            ),
            (
                FilterInput {
                    dispositions: vec![" ".into()],
                    ..FilterInput::default()
                },
                "--disposition: empty value: give ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION, CANCEL or UNKNOWN",
                "disposition: empty value: give ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION, CANCEL or UNKNOWN",
            ),
        ];
        for (input, cli, api) in cases {
            let err = utc(input.clone()).unwrap_err();
            assert_eq!(err.render(Naming::Cli), *cli);
            assert_eq!(err.render(Naming::Api), *api);
            assert_eq!(err.to_string(), *api, "Display is the API form");
        }
    }

    #[test]
    fn spellings_accepted_alike() {
        let f = utc(FilterInput {
            from: Some("2026-11-22".into()),
            to: Some("2026-11-22".into()),
            dispositions: vec!["answered,no_answer".into(), "NO ANSWER".into()],
            directions: vec!["in".into(), "Outbound".into()],
            pbx: vec!["a,,b".into(), "".into()],
            source: Some("  ".into()),
            min_duration: Some(" 5 ".into()),
            ..FilterInput::default()
        })
        .unwrap();
        assert_eq!(
            (f.from_utc, f.to_utc),
            (Some(1_795_305_600), Some(1_795_392_000)),
            "a date alone as the end means the end of that day"
        );
        assert_eq!(
            f.dispositions,
            vec![
                Disposition::Answered,
                Disposition::NoAnswer,
                Disposition::NoAnswer
            ]
        );
        assert_eq!(f.directions, vec![Direction::Inbound, Direction::Outbound]);
        assert_eq!(f.pbx, vec!["a", "b"]);
        assert_eq!(f.source_contains, None, "a blank search field is no filter");
        assert_eq!(f.min_duration, Some(5));
    }

    #[test]
    fn an_empty_range_is_refused_even_at_the_same_instant() {
        let err = utc(FilterInput {
            from: Some("2026-11-22 10:00".into()),
            to: Some("2026-11-22 10:00".into()),
            ..FilterInput::default()
        })
        .unwrap_err();
        assert_eq!(err.field, Field::To);
        assert!(utc(FilterInput {
            from: Some("2026-11-22 10:00".into()),
            to: Some("2026-11-22 10:01".into()),
            ..FilterInput::default()
        })
        .is_ok());
    }

    #[test]
    fn flags_and_params_are_distinct_and_named_alike() {
        for f in Field::ALL {
            let flag = f.flag().trim_start_matches("--").replace('-', "");
            assert_eq!(flag, f.param().to_ascii_lowercase(), "{f:?}");
        }
    }
}
