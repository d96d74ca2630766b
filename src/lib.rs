//! cdrbox: a call-logger box for Asterisk/FreePBX — AMI `Event: Cdr` in, exactly-once SQLite journal out.
//!
//! Map of what talks to what (arrows are data flow; pure modules have no I/O):
//!
//! ```text
//!  PBX ──TCP──► ami::client ──(pure)──► ami::codec ─► ami::session ─► record::CallRecord
//!                  │ (tokio task per [[pbx]])                                │
//!                  └──────── JournalHandle (unbounded, never blocks) ◄───────┘
//!                                   │
//!                          journal writer thread: ring file (pwrite+fdatasync per arrival)
//!                                   └─► SQLite WAL group commits, gaps, retention
//!                                   │
//!            StatusView (watch) ◄───┴──► queries (filter) ─► export (pure, impl Write)
//!               │        │
//!        display (I2C)  web (tiny_http)        usb (mount table watcher → export)
//! ```
//!
//! Pure modules: `ami::codec`, `ami::session`, `record`, `calls` (CDRs → calls), `names` (who is
//! behind a number: `[names]` > CallerID learned from extensions), `config`,
//! `filter`, `export`, `status`, `display::render`. Adapters that own I/O: `ami::client`,
//! `journal`, `display::oled`, `sim`.

pub mod alarms;
pub mod ami;
pub mod calls;
pub mod clock;
pub mod config;
pub mod display;
pub mod export;
pub mod filter;
pub mod fsio;
pub mod health;
pub mod hex;
pub mod import;
pub mod journal;
pub mod names;
pub mod record;
pub mod runtime;
pub mod sim;
pub mod sink;
pub mod status;
pub mod timearg;
pub mod uplink;
pub mod usb;
pub mod web;
