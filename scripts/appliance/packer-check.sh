#!/bin/bash
# packer-check.sh: offline checks of the Packer template, as CI runs them.
#
# Usage: packer-check.sh BINARY [VIEWDIR]
#
#   1. packer fmt -check on packer/ (every file, plugins.pkr.hcl included);
#   2. packer validate of packer/edgecert.pkr.hcl with -var binary=BINARY.
#
# With Packer < 1.7 (Debian 12 ships 1.6.6) the template is validated through
# a "view": a copy with the region between "# BEGIN packer>=1.7" and
# "# END packer>=1.7" cut out (IMDSv2 settings 1.6.6 does not know), placed
# in VIEWDIR/packer/ next to symlinks to the real systemd/ directory and
# provision.sh, so ${path.root} paths resolve exactly as in the real file.
# Without VIEWDIR the view lives in a temporary directory removed at exit;
# with it, the view is left there (scripts/appliance/test.sh builds from it)
# and its template path is printed on stdout.
#
# With Packer >= 1.7 the directory itself is validated (needs the amazon
# plugin installed: packer init packer/).
set -euo pipefail

binary=${1:?usage: packer-check.sh BINARY [VIEWDIR]}
view=${2:-}
repo=$(cd "$(dirname "$0")/../.." && pwd)

say() { printf 'packer-check: %s\n' "$*" >&2; }

[ -f "$binary" ] || {
	say "no binary at $binary"
	exit 1
}
binary=$(realpath "$binary")

say "packer fmt -check $repo/packer"
if ! packer fmt -check "$repo/packer" >&2; then
	say "not formatted (run: packer fmt packer/)"
	exit 1
fi

ver=$(packer version | sed -n 's/^Packer v\([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)
case "$ver" in
1.[0-6])
	if [ -z "$view" ]; then
		view=$(mktemp -d)
		trap 'rm -rf "$view"' EXIT
	fi
	mkdir -p "$view/packer"
	ln -sfn "$repo/systemd" "$view/systemd"
	ln -sfn "$repo/packer/provision.sh" "$view/packer/provision.sh"
	sed '/^[[:space:]]*# BEGIN packer>=1.7$/,/^[[:space:]]*# END packer>=1.7$/d' \
		"$repo/packer/edgecert.pkr.hcl" >"$view/packer/edgecert.pkr.hcl"
	if cmp -s "$repo/packer/edgecert.pkr.hcl" "$view/packer/edgecert.pkr.hcl"; then
		say "marker region not found in edgecert.pkr.hcl"
		exit 1
	fi
	template=$view/packer/edgecert.pkr.hcl
	say "packer $ver: validating the 1.6-compatible view $template"
	;;
*)
	template=$repo/packer
	say "packer $ver: validating $template"
	;;
esac

# No network is needed: validate resolves no AMI and no credentials.
(cd / && packer validate -var "binary=$binary" "$template") >&2
say "valid"
if [ "${2:-}" != "" ]; then
	echo "$template"
fi
