#!/usr/bin/env bash
# Stage 1 of the SD image: a Debian bookworm arm64 base root file system (no cdrbox yet), built
# with mmdebstrap through qemu-user binfmt and cached as a tarball, because it is the slow part.
#
#   image/build-rootfs.sh            # → $CACHE/rootfs-base-<key>.tar (reused when it exists)
#
# The cache key hashes the package list, the initramfs settings and this script, so editing any
# of them builds a new base. Set CDRBOX_MIRROR to a snapshot.debian.org URL (and SOURCE_DATE_EPOCH
# is taken from the last commit) for a bit-for-bit repeatable base; the default mirror gives the
# same package set with whatever versions are current.
#
# Needs root (mmdebstrap's root mode chroots; no loop devices, no mounts except binfmt_misc).
# It must not: touch anything outside $CACHE, or leave the binfmt registration it added.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap root mode)"
apt_need mmdebstrap qemu-user-static arch-test ca-certificates

mirror=${CDRBOX_MIRROR:-http://deb.debian.org/debian}
security=${CDRBOX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
key=$(cat "$here/rootfs/packages.txt" "$here/rootfs/initramfs-modules.conf" \
          "$here/rootfs/initramfs-hook" "$0" | sha256sum | cut -c1-12)
out=$CACHE/rootfs-base-$key.tar
mkdir -p "$CACHE/logs"
if [ -s "$out" ]; then
  log "base rootfs cached: $out"
  echo "$out"
  exit 0
fi

pkgs=$(grep -v '^\s*#' "$here/rootfs/packages.txt" | grep -v '^\s*$' | paste -sd, -)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}

binfmt_aarch64_on
trap binfmt_aarch64_off EXIT

log "mmdebstrap bookworm arm64 (log: $CACHE/logs/mmdebstrap.log)"
start=$(date +%s)
# setup-hook: the initramfs settings go in before linux-image-arm64 is unpacked, so its
# update-initramfs runs already use MODULES=list (with MODULES=most those two runs under
# qemu-user were almost all of a 35-minute build).
# dpkg path-exclude: man pages, translations and docs are of no use on a headless box.
mmdebstrap --variant=minbase --architectures=arm64 --format=tar \
  --components="main non-free-firmware" \
  --include="$pkgs" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-include=/usr/share/doc/cdrbox/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"' \
  --setup-hook="cp '$here/rootfs/initramfs-modules.conf' \"\$1/etc/initramfs-tools/conf.d/cdrbox\"" \
  --setup-hook="install -m 755 '$here/rootfs/initramfs-hook' \"\$1/etc/initramfs-tools/hooks/cdrbox-modules\"" \
  --customize-hook='rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id"; : > "$1/etc/machine-id"' \
  bookworm "$CACHE/partial-$key.tar" \
  "deb $mirror bookworm main non-free-firmware" \
  "deb $mirror bookworm-updates main non-free-firmware" \
  "deb $security bookworm-security main non-free-firmware" \
  > "$CACHE/logs/mmdebstrap.log" 2>&1 || { tail -30 "$CACHE/logs/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
mv "$CACHE/partial-$key.tar" "$out"
log "base rootfs built in $(( $(date +%s) - start )) s: $out ($(du -h "$out" | cut -f1))"
echo "$out"
