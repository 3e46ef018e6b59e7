#!/bin/bash
# packer-check.sh: offline checks of the Packer template, as CI runs them,
# and the appliance test's view of it.
#
# Usage: packer-check.sh PACKAGE [VIEWDIR]
#
#   1. packer fmt -check on packer/ and scripts/appliance/appliance.pkr.hcl;
#   2. packer validate of packer/edgecert.pkr.hcl for arch amd64 and arm64
#      with a version AMI names cannot carry (1.2.3+build.7: validate fails
#      unless the template sanitises it), -var package=PACKAGE;
#   3. packer console: per arch, the instance type, the source AMI's
#      architecture and name filter (a release image name matches, a daily
#      one does not), the sanitised AMI name part; an unknown arch is
#      refused;
#   4. the view in VIEWDIR/packer/ (a temporary directory without VIEWDIR):
#      a copy of edgecert.pkr.hcl whose build names source.null.appliance
#      (scripts/appliance/appliance.pkr.hcl, copied next to it) instead of
#      the amazon source, so its provisioner blocks run unchanged against
#      the test container; validated too. Its directory is printed on stdout
#      when VIEWDIR is given.
#
# With Packer < 1.7 (Debian 12 ships 1.6.6) every copy has the regions
# between "# BEGIN packer>=1.7" and "# END packer>=1.7" cut out (settings
# 1.6.6 does not know). With Packer >= 1.7 the template directory itself is
# validated (needs the amazon plugin: packer init packer/).
set -euo pipefail

package=${1:?usage: packer-check.sh PACKAGE [VIEWDIR]}
view=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

say() { printf 'packer-check: %s\n' "$*" >&2; }
fail() {
	say "FAIL: $*"
	exit 1
}

[ -f "$package" ] || fail "no package at $package"
package=$(realpath "$package")

say "packer fmt -check $repo/packer scripts/appliance/appliance.pkr.hcl"
packer fmt -check "$repo/packer" >&2 || fail "not formatted (run: packer fmt packer/)"
packer fmt -check "$here/appliance.pkr.hcl" >&2 || fail "appliance.pkr.hcl not formatted"

ver=$(packer version | sed -n 's/^Packer v\([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)
old=no
case "$ver" in 1.[0-6]) old=yes ;; esac

if [ -z "$view" ]; then
	view=$(mktemp -d)
	trap 'rm -rf "$view"' EXIT
fi
mkdir -p "$view/packer" "$view/amazon"
# copy SRC DEST: the template as this Packer can read it.
copy() {
	if [ "$old" = yes ]; then
		sed '/^[[:space:]]*# BEGIN packer>=1.7$/,/^[[:space:]]*# END packer>=1.7$/d' "$1" >"$2"
		! cmp -s "$1" "$2" || fail "marker regions not found in $1"
	else
		cp "$1" "$2"
	fi
}
for f in provision.sh upgrade.sh cleanup.sh; do
	ln -sfn "$repo/packer/$f" "$view/packer/$f"
	ln -sfn "$repo/packer/$f" "$view/amazon/$f"
done

# The AMI build as written (minus regions this Packer cannot parse).
if [ "$old" = yes ]; then
	copy "$repo/packer/edgecert.pkr.hcl" "$view/amazon/edgecert.pkr.hcl"
	amazon=$view/amazon/edgecert.pkr.hcl
else
	amazon=$repo/packer
fi
# pk CMD ARGS...: packer run from / (paths must not depend on the cwd).
pk() { (cd / && packer "$@"); }
for arch in amd64 arm64; do
	say "packer $ver: validate $amazon (arch=$arch, version 1.2.3+build.7)"
	pk validate -var arch="$arch" -var version=1.2.3+build.7 -var package="$package" "$amazon" >&2
done
if pk validate -var arch=x86_64 -var package="$package" "$amazon" >/dev/null 2>&1; then
	fail "validate accepted arch=x86_64"
fi

# value ARCH EXPR: the value of EXPR in the template for arch ARCH.
value() { printf '%s\n' "$2" | pk console -var arch="$1" -var version=1.2.3+build.7 -var package="$package" "$amazon" 2>&1; }
for row in "amd64 t3.micro x86_64" "arm64 t4g.micro arm64"; do
	read -r arch itype amiarch <<<"$row"
	[ "$(value "$arch" local.instance_type)" = "$itype" ] ||
		fail "arch=$arch: instance type $(value "$arch" local.instance_type), want $itype"
	[ "$(value "$arch" local.ami_arch)" = "$amiarch" ] ||
		fail "arch=$arch: source AMI architecture $(value "$arch" local.ami_arch), want $amiarch"
	pattern=$(value "$arch" local.source_ami_name)
	# shellcheck disable=SC2254 # the filter is a glob, as EC2 applies it
	case "debian-12-$arch-20250610-2137" in $pattern) ;; *) fail "arch=$arch: filter $pattern misses release image debian-12-$arch-20250610-2137" ;; esac
	# shellcheck disable=SC2254
	case "debian-12-$arch-daily-20250610-2137" in $pattern) fail "arch=$arch: filter $pattern matches a daily image" ;; esac
	say "arch=$arch: instance type $itype, source AMI $amiarch named $pattern"
done
[ "$(value amd64 local.name_version)" = 1.2.3-build.7 ] ||
	fail "AMI name part of version 1.2.3+build.7 is $(value amd64 local.name_version), want 1.2.3-build.7"

# The appliance test's view: the same build block, the null source.
copy "$repo/packer/edgecert.pkr.hcl" "$view/packer/edgecert.pkr.hcl.in"
grep -q '^  sources = \["source.amazon-ebs.debian12"\]$' "$view/packer/edgecert.pkr.hcl.in" ||
	fail "edgecert.pkr.hcl: build sources line not found"
sed 's|^  sources = \["source.amazon-ebs.debian12"\]$|  sources = ["source.null.appliance"]|' \
	"$view/packer/edgecert.pkr.hcl.in" >"$view/packer/edgecert.pkr.hcl"
rm "$view/packer/edgecert.pkr.hcl.in"
cp "$here/appliance.pkr.hcl" "$view/packer/appliance.pkr.hcl"
say "validate the appliance view $view/packer"
[ -f "$view/validate-key" ] || ssh-keygen -q -t ed25519 -N '' -C packer-check -f "$view/validate-key"
pk validate -var package="$package" -var ssh_private_key_file="$view/validate-key" "$view/packer" >&2
say "valid"
if [ -n "${2:-}" ]; then
	echo "$view/packer"
fi
