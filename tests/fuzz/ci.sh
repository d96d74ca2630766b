#!/usr/bin/env bash
# Short fuzz run for CI (issue 7): every target for FUZZ_SECONDS (default 20) from corpora seeded
# with the real captures. A crash fails CI; the crashing input is left in
# tests/fuzz/artifacts/<target>/ (add it to tests/fuzz/seeds/ and tests/fuzz_regressions.rs).
# The documented long run (300 s per target) and its results are in tests/fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${FUZZ_SECONDS:-20}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
bash tests/fuzz/gen-corpus.sh
log=$(mktemp)
# All targets in one cargo invocation (dependencies once, links in parallel); each `fuzz run`
# below then finds its binary built with the same flags and starts at once.
echo "== fuzz: build every target"
if ! cargo +nightly fuzz build --fuzz-dir tests/fuzz -O > "$log" 2>&1; then
  tail -60 "$log"
  exit 1
fi
for t in ami_decoder ami_session config_parse export_roundtrip timearg web_query web_gate; do
  echo "== fuzz $t for ${secs} s"
  if ! cargo +nightly fuzz run --fuzz-dir tests/fuzz -O "$t" "tests/fuzz/corpus/$t" -- \
      -max_total_time="$secs" > "$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz: $t FAILED (input in tests/fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log" || tail -3 "$log"
done
rm -f "$log"
