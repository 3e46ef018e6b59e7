package route53dns

import (
	"os"
	"testing"

	"github.com/edgecert/edgecert/internal/testparallel"
)

// The tests wait on timers and loopback peers (the CA, the Route 53 fake,
// DNS), not on the CPU, so more of the parallel ones run at once.
func TestMain(m *testing.M) {
	testparallel.Default(16)
	os.Exit(m.Run())
}
