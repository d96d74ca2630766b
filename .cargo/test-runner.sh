#!/bin/sh
# Cargo starts every host binary through this script (`runner` in .cargo/config.toml): the test
# binaries of `cargo test`, and `cargo run`. It only chooses how many tests a test binary runs
# at once, per binary, since cargo's [env] could set one RUST_TEST_THREADS for all of them and
# the harness's default is one per core (2 here). A RUST_TEST_THREADS or --test-threads the caller
# gives wins. Why each binary is separate: Cargo.toml, beside its [[test]] entry (issue 15 item 6).
case "${1##*/}" in
  # Most of its tests wait (timers, back-offs, child boxes, SMTP, MariaDB, PostgreSQL, a
  # browser), so running 8 at once overlaps the waits on 2 cores.
  integration-*) export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}" ;;
  # Tight timing bounds: one test at a time, nothing else in the process meanwhile.
  timing-*) export RUST_TEST_THREADS="${RUST_TEST_THREADS:-1}" ;;
esac
exec "$@"
