#!/usr/bin/env bash
# The appliance part of CI (called from .ci/run): cross-build the aarch64 binary with Debian's
# toolchain, run it under qemu-aarch64-static end to end (sim-pbx → run → export: every CDR the
# PBX sent must be in the export), and package the .deb with cargo-deb --no-build.
# Installs what it needs itself (apt-get; cargo install cargo-deb --locked). Most of its time is
# the cross build, made without LTO here (CDRBOX_CROSS_FAST, see cross-build.sh).
#
# The SD image and its QEMU boot test take longer (first base rootfs ~10+ min, image ~2 min,
# boot test ~5 min); they run only with CDRBOX_CI_IMAGE=1 (image/README.md has the numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=never
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # python3: the e2e oracle and JSON check; dpkg-dev: dpkg-deb is in dpkg already.
  missing=$(for p in python3 qemu-user-static; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"; done)
  if [ -n "$missing" ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; fi
fi

# Without LTO unless the full image path runs (a release check): the thin-LTO link is the
# slowest part of this step and proves nothing the qemu run and the .deb checks below need.
if [ "${CDRBOX_CI_IMAGE:-0}" != 1 ]; then export CDRBOX_CROSS_FAST=1; fi
step "cross-build aarch64 (Debian rustc-web + gcc-aarch64-linux-gnu)"
image/cross-build.sh aarch64
step "qemu-user end-to-end (sim-pbx → run → export)"
image/qemu-user-e2e.sh aarch64 20
step ".deb (cargo-deb --no-build)"
image/build-deb.sh aarch64 > /tmp/cdrbox-deb.txt
head -1 /tmp/cdrbox-deb.txt
deb=$(ls -t target/aarch64-unknown-linux-gnu/debian/cdrbox_*_arm64.deb | head -1)
# Read each listing once into a file: `dpkg-deb … | grep -q` would SIGPIPE dpkg-deb under pipefail.
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/cdrbox ./lib/systemd/system/cdrbox.service ./etc/cdrbox/cdrbox.toml \
         ./usr/lib/sysusers.d/cdrbox.conf ./usr/lib/tmpfiles.d/cdrbox.conf \
         ./lib/udev/rules.d/70-cdrbox-usb.rules ./usr/lib/cdrbox/cdrbox-usb-mount; do
  grep -q " $f\$" <<<"$contents" || { echo "ci: $f missing from $deb" >&2; exit 1; }
done
dpkg-deb --field "$deb" Architecture | grep -qx arm64 || { echo "ci: $deb is not arm64" >&2; exit 1; }
ctrl=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)
grep -q postinst <<<"$ctrl" || { echo "ci: no postinst in $deb" >&2; exit 1; }
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/cdrbox > /tmp/cdrbox-deb-bin
file_arch=$(head -c 20 /tmp/cdrbox-deb-bin | od -An -tx1 | tr -d ' \n')
rm -f /tmp/cdrbox-deb-bin
[ "${file_arch:36:4}" = "b700" ] || { echo "ci: /usr/bin/cdrbox in the .deb is not an aarch64 ELF" >&2; exit 1; }
echo "   $deb: arm64, binary aarch64, unit/config/sysusers/tmpfiles/udev/usb helper present"

if [ "${CDRBOX_CI_IMAGE:-0}" = 1 ]; then
  step "deb install/upgrade/remove/purge in an arm64 chroot"
  image/deb-test.sh "$deb"
  step "SD image"
  image/build-image.sh
  step "QEMU boot test"
  image/boot-test.sh
fi
step "appliance CI done"
