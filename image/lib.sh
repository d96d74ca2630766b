# image/lib.sh — shared helpers for the image scripts (sourced, never run). No side effects on load.

# Where big, never-committed artifacts live (rootfs tarball, partition images, the SD image).
CACHE=${CDRBOX_IMAGE_CACHE:-/var/cache/cdrbox-image}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Registers qemu-aarch64 with binfmt_misc so arm64 maintainer scripts run in the chroot. The "F"
# flag (fix binary) opens the interpreter now, so it works inside the chroot without copying
# qemu into it. Sets BINFMT_ADDED=1 when this call registered it (so the caller can undo it).
BINFMT_ADDED=0
binfmt_aarch64_on() {
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] || die "qemu-user-static is not installed"
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
    BINFMT_ADDED=1
  fi
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 binfmt lacks the F flag"
}
binfmt_aarch64_off() {
  if [ "$BINFMT_ADDED" = 1 ] && [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 || true
  fi
}

# apt-get install only what is missing (one dpkg query, no network when all is there).
apt_need() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]} and not root"
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
