package certstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/poll"
)

// TestWatchReportsAlive checks that Watch calls Options.Alive at start and
// again on every safety-net rescan, with no file changing: the daemon's
// watchdog relies on it to tell a live watcher from a stuck one.
func TestWatchReportsAlive(t *testing.T) {
	var n atomic.Int64
	s, err := Open(t.Context(), t.TempDir(), Options{Alive: func() { n.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.rescanEvery = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	poll.Until(t, 10*time.Second, "Alive at start and on two rescans", func() bool { return n.Load() >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}
