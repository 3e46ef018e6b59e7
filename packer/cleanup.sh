#!/bin/sh
# cleanup.sh: the last step of the image build. Removes everything that
# belongs to the build instance rather than to the image, so that every
# instance launched from it starts as a first boot. Runs as root; idempotent;
# needs no network.
#
#   - cloud-init state and logs (cloud-init clean --logs; without cloud-init,
#     the same paths by hand): the next boot is a new instance and runs
#     user-data;
#   - /etc/machine-id emptied (systemd makes a new one at first boot; an
#     empty file, not a missing one, so that boot counts as the first), and
#     a private copy in /var/lib/dbus removed;
#   - authorized_keys of root and every user in /home (Packer's temporary
#     key; cloud-init installs the instance's own key at launch);
#   - shell histories, apt caches and lists, the journal (rotated, then
#     the archived files vacuumed) and every other log file (emptied, so
#     files keep their owner and mode; rotated copies deleted).
# It first completes the build record in /var/lib/edgecert-image (see
# upgrade.sh) with packages.txt, every package the image contains
# ("name version architecture"). Left alone: that record and the SSH host
# keys, which cloud-init replaces on every new instance.
set -eu

say() { printf 'cleanup: %s\n' "$*"; }

install -d -m 0755 /var/lib/edgecert-image
dpkg-query -W -f '${binary:Package} ${Version} ${Architecture}\n' | sort >/var/lib/edgecert-image/packages.txt
say "$(wc -l </var/lib/edgecert-image/packages.txt) packages recorded in /var/lib/edgecert-image/packages.txt"

if command -v cloud-init >/dev/null 2>&1; then
	say "cloud-init clean --logs"
	cloud-init clean --logs
else
	say "no cloud-init: removing /var/lib/cloud and its logs by hand"
	rm -rf /var/lib/cloud/*
	rm -f /var/log/cloud-init.log /var/log/cloud-init-output.log
fi

say "machine-id"
: >/etc/machine-id
if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then
	rm -f /var/lib/dbus/machine-id
fi

say "authorized_keys and shell histories"
for home in /root /home/*; do
	[ -d "$home" ] || continue
	rm -f "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2" \
		"$home/.bash_history" "$home/.lesshst" "$home/.viminfo"
done

say "apt caches and lists"
apt-get clean
rm -rf /var/lib/apt/lists/*

say "journal and logs"
if command -v journalctl >/dev/null 2>&1; then
	journalctl --rotate >/dev/null 2>&1 || true
	journalctl --vacuum-time=1s >/dev/null 2>&1 || true
fi
# The journal is rotated and vacuumed, never truncated: journald keeps
# writing to its active files.
find /var/log -path /var/log/journal -prune -o -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -exec rm -f {} +
find /var/log -path /var/log/journal -prune -o -type f -exec truncate -s 0 {} +
rm -rf /var/tmp/*
sync
say "done"
