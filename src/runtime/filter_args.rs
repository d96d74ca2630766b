//! `FilterArgs`: the record filter as typed on the command line (`--from`, `--disposition`, …),
//! validated into a [`Filter`]; errors name the option. Shared by `export` and the USB copy.

use anyhow::Result;

use crate::filter::Filter;
use crate::record::{Direction, Disposition};
use crate::timearg::{parse_time, Bound};

/// Filter options as typed on the command line (or in a query string).
#[derive(Debug, Clone, Default)]
pub struct FilterArgs {
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
    pub min_duration: Option<i64>,
    pub max_duration: Option<i64>,
}

impl FilterArgs {
    /// Validates into a [`Filter`]; naive times are read in `tz`. Errors name the option.
    pub fn to_filter(&self, tz: &jiff::tz::TimeZone) -> Result<Filter> {
        let from_utc = self
            .from
            .as_deref()
            .map(|t| parse_time(t, tz, Bound::Lower))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
        let to_utc = self
            .to
            .as_deref()
            .map(|t| parse_time(t, tz, Bound::Upper))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
        let dispositions = self
            .dispositions
            .iter()
            .map(|d| Disposition::parse(d))
            .collect();
        let directions = self
            .directions
            .iter()
            .map(|d| {
                d.parse::<Direction>().map_err(|_| {
                    anyhow::anyhow!(
                        "--direction: {d:?} is not a direction (inbound, outbound, internal, unknown)"
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Filter {
            from_utc,
            to_utc,
            dispositions,
            directions,
            pbx: self.pbx.clone(),
            source_contains: self.source.clone(),
            destination_contains: self.destination.clone(),
            account_code: self.account_code.clone(),
            queue: self.queue.clone(),
            agent: self.agent.clone(),
            min_duration: self.min_duration,
            max_duration: self.max_duration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_args_name_the_bad_option() {
        let tz = jiff::tz::TimeZone::UTC;
        let bad = FilterArgs {
            from: Some("yesterday".into()),
            ..FilterArgs::default()
        };
        assert!(bad
            .to_filter(&tz)
            .unwrap_err()
            .to_string()
            .starts_with("--from:"));
        let bad = FilterArgs {
            directions: vec!["sideways".into()],
            ..FilterArgs::default()
        };
        assert!(bad
            .to_filter(&tz)
            .unwrap_err()
            .to_string()
            .starts_with("--direction:"));
        let ok = FilterArgs {
            from: Some("2026-11-22".into()),
            to: Some("2026-11-22".into()),
            dispositions: vec!["NO ANSWER".into()],
            ..FilterArgs::default()
        };
        let f = ok.to_filter(&tz).unwrap();
        assert_eq!(
            (f.from_utc, f.to_utc),
            (Some(1_795_305_600), Some(1_795_392_000))
        );
        assert_eq!(f.dispositions, vec![Disposition::NoAnswer]);
    }
}
