#!/usr/bin/env bash
# End-to-end run of a cross-built cdrbox under qemu-user: `--version`, then sim-pbx → run →
# export, and the export must hold every call the simulated PBX made.
#
#   image/qemu-user-e2e.sh aarch64 [CALLS]    # default 20 calls, about 30 s
#   image/qemu-user-e2e.sh armv7   [CALLS]
#
# Everything listens on 127.0.0.1 only, in a temporary directory that is removed afterwards.
#
# Why seed 25 and rate 1: the simulated PBX generates calls from the moment it starts, and AMI
# has no replay, so a call made before the logger has logged in is lost by design. With Poisson
# arrivals the first gap can be near zero; the generator's gaps are a pure function of the seed,
# and seed 25's first gap is 5.33 / rate (then 0.05, 1.42, …) — 5.3 s at one call per second,
# far more than the logger needs to start and log in even under emulation. The script checks
# that the login really came first (from the logger's own "logged in" line), so a slow machine
# fails loudly instead of silently counting fewer calls.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-aarch64}
calls=${2:-20}
case "$arch" in
  aarch64) triple=aarch64-unknown-linux-gnu; qemu=qemu-aarch64-static; sysroot=/usr/aarch64-linux-gnu ;;
  armv7)   triple=armv7-unknown-linux-gnueabihf; qemu=qemu-arm-static; sysroot=/usr/arm-linux-gnueabihf ;;
  *) echo "usage: $0 aarch64|armv7 [CALLS]" >&2; exit 2 ;;
esac
bin="target/$triple/release/cdrbox"
[ -x "$bin" ] || { echo "e2e: $bin missing; run image/cross-build.sh $arch first" >&2; exit 1; }
command -v "$qemu" >/dev/null || { echo "e2e: $qemu missing (apt-get install qemu-user-static)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "e2e: python3 missing" >&2; exit 1; }

# The loader and libc must come from the same glibc build. -L alone is not enough: the cross
# loader (libc6-*-cross) reads the host's /etc/ld.so.cache, which points at the multiarch
# libc6:arm64 that libstd-rust-web-dev:arm64 pulls in (a different 2.36 build); mixing the two
# makes every pthread_create spin forever. LD_LIBRARY_PATH pins the libs to the sysroot's.
Q=("$qemu" -L "$sysroot" -E "LD_LIBRARY_PATH=$sysroot/lib" "$bin")
# Not a shell function for the background processes: `func &` forks a subshell, and $! (the
# process SIGTERM goes to) would be that shell, not cdrbox.
run() { "${Q[@]}" "$@"; }
tmp=$(mktemp -d /tmp/cdrbox-e2e.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "e2e FAIL: $*" >&2; echo "--- sim log" >&2; cat "$tmp/sim.log" >&2 || true; echo "--- logger log" >&2; tail -40 "$tmp/run.log" >&2 || true; exit 1; }

t_start=$(date +%s)
echo "== $bin --version (under $qemu)"
version=$(run --version) || fail "--version did not run"
echo "$version"
case "$version" in "cdrbox "*) ;; *) fail "unexpected --version output: $version" ;; esac

rate=1
seed=25
echo "== sim-pbx: $calls calls, rate $rate/s, seed $seed, on 127.0.0.1"
"${Q[@]}" sim-pbx --listen 127.0.0.1:0 --username e2e --secret e2e-secret \
  --rate "$rate" --calls "$calls" --seed "$seed" > "$tmp/sim.log" 2>&1 &
pids+=($!)
sim_started=$(date +%s.%N)
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/^sim-pbx: AMI on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/sim.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "sim-pbx did not report its port"

# The oracle: an independent AMI client (native python) that sees every CDR the PBX sends.
python3 image/ami-watch.py 127.0.0.1 "$port" e2e e2e-secret "$calls" "$tmp/seen.tsv" \
  $(( 60 + 3 * calls / rate )) > "$tmp/watch.log" 2>&1 &
watcher=$!
pids+=($watcher)

mkdir -p "$tmp/data" "$tmp/media"
: > "$tmp/mounts"
cat > "$tmp/cdrbox.toml" <<TOML
[box]
name = "e2e"

[[pbx]]
name = "sim"
host = "127.0.0.1"
port = $port
username = "e2e"
secret = "e2e-secret"
auth = "md5"
timezone = "Europe/Moscow"

[storage]
path = "$tmp/data"
flush_interval_ms = 1000

[web]
listen = "127.0.0.1:0"

[display]
driver = "none"

[usb]
mount_root = "$tmp/media"
mounts_file = "$tmp/mounts"
TOML
run check-config --config "$tmp/cdrbox.toml" >/dev/null || fail "check-config refused the test config"

echo "== run (logger), AMI 127.0.0.1:$port"
RUST_LOG=info "${Q[@]}" run --config "$tmp/cdrbox.toml" > "$tmp/run.log" 2>&1 &
logger=$!
pids+=($logger)
for _ in $(seq 1 150); do
  grep -q "logged in" "$tmp/run.log" && break
  kill -0 "$logger" 2>/dev/null || fail "the logger exited"
  sleep 0.1
done
grep -q "logged in" "$tmp/run.log" || fail "the logger did not log in within 15 s"
login_after=$(python3 -c "import time; print(f'{time.time() - $sim_started:.1f}')")
first_call=$(python3 -c "print(f'{5.33 / $rate:.1f}')")
echo "   logged in ${login_after} s after the PBX started (its first call is due at ${first_call} s)"
python3 -c "import sys; sys.exit(0 if $login_after < $first_call else 1)" ||
  fail "logged in after the first call was made (too slow a machine for this timing)"

grep -q "logged in" "$tmp/watch.log" || fail "the oracle AMI client did not log in: $(cat "$tmp/watch.log")"

echo "== waiting for the PBX's $calls calls (the oracle stops after the last one)"
wait "$watcher" || fail "oracle: $(cat "$tmp/watch.log")"
pids=("${pids[@]/$watcher}")
expected=$(grep -c . "$tmp/seen.tsv")
echo "   the PBX sent $expected CDRs for $calls calls"
# The logger has them once they are durable (export reads the ring too); give it a moment.
got=0
for _ in $(seq 1 30); do
  got=$(run export --config "$tmp/cdrbox.toml" --format ndjson 2>/dev/null | grep -c . || true)
  [ "$got" -ge "$expected" ] && break
  kill -0 "$logger" 2>/dev/null || fail "the logger exited while recording"
  sleep 1
done
echo "   $got of $expected CDRs visible while the logger runs"

echo "== SIGTERM → final commit"
kill -TERM "$logger"
wait "$logger" || fail "the logger exited with status $? after SIGTERM"
pids=("${pids[@]/$logger}")
grep -q "stopping" "$tmp/run.log" || fail "no 'stopping' line: SIGTERM was not handled"

echo "== export --format json"
run export --config "$tmp/cdrbox.toml" --format json > "$tmp/export.json" || fail "export failed"
python3 - "$tmp/export.json" "$tmp/seen.tsv" "$calls" <<'PY' || fail "export check failed"
import collections, json, sys
records = json.load(open(sys.argv[1], encoding="utf-8"))
seen = [l.rstrip("\n").split("\t") for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
want = collections.Counter((u, s) for _, u, s in seen)
got = collections.Counter((r["uniqueId"], "" if r.get("sequence") is None else str(r["sequence"])) for r in records)
missing, extra = want - got, got - want
assert not missing, f"{sum(missing.values())} CDRs the PBX sent are not in the export: {list(missing)[:5]}"
assert not extra, f"{sum(extra.values())} exported records the PBX never sent (or duplicates): {list(extra)[:5]}"
calls = len({l for l, _, _ in seen})
assert calls == int(sys.argv[3]), f"the oracle saw {calls} calls, expected {sys.argv[3]}"
assert all(r["pbx"] == "sim" for r in records), "a record without pbx=sim"
print(f"   export == what the PBX sent: {len(records)} CDRs of {calls} calls, no duplicates")
PY
echo "e2e PASS: $arch: every CDR recorded ($expected CDRs, $calls calls), $(( $(date +%s) - t_start )) s"
