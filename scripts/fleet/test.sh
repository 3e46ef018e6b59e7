#!/bin/bash
# test.sh: the fleet end-to-end test (make fleet-test; make fleet-bench with
# -bench). Root only. Builds edgecert, devrig and the driver, lays out the
# network below, runs the driver (scripts/fleet/fleettest: every scenario and
# assertion is there) inside the rig's namespace, and removes everything on
# exit, also after a failure or ^C.
#
#   ft-sw    bridge ft-br, the switch
#   ft-rig   10.231.7.1   devrig -serve ca (Pebble, Route 53 API, DNS) + the driver
#   ft-s3    10.231.7.2   devrig -serve s3 (gofakes3): alone, so link down cuts only S3
#   ft-h1..4 10.231.7.11-14  one edgecert daemon each (h4 is the host started later)
#
# Every namespace and link is named ft-*; nothing is added to the root
# namespace but the namespaces themselves, and nothing is routed outside the
# bridge.
#
# Environment: EDGECERT_FLEET_BIN uses that edgecert binary instead of
# building one from this tree (e.g. a branch's build); EDGECERT_FT_KEEP=1
# keeps the work directory (daemon and rig logs). Arguments go to the driver
# (e.g. -bench, -run s1,s3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR
. "$repo/scripts/appliance/lib.sh"

NETS=(ft-rig ft-s3 ft-h1 ft-h2 ft-h3 ft-h4)
declare -A IP=([ft-rig]=10.231.7.1 [ft-s3]=10.231.7.2 [ft-h1]=10.231.7.11 [ft-h2]=10.231.7.12 [ft-h3]=10.231.7.13 [ft-h4]=10.231.7.14)

begin_root_test fleet-test ft-fleettest EDGECERT_FT_KEEP "network namespaces"

# remove_net: stop whatever still runs in our namespaces (only processes this
# test started live there), then delete them and their /etc/netns entries.
remove_net() {
	local ns pid
	for ns in "${NETS[@]}" ft-sw; do
		ip netns list | grep -qw "$ns" || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
		rm -rf "/etc/netns/$ns"
	done
}

if ! command -v ip >/dev/null; then
	say "installing iproute2"
	apt-get -o DPkg::Lock::Timeout=300 install -y iproute2 >/dev/null
fi

step "build edgecert, devrig and the fleet driver"
if [ -n "${EDGECERT_FLEET_BIN:-}" ]; then
	install -m 0755 "$EDGECERT_FLEET_BIN" "$WORK/edgecert"
	say "edgecert from EDGECERT_FLEET_BIN=$EDGECERT_FLEET_BIN"
else
	(cd "$repo" && run go build -o "$WORK/edgecert" .)
fi
(
	cd "$repo"
	run go build -o "$WORK/devrig" ./internal/devrig/cmd/devrig
	run go build -o "$WORK/fleettest" ./scripts/fleet/fleettest
)
say "$("$WORK/edgecert" version)"

step "network: bridge ft-br in ft-sw, namespaces ${NETS[*]}"
if ip netns list | grep -qE '^ft-'; then
	say "removing namespaces left by an earlier run"
fi
remove_net
on_exit remove_net
run ip netns add ft-sw
ip -n ft-sw link set lo up
ip -n ft-sw link add ft-br type bridge
ip -n ft-sw link set ft-br up
for ns in "${NETS[@]}"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	# Created in the switch namespace, one end moved: the root namespace
	# never holds a link.
	ip -n ft-sw link add "ft-p-${ns#ft-}" type veth peer name ft-eth netns "$ns"
	ip -n ft-sw link set "ft-p-${ns#ft-}" master ft-br up
	ip -n "$ns" addr add "${IP[$ns]}/24" dev ft-eth
	ip -n "$ns" link set ft-eth up
done
say "$(ip -n ft-sw -br link show master ft-br | wc -l) ports on ft-br"

step "fleet scenarios (scripts/fleet/fleettest)"
ip netns exec ft-rig "$WORK/fleettest" -work "$WORK" -edgecert "$WORK/edgecert" -devrig "$WORK/devrig" "$@" </dev/null
