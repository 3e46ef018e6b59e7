package issuer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
)

// TestOrdersInFlightAreBounded obtains 7 certificates with room for 2 orders
// at a time: all are obtained, and never more than 2 orders are waiting
// for DNS at once, while 2 do overlap (the bound is not 1).
func TestOrdersInFlightAreBounded(t *testing.T) {
	e := newEnv(t, pebblerig.Options{})
	var mu sync.Mutex // guards inFlight, peak
	inFlight, peak := map[string]bool{}, 0
	both := make(chan struct{})
	var once sync.Once
	e.solver.waitHook = func(ctx context.Context) error {
		// Called once per value; an order is in flight while any of its
		// values is being waited for. Keys are per goroutine call.
		key := fmt.Sprintf("%p", ctx) // one ctx per order attempt
		mu.Lock()
		inFlight[key] = true
		peak = max(peak, len(inFlight))
		if len(inFlight) >= 2 {
			once.Do(func() { close(both) })
		}
		mu.Unlock()
		// Hold the order until a second one is in flight too (or a while
		// has passed, so a bound of 1 fails instead of hanging).
		select {
		case <-both:
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		delete(inFlight, key)
		mu.Unlock()
		return nil
	}
	var certs []CertSpec
	for i := range 7 {
		certs = append(certs, CertSpec{Domains: []string{fmt.Sprintf("c%d.example.test", i)}})
	}
	m := e.manager(t, nil, func(c *Config) {
		c.Certs = certs
		c.MaxConcurrentOrders = 2
	})
	if err := m.Obtain(testCtx(t)); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	for _, cs := range certs {
		current(t, e.store, cs.Domains[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != 2 {
		t.Errorf("at most %d orders in flight; want exactly 2 (the bound, reached)", peak)
	}
}

func TestMaxConcurrentOrdersValidated(t *testing.T) {
	c := Config{DirectoryURL: "https://ca.test/dir", Store: newMemStore(), Solver: &dnsSolver{},
		Certs: []CertSpec{{Domains: []string{"a.example.test"}}}, MaxConcurrentOrders: -1}
	if _, err := New(c); err == nil {
		t.Error("New accepted MaxConcurrentOrders -1")
	}
	c.MaxConcurrentOrders = 0
	m, err := New(c)
	if err != nil || cap(m.orderSem) != DefaultMaxConcurrentOrders {
		t.Errorf("New: %v; order slots = %d, want the default %d", err, cap(m.orderSem), DefaultMaxConcurrentOrders)
	}
}
