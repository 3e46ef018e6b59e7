package daemon

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgecert/edgecert/internal/poll"
)

func TestFloorPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, roots, floor uint64
		want               int
	}{
		{live: mib, floor: 0, want: 100},       // no floor
		{live: mib, floor: 8 * mib, want: 200}, // minimum heap 8 MiB
		{live: mib, floor: 6 * mib, want: 150},
		{live: mib, roots: mib, floor: 8 * mib, want: 200},
		{live: 3 * mib, roots: 2 * mib, floor: 8 * mib, want: 100}, // 2× live + roots reaches the floor
		{live: 4 * mib, floor: 8 * mib, want: 100},
		{live: 64 * mib, floor: 8 * mib, want: 100},
		{live: mib, floor: 2 * mib, want: 100}, // under the runtime's own minimum
	} {
		if got := floorPercent(c.live, c.roots, c.floor); got != c.want {
			t.Errorf("floorPercent(%d, %d, %d) = %d; want %d", c.live, c.roots, c.floor, got, c.want)
		}
	}
}

// fakeRuntime is the runtime as a memPolicy under test sees it.
type fakeRuntime struct {
	mu       sync.Mutex
	st       memStats
	trims    int
	percents []int
}

func (f *fakeRuntime) read() memStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeRuntime) alloc(n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.allocs += n
}

func (f *fakeRuntime) setLive(n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.live = n
}

func (f *fakeRuntime) trimCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.trims
}

func (f *fakeRuntime) percentsSet() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.percents...)
}

func (f *fakeRuntime) policy(gcDone <-chan struct{}) *memPolicy {
	return &memPolicy{
		floor: 8 << 20, every: trimEvery, quiet: trimQuiet, after: trimAfter,
		log:  slog.New(slog.DiscardHandler),
		read: f.read,
		trim: func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.trims++
			f.st.released += 1 << 20
		},
		setGCPercent: func(p int) int {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.percents = append(f.percents, p)
			return 0
		},
		gcDone: gcDone,
	}
}

// The trim runs once a busy period has ended (less than trimQuiet
// allocated in one trimEvery after at least trimAfter since the last trim),
// never while the process stays busy, not again until trimAfter more has
// been allocated, and the loop ends with its context.
func TestMemPolicyTrimsWhenQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRuntime{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.policy(nil).run(ctx)
		}()
		// Step through the middle of each period, so every Sleep
		// crosses exactly one tick.
		time.Sleep(trimEvery / 2)
		period := func(alloc uint64) int {
			f.alloc(alloc)
			time.Sleep(trimEvery)
			synctest.Wait()
			return f.trimCount()
		}
		for i := range 10 { // busy: 4 MiB per period, 40 MiB in all
			if n := period(4 << 20); n != 0 {
				t.Fatalf("busy period %d: %d trims; want none while busy", i, n)
			}
		}
		if n := period(0); n != 1 {
			t.Fatalf("first quiet period: %d trims; want 1", n)
		}
		for i := range 5 {
			if n := period(0); n != 1 {
				t.Fatalf("quiet period %d after the trim: %d trims; want still 1 (nothing allocated since)", i, n)
			}
		}
		// A trickle below trimQuiet: a trim once trimAfter has built up.
		periods := 0
		for f.trimCount() == 1 {
			periods++
			if periods > 20 {
				t.Fatal("no trim after 10 MiB of quiet allocation")
			}
			period(trimQuiet / 2)
		}
		if want := int(trimAfter / (trimQuiet / 2)); periods != want {
			t.Errorf("second trim after %d quiet periods of trimQuiet/2; want %d (trimAfter)", periods, want)
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("run did not return after its context ended")
		}
		if got := f.percentsSet(); len(got) != 0 {
			t.Errorf("GC percentages set %v without a GC cycle; want none", got)
		}
	})
}

// After each GC cycle the percentage follows the live heap so that the
// goal is max(floor, 2× live), and it is back at 100 when the loop ends.
func TestMemPolicyHeapFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRuntime{}
		gc := make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.policy(gc).run(ctx)
		}()
		cycle := func(live uint64) {
			f.setLive(live)
			gc <- struct{}{}
			synctest.Wait()
		}
		cycle(1 << 20) // minimum heap 8 MiB: 200
		cycle(2 << 20) // unchanged: not set again
		cycle(5 << 20) // past floor/2: 100
		cycle(3 << 20) // 200
		cancel()
		<-done
		want := []int{200, 100, 200, 100}
		if got := f.percentsSet(); !equalInts(got, want) {
			t.Errorf("GC percentages set %v; want %v (the last one restoring 100)", got, want)
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// gcCycles signals after every collection, not only the first.
func TestGCCyclesSignalsEachCycle(t *testing.T) {
	ch, stop := gcCycles()
	defer stop()
	for i := range 3 {
		runtime.GC()
		poll.Until(t, 10*time.Second, "a signal after GC cycle "+string(rune('1'+i)), func() bool {
			select {
			case <-ch:
				return true
			default:
				return false
			}
		})
	}
}
