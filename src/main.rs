//! The `cdrbox` binary (the CLI lands with the integration of the core modules).
fn main() {}
