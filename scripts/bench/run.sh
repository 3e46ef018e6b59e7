#!/usr/bin/env bash
# run.sh: edgecert against a bare net/http server and nginx on loopback,
# reported as ratios (`make bench`; BENCHMARKS.md explains every figure).
#
# All servers serve the same ECDSA P-256 certificate with TLS 1.2/1.3 on
# 127.0.0.1 and get the same CPU budget: the server under test is pinned to
# CPU 1 (edgecert and nethttp with GOMAXPROCS=1, nginx with one worker) and
# the client (wrk or curl) to CPU 0. The machine is shared and noisy, so the
# servers are measured alternately (edgecert, nethttp, nginx, edgecert, ...)
# and each run's figure is recorded with the CPU time its server actually got.
# This script only drives the tools and records samples; the statistics
# (medians, paired and per-core ratios, verdicts) are scripts/bench/report,
# a Go command with its own tests.
#
# Exit status: 0 when every measurement ran, whether or not a target was met
# (benchmarks report, they do not gate); non-zero only when something failed
# to run (a missing tool, a server that did not start, a bad response).
#
# Needs root only when nginx or wrk must be installed (apt-get). Knobs (env):
#   BENCH_ROUNDS=5      rounds of A/B alternation (median taken over rounds)
#   BENCH_DURATION=5    seconds per wrk measurement
#   BENCH_WARMUP=2      seconds of the discarded warm-up run per route and server
#   BENCH_CONNS=32      wrk connections (one wrk thread)
#   BENCH_DATA_RUNS=3   100 MiB downloads per server per round
#   BENCH_GO=1          also run the Go micro-benchmarks (0 skips them)
#   BENCH_CONNS_IDLE=2000  idle connections held open for the RSS-per-connection rows
#   BENCH_IDLE_SETTLE=12   seconds they are held idle before the server's RSS is read
#   BENCH_SERVERS="edgecert nethttp nginx"   servers to measure (edgecert must be one)
#   BENCH_STEPS="rss wrk data conns"   measurements to make (4a-4d below), e.g. "conns"
#   EDGECERT_BIN=bin/edgecert
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EDGECERT_BIN=${EDGECERT_BIN:-$ROOT/bin/edgecert}
ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-32}
DATA_RUNS=${BENCH_DATA_RUNS:-3}
GO_BENCH=${BENCH_GO:-1}
SERVERS=${BENCH_SERVERS:-edgecert nethttp nginx}
IDLE_CONNS=${BENCH_CONNS_IDLE:-2000}
STEPS=${BENCH_STEPS:-rss wrk data conns}
IDLE_SETTLE=${BENCH_IDLE_SETTLE:-12}

DATA_BYTES=$((100 << 20))  # /data?size=100&unit=mb and nginx's static file
BIG_BYTES=$((1 << 30))     # /data?size=1&unit=gb for the RSS figure

log() { printf '[bench %3ds] %s\n' "$SECONDS" "$*"; }
die() {
	printf '[bench %3ds] FAILED: %s\n' "$SECONDS" "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- cleanup --

TMP=
EDGECERT_PID=
NETHTTP_PID=
NGINX_PID=
BG_PIDS=()

# stop PID NAME: SIGTERM, up to 5 s to exit, then SIGKILL.
stop() {
	local pid=$1 name=$2 i
	kill -0 "$pid" 2>/dev/null || return 0
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name did not exit after SIGTERM; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	# Only the main shell cleans up, never a $(...) subshell.
	[ "$BASHPID" = "$$" ] || exit "$rc"
	for pid in "${BG_PIDS[@]}"; do
		[ -n "$pid" ] && stop "$pid" "background client"
	done
	[ -n "$EDGECERT_PID" ] && stop "$EDGECERT_PID" edgecert
	[ -n "$NETHTTP_PID" ] && stop "$NETHTTP_PID" nethttp
	[ -n "$NGINX_PID" ] && stop "$NGINX_PID" nginx
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		log "removing $TMP"
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'printf "[bench %3ds] FAILED: line %s: %s (exit %s)\n" "$SECONDS" "$LINENO" "$BASH_COMMAND" "$?" >&2' ERR

# ------------------------------------------------------------- utilities --

# cpu_ticks PID...: user+system clock ticks of the processes (all threads).
cpu_ticks() {
	local pid s total=0
	local -a f
	for pid in "$@"; do
		s=$(<"/proc/$pid/stat")
		s=${s##*) }
		read -ra f <<<"$s"
		total=$((total + f[11] + f[12]))
	done
	echo "$total"
}

# status_kib PID FIELD: a /proc/PID/status size field (VmRSS, VmHWM) in KiB.
status_kib() {
	local k v _
	while read -r k v _; do
		if [ "$k" = "$2:" ]; then
			echo "$v"
			return 0
		fi
	done <"/proc/$1/status"
	echo 0
}

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port [EXCLUDE]: a random port below the kernel's ephemeral range (a
# client socket of another process may hold any port inside it, and then
# the listener's bind fails) that nothing listens on and that is not EXCLUDE.
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
pick_port() {
	local p i
	for i in $(seq 100); do
		p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
		if [ "$p" != "${1:-}" ] && ! port_in_use "$p"; then
			echo "$p"
			return 0
		fi
	done
	die "no free loopback port found"
}

# ----------------------------------------------------------- 1. the tools --

# install_tools: nginx and wrk from Debian when missing (apt-get update only
# when the first install fails, e.g. for a missing package list).
install_tools() {
	local pkgs=() nginx_pkg
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || pkgs+=(nginx)
	command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
	if [ ${#pkgs[@]} -eq 0 ]; then
		log "nginx and wrk are installed"
		return 0
	fi
	[ "$(id -u)" -eq 0 ] || die "need ${pkgs[*]}: run as root so apt-get can install them"
	pick_nginx_pkg() {
		nginx_pkg=nginx
		if apt-cache policy nginx-light 2>/dev/null | grep -q '^ *Candidate: [0-9]'; then
			nginx_pkg=nginx-light
		fi
	}
	pick_nginx_pkg
	pkgs=("${pkgs[@]/#nginx/$nginx_pkg}")
	log "installing from Debian: ${pkgs[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y "${pkgs[@]}"; then
		log "install failed; running apt-get update once and retrying"
		apt-get -o DPkg::Lock::Timeout=300 update
		pick_nginx_pkg
		pkgs=("${pkgs[@]/#nginx-light/$nginx_pkg}")
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y "${pkgs[@]}" ||
			die "apt-get install ${pkgs[*]} failed"
	fi
}

log "step 1: tools"
install_tools
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for t in wrk curl openssl taskset awk go; do
	command -v "$t" >/dev/null 2>&1 || die "$t is not installed"
done

NPROC=$(nproc)
if [ "$NPROC" -ge 2 ]; then
	SERVER_CPU=1
	CLIENT_CPU=0
else
	SERVER_CPU=0
	CLIENT_CPU=0
	log "WARNING: only one CPU: server and client share CPU 0; ratios are still comparable, absolutes are not"
fi

NGINX_VERSION=$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
log "machine: $NPROC CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)"
log "versions: $(go version 2>/dev/null || echo 'go: not found'); nginx $NGINX_VERSION; $(wrk -v 2>&1 | awk "NR == 1 { print \$1, \$2 }" || true); $(openssl version)"

case " $SERVERS " in *" edgecert "*)
	[ -x "$EDGECERT_BIN" ] || die "$EDGECERT_BIN is missing: run 'make build' (or 'make bench')"
	log "edgecert: $("$EDGECERT_BIN" version 2>&1 | head -n1)"
	;;
esac

# ------------------------------------------------------ 2. the certificate --

TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgecert-bench.XXXXXX")
# nginx's workers run as an unprivileged user: let them reach the static
# file (the key stays 0600, read by the master only).
chmod 0711 "$TMP"
log "step 2: ECDSA P-256 certificate for bench.test in $TMP"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>"$TMP/openssl.log" ||
	{ cat "$TMP/openssl.log" >&2; die "openssl could not make the certificate"; }
chmod 0600 "$TMP/key.pem"

log "step 2b: building the report, the bare net/http server and the idle-connection client"
(cd "$ROOT" && go build -o "$TMP/" ./scripts/bench/report ./scripts/bench/nethttp ./scripts/bench/idleconns) ||
	die "go build of scripts/bench/{report,nethttp,idleconns} failed"
SAMPLES=$TMP/samples.tsv
: >"$SAMPLES"

# ------------------------------------------------------------ 3. servers --

EDGECERT_PORT=$(pick_port)
NGINX_PORT=$(pick_port "$EDGECERT_PORT")
NETHTTP_PORT=$(pick_port "$NGINX_PORT")
E_URL=https://127.0.0.1:$EDGECERT_PORT
N_URL=https://127.0.0.1:$NGINX_PORT
B_URL=https://127.0.0.1:$NETHTTP_PORT

# Route of each metric on each server; a server without one is not measured
# on that metric (the bare net/http server has only whoami's /bench).
declare -A ROUTE=(
	[edgecert,/]=/ [nginx,/]=/
	[edgecert,/api]=/api [nginx,/api]=/api
	[edgecert,/bench]=/bench [nginx,/bench]=/bench [nethttp,/bench]=/bench
	[edgecert,/data]="/data?size=100&unit=mb" [nginx,/data]=/data100m.bin
)
base_url() {
	case $1 in
	edgecert) echo "$E_URL" ;;
	nethttp) echo "$B_URL" ;;
	*) echo "$N_URL" ;;
	esac
}
route() { echo "${ROUTE[$1,$2]:-}"; }

# server_pids NAME: the processes whose CPU time counts for NAME, one per
# line (nginx: the master and its workers).
server_pids() {
	case $1 in
	edgecert) echo "$EDGECERT_PID" ;;
	nethttp) echo "$NETHTTP_PID" ;;
	*)
		echo "$NGINX_PID"
		pgrep -P "$NGINX_PID" || true
		;;
	esac
}

# server_rss NAME: resident KiB of server_pids NAME, summed.
server_rss() {
	local pid total=0
	for pid in $(server_pids "$1"); do
		total=$((total + $(status_kib "$pid" VmRSS)))
	done
	echo "$total"
}

# server_ticks NAME: cpu_ticks of server_pids NAME.
server_ticks() {
	local -a pids
	mapfile -t pids < <(server_pids "$1")
	cpu_ticks "${pids[@]}"
}

# wait_ready NAME URL PID LOG: poll URL until it answers 200 (30 s bound).
wait_ready() {
	local name=$1 url=$2 pid=$3 logf=$4 i
	for i in $(seq 150); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$logf" >&2 || true
			die "$name exited during start-up (log above)"
		fi
		if curl -fsk --max-time 2 -o /dev/null "$url"; then
			log "$name is ready at $url"
			return 0
		fi
		sleep 0.2
	done
	tail -n 20 "$logf" >&2 || true
	die "$name did not answer $url within 30 s (log above)"
}

start_nginx() {
	local d=$TMP/nginx http2_listen="" http2_directive="" temp_paths="" m
	mkdir -p "$d/www" "$d/logs" "$d/tmp"
	chmod 0755 "$d" "$d/www"
	log "step 3: nginx static file: $((DATA_BYTES >> 20)) MiB"
	head -c "$DATA_BYTES" /dev/zero >"$d/www/data100m.bin"
	chmod 0644 "$d/www/data100m.bin"
	# "http2 on" exists from nginx 1.25.1; older versions take it on listen.
	if printf '%s\n1.25.1\n' "$NGINX_VERSION" | sort -V -C; then
		http2_listen=" http2"
	else
		http2_directive="http2 on;"
	fi
	for m in proxy fastcgi uwsgi scgi; do
		if ! "$NGINX" -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
			temp_paths+="${m}_temp_path $d/tmp/$m; "
		fi
	done
	cat >"$d/nginx.conf" <<-EOF
		# generated by scripts/bench/run.sh
		daemon off;
		master_process on;
		worker_processes 1;
		worker_rlimit_nofile 16384;
		pid $d/nginx.pid;
		error_log $d/logs/error.log warn;
		events { worker_connections 4096; }
		http {
		    access_log off;
		    client_body_temp_path $d/tmp/body;
		    $temp_paths
		    sendfile on;
		    tcp_nopush on;
		    tcp_nodelay on;
		    keepalive_timeout 120s;
		    keepalive_requests 1000000;
		    server {
		        listen 127.0.0.1:$NGINX_PORT ssl$http2_listen;
		        $http2_directive
		        server_name bench.test;
		        ssl_certificate $TMP/cert.pem;
		        ssl_certificate_key $TMP/key.pem;
		        ssl_protocols TLSv1.2 TLSv1.3;
		        # Go's crypto/tls picks AES-128-GCM on AES-NI machines; make nginx
		        # pick the same (OpenSSL would follow the client to AES-256-GCM).
		        ssl_prefer_server_ciphers on;
		        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384;
		        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384;
		        root $d/www;
		        # whoami-like bodies built from request variables, like edgecert's.
		        location = / {
		            default_type "text/plain; charset=utf-8";
		            return 200 "Hostname: \$hostname\nIP: 127.0.0.1\nRemoteAddr: \$remote_addr:\$remote_port\nGET \$request_uri HTTP/1.1\r\nHost: \$host\r\nUser-Agent: \$http_user_agent\r\n\r\n";
		        }
		        location = /api {
		            default_type application/json;
		            return 200 '{"hostname":"\$hostname","ip":["127.0.0.1"],"headers":{"User-Agent":["\$http_user_agent"]},"url":"\$request_uri","host":"\$host","method":"\$request_method","remoteAddr":"\$remote_addr:\$remote_port"}\n';
		        }
		        location = /bench {
		            default_type text/plain;
		            return 200 "1";
		        }
		        location = /data100m.bin { }
		    }
		}
	EOF
	if ! "$NGINX" -t -q -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" >"$d/logs/stderr.log" 2>&1; then
		cat "$d/logs/stderr.log" "$d/logs/error.log" >&2 || true
		die "nginx rejected its configuration"
	fi
	launch_nginx
}

# launch_nginx: run nginx with the configuration start_nginx wrote.
launch_nginx() {
	local d=$TMP/nginx
	log "starting nginx on 127.0.0.1:$NGINX_PORT (1 worker, pinned to CPU $SERVER_CPU)"
	taskset -c "$SERVER_CPU" "$NGINX" -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" \
		</dev/null >>"$d/logs/stderr.log" 2>&1 &
	NGINX_PID=$!
	wait_ready nginx "$N_URL/bench" "$NGINX_PID" "$d/logs/error.log"
}

# restart NAME: a fresh process of server NAME (for memory figures that a
# previous measurement's freed-but-kept memory would hide).
restart() {
	case $1 in
	edgecert)
		stop "$EDGECERT_PID" edgecert
		start_edgecert
		;;
	nethttp)
		stop "$NETHTTP_PID" nethttp
		start_nethttp
		;;
	nginx)
		stop "$NGINX_PID" nginx
		launch_nginx
		;;
	esac
}

# start_edgecert: every limit and timeout at its default, except the cap on
# connections per client IP (256), which the idle-connection rows exceed on
# purpose: every benchmark client is 127.0.0.1.
start_edgecert() {
	mkdir -p "$TMP/edgecert-state"
	log "starting edgecert on 127.0.0.1:$EDGECERT_PORT (GOMAXPROCS=1, pinned to CPU $SERVER_CPU)"
	taskset -c "$SERVER_CPU" env GOMAXPROCS=1 "$EDGECERT_BIN" run \
		-https-addr "127.0.0.1:$EDGECERT_PORT" -http-addr= -admin-addr= \
		-state-dir "$TMP/edgecert-state" -cert-file "$TMP/cert.pem" -key-file "$TMP/key.pem" \
		-max-connections-per-client $((IDLE_CONNS + CONNS + 64)) \
		-log-level warn </dev/null >"$TMP/edgecert.log" 2>&1 &
	EDGECERT_PID=$!
	wait_ready edgecert "$E_URL/bench" "$EDGECERT_PID" "$TMP/edgecert.log"
}

# start_nethttp: the bare net/http TLS server (scripts/bench/nethttp): what
# traefik/whoami is, no timeouts, whoami's /bench handler.
start_nethttp() {
	log "starting nethttp on 127.0.0.1:$NETHTTP_PORT (GOMAXPROCS=1, pinned to CPU $SERVER_CPU)"
	taskset -c "$SERVER_CPU" env GOMAXPROCS=1 "$TMP/nethttp" -addr "127.0.0.1:$NETHTTP_PORT" \
		-cert "$TMP/cert.pem" -key "$TMP/key.pem" </dev/null >"$TMP/nethttp.log" 2>&1 &
	NETHTTP_PID=$!
	wait_ready nethttp "$B_URL/bench" "$NETHTTP_PID" "$TMP/nethttp.log"
}

has() { case " $SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }
step() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

has edgecert || die "BENCH_SERVERS must include edgecert (every ratio is about it)"
has nginx && start_nginx
has nethttp && start_nethttp
has edgecert && start_edgecert
for server in $SERVERS; do
	tls=$(curl -skv --http1.1 -o /dev/null "$(base_url "$server")/bench" 2>&1 |
		sed -n 's/^\* SSL connection using //p' | head -n1)
	log "$server negotiates $tls with curl (wrk uses the same OpenSSL)"
done
log "fairness: each server runs pinned to CPU $SERVER_CPU (edgecert and nethttp GOMAXPROCS=1, nginx 1 worker);" \
	"wrk and curl run pinned to CPU $CLIENT_CPU; the servers are measured alternately"

# -------------------------------------------------------------- 4. measure --

# rss_test: idle and peak RSS of edgecert across one 1 GiB /data download
# (HTTP/1.1 and then HTTP/2), sampled at ~20 Hz and cross-checked with VmHWM
# after resetting it through clear_refs.
rss_test() {
	local proto url idle peak hwm r cpid hwm_ok out code size speed version
	url="$E_URL/data?size=1&unit=gb"
	log "step 4a: edgecert RSS during one 1 GiB /data download (fresh process)"
	for proto in 1.1 2; do
		# Warm the TLS and /data paths, then let the process settle.
		curl -fsk "--http$proto" -o /dev/null "$E_URL/bench"
		curl -fsk "--http$proto" -o /dev/null "$E_URL/data?size=1&unit=mb"
		sleep 1
		idle=$(status_kib "$EDGECERT_PID" VmRSS)
		hwm_ok=no
		if echo 5 >"/proc/$EDGECERT_PID/clear_refs" 2>/dev/null; then hwm_ok=yes; fi
		peak=$idle
		taskset -c "$CLIENT_CPU" curl -sk "--http$proto" --max-time 300 -o /dev/null \
			-w '%{http_code} %{size_download} %{speed_download} %{http_version}\n' "$url" >"$TMP/rss-curl.out" &
		cpid=$!
		BG_PIDS+=("$cpid")
		while kill -0 "$cpid" 2>/dev/null; do
			r=$(status_kib "$EDGECERT_PID" VmRSS)
			[ "$r" -gt "$peak" ] && peak=$r
			sleep 0.05
		done
		wait "$cpid" || die "curl $url (HTTP/$proto) failed"
		BG_PIDS=()
		read -r code size speed version <"$TMP/rss-curl.out"
		if [ "$code" != 200 ] || [ "$size" != "$BIG_BYTES" ] || [ "$version" != "$proto" ]; then
			die "edgecert $url (HTTP/$proto): status $code, $size bytes, HTTP/$version (want 200, $BIG_BYTES, HTTP/$proto)"
		fi
		if [ "$hwm_ok" = yes ]; then
			hwm=$(status_kib "$EDGECERT_PID" VmHWM)
			[ "$hwm" -gt "$peak" ] && peak=$hwm
		fi
		out=$(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1048576 }')
		log "  HTTP/$proto: idle RSS $((idle / 1024)) MiB, peak $((peak / 1024)) MiB (+$(((peak - idle) / 1024)) MiB;" \
			"VmHWM reset: $hwm_ok), $out MiB/s"
		printf 'rss\t%s\t%s\t%s\n' "$proto" "$idle" "$peak" >>"$SAMPLES"
	done
}

# cpu_busy N: busy clock ticks of CPU N since boot (all processes).
cpu_busy() {
	awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# cpu_start SERVER / cpu_pct SERVER: CPU use since cpu_start, in percent of
# one core: "SERVER OTHERS CLIENT" = the server (all its processes and
# threads), everything else on the server's CPU (other users of the
# machine), and everything on the client's CPU (the client and others).
cpu_start() {
	CPU_T0=$EPOCHREALTIME
	CPU_C0=$(server_ticks "$1")
	CPU_S0=$(cpu_busy "$SERVER_CPU")
	CPU_K0=$(cpu_busy "$CLIENT_CPU")
}
cpu_pct() {
	local c1 s1 k1 t1=$EPOCHREALTIME
	c1=$(server_ticks "$1")
	s1=$(cpu_busy "$SERVER_CPU")
	k1=$(cpu_busy "$CLIENT_CPU")
	awk -v c0="$CPU_C0" -v c1="$c1" -v s0="$CPU_S0" -v s1="$s1" -v k0="$CPU_K0" -v k1="$k1" \
		-v t0="$CPU_T0" -v t1="$t1" -v hz="$CLK_TCK" 'BEGIN {
			f = 100 / hz / (t1 - t0); o = (s1 - s0) - (c1 - c0); if (o < 0) o = 0
			printf "%.0f %.0f %.0f\n", (c1 - c0) * f, o * f, (k1 - k0) * f }'
}
CLK_TCK=$(getconf CLK_TCK)

# wrk_run SERVER ROUTE-KEY SECONDS [wrk args...]: one wrk run; prints
# "req/s" and then cpu_pct's three figures.
wrk_run() {
	local server=$1 key=$2 secs=$3 url out rps non2xx sock cpu
	shift 3
	url=$(base_url "$server")$(route "$server" "$key")
	cpu_start "$server"
	out=$(taskset -c "$CLIENT_CPU" wrk -t1 "-c$CONNS" "-d${secs}s" "$@" "$url" 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "wrk $url failed"; }
	cpu=$(cpu_pct "$server")
	rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
	non2xx=$(printf '%s\n' "$out" | awk '/Non-2xx or 3xx responses:/ { print $NF }')
	sock=$(printf '%s\n' "$out" | sed -n 's/^ *Socket errors: //p')
	if [ -z "$rps" ] || [ "$rps" = 0 ]; then
		printf '%s\n' "$out" >&2
		die "no requests completed: wrk $url"
	fi
	[ -z "$non2xx" ] || { printf '%s\n' "$out" >&2; die "$server answered $non2xx non-2xx responses on $url"; }
	[ -z "$sock" ] || log "    ($server $url: wrk socket errors: $sock)"
	echo "$rps $cpu"
}

# data_run SERVER PROTO: one 100 MiB download with curl; prints "MiB/s" and
# then cpu_pct's three figures.
data_run() {
	local server=$1 proto=$2 url code size speed version cpu
	url=$(base_url "$server")$(route "$server" /data)
	cpu_start "$server"
	read -r code size speed version < <(taskset -c "$CLIENT_CPU" curl -sk "--http$proto" --max-time 120 \
		-o /dev/null -w '%{http_code} %{size_download} %{speed_download} %{http_version}\n' "$url" ||
		echo "curl-failed 0 0 -")
	cpu=$(cpu_pct "$server")
	if [ "$code" != 200 ] || [ "$size" != "$DATA_BYTES" ] || [ "$version" != "$proto" ]; then
		die "$server $url (HTTP/$proto): status $code, $size bytes, HTTP/$version (want 200, $DATA_BYTES, HTTP/$proto)"
	fi
	awk -v s="$speed" -v c="$cpu" 'BEGIN { printf "%.0f %s\n", s / 1048576, c }'
}

# stime_run SERVER SECONDS: full TLS handshakes per second, from STIME_PROCS
# parallel `openssl s_time -new` clients (wrk resumes TLS sessions on its
# reconnections, s_time -new never does); prints "conn/s" and then
# cpu_pct's three figures. No HTTP request is sent.
STIME_PROCS=4
stime_run() {
	local server=$1 secs=$2 hostport i p n t0 t1 cpu
	local -a pids=()
	hostport=$(base_url "$server")
	hostport=${hostport#https://}
	rm -f "$TMP"/stime.*
	cpu_start "$server"
	t0=$EPOCHREALTIME
	for i in $(seq "$STIME_PROCS"); do
		taskset -c "$CLIENT_CPU" openssl s_time -connect "$hostport" -new -time "$secs" \
			</dev/null >"$TMP/stime.$i" 2>&1 &
		pids+=("$!")
	done
	for p in "${pids[@]}"; do
		wait "$p" || { cat "$TMP"/stime.* >&2; die "openssl s_time -connect $hostport failed"; }
	done
	t1=$EPOCHREALTIME
	cpu=$(cpu_pct "$server")
	n=$(awk '/ connections in .* real seconds/ { s += $1 } END { print s + 0 }' "$TMP"/stime.*)
	[ "$n" -gt 0 ] || { cat "$TMP"/stime.* >&2; die "openssl s_time made no connection to $hostport"; }
	awk -v n="$n" -v t0="$t0" -v t1="$t1" -v c="$cpu" 'BEGIN { printf "%.0f %s\n", n / (t1 - t0), c }'
}

declare -A LABEL=(
	[/]="/ req/s" [/api]="/api req/s" [/bench]="/bench req/s" [hs]="resumed TLS conn/s" [hsfull]="full TLS handshakes/s"
	[data1.1]="/data 100MiB h1.1 MiB/s" [data2]="/data 100MiB h2 MiB/s"
)
# record METRIC SERVER "VALUE CPU OTHERS CLIENT" ROUND: append one sample to
# $SAMPLES (for scripts/bench/report) and print it.
record() {
	local v c o k
	read -r v c o k <<<"$3"
	printf 'run\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$v" "$c" "$o" >>"$SAMPLES"
	log "$(printf '  round %s/%s  %-8s %-24s %8s   CPU%s: server %3s%% others %3s%%   CPU%s: %3s%%' \
		"$4" "$ROUNDS" "$2" "${LABEL[$1]}" "$v" "$SERVER_CPU" "$c" "$o" "$CLIENT_CPU" "$k")"
}

# conn_test KIND SERVER ROUND: RSS of SERVER before and after idleconns holds
# IDLE_CONNS idle connections of KIND open (tls or ws), recorded for the
# per-connection rows. The connections are closed before it returns.
conn_test() {
	local kind=$1 server=$2 before after fifo line cpid
	before=$(server_rss "$server")
	fifo=$TMP/idleconns.in
	rm -f "$fifo"
	mkfifo "$fifo"
	taskset -c "$CLIENT_CPU" "$TMP/idleconns" -kind "$kind" -n "$IDLE_CONNS" "$(base_url "$server")" \
		<"$fifo" >"$TMP/idleconns.out" 2>&1 &
	cpid=$!
	BG_PIDS+=("$cpid")
	exec 7>"$fifo"
	line=
	for _ in $(seq 600); do
		line=$(head -n1 "$TMP/idleconns.out" 2>/dev/null || true)
		[ -n "$line" ] && break
		kill -0 "$cpid" 2>/dev/null || break
		sleep 0.1
	done
	[ "$line" = "open $IDLE_CONNS" ] || { exec 7>&-; cat "$TMP/idleconns.out" >&2; die "idleconns -kind $kind to $server failed"; }
	# Let the server settle: goroutines park, and edgecert's memory trim
	# (daemon/memory.go: a check every 5 s, a trim at the first quiet one)
	# has run, as it does on a server whose connections have gone idle.
	sleep "$IDLE_SETTLE"
	after=$(server_rss "$server")
	exec 7>&-
	wait "$cpid" || true
	BG_PIDS=()
	printf 'conn\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$server" "$IDLE_CONNS" "$before" "$after" >>"$SAMPLES"
	log "$(printf '  round %s/%s  %-8s %s idle %s connections: RSS %s -> %s KiB (%s KiB each)' "$3" 3 "$server" \
		"$IDLE_CONNS" "$kind" "$before" "$after" "$(awk -v b="$before" -v a="$after" -v n="$IDLE_CONNS" 'BEGIN { printf "%.1f", (a - b) / n }')")"
}

has edgecert && step rss && rss_test

METRICS=(/ /api /bench hs hsfull)
est=$((ROUNDS * ${#METRICS[@]} * 2 * DURATION + ${#METRICS[@]} * 2 * WARMUP))
step wrk && log "step 4b: wrk -t1 -c$CONNS -d${DURATION}s over HTTP/1.1 keep-alive on /, /api, /bench;" \
	"resumed TLS conn/s: the same on /bench with -H 'Connection: close';" \
	"full TLS handshakes/s: $STIME_PROCS x openssl s_time -new -time $DURATION;" \
	"$ROUNDS rounds, servers alternating, one ${WARMUP}s warm-up per metric and server discarded (about ${est}s)"
step wrk || ROUNDS_WRK=0
for round in $(seq "${ROUNDS_WRK:-$ROUNDS}"); do
	for metric in "${METRICS[@]}"; do
		for server in $SERVERS; do
			if [ "$metric" = hsfull ]; then
				if [ "$round" = 1 ]; then
					stime_run "$server" "$WARMUP" >/dev/null
				fi
				out=$(stime_run "$server" "$DURATION")
				record "$metric" "$server" "$out" "$round"
				continue
			fi
			args=()
			key=$metric
			if [ "$metric" = hs ]; then
				args=(-H 'Connection: close')
				key=/bench
			fi
			[ -n "$(route "$server" "$key")" ] || continue
			if [ "$round" = 1 ]; then
				wrk_run "$server" "$key" "$WARMUP" "${args[@]}" >/dev/null
			fi
			out=$(wrk_run "$server" "$key" "$DURATION" "${args[@]}")
			record "$metric" "$server" "$out" "$round"
		done
	done
done

step data && log "step 4c: 100 MiB downloads with curl over HTTP/1.1 and HTTP/2, $DATA_RUNS per server per round," \
	"servers alternating (edgecert /data?size=100&unit=mb, nginx a static 100 MiB file)"
step data || ROUNDS_DATA=0
for round in $(seq "${ROUNDS_DATA:-$ROUNDS}"); do
	for proto in 1.1 2; do
		for i in $(seq "$DATA_RUNS"); do
			for server in $SERVERS; do
				[ -n "$(route "$server" /data)" ] || continue
				out=$(data_run "$server" "$proto")
				record "data$proto" "$server" "$out" "$round"
			done
		done
	done
done

step conns && log "step 4d: RSS per idle connection: $IDLE_CONNS TLS keep-alive connections after one /bench each" \
	"(every server), $IDLE_CONNS websockets after one /echo message each (edgecert), held idle" \
	"${IDLE_SETTLE}s, 3 rounds, each on a freshly started server"
step conns || CONN_ROUNDS=
for round in ${CONN_ROUNDS-1 2 3}; do
	for server in $SERVERS; do
		restart "$server"
		conn_test tls "$server" "$round"
	done
	restart edgecert
	conn_test ws edgecert "$round"
done

# ---------------------------------------------------------------- 5. report --

echo
log "step 5: results (scripts/bench/report $SAMPLES)"
echo
"$TMP/report" "$SAMPLES" || die "the report failed"

# Stop the servers before the Go benchmarks so they do not hold memory or CPU.
if [ -n "$EDGECERT_PID" ]; then
	stop "$EDGECERT_PID" edgecert
	EDGECERT_PID=
fi
if [ -n "$NETHTTP_PID" ]; then
	stop "$NETHTTP_PID" nethttp
	NETHTTP_PID=
fi
if [ -n "$NGINX_PID" ]; then
	stop "$NGINX_PID" nginx
	NGINX_PID=
fi

# ---------------------------------------------------------- Go benchmarks --

if [ "$GO_BENCH" != 0 ]; then
	echo
	log "step 6: Go micro-benchmarks: go test -run '^\$' -bench . -benchmem ./routes ./certstore"
	(cd "$ROOT" && go test -run '^$' -bench . -benchmem ./routes ./certstore) ||
		die "go test -bench failed"
fi
log "done"
