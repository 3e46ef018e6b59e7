package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/issuer"
)

// systemdNotifier is what mainLoop tells systemd (notifier; a recorder in
// tests).
type systemdNotifier interface {
	watchdog()
	reloading()
}

// mainLoop runs until ctx ends (nil) or a server fails (its error). On
// every tick (half of WatchdogSec; nil without a watchdog) it pings
// systemd's watchdog — but only while live says the store watcher and the
// renewal loops make progress, so a daemon with a stuck loop is restarted
// by systemd, not just one whose main loop hangs. On SIGHUP it sends
// RELOADING=1, then calls onHUP, which reloads and reports READY again.
func mainLoop(ctx context.Context, serveErr <-chan error, hup <-chan os.Signal, tick <-chan time.Time, n systemdNotifier, live *liveness, log *slog.Logger, onHUP func()) error {
	withheld := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-serveErr:
			return err
		case <-tick:
			err := live.check(time.Now())
			switch {
			case err == nil && withheld:
				withheld = false
				log.Info("systemd.watchdog_resumed")
				n.watchdog()
			case err == nil:
				n.watchdog()
			case !withheld:
				withheld = true
				log.Error("systemd.watchdog_withheld", "error", err)
			}
		case <-hup:
			n.reloading()
			onHUP()
		}
	}
}

// watcherBound is how long the store watcher may go without a reload
// before the watchdog is withheld: it rescans every minute.
const watcherBound = 5 * time.Minute

// liveness tells whether the background loops make progress: the store
// watcher reloaded within watcherBound, and no renewal loop is stuck in one
// step (issuer.Manager.Stalled). Its methods are safe for concurrent use.
type liveness struct {
	start   time.Time
	watcher atomic.Int64                          // time.Now().UnixNano() of the watcher's last reload; 0: none yet
	issuer  interface{ Stalled(time.Time) error } // nil without ACME; set before the loops start
}

func newLiveness() *liveness { return &liveness{start: time.Now()} }

// watcherAlive is certstore.Options.Alive.
func (l *liveness) watcherAlive() { l.watcher.Store(time.Now().UnixNano()) }

// check returns why the daemon is not making progress at now, or nil.
func (l *liveness) check(now time.Time) error {
	last := l.start
	if ns := l.watcher.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	if d := now.Sub(last); d > watcherBound {
		return fmt.Errorf("daemon: store watcher made no reload for %s (bound %s)", d.Round(time.Second), shortDuration(watcherBound))
	}
	if l.issuer != nil {
		return l.issuer.Stalled(now)
	}
	return nil
}

// maxStatusError bounds the last error quoted in systemd's STATUS.
const maxStatusError = 160

// readyStatus is systemd's STATUS line: how many certificates are served
// and, for the first configured one not served yet, its name and last
// error ("serving 1 certificate(s); waiting for b.example.com (and 1 more):
// issuer: …").
func readyStatus(store *certstore.Store, mgr *issuer.Manager) string {
	s := fmt.Sprintf("serving %d certificate(s)", len(store.Entries()))
	if mgr == nil {
		return s
	}
	var missing []issuer.CertStatus
	for _, st := range mgr.Status() {
		if st.Serial == "" {
			missing = append(missing, st)
		}
	}
	if len(missing) == 0 {
		return s
	}
	s += "; waiting for " + missing[0].Name
	if len(missing) > 1 {
		s += fmt.Sprintf(" (and %d more)", len(missing)-1)
	}
	if e := missing[0].LastError; e != "" {
		if len(e) > maxStatusError {
			e = e[:maxStatusError] + "…"
		}
		s += ": " + strings.ReplaceAll(e, "\n", " ")
	}
	return s
}
