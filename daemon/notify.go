package daemon

import (
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifier speaks the sd_notify protocol; outside systemd (no NOTIFY_SOCKET)
// every call is a no-op.
type notifier struct{ log *slog.Logger }

func (n notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		n.log.Warn("systemd.notify_failed", "state", state, "error", err)
	}
}

func (n notifier) ready(status string)  { n.send(sd.SdNotifyReady + "\nSTATUS=" + status) }
func (n notifier) status(status string) { n.send("STATUS=" + status) }
func (n notifier) reloading()           { n.send(sd.SdNotifyReloading) }
func (n notifier) stopping()            { n.send(sd.SdNotifyStopping) }
func (n notifier) watchdog()            { n.send(sd.SdNotifyWatchdog) }

// watchdogInterval is how often the main loop must ping systemd's watchdog:
// half of WatchdogSec, or 0 when no watchdog is configured for this process.
func watchdogInterval() time.Duration {
	d, err := sd.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}
