#!/usr/bin/env bash
# Cross-compiles cdrbox for the Raspberry Pi without Docker, using Debian's own Rust toolchain.
#
#   image/cross-build.sh aarch64     # Pi 3/4/5, Zero 2 W, 64-bit OS  → target/aarch64-unknown-linux-gnu/release/cdrbox
#   image/cross-build.sh armv7       # Pi 2/3/4, 32-bit OS            → target/armv7-unknown-linux-gnueabihf/release/cdrbox
#
# Why Debian's rustc-web and not rustup: rustup cannot download extra targets here, while Debian
# ships the aarch64 standard library as a package (libstd-rust-web-dev:arm64). For armv7 the armhf
# std package may not install (a mirror index fails its size check), so std is built from
# rust-web-src with -Zbuild-std; RUSTC_BOOTSTRAP=1 unlocks that one nightly flag on the stable
# compiler (it changes nothing else).
#
# Needs root for apt-get (skipped when the tools are already there). Leaves the binary at
# target/<triple>/release/cdrbox and prints its stripped size.
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${1:-}"
case "$arch" in
  aarch64) triple=aarch64-unknown-linux-gnu; gcc=aarch64-linux-gnu-gcc; strip=aarch64-linux-gnu-strip ;;
  armv7)   triple=armv7-unknown-linux-gnueabihf; gcc=arm-linux-gnueabihf-gcc; strip=arm-linux-gnueabihf-strip ;;
  *) echo "usage: $0 aarch64|armv7" >&2; exit 2 ;;
esac

need_install() {
  for b in /usr/bin/rustc /usr/bin/cargo "/usr/bin/$gcc"; do [ -x "$b" ] || return 0; done
  if [ "$arch" = aarch64 ]; then
    [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] || return 0
    command -v qemu-aarch64-static >/dev/null || return 0
  else
    [ -d /usr/lib/rustlib/src/rust/library ] || return 0
    command -v qemu-arm-static >/dev/null || return 0
  fi
  return 1
}

if need_install; then
  if [ "$(id -u)" != 0 ]; then
    echo "cross-build: missing Debian cross tools and not root; run as root once" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$arch" = aarch64 ]; then
    dpkg --add-architecture arm64
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends rustc-web cargo-web libstd-rust-web-dev:arm64 \
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-user-static >/dev/null
  else
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends rustc-web cargo-web rust-web-src \
      gcc-arm-linux-gnueabihf libc6-dev-armhf-cross binutils-arm-linux-gnueabihf qemu-user-static >/dev/null
  fi
fi

# Debian's toolchain, not rustup's: put /usr/bin first and name rustc explicitly.
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc
upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${upper}_LINKER=$gcc"
export "CC_${triple//-/_}=$gcc"
# rustc-web may be older than the rustup toolchain the lock file was resolved with; the
# manifest's rust-version is the floor it must meet.
/usr/bin/rustc --version

# The shipped binary: thin LTO and 4 codegen units (smaller and faster on the Pi). Cargo.toml's
# release profile leaves them off so the test suite rebuilds quickly on the host.
# CDRBOX_CROSS_FAST=1 (CI's appliance check, image/ci.sh): the same code without LTO and with 16
# codegen units, which builds in well under half the time; it proves the cross build, the
# binary under qemu and the .deb layout, not the shipped optimisation. Releases never set it.
if [ "${CDRBOX_CROSS_FAST:-0}" = 1 ]; then
  echo "cross-build: CDRBOX_CROSS_FAST=1 — no LTO, 16 codegen units (a CI build, not for shipping)"
  export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_INCREMENTAL=false
else
  export CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=4 \
    CARGO_PROFILE_RELEASE_INCREMENTAL=false
fi

start=$(date +%s)
if [ "$arch" = aarch64 ]; then
  /usr/bin/cargo build --release --locked --target "$triple" --bin cdrbox
else
  RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --release --locked --target "$triple" --bin cdrbox \
    -Zbuild-std=std,panic_abort
fi
end=$(date +%s)

bin="target/$triple/release/cdrbox"
stripped=$(mktemp)
"$strip" -o "$stripped" "$bin"
echo "cross-build: $bin built in $((end - start)) s; stripped size $(stat -c %s "$stripped") bytes"
rm -f "$stripped"
