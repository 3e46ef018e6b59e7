package main

import (
	"fmt"
	"slices"
)

// median returns the median of xs (the mean of the middle two for an even
// count) and false for an empty slice. xs is not modified.
func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// sample is one measurement of one server: the figure (req/s, conn/s,
// MiB/s) and the percentage of one core its processes used meanwhile.
type sample struct {
	value float64
	cpu   float64
}

// pairedRatio compares two servers measured back to back, run i against run
// i: for each pair it takes a/b, or with perCore (a/a.cpu)/(b/b.cpu), the
// ratio at an equal CPU budget. It returns the median and the range of those
// ratios; pairs with a zero denominator (or zero CPU, for perCore) are left
// out, and ok is false when none is left.
type spread struct {
	Median, Min, Max float64
}

func pairedRatio(a, b []sample, perCore bool) (spread, bool) {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i].value <= 0 {
			continue
		}
		r := a[i].value / b[i].value
		if perCore {
			if a[i].cpu <= 0 || b[i].cpu <= 0 {
				continue
			}
			r *= b[i].cpu / a[i].cpu
		}
		rs = append(rs, r)
	}
	m, ok := median(rs)
	if !ok {
		return spread{}, false
	}
	return spread{Median: m, Min: slices.Min(rs), Max: slices.Max(rs)}, true
}

// verdict judges a per-core ratio against target: PASS or MISS, with a "*"
// when the plain ratio falls on the other side of the target (the servers
// did not get the same CPU: contention, or a client-bound run).
func verdict(perCore, plain, target float64) string {
	v := "MISS"
	if perCore >= target {
		v = "PASS"
	}
	if (perCore >= target) != (plain >= target) {
		v += "*"
	}
	return v
}

// formatFigure prints a median figure the way the table shows it: integers
// for rates, one decimal below 100.
func formatFigure(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
