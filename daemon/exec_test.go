package daemon

import (
	"os"
	"testing"

	"github.com/edgecert/edgecert/internal/testparallel"
)

// execMainEnv makes the test binary run the edgecert command line instead
// of the tests, so that a test can start (and SIGKILL) a real daemon
// process: os.Args[0] with this variable set is edgecert.
const execMainEnv = "GO_TEST_EXEC_EDGECERT_MAIN" // not EDGECERT_*: the daemon warns about unknown ones

func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	// No test reaches for the instance metadata service; the rig's AWS
	// settings are passed to each daemon (rig.route53Client) or set by the
	// test that needs them in the environment (rig.setenv).
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// The tests wait on timers and loopback peers, not on the CPU (the
	// package needs a few CPU-seconds in all).
	testparallel.Default(16)
	os.Exit(m.Run())
}
