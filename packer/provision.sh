#!/bin/sh
# provision.sh: install edgecert on a Debian 12 host from the files staged in
# $EDGECERT_STAGE (default /tmp/edgecert-stage) by the Packer file
# provisioners: edgecert (binary), edgecert.service, edgecert.env.example,
# edgecert.sysusers.conf. Runs as root.
#
# The one install path for every image: the AMI build (amazon-ebs) and the
# offline appliance test (null source over SSH into a container) run it
# through the same provisioner blocks.
#
# Idempotent: running it again installs the staged files again and leaves
# /etc/edgecert/edgecert.env alone. It enables the service and never starts
# it (an image has no settings yet); if edgecert is already running (a
# re-provisioned live host) it is restarted to pick up the new binary. Needs
# no network.
set -eu

stage=${EDGECERT_STAGE:-/tmp/edgecert-stage}

say() { printf 'provision: %s\n' "$*"; }

for f in edgecert edgecert.service edgecert.env.example edgecert.sysusers.conf; do
	if [ ! -f "$stage/$f" ]; then
		say "missing $stage/$f" >&2
		exit 1
	fi
done

say "binary -> /usr/bin/edgecert"
install -m 0755 -o root -g root "$stage/edgecert" /usr/bin/edgecert.new
mv -f /usr/bin/edgecert.new /usr/bin/edgecert
say "installed $(/usr/bin/edgecert version 2>&1 | head -n 1)"

say "user edgecert (sysusers.d)"
install -D -m 0644 "$stage/edgecert.sysusers.conf" /usr/lib/sysusers.d/edgecert.conf
systemd-sysusers /usr/lib/sysusers.d/edgecert.conf

say "unit -> /usr/lib/systemd/system/edgecert.service"
install -D -m 0644 "$stage/edgecert.service" /usr/lib/systemd/system/edgecert.service

# Configuration skeleton: the settings file itself comes from user-data.
# tls/ is where operator-supplied certificates go (root:edgecert 0750).
say "config skeleton -> /etc/edgecert"
install -d -m 0755 -o root -g root /etc/edgecert
install -d -m 0750 -o root -g edgecert /etc/edgecert/tls
install -m 0644 -o root -g root "$stage/edgecert.env.example" /etc/edgecert/edgecert.env.example
if [ -f /etc/edgecert/edgecert.env ]; then
	chown root:root /etc/edgecert/edgecert.env
	chmod 0600 /etc/edgecert/edgecert.env
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi
say "enable edgecert.service (not started)"
systemctl enable edgecert.service
if [ -d /run/systemd/system ] && systemctl is-active --quiet edgecert.service; then
	say "edgecert was running: restart"
	systemctl restart edgecert.service
fi

rm -rf "$stage"
say "done"
