package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printTable writes the results as one Markdown table: per row, each
// server's normal-client p50 / p99, when the attack connections were
// closed, and the RSS growth (peak over before).
func printTable(w io.Writer, cfg *config, results []result) {
	by := map[[2]string]result{}
	for _, r := range results {
		by[[2]string{r.row, r.server}] = r
	}
	var names []string
	for _, s := range cfg.targets {
		names = append(names, s.name)
	}
	cols := []string{"attack"}
	for _, what := range []string{"normal p50 / p99", "attack conns closed after", "RSS before → peak (Δ)", "CPU", "notes"} {
		for _, n := range names {
			cols = append(cols, n+" "+what)
		}
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, name := range cfg.rows {
		r, _ := rowByName(name)
		cells := []string{r.title}
		for _, fn := range []func(result) string{latency, closed, rss, cpu, notes} {
			for _, n := range names {
				res, ok := by[[2]string{name, n}]
				if !ok {
					cells = append(cells, "not run")
					continue
				}
				cells = append(cells, fn(res))
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func latency(r result) string {
	s := fmt.Sprintf("%s / %s", ms(r.stats.P50), ms(r.stats.P99))
	if n := len(r.stats.Errs); n > 0 {
		s += fmt.Sprintf(" (%d of %d failed)", n, n+r.stats.N)
	}
	return s
}

func closed(r result) string {
	switch {
	case r.err != nil:
		return "error: " + r.err.Error()
	case r.wait == 0 || r.conns == 0:
		return "—"
	case r.open > 0:
		return fmt.Sprintf("%d of %d held > %v", r.open, r.conns, r.wait.Round(time.Second))
	}
	return fmt.Sprintf("%d in %.1f s", r.conns, r.closedAfter.Seconds())
}

func rss(r result) string {
	if r.rss == [3]int64{} {
		return "—"
	}
	return fmt.Sprintf("%.0f → %.0f MiB (+%.1f)", float64(r.rss[0])/1024, float64(r.rss[1])/1024, float64(r.rss[1]-r.rss[0])/1024)
}

func cpu(r result) string {
	if r.cpu == 0 && r.rss == [3]int64{} {
		return "—"
	}
	s := fmt.Sprintf("%.2f s", r.cpu.Seconds())
	if r.pairs > 0 {
		s += fmt.Sprintf(" (%.1f µs per pair)", float64(r.cpu.Microseconds())/float64(r.pairs))
	}
	return s
}

func notes(r result) string {
	if r.note == "" {
		return "—"
	}
	return strings.TrimPrefix(r.note, "; ")
}
