#!/bin/bash
# rootfs.sh: print the path of a cached Debian 12 root file system for the
# appliance container, building it with debootstrap when it is missing or
# incomplete.
#
# The cache lives outside the clone, in $EDGECERT_CI_CACHE (default
# /var/cache/edgecert-ci), as rootfs-<hash>: the hash covers everything that
# shapes the tree (suite, variant, mirror, package list, this recipe's
# version), so a changed recipe builds a new directory instead of reusing a
# stale one. The tree is built under a temporary name and renamed; the marker
# rootfs-<hash>.complete is written last, and a directory without its marker
# is deleted and rebuilt. A lock serialises concurrent builders.
#
# The tree is booted with systemd-nspawn --volatile=overlay, so it is never
# modified by a test run and needs no copy per run.
#
# Needs root. Cold: ~60-100 s (network bound). Warm: instant.
set -euo pipefail

cache=${EDGECERT_CI_CACHE:-/var/cache/edgecert-ci}
mirror=${EDGECERT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
variant=minbase
packages=systemd,systemd-sysv,dbus,curl,ca-certificates,openssh-server,sudo,iproute2
# Bump when the customisation below changes.
recipe=2

log() { printf 'rootfs: %s\n' "$*" >&2; }

hash=$(printf '%s\n' "$suite" "$variant" "$mirror" "$packages" "$recipe" | sha256sum | cut -c1-16)
dir=$cache/rootfs-$hash
marker=$dir.complete

mkdir -p "$cache"
exec 9>"$cache/rootfs.lock"
if ! flock -w 900 9; then
	log "timed out waiting for $cache/rootfs.lock"
	exit 1
fi

if [ -f "$marker" ] && [ -x "$dir/usr/lib/systemd/systemd" ] && [ -x "$dir/usr/sbin/sshd" ]; then
	log "cached: $dir"
	echo "$dir"
	exit 0
fi

log "building $dir ($suite $variant + $packages from $mirror)"
rm -rf "$dir" "$marker" "$dir".tmp.*
tmp=$dir.tmp.$$
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
debootstrap --variant="$variant" --include="$packages" "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1 || {
	tail -n 30 "$tmp.log" >&2
	rm -f "$tmp.log"
	exit 1
}
rm -f "$tmp.log"
log "debootstrap took $((SECONDS - start))s"

# Customisation, the same for every run (per-run settings such as the SSH
# key and port are bind-mounted at boot):
# - a fixed host name resolving locally, so sudo does not complain;
# - root's .ssh directory with the mode sshd's StrictModes wants;
# - no apt lists or .debs (the image is never upgraded in place: ~90 MB);
# - no getty on the console: the container is driven through nsenter.
echo edgecert-at >"$tmp/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tedgecert-at\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
install -d -m 0700 "$tmp/root/.ssh"
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"

mv "$tmp" "$dir"
trap - EXIT
touch "$marker"
log "ready: $dir ($(du -sm "$dir" | cut -f1) MB)"
echo "$dir"
