#!/usr/bin/env bash
# stress.sh: run the test suite N times in a row under CPU stress and stop at
# the first failure — "the suite passes N times in a row under stress".
#
# Usage: scripts/stress.sh [-n RUNS] [-load WORKERS] [-- GO-TEST-ARGS...]
#
#   -n RUNS        runs in a row that must pass (default 20)
#   -load WORKERS  stress-ng CPU workers beside the tests (default: one per
#                  core, i.e. the tests get about half the machine)
#   GO-TEST-ARGS   what each run passes to go test (default:
#                  -short -count=1 ./...); e.g. -- -race -count=1 ./daemon/...
#
# Each run varies GOMAXPROCS through -cpu 1,2,4 in turn (the scheduler
# interleaves differently at each), and nothing is cached (-count=1). The
# output of a failing run is kept in $TMPDIR/stress-fail.N.log and the script
# exits 1; on success it prints "stress: N/N runs passed". stress-ng is
# installed from Debian by scripts/install-deps.sh stress when missing (root).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=20
load=$(nproc)
while [ $# -gt 0 ]; do
	case "$1" in
	-n) runs=$2; shift 2 ;;
	-load) load=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	--) shift; break ;;
	*) echo "stress: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
	esac
done
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-short -count=1 ./...)

if ! command -v stress-ng >/dev/null; then
	scripts/install-deps.sh stress
fi

log=$(mktemp -d "${TMPDIR:-/tmp}/stress.XXXXXX")
stress_pid=
cleanup() {
	if [ -n "$stress_pid" ]; then
		kill "$stress_pid" 2>/dev/null || true
		wait "$stress_pid" 2>/dev/null || true
	fi
	rm -rf "$log"
}
trap cleanup EXIT INT TERM

# Build once so the runs measure tests, not the compiler.
go test -count=1 -run '^$' "${args[@]}" >/dev/null

# stress-ng ends by itself after an hour if this script is killed hard.
stress-ng --cpu "$load" --cpu-method all --timeout 3600 --quiet &
stress_pid=$!

cpus=(1 2 4)
for ((i = 1; i <= runs; i++)); do
	cpu=${cpus[$(((i - 1) % ${#cpus[@]}))]}
	start=$(date +%s)
	if ! go test -cpu "$cpu" "${args[@]}" >"$log/run.$i" 2>&1; then
		kept="${TMPDIR:-/tmp}/stress-fail.$i.log"
		cp "$log/run.$i" "$kept"
		grep -E -- '^(--- FAIL|FAIL|panic:)|_test\.go:[0-9]+:' "$kept" | head -40 >&2 || true
		echo "stress: run $i of $runs failed (-cpu $cpu, load $load); output in $kept" >&2
		exit 1
	fi
	echo "stress: run $i/$runs passed (-cpu $cpu, $(($(date +%s) - start)) s)"
done
echo "stress: $runs/$runs runs passed under stress-ng --cpu $load"
