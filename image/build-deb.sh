#!/usr/bin/env bash
# Packages the cross-built binary as a .deb with cargo-deb (metadata: [package.metadata.deb] in
# Cargo.toml; maintainer scripts: board/debian/).
#
#   image/build-deb.sh [aarch64|armv7]   # default aarch64 → target/<triple>/debian/cdrbox_<ver>-1_<arch>.deb
#
# --no-build: the binary comes from image/cross-build.sh (Debian's cross toolchain); cargo-deb
# only collects the files. Installs cargo-deb with `cargo install --locked` when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-aarch64}
case "$arch" in
  aarch64) triple=aarch64-unknown-linux-gnu; strip=aarch64-linux-gnu-strip ;;
  armv7)   triple=armv7-unknown-linux-gnueabihf; strip=arm-linux-gnueabihf-strip ;;
  *) echo "usage: $0 aarch64|armv7" >&2; exit 2 ;;
esac
[ -x "target/$triple/release/cdrbox" ] || { echo "build-deb: run image/cross-build.sh $arch first" >&2; exit 1; }
if ! cargo deb --version >/dev/null 2>&1; then
  echo "build-deb: installing cargo-deb (cargo install cargo-deb --locked)" >&2
  cargo install cargo-deb --locked --quiet
fi
# cargo-deb strips with the target's strip when told where it is.
export "CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_STRIP=$strip"
cargo deb --no-build --target "$triple" --locked
deb=$(ls -t "target/$triple/debian/"cdrbox_*.deb | head -1)
echo "build-deb: $deb ($(stat -c %s "$deb") bytes)"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"
