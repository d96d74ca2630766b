#!/usr/bin/env bash
# Install, upgrade, remove and purge the arm64 .deb in a throwaway Debian bookworm arm64 root
# (the image's cached base rootfs, image/build-rootfs.sh), under qemu-user. Checks the
# maintainer scripts' effects: user, directories and owners, the enabled unit, config kept on
# remove, everything gone on purge. (systemd is not running in a chroot: nothing is started.)
#
#   image/deb-test.sh [DEB]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (chroot)"
deb=${1:-$(ls -t "$repo"/target/aarch64-unknown-linux-gnu/debian/cdrbox_*_arm64.deb 2>/dev/null | head -1)}
[ -s "$deb" ] || die "no .deb (image/build-deb.sh)"
base=$("$here/build-rootfs.sh" | tail -1)
t0=$(date +%s)
root=$(mktemp -d /var/tmp/cdrbox-debtest.XXXXXX)
binfmt_aarch64_on
trap 'binfmt_aarch64_off; rm -rf "$root"' EXIT
tar -C "$root" --numeric-owner -xpf "$base"
cp "$deb" "$root/tmp/cdrbox.deb"
inroot() { chroot "$root" "$@"; }
ok() { echo "  ok: $*"; }
no() { echo "  FAIL: $*" >&2; exit 1; }

echo "== dpkg -i (fresh install)"
inroot dpkg -i /tmp/cdrbox.deb
inroot id cdrbox | grep -q '(i2c)' && ok "user cdrbox in group i2c" || no "user cdrbox / group i2c"
[ "$(inroot stat -c '%U:%G %a' /var/lib/cdrbox)" = "cdrbox:cdrbox 750" ] && ok "/var/lib/cdrbox cdrbox:cdrbox 750" || no "/var/lib/cdrbox: $(inroot stat -c '%U:%G %a' /var/lib/cdrbox)"
[ "$(inroot stat -c '%U:%G %a' /etc/cdrbox/cdrbox.toml)" = "cdrbox:cdrbox 640" ] && ok "config cdrbox:cdrbox 640" || no "config: $(inroot stat -c '%U:%G %a' /etc/cdrbox/cdrbox.toml)"
[ -L "$root/etc/systemd/system/multi-user.target.wants/cdrbox.service" ] && ok "cdrbox.service enabled" || no "not enabled"
inroot cdrbox check-config --config /etc/cdrbox/cdrbox.toml >/dev/null && ok "packaged config is valid" || no "packaged config invalid"
inroot systemd-analyze verify --man=no /lib/systemd/system/cdrbox.service 2>&1 | grep -v -e 'Failed to .* bus' -e 'mount point' || true

echo "== upgrade to a newer version (the same .deb repacked as <version>+1), config edited by the admin"
ver=$(dpkg-deb --field "$deb" Version)
rm -rf "$root/tmp/up" && dpkg-deb -R "$deb" "$root/tmp/up"
sed -i "s/^Version: .*/Version: ${ver}+upgrade1/" "$root/tmp/up/DEBIAN/control"
dpkg-deb -b --root-owner-group "$root/tmp/up" "$root/tmp/cdrbox-up.deb" >/dev/null
echo '# admin edit' >> "$root/etc/cdrbox/cdrbox.toml"
inroot mkdir -p /var/lib/cdrbox/keep && inroot touch /var/lib/cdrbox/keep/journal.sqlite
inroot dpkg -i --force-confold /tmp/cdrbox-up.deb
[ "$(inroot dpkg-query -W -f='${Version}' cdrbox)" = "${ver}+upgrade1" ] && ok "upgraded to ${ver}+upgrade1" || no "version after upgrade"
[ "$(inroot stat -c '%U:%G %a' /etc/cdrbox/cdrbox.toml)" = "cdrbox:cdrbox 640" ] && ok "config owner kept" || no "config owner after upgrade"
grep -q '# admin edit' "$root/etc/cdrbox/cdrbox.toml" && ok "edited config kept" || no "config overwritten"
[ -e "$root/var/lib/cdrbox/keep/journal.sqlite" ] && ok "journal kept" || no "journal lost on upgrade"

echo "== dpkg -r (remove)"
inroot dpkg -r cdrbox
[ ! -e "$root/usr/bin/cdrbox" ] && ok "binary removed" || no "binary left"
[ -e "$root/etc/cdrbox/cdrbox.toml" ] && [ -e "$root/var/lib/cdrbox/keep/journal.sqlite" ] && ok "config and journal kept on remove" || no "remove deleted data"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/cdrbox.service" ] && ok "unit disabled" || no "unit still enabled"

echo "== dpkg -P (purge)"
inroot dpkg -P cdrbox
[ ! -e "$root/etc/cdrbox" ] && [ ! -e "$root/var/lib/cdrbox" ] && ok "config and journal deleted on purge" || no "purge left files"
inroot dpkg -s cdrbox >/dev/null 2>&1 && no "still known to dpkg" || ok "package gone"
echo "deb-test PASS ($(( $(date +%s) - t0 )) s)"
