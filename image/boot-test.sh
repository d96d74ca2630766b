#!/usr/bin/env bash
# Boot test of the SD image under qemu-system-aarch64 (machine "virt", Debian's arm64 kernel and
# initrd from the image, TCG emulation): the service starts, records every call of a simulated
# PBX started inside the guest, survives a watchdog restart, and the web page's port 80 is
# forwarded to the host's 127.0.0.1 only.
#
#   image/boot-test.sh [IMAGE]     # default $CACHE/out/cdrbox-sdcard.img; ~4-6 min on 2 cores
#
# The image is never modified: QEMU boots a sparse copy grown to 3 GiB (so the first-boot growth
# of the data partition is exercised too), deleted afterwards. The guest's test script comes on a
# second, read-only disk (label CDRTEST) and is started from the kernel command line
# (systemd.run=), so the image carries no test code. Guest network: QEMU user mode with
# restrict=on (no route to the host or the outside); only the forwarded port is reachable.
# romfile= : no PXE option ROM (it lives in the ipxe-qemu package and is never used here).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
apt_need qemu-system-arm e2fsprogs dosfstools curl python3

img=${1:-$CACHE/out/cdrbox-sdcard.img}
kernel=$(dirname "$img")/vmlinuz
initrd=$(dirname "$img")/initrd.img
for f in "$img" "$kernel" "$initrd"; do [ -s "$f" ] || die "missing $f (run image/build-image.sh)"; done
timeout_s=${BOOTTEST_TIMEOUT:-900}

tmp=$(mktemp -d /tmp/cdrbox-boottest.XXXXXX)
qemu_pid=
cleanup() { set +e; [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

log "copy of the image, grown to 3 GiB (sparse)"
cp --sparse=always "$img" "$tmp/disk.img"
truncate -s 3G "$tmp/disk.img"
mkdir -p "$tmp/testdisk"
install -m 755 "$here/boot-test/guest.sh" "$tmp/testdisk/guest.sh"
mkfs.ext4 -q -L CDRTEST -d "$tmp/testdisk" "$tmp/test.ext4" 8M
# A 64 MiB FAT32 USB stick (mtools: no mount needed), plugged into an xHCI controller.
mkfs.vfat -C -F 32 -n CDRSTICK "$tmp/stick.img" 65536 >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run="/bin/sh -c 'mkdir -p /run/boottest && mount -o ro LABEL=CDRTEST /run/boottest && exec /bin/bash /run/boottest/guest.sh'"
append="root=LABEL=CDRROOT ro rootwait console=ttyAMA0 \
systemd.unit=multi-user.target systemd.wants=kernel-command-line.service \
systemd.run=\"$run\" systemd.run_success_action=none systemd.run_failure_action=none"

log "qemu-system-aarch64 -M virt (TCG), web port 80 → 127.0.0.1:$port; serial log $tmp/serial.log"
start=$(date +%s)
qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 1024 \
  -display none -monitor none -serial "file:$tmp/serial.log" \
  -kernel "$kernel" -initrd "$initrd" -append "$append" \
  -drive "if=virtio,format=raw,file=$tmp/disk.img" \
  -drive "if=virtio,format=raw,readonly=on,file=$tmp/test.ext4" \
  -device qemu-xhci,id=xhci -drive "if=none,id=stick,format=raw,file=$tmp/stick.img" \
  -device usb-storage,bus=xhci.0,drive=stick \
  -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:80" \
  -device "virtio-net-pci,netdev=net0,romfile=" &
qemu_pid=$!

stamp() { echo "$(( $(date +%s) - start )) s"; }
seen_login=; seen_active=
while :; do
  [ "$(( $(date +%s) - start ))" -lt "$timeout_s" ] || { tail -60 "$tmp/serial.log" >&2; die "no result within $timeout_s s"; }
  kill -0 "$qemu_pid" 2>/dev/null || { tail -60 "$tmp/serial.log" >&2; die "QEMU exited"; }
  if [ -z "$seen_login" ] && grep -aq "cdrbox login:" "$tmp/serial.log" 2>/dev/null; then seen_login=1; log "login prompt after $(stamp)"; fi
  if [ -z "$seen_active" ] && grep -aq "BOOTTEST cdrbox.service" "$tmp/serial.log" 2>/dev/null; then seen_active=1; log "service checked after $(stamp)"; fi
  grep -aq "BOOTTEST RESULT" "$tmp/serial.log" 2>/dev/null && break
  sleep 2
done
result_after=$(stamp)
grep -a "BOOTTEST" "$tmp/serial.log" | tr -d '\r' | sed 's/^/    /' >&2

# The web page through the forwarded port: an unauthenticated visit is sent to the login /
# first-setup page, which must answer 200 (QEMU accepts on the host side even when nothing
# listens in the guest, so a dead page shows as an empty reply or a reset).
web_ok=0
if grep -aq "BOOTTEST web: nothing listens" "$tmp/serial.log"; then
  log "web: nothing listens on the guest's port 80"
else
  code=$(curl -sS -L -m 20 -o "$tmp/page.html" -w '%{http_code}' "http://127.0.0.1:$port/" || true)
  log "web: GET http://127.0.0.1:$port/ (following the redirect to the login page) → HTTP $code, $(wc -c < "$tmp/page.html" 2>/dev/null || echo 0) bytes"
  [ "$code" = 200 ] && grep -q "cdrbox" "$tmp/page.html" && web_ok=1
fi

kill "$qemu_pid" 2>/dev/null || true
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
if grep -aq "BOOTTEST RESULT PASS" "$tmp/serial.log" && [ "$web_ok" = 1 ]; then
  log "boot test PASS (result after $result_after; total $(stamp))"
else
  tail -80 "$tmp/serial.log" | tr -d '\r' >&2
  die "boot test FAILED (see above)"
fi
