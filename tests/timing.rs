//! The integration tests with tight timing bounds as one test binary, run one test at a time
//! (issue 15 item 6; `.cargo/test-runner.sh`): a producer's `record()` never blocking 50 ms
//! (journal_stall), a PBX write never blocking Asterisk's 100 ms `writetimeout` (ami_faults,
//! e2e_journal_stall, e2e_link_never_waits), reconnect spacing and 300 ms ping deadlines
//! (ami_reconnect_policy, link_policy_binary), and the write-cost probe (journal_cost, ignored
//! unless asked). In the integration binary other tests' browsers and boxes would share the
//! CPU with them; here nothing else in the process runs meanwhile. Each `tests/NAME.rs` is the
//! module `NAME`: `cargo test --release --test timing -- NAME::` runs one file's tests.

// The shared support, declared once for every file below (which says `use crate::NAME;`).
mod cli_support;
mod journal_common;
mod support;

// The test files, one module each.
mod ami_faults;
mod ami_reconnect_policy;
mod e2e_journal_stall;
mod e2e_link_never_waits;
mod journal_cost;
mod journal_stall;
mod link_policy_binary;
