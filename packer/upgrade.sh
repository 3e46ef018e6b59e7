#!/bin/sh
# upgrade.sh: bring the base image's packages up to date during the image
# build, non-interactively, and record what the image contains. Runs as root
# before provision.sh.
#
# With EDGECERT_UPGRADE=true (the template's default): apt-get update, then
# apt-get upgrade --with-new-pkgs (new dependencies such as a new kernel
# ABI are installed, nothing is removed), keeping changed configuration
# files. Always: the record under /var/lib/edgecert-image/ (kept in the
# image; cleanup.sh leaves it and adds packages.txt, the final list):
#   upgraded.txt  what the upgrade changed, "name old-version -> new-version"
#                 (or "upgrade skipped")
#   build.txt     base image, build time (UTC), kernel of the builder
set -eu

record=/var/lib/edgecert-image
say() { printf 'upgrade: %s\n' "$*"; }

installed() { dpkg-query -W -f '${binary:Package} ${Version} ${Architecture}\n' | sort; }

install -d -m 0755 "$record"
before=$(mktemp)
after=$(mktemp)
trap 'rm -f "$before" "$after"' EXIT
installed >"$before"

if [ "${EDGECERT_UPGRADE:-true}" = true ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt="apt-get -q -y -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
	say "apt-get update"
	$apt update
	say "apt-get upgrade --with-new-pkgs"
	$apt upgrade --with-new-pkgs
	installed >"$after"
	# name old -> new, for every package whose version changed or is new
	awk 'NR == FNR { old[$1] = $2; next }
		old[$1] != $2 { printf "%s %s -> %s\n", $1, (($1 in old) ? old[$1] : "(new)"), $2 }' \
		"$before" "$after" >"$record/upgraded.txt"
	say "$(wc -l <"$record/upgraded.txt") packages upgraded or added (list in $record/upgraded.txt):"
	sed 's/^/    /' "$record/upgraded.txt"
else
	echo "upgrade skipped" >"$record/upgraded.txt"
	say "skipped (EDGECERT_UPGRADE=${EDGECERT_UPGRADE:-})"
fi
{
	printf 'built %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf 'base %s\n' "$(. /etc/os-release && echo "$PRETTY_NAME") $(cat /etc/debian_version)"
	printf 'kernel %s\n' "$(uname -r)"
} >"$record/build.txt"
