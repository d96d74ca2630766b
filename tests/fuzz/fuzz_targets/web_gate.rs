//! Fuzz target: differential fuzzing of the web gate against tiny_http's own request parser
//! (issue 11, finding 1). Any bytes: the gate must not panic; whatever it admits, the head it
//! sends upstream must reach tiny_http as exactly the request the gate understood, and the raw
//! bytes must never be framed differently by tiny_http. The checks live in
//! `tests/web_support/differential.rs`, shared with the stable `web_gate_differential` test.
#![no_main]

#[path = "../../web_support/differential.rs"]
mod differential;

use libfuzzer_sys::fuzz_target;

thread_local! {
    static PEER: differential::TinyHttp = differential::TinyHttp::new();
}

fuzz_target!(|data: &[u8]| {
    PEER.with(|p| {
        differential::check(p, data);
    });
});
