# shellcheck shell=bash
# lib.sh: logging, bounded waits and the cleanup stack shared by the
# appliance scripts. Sourced (bash), never executed.

# Progress goes to fd 3, a copy of the original stderr, so messages (die's
# included) survive commands whose output is redirected, such as wait_for's
# probes.
exec 3>&2

# step TEXT: announce a numbered phase of the test.
step() {
	_step_n=$((${_step_n:-0} + 1))
	printf '\n==> [%s] %s (t=%ss)\n' "$_step_n" "$*" "$SECONDS" >&3
}

# say TEXT: one line of progress.
say() { printf '    %s\n' "$*" >&3; }

# die TEXT: fail the test with a message; the EXIT trap cleans up.
die() {
	printf 'FAIL: %s\n' "$*" >&3
	exit 1
}

# run CMD...: print the command, then run it.
run() {
	printf '    + %s\n' "$*" >&3
	"$@"
}

# wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s until it succeeds; die
# after SECONDS with WHAT in the message.
wait_for() {
	local limit=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			die "timed out after ${limit}s waiting for $what"
		fi
		sleep 0.2
	done
}

# Cleanup stack: on_exit CMD pushes a shell snippet; run_cleanup (installed as
# the EXIT trap by the caller) runs them last-in first-out, each one even if
# an earlier one failed, and keeps the script's exit status. Snippets can
# read the exit status as $_exit_rc (e.g. to dump logs only on failure).
_cleanups=()
_exit_rc=0
on_exit() { _cleanups+=("$1"); }
run_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	set +e
	_exit_rc=$rc
	if [ "${#_cleanups[@]}" -gt 0 ]; then
		printf '\n==> cleanup\n' >&3
		for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
			printf '    - %s\n' "${_cleanups[i]}" >&3
			eval "${_cleanups[i]}"
		done
	fi
	if [ "$rc" -eq 0 ]; then
		printf '\nPASS (%ss)\n' "$SECONDS" >&3
	else
		printf '\nFAILED rc=%s (%ss)\n' "$rc" "$SECONDS" >&3
	fi
	exit "$rc"
}

# begin_root_test NAME PREFIX KEEP_VAR WHY: the preamble of a test script
# that needs root (WHY, if not empty, says for what): refuse to run without
# it, install the ERR, EXIT (run_cleanup) and INT/TERM traps, take
# /run/edgecert-NAME.lock so that runs are one at a time, and set WORK to a
# new directory /tmp/PREFIX.XXXXXX, removed at exit unless the variable named
# KEEP_VAR is 1.
begin_root_test() {
	local name=$1 prefix=$2 keep=$3 why=$4
	[ "$(id -u)" -eq 0 ] || die "run as root${why:+ ($why)}"
	# A top-level command failing outside a condition ends the test (set
	# -e); say which. (No set -E: inside functions and $(...) failures are
	# expected.)
	trap 'say "FAIL: line $LINENO: $BASH_COMMAND"' ERR
	trap run_cleanup EXIT
	trap 'exit 130' INT TERM
	exec 8>"/run/edgecert-$name.lock"
	flock -n 8 || die "another $name is running (/run/edgecert-$name.lock)"
	WORK=$(mktemp -d "/tmp/$prefix.XXXXXX")
	if [ "${!keep:-0}" = 1 ]; then
		on_exit "say 'kept $WORK'"
	else
		# shellcheck disable=SC2016 # expanded when the cleanup runs
		on_exit 'rm -rf "$WORK"'
	fi
}

# stop_pid PID NAME [SECONDS]: SIGTERM PID, wait up to SECONDS (default 20),
# then SIGKILL. Only ever signals the one PID it was given.
stop_pid() {
	local pid=$1 name=$2 limit=${3:-20} deadline
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	say "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null
	deadline=$((SECONDS + limit))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			say "$name did not stop in ${limit}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null
			break
		fi
		sleep 0.2
	done
	wait "$pid" 2>/dev/null || true
}
