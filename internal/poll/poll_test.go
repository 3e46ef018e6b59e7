package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTrue(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	Until(t, 10*time.Second, "three increments", func() bool { return n.Load() == 3 })
}

// fatalRecorder records Fatalf instead of stopping the goroutine's test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = format
	panic(f)
}

func TestUntilFailsAfterTimeout(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	calls := 0
	func() {
		defer func() {
			if r := recover(); r != nil && r != rec {
				panic(r)
			}
		}()
		Until(rec, 30*time.Millisecond, "never", func() bool { calls++; return false })
	}()
	if rec.msg == "" {
		t.Fatal("Until returned without failing on a condition that never held")
	}
	if calls < 2 {
		t.Errorf("cond called %d times in 30ms; want it polled", calls)
	}
}
