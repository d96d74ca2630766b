//! Record filters shared by the web API, the CLI export and the USB copy (PRODUCT.md §3). Pure code.
//!
//! One `Filter` value means the same set everywhere: the journal turns it into SQL, and
//! [`Filter::matches`] applies it to records still in memory, so both must agree.

use crate::record::{CallRecord, Direction, Disposition};

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
