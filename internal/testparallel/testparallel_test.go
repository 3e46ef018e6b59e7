package testparallel

import (
	"flag"
	"testing"
)

// Run from go test, the command line did not set -test.parallel unless the
// caller asked for it; either way Default leaves a value at least as large
// as the command line's or n.
func TestDefault(t *testing.T) {
	f := flag.Lookup("test.parallel")
	before := f.Value.String()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	Default(64)
	if got := f.Value.String(); set && got != before || !set && got != "64" {
		t.Errorf("-test.parallel = %s after Default(64) (was %s, set on the command line: %v)", got, before, set)
	}
	t.Cleanup(func() { f.Value.Set(before) })
}
