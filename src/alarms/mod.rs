//! Alarms that reach a person (issue 17): e-mail and webhooks when an alarm rises and clears,
//! kept on disk until delivered.
//!
//! Map (data flows down; pure modules have no I/O):
//!
//! ```text
//!  StatusView.alarms (status board: links, journal, USB, … each Alarm with code + subject)
//!        │  every second
//!        ▼
//!  thresholds (pure): [alarms] thresholds, PBX QUIET (hours), GAP OPEN (gap ledger)
//!        │
//!        ▼
//!  policy (pure): raise / remind / clear, flapping summarised, injected time
//!        │  notices of one moment
//!        ▼
//!  message (pure): subject, text, HTML, webhook JSON, message id
//!        │
//!        ▼
//!  outbox: one atomic file per message and channel ──► delivery, one thread per channel,
//!          (survives reboots)                              retries with backoff (outbox::Retry)
//!                                                          ──► smtp (lettre) / webhook (ureq)
//! ```
//!
//! Pure: [`hours`], [`thresholds`], [`policy`], [`message`], [`outbox::Retry`]. Adapters: [`outbox::Outbox`] (files),
//! [`smtp`], [`webhook`], and [`service`], the threads `cdrbox run` starts (plus
//! `cdrbox test-alarm`'s direct send), given what [`settings`] reads from `[alarms]`.

pub mod daily;
pub mod hours;
pub mod message;
pub mod outbox;
pub mod policy;
pub mod report;
pub mod service;
pub mod settings;
pub mod smtp;
pub mod thresholds;
pub mod webhook;

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The channel does not work now (server unreachable, TLS or login refused, time-out):
    /// every message waits.
    Channel(String),
    /// The channel refused this message (a 5xx for it, an HTTP 4xx): only it waits.
    Message(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Channel(e) | Failure::Message(e) => f.write_str(e),
        }
    }
}
