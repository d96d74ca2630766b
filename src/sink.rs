//! The seam between AMI links and the journal: where records and link events go.
//!
//! `ami::client` only knows this trait, so its tests use an in-memory sink and the journal can be
//! swapped or stalled without touching the socket code. Implementations must never block: the
//! AMI reader calls them from its socket loop, and Asterisk drops a client that stalls its writes
//! for 100 ms.

use crate::record::CallRecord;

/// What happened to a PBX link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A connection attempt starts (TCP connect, banner, login).
    Connecting { attempt: u64 },
    /// Logged in; events flow. `pbx_restarted` is true when FullyBooted's Uptime shows the PBX
    /// restarted since the previous session; `banner` is the greeting line.
    Up {
        banner: Option<String>,
        pbx_restarted: bool,
    },
    /// The link ended or could not be made. `reason` is a sentence naming what to fix.
    Down { reason: String, kind: DownKind },
    /// Bytes thrown away while resynchronising after a malformed or oversized frame.
    Discarded { bytes: usize },
    /// The PBX's clock minus the box's, from a pong's `Timestamp:` (positive: the PBX is
    /// ahead). Asterisk stamps call times with its own clock, so a large skew makes the box's
    /// receive times and the records' times disagree.
    PbxClock { skew_ms: i64 },
}

/// Why a link is down, for alarms and retry pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownKind {
    /// Network trouble, EOF, time-out, garbage: retried with normal backoff.
    Transient,
    /// `Authentication failed`: a configuration error, retried slowly.
    AuthFailed,
    /// `Event: Shutdown` or `Asterisk is shutting down`.
    PbxShutdown,
    /// `Login Already In Use` (a ghost session with `allowmultiplelogin=no`).
    LoginInUse,
}

/// Receives what the AMI links produce. Must not block.
pub trait RecordSink: Send + Sync + 'static {
    /// A complete, decoded `Event: Cdr`.
    fn record(&self, record: CallRecord);
    /// A change of link state, at box time `at_utc` (Unix seconds).
    fn link_event(&self, pbx: &str, at_utc: i64, event: LinkEvent);
    /// Storage works but is behind a burst: a link may stop reading for a moment
    /// ([`crate::ami::pause`]) rather than hand over records that would be dropped. Must be
    /// cheap (asked before every read) and false whenever waiting would not help.
    fn behind(&self) -> bool {
        false
    }
}
