#!/bin/bash
# test.sh: the appliance test. Proves, on this machine and without AWS, the
# operator's path: an image provisioned by the Packer template, then
# `systemctl start edgecert`, certificates from an ACME CA by DNS-01 through
# the Route 53 API, rotation visible in `journalctl -u edgecert`.
#
# Usage (root): scripts/appliance/test.sh        (make appliance-test)
#
# What it does, each step announced as it runs:
#   1. install the Debian packages it needs (scripts/install-deps.sh);
#   2. build the release (scripts/release.sh: static linux/amd64 and
#      linux/arm64 binaries and their Debian packages) and devrig; check both
#      binaries with file(1) and their ELF headers;
#   3. static checks: packer fmt -check + validate + console (packer-check.sh),
#      systemd-analyze security --offline=yes --threshold=15, every flag of
#      `edgecert run -h` documented in edgecert.env.example, shellcheck;
#   4. a cached Debian 12 root file system (rootfs.sh: debootstrap once);
#   5. a network namespace "edgecert-at" with only lo: every address below is
#      127.0.0.1 inside it, so nothing is exposed and nothing reaches out;
#   6. the offline rig in it (devrig: Pebble ACME CA, Route 53 API,
#      authoritative DNS for demo.test, short-lived certificate profile);
#   7. a systemd-nspawn container booting that root file system in the same
#      namespace, with sshd on 127.0.0.1:2222, seeded with what a build
#      instance carries (authorized key, cloud-init state and log);
#   8. packer build of the AMI's build block with the null source (the view
#      packer-check.sh makes): first with the arm64 package and with an
#      amd64 package holding the arm64 binary, both of which must stop the
#      build before anything is installed; then with the amd64 package:
#      upgrade.sh (skipped offline), provision.sh, cleanup.sh over SSH, as
#      on EC2; the image must then be clean (no machine-id, no authorized
#      key, no cloud-init state or log) and carry the build record;
#   9. systemd-analyze verify of the installed unit in the provisioned tree;
#  10. systemd/user-data.example, its settings replaced by the rig's, writes
#      /etc/edgecert/edgecert.env and starts the service; then the
#      assertions (see the step titles below).
# Cleanup (EXIT trap, also after a failure or ^C): container, rig,
# namespace, temp dir. Every wait is bounded.
#
# Environment: EDGECERT_CI_CACHE (rootfs cache, default
# /var/cache/edgecert-ci), EDGECERT_AT_KEEP=1 keeps the temp dir (logs),
# EDGECERT_AT_VALIDITY (certificate lifetime of the rig's profile, default
# 3m; renewal is awaited for up to 3x that).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR
. "$here/lib.sh"
# shellcheck source-path=SCRIPTDIR
. "$here/container.sh"

NS=edgecert-at
SSH_PORT=2222
RIG_IP=127.0.0.1
ACME_PORT=14000
R53_PORT=14002
DNS_PORT=14053
ZONE=demo.test
VALIDITY=${EDGECERT_AT_VALIDITY:-3m}
CT_ENV=/etc/edgecert/edgecert.env
CT_CA_ROOTS=/etc/edgecert/acme-ca-roots.pem
CT_RIG_ROOT=/root/rig-root.pem

# One run at a time: the namespace name and ports are fixed.
begin_root_test appliance-test edgecert-at EDGECERT_AT_KEEP ""

# --- helpers -----------------------------------------------------------------

svc() { ct systemctl show -p "$1" --value edgecert.service; }

# journal [ARGS...]: the unit's journal inside the container, messages only.
journal() { ct journalctl -u edgecert.service -o cat --no-pager -q "$@"; }

# journal_has REGEX [ARGS...]: the unit's journal has a line matching REGEX.
# (grep without -q reads all input: no SIGPIPE for journalctl under pipefail)
journal_has() {
	local re=$1
	shift
	journal "$@" | grep -E -- "$re" >/dev/null
}

# served_cert NAME: serial, issuer and expiry of the certificate the daemon
# serves for SNI NAME, verified against the rig's issuing root.
served_cert() {
	ip netns exec "$NS" openssl s_client -connect 127.0.0.1:443 -servername "$1" \
		-CAfile "$WORK/rig-root.pem" -verify_return_error </dev/null 2>/dev/null |
		openssl x509 -noout -serial -issuer -enddate
}
# serial_of NAME: the served serial, or "" (never fails).
serial_of() { served_cert "$1" 2>/dev/null | sed -n 's/^serial=//p' || true; }

# https NAME PATH: GET https://NAME/PATH inside the container, resolving NAME
# to 127.0.0.1 and trusting only the rig's issuing root.
https() {
	ct curl -fsS --max-time 15 --cacert "$CT_RIG_ROOT" \
		--resolve "$1:443:127.0.0.1" "https://$1$2"
}

is_active() { [ "$(ct systemctl is-active edgecert.service 2>/dev/null)" = active ]; }
main_pid_changed_from() {
	local pid
	pid=$(svc MainPID)
	[ "$pid" != 0 ] && [ "$pid" != "$1" ] && is_active
}
serial_changed_from() {
	local s
	s=$(serial_of "$APEX")
	[ -n "$s" ] && [ "$s" != "$1" ]
}

dump_logs() {
	[ "$_exit_rc" -ne 0 ] || return 0
	printf '\n---- journalctl -u edgecert (last 80 lines) ----\n' >&3
	journal -n 80 >&3 2>&1 || true
	if [ -s "$WORK/devrig.log" ]; then
		printf '\n---- devrig log (last 30 lines) ----\n' >&3
		tail -n 30 "$WORK/devrig.log" >&3
	fi
}

# --- 1-3: packages, binaries, static checks ----------------------------------

step "install packages (scripts/install-deps.sh)"
run "$repo/scripts/install-deps.sh" appliance

step "build the release (scripts/release.sh: linux/amd64 + linux/arm64, .deb) and devrig"
run env DIST="$WORK/dist" "$repo/scripts/release.sh"
(
	cd "$repo"
	export CGO_ENABLED=0
	run go build -trimpath -ldflags "-s -w" -o "$WORK/devrig" ./internal/devrig/cmd/devrig
)
ln -s "$(ls "$WORK"/dist/edgecert_v*_linux_amd64)" "$WORK/edgecert"
for want in "amd64|x86-64|3e" "arm64|ARM aarch64|b7"; do
	IFS='|' read -r arch desc machine <<<"$want"
	bin=$(ls "$WORK"/dist/edgecert_v*_linux_"$arch")
	out=$(file -b "$bin")
	[[ "$out" == "ELF 64-bit LSB executable, $desc,"*"statically linked"* ]] ||
		die "$bin: file says '$out', want a static ELF 64-bit LSB $desc executable"
	# ELF magic, class 2 (64-bit), data 1 (little endian), e_machine
	hdr=$(od -An -v -tx1 -N20 "$bin" | tr -d ' \n')
	[[ "${hdr:0:12}" = 7f454c460201 && "${hdr:36:4}" = "${machine}00" ]] ||
		die "$bin: ELF header $hdr, want 7f454c460201... with e_machine ${machine}00"
	say "$arch: ${out%%, Go BuildID*}; e_machine 0x$machine"
done
(cd "$WORK/dist" && sha256sum --quiet -c SHA256SUMS) || die "SHA256SUMS does not match the artefacts"
say "$(grep -c . "$WORK/dist/SHA256SUMS") artefacts match SHA256SUMS; $("$WORK/edgecert" version)"

step "static checks: packer fmt/validate, systemd-analyze security, env example, shellcheck"
mkdir -p "$WORK/packer-view"
TEMPLATE=$(unshare -n "$here/packer-check.sh" "$WORK/dist/edgecert_amd64.deb" "$WORK/packer-view")
out=$(systemd-analyze security --offline=yes --threshold=15 "$repo/systemd/edgecert.service" 2>&1) ||
	die "systemd-analyze security: exposure above 1.5:
$out"
say "$(printf '%s\n' "$out" | grep 'Overall exposure')"
# Every flag of `edgecert run` is documented in the env example, by its
# EDGECERT_ variable.
flags=$("$WORK/edgecert" run -h 2>&1 | sed -n 's/^  -\([a-z0-9-]*\).*/\1/p')
[ -n "$flags" ] || die "edgecert run -h lists no flags"
for f in $flags; do
	v=EDGECERT_$(tr 'a-z-' 'A-Z_' <<<"$f")
	grep -Eq "^#?$v=" "$repo/systemd/edgecert.env.example" ||
		die "systemd/edgecert.env.example does not document $v (flag -$f)"
done
say "edgecert.env.example documents all $(wc -w <<<"$flags") flags of edgecert run"
shellcheck -x "$repo"/packer/*.sh "$repo"/packaging/post* "$repo"/packaging/prerm \
	"$repo/systemd/user-data.example" "$repo/scripts/install-deps.sh" "$repo/scripts/release.sh" \
	"$here"/*.sh || die "shellcheck found problems"
say "shellcheck clean: packer/*.sh, packaging scripts, user-data.example, install-deps.sh, release.sh, scripts/appliance/*.sh"

# --- 4-7: root file system, namespace, rig, container ------------------------

step "root file system (cached debootstrap)"
ROOTFS=$("$here/rootfs.sh")
say "rootfs $ROOTFS"

step "network namespace $NS (lo only)"
if ip netns list | grep -qw "$NS"; then
	say "removing a stale $NS left by an earlier run"
	ip netns del "$NS"
fi
run ip netns add "$NS"
on_exit "ip netns del $NS"
run ip -n "$NS" link set lo up

step "offline rig: ACME CA, Route 53 API, DNS for $ZONE (certificates live $VALIDITY)"
# Started as a plain command: ip netns exec execs, so $! is devrig.
ip netns exec "$NS" "$WORK/devrig" -ip "$RIG_IP" -acme-port "$ACME_PORT" \
	-route53-port "$R53_PORT" -dns-port "$DNS_PORT" -zone "$ZONE" \
	-profile-validity "$VALIDITY" -dir "$WORK/rig" -env-file "$WORK/rig.env" \
	-ca-file "$WORK/rig-ca.pem" -root-file "$WORK/rig-root.pem" \
	>"$WORK/devrig.log" 2>&1 </dev/null &
RIG_PID=$!
# shellcheck disable=SC2016 # expanded when the cleanup runs
on_exit 'stop_pid "$RIG_PID" devrig'
rig_up() {
	kill -0 "$RIG_PID" 2>/dev/null || die "devrig exited: $(tail -n 5 "$WORK/devrig.log")"
	[ -s "$WORK/rig.env" ] && [ -s "$WORK/rig-ca.pem" ] && [ -s "$WORK/rig-root.pem" ] &&
		ip netns exec "$NS" curl -fsS --max-time 2 --cacert "$WORK/rig-ca.pem" \
			"https://$RIG_IP:$ACME_PORT/dir" >/dev/null
}
wait_for 60 "devrig to serve https://$RIG_IP:$ACME_PORT/dir" rig_up
say "devrig pid $RIG_PID; env: $(grep -v '^#' "$WORK/rig.env" | cut -d= -f1 | tr '\n' ' ')"
DOMAINS=$(sed -n 's/^EDGECERT_DOMAINS=//p' "$WORK/rig.env")
[ -n "$DOMAINS" ] || die "rig env has no EDGECERT_DOMAINS"
IFS=, read -ra names <<<"${DOMAINS%%;*}"
APEX='' WILD=''
for n in "${names[@]}"; do
	case "$n" in
	\*.*) WILD=x.${n#\*.} ;;
	*) [ -n "$APEX" ] || APEX=$n ;;
	esac
done
if [ -z "$APEX" ] || [ -z "$WILD" ]; then
	die "want an apex and a wildcard name in EDGECERT_DOMAINS=$DOMAINS"
fi
say "names: $APEX and $WILD (certificate ${DOMAINS%%;*})"

step "boot the container (systemd-nspawn in $NS, sshd on 127.0.0.1:$SSH_PORT)"
ssh-keygen -q -t ed25519 -N '' -C edgecert-at -f "$WORK/id_ed25519"
install -m 0600 "$WORK/id_ed25519.pub" "$WORK/authorized_keys"
printf 'Port %s\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n' \
	"$SSH_PORT" >"$WORK/sshd.conf"
ct_boot "$ROOTFS" "/run/netns/$NS" "$WORK/nspawn.log" \
	--bind-ro="$WORK/sshd.conf:/etc/ssh/sshd_config.d/edgecert-at.conf"
on_exit dump_logs
# What a build instance carries and the image must not: the builder's key
# (cloud-init installs Packer's temporary key pair), cloud-init's state and
# log of the build boot. (The machine-id is the container's own.)
ct_put "$WORK/authorized_keys" /root/.ssh/authorized_keys 0600
ct sh -c 'mkdir -p /var/lib/cloud/instances/i-0build && touch /var/lib/cloud/instances/i-0build/boot-finished &&
	ln -sfn /var/lib/cloud/instances/i-0build /var/lib/cloud/instance &&
	echo "cloud-init build boot" >/var/log/cloud-init.log'
MACHINE_ID=$(ct cat /etc/machine-id)
[ -n "$MACHINE_ID" ] || die "the container has no machine-id to clean"
wait_for 30 "sshd on 127.0.0.1:$SSH_PORT" ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT"

# --- 8-9: provisioning with Packer -------------------------------------------

# packer_build LOG VAR=VALUE...: the AMI's build block against the
# container; its output goes to LOG and, indented, to the terminal.
packer_build() {
	local log=$1 args=() kv rc=0
	shift
	for kv in "$@"; do args+=(-var "$kv"); done
	ip netns exec "$NS" timeout 300 packer build -color=false \
		-var "ssh_port=$SSH_PORT" -var "ssh_private_key_file=$WORK/id_ed25519" -var upgrade=false \
		"${args[@]}" "$TEMPLATE" >"$log" 2>&1 || rc=$?
	sed 's/^/    | /' "$log" >&3
	return "$rc"
}
not_installed() {
	! ct test -e /usr/bin/edgecert && ! ct dpkg-query -W edgecert >/dev/null 2>&1
}
# stopped_at LOG TEXT: the build stopped at a provision.sh FAIL line with TEXT.
stopped_at() {
	grep -F 'provision: FAIL: ' "$1" | grep -F -- "$2" >/dev/null
}

# refused NAME PACKAGE TEXT: a build with PACKAGE must stop at a provision.sh
# FAIL line containing TEXT, with nothing installed.
refused() {
	local log=$WORK/packer-$1.log
	if packer_build "$log" "package=$2"; then
		die "packer build with $1 succeeded on an amd64 host"
	fi
	stopped_at "$log" "$3" || die "the build with $1 did not stop at provision.sh's check ($3)"
	not_installed || die "edgecert was installed from $1"
	say "stopped: $(grep -F 'provision: FAIL: ' "$log" | head -n 1 | sed 's/.*provision: //')"
}

step "provision with the arm64 package: the build must stop, nothing installed"
refused arm64-package "$WORK/dist/edgecert_arm64.deb" 'is for arm64, this host is amd64'

step "provision with an amd64 package holding the arm64 binary: the build must stop"
dpkg-deb -R "$WORK/dist/edgecert_amd64.deb" "$WORK/mixed"
install -m 0755 "$(ls "$WORK"/dist/edgecert_v*_linux_arm64)" "$WORK/mixed/usr/bin/edgecert"
dpkg-deb -Znone -b "$WORK/mixed" "$WORK/mixed.deb" >/dev/null
refused mixed-package "$WORK/mixed.deb" 'is a arm64 binary, this host is amd64'

step "provision with Packer: the AMI's build block (upgrade, package, clean-up) with the null source"
packer_build "$WORK/packer.log" "package=$WORK/dist/edgecert_amd64.deb" || die "packer build failed"
[ "$(ct systemctl is-enabled edgecert.service)" = enabled ] || die "edgecert.service is not enabled"
! is_active || die "provisioning started edgecert; it must only enable it"
debver=$(dpkg-deb -f "$WORK/dist/edgecert_amd64.deb" Version)
# shellcheck disable=SC2016 # a dpkg-query format, not shell
[ "$(ct dpkg-query -W -f '${Version} ${db:Status-Status}' edgecert)" = "$debver installed" ] ||
	die "package edgecert $debver is not installed: $(ct dpkg-query -W edgecert 2>&1)"
say "edgecert.service enabled, not started; package $debver installed; $(ct /usr/bin/edgecert version)"

step "the image is clean: no machine-id, no authorized key, no cloud-init state or log"
[ "$(ct stat -c %s /etc/machine-id)" = 0 ] || die "/etc/machine-id is not empty: $(ct cat /etc/machine-id)"
if ct test -f /var/lib/dbus/machine-id && ! ct test -L /var/lib/dbus/machine-id; then
	die "/var/lib/dbus/machine-id is a copy of the build's machine-id"
fi
! ct test -e /root/.ssh/authorized_keys || die "/root/.ssh/authorized_keys is still there"
left=$(ct find /var/lib/cloud -mindepth 1 2>/dev/null | head -n 3)
[ -z "$left" ] || die "cloud-init state left: $left"
! ct test -e /var/log/cloud-init.log || die "/var/log/cloud-init.log is still there"
logs=$(ct find /var/log -path /var/log/journal -prune -o -type f -size +0 -print)
[ -z "$logs" ] || die "log files not emptied: $logs"
ct grep -q '^edgecert ' /var/lib/edgecert-image/packages.txt || die "no build record in /var/lib/edgecert-image/packages.txt"
say "machine-id empty, no authorized_keys, /var/lib/cloud empty, logs empty; record: $(ct cat /var/lib/edgecert-image/upgraded.txt)"
# The container is not rebooted: give its running systemd its ID back (an
# instance gets a new one at first boot).
ct sh -c 'cat >/etc/machine-id' <<<"$MACHINE_ID"

step "systemd-analyze verify --root=<provisioned tree> edgecert.service (any output fails)"
out=$(cd / && systemd-analyze verify --root="/proc/$CT_LEADER/root" edgecert.service 2>&1) ||
	die "systemd-analyze verify failed: $out"
[ -z "$out" ] || die "systemd-analyze verify printed: $out"
say "clean; in-container $(ct systemd-analyze security edgecert.service 2>/dev/null | grep 'Overall exposure' || true)"

# --- 10: configure, start, assert --------------------------------------------

step "unconfigured image: starting edgecert is a no-op until $CT_ENV exists"
ct systemctl start edgecert.service || die "systemctl start of the unconfigured unit failed"
! is_active || die "edgecert started without $CT_ENV"
[ "$(svc ConditionResult)" = no ] || die "ConditionResult=$(svc ConditionResult), want no"
say "inactive, ConditionResult=no (ConditionPathExists=$CT_ENV)"

step "configure like first boot: systemd/user-data.example with the rig's settings"
ct_put "$WORK/rig-ca.pem" "$CT_CA_ROOTS" 0644
ct_put "$WORK/rig-root.pem" "$CT_RIG_ROOT" 0644
sed "s|^EDGECERT_ACME_CA_ROOTS=.*|EDGECERT_ACME_CA_ROOTS=$CT_CA_ROOTS|" "$WORK/rig.env" >"$WORK/edgecert.env"
# The example's settings heredoc, replaced by the rig's settings; the rest of
# the script (file mode, enable, restart --no-block) runs as written.
awk -v env="$WORK/edgecert.env" '
	skip && /^EOF$/ { skip = 0 }
	skip { next }
	{ print }
	/<<.EOF.$/ { while ((getline line < env) > 0) print line; skip = 1 }
' "$repo/systemd/user-data.example" >"$WORK/user-data"
grep -Fq 'EDGECERT_ACME_DIRECTORY=https://127.0.0.1' "$WORK/user-data" ||
	die "could not put the rig's settings into user-data.example's heredoc"
ct_put "$WORK/user-data" /root/user-data 0700
t0=$SECONDS
ct /root/user-data 2>&1 | sed 's/^/    | /' >&3 || die "user-data failed"
line=$(ct stat -c '%a %U:%G' "$CT_ENV")
[ "$line" = "600 root:root" ] || die "$CT_ENV is '$line', want '600 root:root'"
say "$CT_ENV written ($line); edgecert.service $(ct systemctl is-enabled edgecert.service), start queued"

step "systemctl start edgecert waits for READY (the first ACME order)"
timeout 330 nsenter -t "$CT_LEADER" -a systemctl start edgecert.service ||
	die "systemctl start edgecert failed"
is_active || die "edgecert is not active after start"
PID1=$(svc MainPID)
say "active $((SECONDS - t0))s after user-data, MainPID $PID1, status: $(svc StatusText)"

step "HTTPS answers inside the container with a certificate from the local CA"
body=$(https "$APEX" /) || die "GET https://$APEX/ failed"
grep -E '^Hostname: ' <<<"$body" >/dev/null || die "GET https://$APEX/ has no Hostname line: $body"
say "GET https://$APEX/: $(grep -E '^Hostname: ' <<<"$body")"
# Interface addresses need AF_NETLINK, which the unit's hardening must allow.
grep -Fx 'IP: 127.0.0.1' <<<"$body" >/dev/null || die "GET https://$APEX/ lists no 'IP: 127.0.0.1' (netlink blocked?): $body"
say "GET https://$APEX/ lists the interface addresses: $(grep -c '^IP: ' <<<"$body") IP lines"
body=$(https "$WILD" /api) || die "GET https://$WILD/api failed"
grep -F '"hostname"' <<<"$body" >/dev/null || die "GET https://$WILD/api has no hostname field: $body"
say "GET https://$WILD/api: ${body:0:80}..."
redirect=$(ct curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{redirect_url}' \
	--resolve "$APEX:80:127.0.0.1" "http://$APEX/bench?x=1") || die "GET http://$APEX/ failed"
[[ "$redirect" =~ ^30[178]\ https://$APEX/bench\?x=1$ ]] || die "http://$APEX/bench?x=1 answered '$redirect', want a redirect to https"
say "GET http://$APEX/bench?x=1: $redirect"
served_cert "$APEX" | sed 's/^/    /' >&3 || die "no certificate verifiable against the rig's root on $APEX"
SERIAL1=$(serial_of "$APEX")
[ -n "$SERIAL1" ] || die "no certificate verifiable against the rig's root on $APEX"
ready=$(ct curl -fsS --max-time 5 http://127.0.0.1:9180/readyz) || die "admin /readyz failed"
metrics=$(ct curl -fsS --max-time 5 http://127.0.0.1:9180/metrics) || die "admin /metrics failed"
say "admin: /readyz '$(head -c 60 <<<"$ready")', /metrics $(grep -vc '^#' <<<"$metrics") samples" \
	"(process_start_time_seconds: $(grep -c '^process_start_time_seconds' <<<"$metrics"))"
journal_has 'msg=cert\.order_started .*reason=missing' || die "journal shows no first order (cert.order_started reason=missing)"
journal_has 'msg=cert\.issued ' || die "journal shows no cert.issued"
say "journal: $(journal | grep -E 'msg=cert\.issued ' | head -n 1 | cut -c1-200)"

step "key file under /var/lib/edgecert is 0600 and owned by the service user"
user=$(svc User)
# /proc/PID is owned by the process's effective user.
[ "$(ct stat -c %U "/proc/$PID1")" = "$user" ] || die "daemon does not run as $user"
say "daemon pid $PID1 runs as $user"
statedir=$(ct readlink -f /var/lib/edgecert)
ct stat -c '    %n %a %U' "$statedir" >&3
[ "$(ct stat -c '%a %U' "$statedir")" = "700 $user" ] || die "$statedir is not 0700 $user"
keys=$(ct find "$statedir/" -name key.pem)
[ -n "$keys" ] || die "no key.pem under $statedir"
for k in $keys; do
	line=$(ct stat -c '%a %U' "$k")
	say "$k: $line"
	[ "$line" = "600 $user" ] || die "$k is '$line', want '600 $user'"
done
k=$(ct readlink -f "$statedir/certs/$APEX/current/key.pem")
say "current key of $APEX: $k"
# The sandbox is really applied (nspawn does not enforce cgroup/IP-firewall
# settings, but capabilities, no_new_privs and seccomp are per process).
status=$(ct cat "/proc/$PID1/status")
for want in 'CapEff:	0000000000000400' 'CapBnd:	0000000000000400' 'NoNewPrivs:	1' 'Seccomp:	2'; do
	grep -Fx "$want" <<<"$status" >/dev/null || die "/proc/$PID1/status lacks '$want'"
done
say "sandbox: CapEff=CapBnd=cap_net_bind_service only, NoNewPrivs=1, Seccomp=2 (filter)"

step "systemctl reload: same MainPID, still active, reload in the journal"
timeout 60 nsenter -t "$CT_LEADER" -a systemctl reload edgecert.service || die "systemctl reload failed"
is_active || die "edgecert is not active after reload"
[ "$(svc MainPID)" = "$PID1" ] || die "MainPID changed on reload ($PID1 -> $(svc MainPID))"
wait_for 30 "config.reloaded in the journal" journal_has 'config\.reloaded'
say "MainPID $PID1 unchanged; journal: $(journal | grep -E 'config\.reloaded' | tail -n 1 | cut -c1-120)"

step "watchdog: SIGSTOP the daemon, systemd restarts it (WatchdogSec=$(svc WatchdogUSec))"
restarts=$(svc NRestarts)
ct kill -STOP "$PID1"
t0=$SECONDS
wait_for 120 "a new MainPID after the watchdog fired" main_pid_changed_from "$PID1"
PID2=$(svc MainPID)
journal_has 'Watchdog timeout' || die "journal does not show systemd's watchdog timeout"
say "restarted after $((SECONDS - t0))s: MainPID $PID1 -> $PID2, NRestarts $restarts -> $(svc NRestarts)"
say "journal: $(journal | grep -E 'Watchdog timeout' | tail -n 1)"
wait_for 60 "HTTPS after the watchdog restart" https "$APEX" /bench

step "renewal under the short-lived profile (served serial changes, journal shows it)"
t0=$SECONDS
limit=$(($(sed -n 's/^\([0-9]*\)m$/\1/p' <<<"$VALIDITY") * 180))
[ "$limit" -gt 0 ] || limit=600
wait_for "$limit" "a renewed certificate on $APEX" serial_changed_from "$SERIAL1"
SERIAL2=$(serial_of "$APEX")
journal_has 'msg=cert\.order_started .*reason=(renewal|ari)' ||
	die "journal shows no renewal order (cert.order_started reason=renewal or ari)"
[ "$(journal | grep -cE 'msg=cert\.issued .*profile=shortlived')" -ge 2 ] ||
	die "journal shows fewer than two cert.issued under the shortlived profile"
journal_has 'msg=cert\.reloaded ' || die "journal shows no cert.reloaded for the renewal"
say "renewed after $((SECONDS - t0))s more: serial $SERIAL1 -> $SERIAL2"
journal | grep -E 'msg=cert\.(order_started .*reason=(renewal|ari)|issued|reloaded) ' | tail -n 3 |
	cut -c1-200 | sed 's/^/    journal: /' >&3
is_active || die "edgecert is not active after renewal"

step "systemctl stop is clean"
stop_pid "$RIG_PID" devrig
say "rig stopped: the CA, Route 53 and DNS are gone from here on"
PID3=$(svc MainPID)
t0=$SECONDS
timeout 60 nsenter -t "$CT_LEADER" -a systemctl stop edgecert.service || die "systemctl stop failed"
[ "$(svc ActiveState)" = inactive ] || die "ActiveState is $(svc ActiveState) after stop"
[ "$(svc Result)" = success ] || die "Result is $(svc Result) after stop"
[ "$(svc ExecMainStatus)" = 0 ] || die "exit status $(svc ExecMainStatus) after stop"
say "stopped in $((SECONDS - t0))s: pid $PID3 exited 0, Result=success"
# What a restart must serve: the current version in the store, as on disk.
STORED=$(openssl x509 -noout -serial \
	-in "/proc/$CT_LEADER/root/var/lib/edgecert/certs/$APEX/current/chain.pem" | sed 's/^serial=//')
[ -n "$STORED" ] || die "no stored certificate for $APEX"
say "stored current certificate of $APEX: serial $STORED"

step "restart serves the stored certificate without the CA"
t0=$SECONDS
timeout 120 nsenter -t "$CT_LEADER" -a systemctl start edgecert.service || die "start without the CA failed"
is_active || die "edgecert is not active after start without the CA"
took=$((SECONDS - t0))
[ "$took" -lt 60 ] || die "start without the CA took ${took}s: did it wait for the CA?"
SERIAL3=$(serial_of "$APEX")
[ "$SERIAL3" = "$STORED" ] || die "served serial $SERIAL3 after restart, want the stored $STORED"
https "$WILD" /api >/dev/null || die "https://$WILD/api after restart"
inv=(_SYSTEMD_INVOCATION_ID="$(svc InvocationID)")
journal_has 'msg=cert\.loaded ' "${inv[@]}" || die "no cert.loaded from the store after restart"
! journal_has 'msg=cert\.order_started ' "${inv[@]}" || die "the restarted daemon started an ACME order"
say "active in ${took}s with no CA reachable, serving stored serial $SERIAL3, no order started"
journal "${inv[@]}" | grep -E 'msg=' | cut -c1-160 | sed 's/^/    restarted: /' >&3

step "done"
say "daemon journal: $(journal | wc -l) lines; container and rig go down in cleanup"
