// Package poll is the one helper tests use to wait, in real time, for a
// condition that another process, socket or goroutine outside the test's
// control makes true: a file a watcher reloads, a record a DNS server
// publishes, a connection a server closes.
//
// Time-dependent behaviour that the code under test schedules itself (a
// backoff, a debounce, a renewal timer) is not polled: it is tested exactly
// and instantly in a testing/synctest bubble. Poll only waits for something
// to become true; it never proves that something stays false (that needs a
// synctest bubble, where "nothing happened until t" is exact).
package poll

import (
	"testing"
	"time"
)

// minInterval and maxInterval bound the pause between checks: the first
// checks come quickly so fast conditions cost little; later ones back off so
// a slow condition on a loaded machine does not burn a core.
const (
	minInterval = time.Millisecond
	maxInterval = 20 * time.Millisecond
)

// Until calls cond until it returns true, and fails the test with
// "timed out after <timeout> waiting for <what>" if timeout passes first.
// The timeout is a bound for a wedged test, not a measurement: give it
// generous room (seconds) so a loaded machine never fails it. Until must be
// called from the test's goroutine (it calls t.Fatalf).
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := minInterval
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, maxInterval)
	}
}
