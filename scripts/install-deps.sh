#!/bin/sh
# install-deps.sh: install the Debian packages the appliance test (and, with
# "bench", the benchmarks) need. Idempotent: packages already installed are
# not touched and apt-get update runs at most once, only when something is
# missing. Needs root and Debian 12 (bookworm).
#
# Usage: scripts/install-deps.sh [appliance|bench|monitoring|stress|all]   (default: appliance)
#
#   appliance  debootstrap systemd-container packer openssh-client iproute2
#              curl openssl shellcheck file (scripts/appliance/test.sh)
#   bench      nginx-light (nginx when nginx-light is not in the archive) and
#              wrk, for the comparison benchmarks. nginx is installed but not
#              started (a policy-rc.d denies service starts during the
#              install): the benchmark runs its own nginx with its own config.
#   monitoring prometheus, for promtool (check and test of
#              monitoring/edgecert.rules.yml in make test). Its service is
#              not started (policy-rc.d, as for bench).
#   stress     stress-ng, the CPU load scripts/stress.sh runs the suite under
#   all        every set
set -eu

mode=${1:-appliance}
appliance_pkgs="debootstrap systemd-container packer openssh-client iproute2 curl openssl shellcheck file"

log() { printf 'install-deps: %s\n' "$*" >&2; }

# installed PKG: true when dpkg reports PKG as fully installed.
installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

updated=no
apt_update() {
	[ "$updated" = yes ] && return 0
	log "apt-get update"
	apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 update -qq
	updated=yes
}

# ensure PKG...: install whichever of PKG... are missing, in one apt-get call.
ensure() {
	missing=
	for p in "$@"; do
		installed "$p" || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		log "already installed: $*"
		return 0
	fi
	apt_update
	log "apt-get install$missing"
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
		-o Acquire::Retries=3 install -y -qq --no-install-recommends $missing
}

# pick_nginx sets nginx_pkg to the nginx package to use: an installed nginx
# flavour, else nginx-light when the archive has it, else nginx. (A function
# setting a variable, not a $(...) subshell, so apt_update's "once" holds.)
pick_nginx() {
	for nginx_pkg in nginx-light nginx-core nginx-full nginx; do
		installed "$nginx_pkg" && return 0
	done
	apt_update
	if apt-cache policy nginx-light 2>/dev/null | grep -q '^ *Candidate: [0-9]'; then
		nginx_pkg=nginx-light
	else
		nginx_pkg=nginx
	fi
}

# no_service_starts: while installing, deny maintainer scripts the starting
# of services (invoke-rc.d honours /usr/sbin/policy-rc.d exit 101), unless
# the host already has a policy of its own.
no_service_starts() {
	[ -e /usr/sbin/policy-rc.d ] && return 0
	printf '#!/bin/sh\n# install-deps.sh: no service starts during the install\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
}

if [ "$(id -u)" -ne 0 ]; then
	log "must run as root"
	exit 1
fi

case "$mode" in
appliance)
	# shellcheck disable=SC2086
	ensure $appliance_pkgs
	;;
bench)
	pick_nginx
	no_service_starts
	ensure "$nginx_pkg" wrk
	;;
monitoring)
	no_service_starts
	ensure prometheus
	;;
stress)
	ensure stress-ng
	;;
all)
	# shellcheck disable=SC2086
	ensure $appliance_pkgs
	pick_nginx
	no_service_starts
	ensure "$nginx_pkg" wrk prometheus stress-ng
	;;
*)
	log "unknown mode $mode (want appliance, bench, monitoring, stress or all)"
	exit 2
	;;
esac
