package issuer

import (
	"fmt"
	"sync"
	"time"
)

// stepClock records when each renewal loop's current step started, so that
// a loop stuck inside one (a hung CA or DNS call that no deadline ended, a
// deadlock) can be told from one that sleeps until its next renewal.
type stepClock struct {
	mu    sync.Mutex // guards since
	since map[string]time.Time
}

func (c *stepClock) begin(name string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.since == nil {
		c.since = make(map[string]time.Time)
	}
	c.since[name] = now
}

func (c *stepClock) end(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.since, name)
}

// StallBound is how long one step of a renewal loop may run before Stalled
// reports it: waiting for another attempt of the same certificate (at most
// one attempt, OrderTimeout), the lease (OrderTimeout) and the attempt itself
// (OrderTimeout), plus an ARI poll (one minute) and a margin.
func (m *Manager) StallBound() time.Duration { return 3*m.cfg.OrderTimeout + 5*time.Minute }

// Stalled returns an error naming a certificate whose renewal loop has been
// inside one step for longer than StallBound at now (wall-clock time, not
// Config.Now), or nil when every loop is sleeping or within its bound. The
// daemon withholds its watchdog ping while it is not nil, so a stuck loop
// gets the process restarted.
func (m *Manager) Stalled(now time.Time) error {
	m.steps.mu.Lock()
	defer m.steps.mu.Unlock()
	bound := m.StallBound()
	for name, since := range m.steps.since {
		if d := now.Sub(since); d > bound {
			return fmt.Errorf("issuer: %s: renewal loop stuck in one step for %s (bound %s)", name, d.Round(time.Second), bound)
		}
	}
	return nil
}
