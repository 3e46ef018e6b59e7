package certstore

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
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

// TestRejectedPair: operator files that fail validation are reported by
// Rejected with the reason while the last good pair keeps serving, and no
// longer once valid files are back.
func TestRejectedPair(t *testing.T) {
	dir := t.TempDir()
	ca := certstoretest.NewCA(t)
	chain, key := ca.Valid(t, "a.example.com")
	_, otherKey := ca.Valid(t, "a.example.com")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, chain)
	write(keyFile, key)
	s, err := Open(t.Context(), filepath.Join(dir, "state"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddFilePair("operator", certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if r := s.Rejected(); len(r) != 0 {
		t.Fatalf("Rejected = %v with a valid pair; want none", r)
	}
	write(keyFile, otherKey)
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := s.Rejected(); r["operator"] == "" {
		t.Errorf("Rejected = %v with a mismatched key; want a reason for operator", r)
	}
	if _, ok := s.Current("operator"); !ok {
		t.Error("the last good pair stopped serving")
	}
	write(keyFile, key)
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := s.Rejected(); len(r) != 0 {
		t.Errorf("Rejected = %v once the files are valid again; want none", r)
	}
}
