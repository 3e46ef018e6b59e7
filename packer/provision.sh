#!/bin/sh
# provision.sh: install edgecert on a Debian 12 host from the package staged
# in $EDGECERT_STAGE (default /tmp/edgecert-stage) as edgecert.deb by the
# Packer file provisioner. Runs as root.
#
# The one install path for every image: the AMI build (amazon-ebs) and the
# offline appliance test (null source over SSH into a container) run it
# through the same provisioner blocks, and the package's own maintainer
# scripts (packaging/postinst) set up the user, the configuration skeleton
# and the enabled-but-not-started unit exactly as on a hand-built host.
#
# Before anything is installed, the package and the binary in it must be
# for this host: the package's Architecture field, the ELF header of
# /usr/bin/edgecert (64-bit, machine x86-64 or AArch64) and, if set,
# $EDGECERT_ARCH (the template's arch variable) must all be
# `dpkg --print-architecture`, and the binary must run `edgecert version`.
# Each check is a command of its own: a failure stops the build (set -e).
# Needs no network.
set -eu

stage=${EDGECERT_STAGE:-/tmp/edgecert-stage}
pkg=$stage/edgecert.deb

say() { printf 'provision: %s\n' "$*"; }
fail() {
	say "FAIL: $*" >&2
	exit 1
}

[ -f "$pkg" ] || fail "missing $pkg"
host=$(dpkg --print-architecture)
[ -z "${EDGECERT_ARCH:-}" ] || [ "$EDGECERT_ARCH" = "$host" ] ||
	fail "the image is meant for $EDGECERT_ARCH (arch variable) but this host is $host"
pkgarch=$(dpkg-deb --field "$pkg" Architecture)
[ "$pkgarch" = "$host" ] || fail "$pkg is for $pkgarch, this host is $host: build it with make release"
say "package $(dpkg-deb --field "$pkg" Package) $(dpkg-deb --field "$pkg" Version) ($pkgarch)"

# elf_machine FILE: the ELF machine of a 64-bit little-endian executable as
# a Debian architecture name (amd64, arm64), "unknown-<hex>", or "not-elf".
elf_machine() {
	# bytes 0-3 magic, 4 class (2 = 64-bit), 5 data (1 = little endian),
	# 18-19 e_machine (little endian)
	# shellcheck disable=SC2046 # one word per byte is the point
	set -- $(od -An -v -tx1 -N20 "$1")
	if [ "$#" -lt 20 ] || [ "$1$2$3$4" != 7f454c46 ] || [ "$5$6" != 0201 ]; then
		echo not-elf
		return 0
	fi
	shift 18
	case "$2$1" in
	003e) echo amd64 ;;
	00b7) echo arm64 ;;
	*) echo "unknown-$2$1" ;;
	esac
}

unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
dpkg-deb --extract "$pkg" "$unpacked"
binarch=$(elf_machine "$unpacked/usr/bin/edgecert")
[ "$binarch" = "$host" ] || fail "the package's /usr/bin/edgecert is a $binarch binary, this host is $host"
"$unpacked/usr/bin/edgecert" version >/dev/null
say "binary is linux/$binarch and runs: $("$unpacked/usr/bin/edgecert" version)"

say "dpkg --install"
DEBIAN_FRONTEND=noninteractive dpkg --force-confdef --force-confold --install "$pkg"
/usr/bin/edgecert version >/dev/null
[ "$(systemctl is-enabled edgecert.service)" = enabled ] || fail "edgecert.service is not enabled"
say "installed $(/usr/bin/edgecert version); edgecert.service enabled (not started)"

rm -rf "$stage"
say "done"
