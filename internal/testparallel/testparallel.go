// Package testparallel raises the default of go test's -parallel for
// packages whose tests wait on timers and loopback peers rather than on
// the CPU: there, -parallel's default of GOMAXPROCS (2 on the project's
// machines) leaves the tests mostly waiting one after another.
package testparallel

import (
	"flag"
	"runtime"
	"strconv"
)

// Default sets -test.parallel to max(n, GOMAXPROCS) unless the command
// line set it. Call it from TestMain before m.Run; it parses the command
// line (flag.Parse), as m.Run would.
func Default(n int) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", strconv.Itoa(max(n, runtime.GOMAXPROCS(0))))
	}
}
