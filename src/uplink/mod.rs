//! The central PostgreSQL uplink (issue 16): every journal record forwarded once to
//! `cdrbox_cdr`, keyed by (box_id, pbx, identity). [`url`] and [`tls`] turn `[uplink]` into a
//! connection, [`schema`] is the central SQL, [`forward`] the thread that sends and `batch` the
//! SQL of one batch. Off unless `[uplink] url` is set; it never blocks the links or the journal
//! writer (own thread, own read connection to the journal).

mod batch;
pub mod forward;
pub mod schema;
pub mod tls;
pub mod url;

pub use forward::{Settings, Uplink, UplinkError};
