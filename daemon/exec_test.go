package daemon

import (
	"os"
	"testing"
)

// execMainEnv makes the test binary run the edgecert command line instead
// of the tests, so that a test can start (and SIGKILL) a real daemon
// process: os.Args[0] with this variable set is edgecert.
const execMainEnv = "GO_TEST_EXEC_EDGECERT_MAIN" // not EDGECERT_*: the daemon warns about unknown ones

func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
