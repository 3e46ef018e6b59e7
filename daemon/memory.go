package daemon

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// The daemon's memory policy (issue 10, BENCHMARKS.md): the Go runtime's
// defaults are tuned for a small program that is either busy or gone, not
// for a server that is busy, then idle for hours with thousands of
// keep-alive connections open. Two adjustments, both process-wide:
//
//   - Heap floor. The garbage collector starts a cycle when the heap
//     reaches its goal, by default twice the live heap but at least 4 MiB.
//     edgecert's live heap is about 1 MiB before it serves anything (mostly
//     tables its dependencies build at init: the AWS SDK's schemas and
//     endpoints, compiled regexps), so under load a cycle came every ~3 MiB
//     of garbage, each marking that 1 MiB and the roots: 6% of the CPU of a
//     /bench request, against 2% for a bare net/http server, whose live
//     heap is a third as large. The floor raises the minimum goal to
//     heapFloor (6 MiB) while the live heap is small: after every cycle the
//     GC percentage is 150 (the runtime's minimum heap scales with it) as
//     long as the goal at 100 would be under heapFloor, and 100 after. Under
//     load that costs at most 2 MiB more heap than the default, and the
//     trim below gives it back when the load ends. Until the adjustment
//     after a cycle has run (the cycle's cleanups are queued as its spans
//     are swept), the previous percentage applies: a live heap that jumped
//     during one cycle gets one goal of 2.5× instead of 2× itself.
//   - Trim when quiet. An idle Go server keeps what its last busy period
//     left: garbage that no cycle has collected (the GC runs on
//     allocation, and an idle server does not allocate) and free pages the
//     background scavenger returns only slowly. Every trimEvery, if the
//     process allocated less than trimQuiet in the last trimEvery and at
//     least trimAfter since the last trim, it runs debug.FreeOSMemory: one
//     collection and every free page returned to the system (2,000 idle
//     TLS connections: 38 KiB each before, 27 after). What stays is live:
//     net/http's 4+4 KiB of bufio, crypto/tls's buffers and the serving
//     goroutine's 8 KiB stack (it uses more than a quarter of it while
//     parked, so a cycle does not shrink it). On a quiet server that is
//     one collection per trimAfter of allocation at most; a busy one never
//     trims. Each trim is logged at debug as mem.trimmed.
//
// GOGC set in the environment turns the floor off (the operator chose); a
// GOMEMLIMIT still applies above both.
const (
	heapFloor = 6 << 20 // at most 2 MiB over the runtime's: a 1 GiB HTTP/2 download peaks +6 MiB RSS (+4 without)
	trimEvery = 5 * time.Second
	trimQuiet = 1 << 20
	trimAfter = 8 << 20
)

// memPolicyOwner is set while a daemon of this process runs the memory
// policy: it is process-wide, so a second daemon in the same process (the
// tests run many) leaves it to the first.
var memPolicyOwner atomic.Bool

// memPolicy runs the heap floor and the trim for one daemon. Its fields
// are the policy's parameters and its view of the runtime, replaced in
// tests.
type memPolicy struct {
	floor        uint64 // 0: no heap floor
	every        time.Duration
	quiet, after uint64
	log          *slog.Logger

	read         func() memStats
	trim         func()
	setGCPercent func(int) int
	gcDone       <-chan struct{} // receives after a GC cycle (coalesced); nil without a floor
}

// memStats is what memPolicy reads from the runtime.
type memStats struct {
	allocs   uint64 // bytes allocated on the heap since start (cumulative)
	live     uint64 // live heap bytes marked by the last cycle
	roots    uint64 // stack and globals bytes the last cycle scanned
	released uint64 // heap bytes returned to the system
}

// newMemPolicy returns the daemon's policy on the real runtime, and the
// function that stops its GC-cycle notifications (call it after run has
// returned).
func newMemPolicy(log *slog.Logger) (*memPolicy, func()) {
	p := &memPolicy{
		every: trimEvery, quiet: trimQuiet, after: trimAfter,
		log:          log.With("component", "memory"),
		read:         readMemStats,
		trim:         debug.FreeOSMemory,
		setGCPercent: debug.SetGCPercent,
	}
	stop := func() {}
	if os.Getenv("GOGC") == "" {
		p.floor = heapFloor
		p.gcDone, stop = gcCycles()
	}
	return p, stop
}

// run applies the policy until ctx ends; then the GC percentage is back
// at 100.
func (p *memPolicy) run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	percent := 100
	defer func() {
		if percent != 100 {
			p.setGCPercent(100)
		}
	}()
	last := p.read()
	trimmedAt := last.allocs
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.gcDone:
			st := p.read()
			if pc := floorPercent(st.live, st.roots, p.floor); pc != percent {
				p.setGCPercent(pc)
				percent = pc
			}
		case <-t.C:
			now := p.read()
			if now.allocs-last.allocs < p.quiet && now.allocs-trimmedAt >= p.after {
				p.trimNow(now)
				now = p.read()
				trimmedAt = now.allocs
			}
			last = now
		}
	}
}

// trimNow runs the trim and logs what it returned.
func (p *memPolicy) trimNow(before memStats) {
	t0 := time.Now()
	p.trim()
	after := p.read()
	p.log.Debug("mem.trimmed", "released_bytes", int64(after.released)-int64(before.released),
		"live_bytes", after.live, "took", time.Since(t0))
}

// floorPercent is the GC percentage that keeps the heap goal at no less
// than floor for a live heap of live bytes whose last cycle scanned roots
// bytes of stacks and globals. The runtime's goal is the larger of live +
// (live + roots) × percent/100 and its minimum heap, 4 MiB × percent/100:
// while the first, at 100, is under floor, the percentage is the one whose
// minimum heap is floor; then it is 100.
func floorPercent(live, roots, floor uint64) int {
	if 2*live+roots >= floor {
		return 100
	}
	return max(100, int(floor*100/runtimeHeapMinimum))
}

// runtimeHeapMinimum is the runtime's minimum heap goal at GOGC=100.
const runtimeHeapMinimum = 4 << 20

// readMemStats reads memStats from runtime/metrics (no stop-the-world,
// unlike runtime.ReadMemStats).
func readMemStats() memStats {
	s := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	return memStats{
		allocs: uint64Of(s[0]), live: uint64Of(s[1]),
		roots: uint64Of(s[2]) + uint64Of(s[3]), released: uint64Of(s[4]),
	}
}

func uint64Of(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}

// gcCycles returns a channel that receives (coalesced, never blocking the
// runtime) after each garbage collection cycle until stop is called: a
// sentinel object whose cleanup, run once a cycle has found it
// unreachable, signals and allocates the next sentinel.
func gcCycles() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	var stopped atomic.Bool
	var arm func()
	arm = func() {
		runtime.AddCleanup(&gcSentinel{}, func(struct{}) {
			if stopped.Load() {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
			arm()
		}, struct{}{})
	}
	arm()
	return ch, func() { stopped.Store(true) }
}

// gcSentinel is big enough to stay out of the tiny allocator, whose
// blocks (shared by several objects) may never run a cleanup.
type gcSentinel struct{ _ [16]byte }
