package daemon

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/issuer"
	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/poll"
)

// TestRenewalFaultsKeepServing wires the production pieces (certstore,
// issuer, route53dns through newIssuer's SDK client) against the rig, obtains
// a certificate, shifts the issuer's clock so that renewal is due, injects a
// fault, and checks that the old certificate keeps serving, the failure is
// recorded with a backoff, and no challenge record is left behind — or, for
// transient faults, that the renewal goes through.
func TestRenewalFaultsKeepServing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     func(r *rig)
		renews    bool
		minNext   time.Duration // least backoff after a failure
		errSubstr string
		maxChange int // bound on ChangeResourceRecordSets calls during the renewal
	}{
		{
			name: "access denied stops at once",
			fault: func(r *rig) {
				r.r53.Fail(fakeroute53.OpChangeResourceRecordSets, fakeroute53.Fault{Code: "AccessDenied"})
			},
			minNext:   59 * time.Minute,
			errSubstr: "ChangeResourceRecordSets",
			maxChange: 2,
		},
		{
			name: "throttling storm is absorbed",
			fault: func(r *rig) {
				r.r53.Fail(fakeroute53.OpChangeResourceRecordSets, fakeroute53.Fault{Code: "Throttling", Times: 5})
			},
			renews:    true,
			maxChange: 20,
		},
		{
			name:      "INSYNC never arrives",
			fault:     func(r *rig) { r.r53.SetNeverInsync(true) },
			minNext:   time.Minute,
			errSubstr: "insync",
			maxChange: 8,
		},
		{
			name:      "CA down",
			fault:     func(r *rig) { r.ca.SetDown(true) },
			minNext:   time.Minute,
			errSubstr: "503",
			maxChange: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // a rig of its own
			r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": time.Hour}})
			cfg := r.config(t, t.TempDir(), "-dns01-timeout", "3s")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			store, err := certstore.Open(ctx, cfg.StateDir, certstore.Options{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			var shift atomic.Int64
			mgr, solver, err := newIssuer(ctx, cfg, store, log, func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }, nil)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			defer wg.Wait() // runs after the cancel deferred just below
			wg.Go(func() { _ = solver.Run(ctx) })
			defer cancel()
			if err := mgr.Obtain(ctx); err != nil {
				t.Fatal(err)
			}
			old, ok := store.Current("example.test")
			if !ok {
				t.Fatal("nothing stored after Obtain")
			}

			tt.fault(r)
			r.r53.ResetCalls()
			shift.Store(int64(57 * time.Minute)) // past every renewal point of a 1 h certificate, before expiry
			go mgr.Run(ctx)

			var st issuer.CertStatus
			poll.Until(t, 30*time.Second, "the renewal attempt", func() bool {
				st = mgr.Status()[0]
				cur, _ := store.Current("example.test")
				return st.Failures > 0 || cur.Serial() != old.Serial()
			})
			cur, _ := store.Current("example.test")
			if tt.renews {
				if cur.Serial() == old.Serial() {
					t.Fatalf("still serving %s; want a renewed certificate (status %+v)", old.Serial(), st)
				}
			} else {
				if cur.Serial() != old.Serial() {
					t.Errorf("serving %s; want the old %s to keep serving after a failed renewal", cur.Serial(), old.Serial())
				}
				now := time.Now().Add(time.Duration(shift.Load()))
				if got := st.NextRenewal.Sub(now); got < tt.minNext-5*time.Second {
					t.Errorf("next try in %v; want a backoff of at least %v", got, tt.minNext)
				}
				if !strings.Contains(strings.ToLower(st.LastError), strings.ToLower(tt.errSubstr)) {
					t.Errorf("LastError = %q; want it to mention %q", st.LastError, tt.errSubstr)
				}
			}
			if n := r.r53.Calls(fakeroute53.OpChangeResourceRecordSets); n > tt.maxChange {
				t.Errorf("%d ChangeResourceRecordSets calls; want at most %d", n, tt.maxChange)
			}
			cancel()
			poll.Until(t, 10*time.Second, "challenge records removed from the API", func() bool {
				return len(r.r53.TXT(rigZoneID, "_acme-challenge.example.test")) == 0
			})
			if cur, _ := store.Current("example.test"); cur == nil {
				t.Error("no certificate served at the end")
			}
		})
	}
}
