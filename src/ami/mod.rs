//! Asterisk Manager Interface: the sans-IO codec and session, and the tokio client that owns the socket.
//!
//! `codec` frames bytes into messages, `session` decides what to send and when to give up on a
//! link (fed messages and `now`, never a socket), `backoff` paces reconnects, `pause` decides when reading waits for the journal, and `client` is
//! the only part that does I/O.

pub mod backoff;
pub mod client;
pub mod codec;
pub mod pause;
pub mod session;

pub use backoff::{Backoff, BackoffConfig, Lane, Retry};
pub use client::{run_link, LinkConfig, ToRecord};
pub use codec::{encode_action, AmiMessage, Decoder, Frame, Limits};
pub use session::{BootTracker, CloseReason, Output, Session, SessionConfig, State};
