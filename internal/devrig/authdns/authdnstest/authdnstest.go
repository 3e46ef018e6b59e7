// Package authdnstest starts an authdns.Server for a test. It imports
// testing, so only tests import it.
package authdnstest

import (
	"testing"

	"github.com/edgecert/edgecert/internal/devrig/authdns"
)

// Start serves an empty zone on a free loopback port (UDP and TCP) until the
// test ends; a failure to start fails the test.
func Start(t testing.TB) *authdns.Server {
	t.Helper()
	s, err := authdns.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
