# shellcheck shell=bash
# container.sh: boot a systemd-nspawn container and run commands in it.
# Sourced (bash) after lib.sh, never executed.
#
# The container boots the cached root file system read-only underneath a
# tmpfs overlay (--volatile=overlay: the cache is never modified, no copy per
# run), inside an existing network namespace (--network-namespace-path), with
# its own systemd as PID 1. There is no machined on the host, so the
# container is not registered (--register=no --keep-unit) and is driven with
# nsenter into its leader PID instead of machinectl / systemctl -M.

CT_NSPAWN_PID=
CT_LEADER=

# ct CMD...: run CMD inside the container (all its namespaces).
ct() { nsenter -t "$CT_LEADER" -a "$@"; }

# ct_put SRC DEST MODE: copy a host file into the container (root-owned).
# Streamed, because nspawn mounts its own tmpfs over /tmp and the lower
# layer is read-only.
ct_put() {
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
	ct sh -c 'umask 077; cat >"$1" && chmod "$2" "$1"' sh "$2" "$3" <"$1"
}

# ct_boot ROOTFS NETNS_PATH LOG [--bind-ro=...]...: boot the container and
# wait (bounded) until its systemd reports the system running.
ct_boot() {
	local rootfs=$1 netns=$2 log=$3 state
	shift 3
	# Started as a plain command so $! is nspawn itself, not a subshell.
	systemd-nspawn -b -D "$rootfs" --machine=edgecert-at \
		--register=no --keep-unit --volatile=overlay --console=passive \
		--network-namespace-path="$netns" "$@" >"$log" 2>&1 </dev/null &
	CT_NSPAWN_PID=$!
	on_exit ct_shutdown
	say "systemd-nspawn pid $CT_NSPAWN_PID, log $log"
	wait_for 30 "the container's systemd" _ct_find_leader
	say "container leader (its PID 1) is host pid $CT_LEADER"
	wait_for 30 "the container's systemd manager socket" ct test -S /run/systemd/private
	state=$(timeout 90 nsenter -t "$CT_LEADER" -a systemctl is-system-running --wait 2>&1 || true)
	if [ "$state" != running ]; then
		ct systemctl --failed --no-pager >&2 || true
		die "container system state is '$state', want running"
	fi
	say "container is running"
}

_ct_find_leader() {
	kill -0 "$CT_NSPAWN_PID" 2>/dev/null || die "systemd-nspawn exited; see its log"
	CT_LEADER=$(pgrep -P "$CT_NSPAWN_PID" -x systemd | head -n 1)
	[ -n "$CT_LEADER" ]
}

# ct_shutdown: orderly poweroff (SIGTERM to nspawn), bounded; if it hangs,
# SIGKILL the container's PID 1 (which ends its whole PID namespace) and
# then nspawn. Signals only the two PIDs this file started or found.
ct_shutdown() {
	[ -n "$CT_NSPAWN_PID" ] || return 0
	if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
		say "powering off the container (SIGTERM to nspawn $CT_NSPAWN_PID)"
		kill -TERM "$CT_NSPAWN_PID" 2>/dev/null
		local deadline=$((SECONDS + 30))
		while kill -0 "$CT_NSPAWN_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
			sleep 0.2
		done
		if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
			say "container did not halt in 30s: SIGKILL"
			[ -n "$CT_LEADER" ] && kill -KILL "$CT_LEADER" 2>/dev/null
			sleep 1
			kill -KILL "$CT_NSPAWN_PID" 2>/dev/null
		fi
	fi
	wait "$CT_NSPAWN_PID" 2>/dev/null || true
	CT_NSPAWN_PID=
}
