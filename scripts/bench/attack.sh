#!/usr/bin/env bash
# attack.sh: the attacks of issue 8 that nginx shares, against edgecert and
# nginx side by side on loopback (`make bench-attack`; BENCHMARKS.md,
# "Hardening: a normal client during each attack").
#
# edgecert is the real binary (bin/edgecert) with its default limits,
# serving an operator certificate; nginx gets the same certificate and the
# comparable limits (client_header_timeout, client_body_timeout,
# send_timeout, keepalive_timeout, http2_max_concurrent_streams and the
# others below). Each server is pinned to CPU 1 (edgecert GOMAXPROCS=1,
# nginx one worker); scripts/bench/attack (attackers and the normal
# client) to CPU 0. The attack command prints one Markdown table.
#
# Both servers are started afresh for every row (RSS figures start clean).
# Installs nginx from Debian when missing (scripts/install-deps.sh bench,
# root) and takes about 12 minutes: most
# rows wait for a server's timeout. Knobs (env):
#   ATTACK_ROWS=quiet,slowloris,...   rows to run, in order (default: all)
#   ATTACK_ARGS="-conns 120 -idle 3000"   more flags for scripts/bench/attack
#   EDGECERT_BIN=bin/edgecert
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EDGECERT_BIN=${EDGECERT_BIN:-$ROOT/bin/edgecert}
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || "$ROOT/scripts/install-deps.sh" bench
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
log() { printf '[attack.sh %3ds] %s\n' "$SECONDS" "$*"; }
die() {
	log "FAILED: $*" >&2
	exit 1
}
[ -x "$EDGECERT_BIN" ] || die "$EDGECERT_BIN is missing: run 'make build'"
[ -x "$NGINX" ] || die "nginx is not installed (scripts/bench/run.sh installs it)"
for t in taskset openssl curl go; do command -v "$t" >/dev/null || die "$t is not installed"; done
SERVER_CPU=1 CLIENT_CPU=0
[ "$(nproc)" -ge 2 ] || SERVER_CPU=0

TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgecert-attack.XXXXXX")
PIDS=()
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 0711 "$TMP"

# free_port: a loopback port nothing listens on, below the ephemeral range
# (where another process's client socket could hold it).
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	die "no free port"
}

# wait_ready NAME URL PID: until URL answers 200 (30 s).
wait_ready() {
	for _ in $(seq 150); do
		kill -0 "$3" 2>/dev/null || die "$1 exited during start-up"
		curl -fsk --max-time 2 -o /dev/null "$2" && return 0
		sleep 0.2
	done
	die "$1 did not answer $2"
}

log "certificate, the attack command, a 1 GiB sparse file for nginx"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
	-addext subjectAltName=DNS:bench.test -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
chmod 0600 "$TMP/key.pem"
(cd "$ROOT" && go build -o "$TMP/attack" ./scripts/bench/attack) || die "go build ./scripts/bench/attack"
mkdir -p "$TMP/nginx/www" "$TMP/nginx/logs" "$TMP/nginx/tmp" "$TMP/state"
chmod 0755 "$TMP/nginx" "$TMP/nginx/www"
truncate -s 1G "$TMP/nginx/www/data1g.bin"
chmod 0644 "$TMP/nginx/www/data1g.bin"

E_PORT=$(free_port)
N_PORT=$(free_port)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
h2_listen="" h2_on=""
if printf '%s\n1.25.1\n' "$NGINX_VERSION" | sort -V -C; then h2_listen=" http2"; else h2_on="http2 on;"; fi
# Each limit next to edgecert's (daemon/limits.go defaults); the rest are
# nginx's defaults. limit_conn counts connections with a request in
# progress (nginx has no cap on idle connections per client).
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }              # MaxConns 4096
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    client_header_timeout 10s;                   # HeaderTimeout 10 s
    client_body_timeout 10s;                     # BodyTimeout 10 s
    send_timeout 30s;                            # WriteTimeout 30 s
    keepalive_timeout 120s;                      # IdleTimeout 120 s
    http2_max_concurrent_streams 64;             # H2MaxStreams 64
    http2_body_preread_size 64k;                 # H2StreamWindow 64 KiB
    large_client_header_buffers 4 64k;           # MaxHeaderBytes 64 KiB
    limit_conn_zone \$binary_remote_addr zone=perclient:10m;
    limit_conn perclient 256;                    # PerClientConns 256
    server {
        listen 127.0.0.1:$N_PORT ssl$h2_listen;
        $h2_on
        server_name bench.test;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $TMP/nginx/www;
        location = / { default_type text/plain; return 200 "Hostname: \$hostname\nRemoteAddr: \$remote_addr:\$remote_port\n"; }
        location = /api {
            default_type application/json;
            return 200 '{"hostname":"\$hostname","url":"\$request_uri","host":"\$host","method":"\$request_method","remoteAddr":"\$remote_addr:\$remote_port"}\n';
        }
        location = /bench { default_type text/plain; return 200 "1"; }
        location = /data1g.bin { }
    }
}
EOF
"$NGINX" -t -q -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" -c "$TMP/nginx/nginx.conf" || die "nginx rejected its configuration"

# start_servers / stop_servers: fresh processes for every row, so that no
# row's RSS figure starts from what an earlier row left allocated (a Go
# process returns freed memory to the kernel only slowly).
start_servers() {
	taskset -c "$SERVER_CPU" "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" -c "$TMP/nginx/nginx.conf" </dev/null &
	N_PID=$!
	taskset -c "$SERVER_CPU" env GOMAXPROCS=1 "$EDGECERT_BIN" run -https-addr "127.0.0.1:$E_PORT" -http-addr= -admin-addr= \
		-state-dir "$TMP/state" -cert-file "$TMP/cert.pem" -key-file "$TMP/key.pem" \
		</dev/null >>"$TMP/edgecert.log" 2>&1 &
	E_PID=$!
	PIDS=("$N_PID" "$E_PID")
	wait_ready nginx "https://127.0.0.1:$N_PORT/bench" "$N_PID"
	wait_ready edgecert "https://127.0.0.1:$E_PORT/bench" "$E_PID"
}
stop_servers() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	PIDS=()
}

ROWS=${ATTACK_ROWS:-quiet,slowloris,slowbody,neverread,idle,h2continuation,h2bodies,rapidreset}
log "nginx $NGINX_VERSION on 127.0.0.1:$N_PORT and $("$EDGECERT_BIN" version 2>&1 | head -n1) on 127.0.0.1:$E_PORT," \
	"both pinned to CPU $SERVER_CPU, restarted for every row; the attack command on CPU $CLIENT_CPU; rows $ROWS"
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
i=0
for row in ${ROWS//,/ }; do
	start_servers
	# shellcheck disable=SC2086 # ATTACK_ARGS is a list of flags
	taskset -c "$CLIENT_CPU" "$TMP/attack" -server-name bench.test -ca "$TMP/cert.pem" -rows "$row" ${ATTACK_ARGS:-} \
		-target "edgecert=127.0.0.1:$E_PORT,pid=$E_PID,big=/data?size=1&unit=gb" \
		-target "nginx=127.0.0.1:$N_PORT,pid=$N_PID,big=/data1g.bin" >"$TMP/table.$i" || die "the attack command failed on row $row"
	stop_servers
	i=$((i + 1))
done
echo
head -n 2 "$TMP/table.0"
for f in $(seq 0 $((i - 1))); do tail -n +3 "$TMP/table.$f"; done
echo
log "edgecert log lines by event: $(grep -o 'msg=[a-z._]*' "$TMP/edgecert.log" | sort | uniq -c | tr '\n' ' ')"
log "nginx error log lines: $(wc -l <"$TMP/nginx/logs/error.log")"
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
