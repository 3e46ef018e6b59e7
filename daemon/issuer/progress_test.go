package issuer

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgecert/edgecert/certstore"
)

// stuckStore blocks Current until release is closed: a renewal loop that
// reads it is stuck in its step.
type stuckStore struct {
	*memStore
	entered chan struct{}
	release chan struct{}
}

func (s *stuckStore) Current(name string) (*certstore.Entry, bool) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.memStore.Current(name)
}

// TestStalled checks that a renewal loop stuck inside one step is reported
// once it has been stuck for StallBound, and no longer once it moves on.
func TestStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &stuckStore{memStore: newMemStore(), entered: make(chan struct{}, 1), release: make(chan struct{})}
		m, err := New(Config{
			DirectoryURL: "https://ca.test/dir",
			Certs:        []CertSpec{{Domains: []string{"a.test"}}},
			Store:        st,
			Solver:       nopSolver{},
			OrderTimeout: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.StallBound(); got != 8*time.Minute {
			t.Fatalf("StallBound = %v; want 3×OrderTimeout + 5m", got)
		}
		if err := m.Stalled(time.Now()); err != nil {
			t.Fatalf("Stalled before Run = %v; want nil", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { m.Run(ctx); close(done) }()
		<-st.entered
		time.Sleep(m.StallBound() - time.Second)
		if err := m.Stalled(time.Now()); err != nil {
			t.Errorf("Stalled within the bound = %v; want nil", err)
		}
		time.Sleep(2 * time.Second)
		err = m.Stalled(time.Now())
		if err == nil || !strings.Contains(err.Error(), "a.test") || !strings.Contains(err.Error(), "stuck") {
			t.Errorf("Stalled past the bound = %v; want an error naming a.test", err)
		}
		cancel()
		close(st.release)
		<-done
		if err := m.Stalled(time.Now()); err != nil {
			t.Errorf("Stalled after the loop ended = %v; want nil", err)
		}
	})
}
