#!/usr/bin/env bash
# Stage 2 of the SD image: base rootfs (stage 1, cached) + our .deb + the overlay → a read-only
# root, a data partition and the Pi boot partition, assembled into one sdcard.img. No loop
# devices, no mounts: FAT is written with mtools, ext4 with `mkfs.ext4 -d`, the partition
# table with sfdisk on a plain file.
#
#   image/build-image.sh            # → $CACHE/out/cdrbox-sdcard.img (+ vmlinuz, initrd.img for QEMU)
#
# Needs root (chroot to run the .deb's postinst under qemu-user, and to keep file owners).
# Inputs: target/aarch64-unknown-linux-gnu/debian/cdrbox_*_arm64.deb (image/build-deb.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (chroot, file owners)"
apt_need mtools dosfstools fdisk e2fsprogs qemu-user-static
t0=$(date +%s)

deb=$(ls -t "$repo"/target/aarch64-unknown-linux-gnu/debian/cdrbox_*_arm64.deb 2>/dev/null | head -1 || true)
[ -n "$deb" ] || die "no arm64 .deb: run image/cross-build.sh aarch64 && image/build-deb.sh first"
base=$("$here/build-rootfs.sh" | tail -1)
[ -s "$base" ] || die "stage 1 gave no tarball"

# Sizes (MiB). The data partition is grown to the card's size at first boot.
BOOT_MB=${BOOT_MB:-256}
DATA_MB=${DATA_MB:-256}
OFFSET_MB=4   # the first partition starts at 4 MiB: aligned to the cards' erase blocks

work=$CACHE/work
out=$CACHE/out
rm -rf "$work"
mkdir -p "$work/rootfs" "$work/data" "$out"
root=$work/rootfs
log "extract $base"
tar -C "$root" --numeric-owner -xpf "$base"

binfmt_aarch64_on
trap binfmt_aarch64_off EXIT

log "install $(basename "$deb")"
cp "$deb" "$root/tmp/cdrbox.deb"
chroot "$root" dpkg -i /tmp/cdrbox.deb > "$CACHE/logs/dpkg-i.log" 2>&1 || { cat "$CACHE/logs/dpkg-i.log" >&2; die "dpkg -i failed in the image"; }
rm -f "$root/tmp/cdrbox.deb"
chroot "$root" /usr/bin/cdrbox --version

log "overlay and board files"
cp -a "$here/overlay/." "$root/"
# The initramfs settings as in the repository (stage 1 put them in before the kernel).
install -m 644 "$here/rootfs/initramfs-modules.conf" "$root/etc/initramfs-tools/conf.d/cdrbox"
install -D -m 644 "$repo/board/systemd/journald-volatile.conf" "$root/etc/systemd/journald.conf.d/10-cdrbox-volatile.conf"
install -D -m 644 "$repo/board/systemd/watchdog.conf" "$root/etc/systemd/system.conf.d/10-cdrbox-watchdog.conf"
cat "$here/rootfs/raspi-firmware.defaults" >> "$root/etc/default/raspi-firmware"
# raspi-firmware appends this file to the config.txt it writes.
install -m 644 "$repo/board/config.txt" "$root/etc/default/raspi-firmware-custom"
chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service \
  systemd-timesyncd.service cdrbox.service cdrbox-growdata.service >/dev/null 2>&1
# Nothing may write to the read-only root on a timer: apt's daily jobs have no use on an
# appliance that is updated by replacing the image.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1
# No password login on the console or anywhere: the box is run from its web page.
chroot "$root" passwd -l root >/dev/null
if [ -n "${CDRBOX_ROOT_PASSWORD:-}" ]; then
  log "setting a root password (CDRBOX_ROOT_PASSWORD): for development images only"
  echo "root:$CDRBOX_ROOT_PASSWORD" | chroot "$root" chpasswd
fi
# systemd-resolved's stub resolver (its postinst made the link; keep it explicit).
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

log "Pi boot files (raspi-firmware hooks: kernel, initrd, DTBs, config.txt, cmdline.txt)"
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
# The hook only acts for "configure" (it reads the maintainer-script arguments from the env),
# and refuses to run unless /boot/firmware is a mount point or `ischroot` says "chroot" — which
# ischroot cannot tell without /proc (we mount nothing), so a shim answers for it.
mkdir -p "$root/tmp/shim"
printf '#!/bin/sh\nexit 0\n' > "$root/tmp/shim/ischroot"
chmod 755 "$root/tmp/shim/ischroot"
PATH=/tmp/shim:/usr/sbin:/usr/bin:/sbin:/bin DEB_MAINT_PARAMS=configure \
  chroot "$root" /etc/kernel/postinst.d/z50-raspi-firmware "$kver" > "$CACHE/logs/raspi-firmware.log" 2>&1 \
  || { cat "$CACHE/logs/raspi-firmware.log" >&2; die "raspi-firmware hook failed"; }
rm -rf "$root/tmp/shim"
grep -q "root=LABEL=CDRROOT" "$root/boot/firmware/cmdline.txt" || die "cmdline.txt lacks root=LABEL=CDRROOT: $(cat "$root/boot/firmware/cmdline.txt")"
cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$out/initrd.img"

log "split: data partition (journal, config, systemd state) and empty mount points on the root"
mkdir -p "$work/data/cdrbox" "$work/data/etc-cdrbox" "$work/data/var-lib-systemd"
mv "$root/var/lib/cdrbox/." "$work/data/cdrbox/" 2>/dev/null || true
for d in cdrbox:var/lib/cdrbox etc-cdrbox:etc/cdrbox var-lib-systemd:var/lib/systemd; do
  src=$root/${d#*:}; dst=$work/data/${d%%:*}
  cp -a "$src/." "$dst/"
  chown --reference="$src" "$dst"; chmod --reference="$src" "$dst"
  find "$src" -mindepth 1 -delete
done
mkdir -p "$root/data" "$root/media/cdrbox"
# Boot files go to the FAT partition; /boot/firmware stays as its (empty) mount point.
mkdir -p "$work/boot"
cp -a "$root/boot/firmware/." "$work/boot/"
find "$root/boot/firmware" -mindepth 1 -delete
# Nothing of the build may remain.
rm -rf "$root/var/cache/apt/"*.bin "$root/var/lib/apt/lists/"* "$root/tmp/"* "$root/var/tmp/"*
: > "$root/etc/machine-id"

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
# Fixed IDs from the commit time: the same inputs give the same file system UUIDs.
uuid() { printf '%s' "$1-$SOURCE_DATE_EPOCH" | sha256sum | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/'; }

# Clamp every timestamp the build itself made (dpkg, hooks, our copies) to SOURCE_DATE_EPOCH.
for d in "$root" "$work/data" "$work/boot"; do
  find "$d" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"
done

log "boot.vfat (${BOOT_MB} MiB, mtools)"
rm -f "$work/boot.vfat"
mkfs.vfat -C -F 32 -n CDRBOOT -i "$(printf '%08x' "$SOURCE_DATE_EPOCH" | cut -c1-8)" "$work/boot.vfat" $((BOOT_MB * 1024)) >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$work/boot.vfat" "$work/boot/"* ::/

root_mb=$(( $(du -sm "$root" | cut -f1) * 130 / 100 + 64 ))
log "root.ext4 (${root_mb} MiB, mkfs.ext4 -d)"
rm -f "$work/root.ext4" "$work/data.ext4"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -L CDRROOT -U "$(uuid root)" -E "hash_seed=$(uuid roothash)" \
  -d "$root" "$work/root.ext4" "${root_mb}M"
log "data.ext4 (${DATA_MB} MiB, grown to the card at first boot)"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -L CDRDATA -U "$(uuid data)" -E "hash_seed=$(uuid datahash)" \
  -d "$work/data" "$work/data.ext4" "${DATA_MB}M"

img=$out/cdrbox-sdcard.img
total_mb=$((OFFSET_MB + BOOT_MB + root_mb + DATA_MB))
log "sdcard.img (${total_mb} MiB, MBR: boot FAT32 | root ext4 | data ext4)"
rm -f "$img"
truncate -s "${total_mb}M" "$img"
# MBR, not GPT: the Pi 3 boot ROM reads only MBR. Partition 1 type c (FAT32 LBA), bootable.
sfdisk -q --no-reread --no-tell-kernel "$img" <<SFDISK
label: dos
label-id: 0x$(printf '%08x' "$SOURCE_DATE_EPOCH" | cut -c1-8)
unit: sectors

start=$((OFFSET_MB * 2048)), size=$((BOOT_MB * 2048)), type=c, bootable
start=$(((OFFSET_MB + BOOT_MB) * 2048)), size=$((root_mb * 2048)), type=83
start=$(((OFFSET_MB + BOOT_MB + root_mb) * 2048)), size=$((DATA_MB * 2048)), type=83
SFDISK
dd if="$work/boot.vfat" of="$img" bs=1M seek=$OFFSET_MB conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$img" bs=1M seek=$((OFFSET_MB + BOOT_MB)) conv=notrunc,sparse status=none
dd if="$work/data.ext4" of="$img" bs=1M seek=$((OFFSET_MB + BOOT_MB + root_mb)) conv=notrunc,sparse status=none
sfdisk -l "$img" | sed 's/^/    /' >&2
( cd "$out" && sha256sum "$(basename "$img")" > "$(basename "$img").sha256" )
if [ "${CDRBOX_COMPRESS:-0}" = 1 ]; then
  log "xz (CDRBOX_COMPRESS=1)"
  xz -T0 -6 -k -f "$img"
fi
log "image built in $(( $(date +%s) - t0 )) s: $img ($(du -h --apparent-size "$img" | cut -f1), $(du -h "$img" | cut -f1) on disk)"
