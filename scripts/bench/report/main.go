// Command report turns the samples scripts/bench/run.sh recorded into the
// table `make bench` prints: medians per server, ratios of edgecert against
// each baseline server measured back to back, per-core ratios (each run's
// figure divided by the CPU its server actually got), their range, and a
// verdict against the targets of BENCHMARKS.md. The statistics live here,
// tested, so run.sh stays a thin driver of apt, nginx, wrk and taskset.
//
// Usage: report SAMPLES-FILE
//
// The file has one tab-separated record per line:
//
//	run   METRIC SERVER VALUE CPU OTHERS   one wrk, curl or s_time run
//	rss   PROTO IDLE-KIB PEAK-KIB          edgecert during a 1 GiB download
//	conn  KIND SERVER N RSS-BEFORE-KIB RSS-AFTER-KIB   N idle connections opened
//
// Runs of one metric appear in measurement order, the servers alternating,
// so the i-th run of edgecert pairs with the i-th run of each baseline.
// Exit status: 0 once the table is printed, whether or not targets are met
// (benchmarks report, they do not gate); 1 on an unreadable file.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: report SAMPLES-FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
	defer f.Close()
	s, err := parse(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "report: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	write(os.Stdout, s)
}

// write prints the whole report; the throughput table and its CPU shares
// only when something was measured for them (BENCH_STEPS=conns has only
// the per-connection rows).
func write(w io.Writer, s *samples) {
	misses := 0
	if len(s.runs) > 0 || len(s.rss) > 0 {
		misses = writeTable(w, s)
	}
	writeConns(w, s)
	if len(s.runs) > 0 {
		writeCPU(w, s)
	}
	fmt.Fprintf(w, "Targets missed: %d (reported, not enforced). A \"*\" marks a verdict whose plain ratio lands on the\n", misses)
	fmt.Fprintln(w, "other side of the target: the two servers did not get the same CPU (contention or a client-bound run).")
}
