//! Alarms that reach a person (issue 17): e-mail and webhooks when an alarm rises and clears,
//! kept on disk until delivered.
//!
//! Map (data flows down; pure modules have no I/O):
//!
//! ```text
//!  StatusView.alarms (status board: links, journal, USB, … each Alarm with code + subject)
//!        │  every second
//!        ▼
//!  policy (pure): raise / remind / clear, flapping summarised, injected time
//!        │  notices of one moment
//!        ▼
//!  message (pure): subject, text, HTML, webhook JSON, message id
//!        │
//!        ▼
//!  outbox: one atomic file per message and channel ──► delivery, one thread per channel,
//!          (survives reboots)                              retries with backoff (outbox::Retry)
//! ```
//!
//! Pure: [`policy`], [`message`], [`outbox::Retry`]. Adapters: [`outbox::Outbox`] (files).

pub mod message;
pub mod outbox;
pub mod policy;
