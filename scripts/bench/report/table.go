package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// subject is the server every ratio is about; the others are baselines.
const subject = "edgecert"

// metric is one row of the table with its targets: the least per-core
// ratio subject/baseline, per baseline (absent: reported without a target).
type metric struct {
	key, label string
	targets    map[string]float64
}

// metrics are the rows in order, with the targets of the open issues
// (BENCHMARKS.md says where each comes from). nethttp is the bare net/http
// TLS server (scripts/bench/nethttp), nginx the reference.
var metrics = []metric{
	{"/", "/ req/s", map[string]float64{"nginx": 0.5}},
	{"/api", "/api req/s", map[string]float64{"nginx": 0.5}},
	{"/bench", "/bench req/s", map[string]float64{"nethttp": 1.0, "nginx": 0.8}},
	{"hs", "resumed TLS conn/s", nil},
	{"hsfull", "full TLS handshakes/s", nil},
	{"data1.1", "/data 100MiB h1.1 MiB/s", map[string]float64{"nginx": 0.6}},
	{"data2", "/data 100MiB h2 MiB/s", nil},
}

// rssSlackKiB is the target for the 1 GiB download: peak within 8 MiB of idle.
const rssSlackKiB = 8 << 10

// baselines are the servers other than subject, in order of appearance.
func (s *samples) baselines() []string {
	var out []string
	for _, n := range s.servers {
		if n != subject {
			out = append(out, n)
		}
	}
	return out
}

// writeTable prints the main table and returns the number of targets missed.
func writeTable(w io.Writer, s *samples) int {
	fmt.Fprintln(w, "Medians over the runs per server; for each baseline B: ×B = median over the rounds of")
	fmt.Fprintln(w, "edgecert/B measured back to back, per-core the same after dividing each run's figure by the CPU its")
	fmt.Fprintln(w, "server got (equal CPU budget), with its lowest-highest round. Targets are judged on per-core.")
	fmt.Fprintln(w)
	head := []string{"metric"}
	head = append(head, s.servers...)
	for _, b := range s.baselines() {
		head = append(head, "×"+b, "per-core", "range", "target", "result")
	}
	rows := [][]string{head}
	misses := 0
	for _, m := range metrics {
		runs := s.runs[m.key]
		if runs == nil {
			continue
		}
		row := []string{m.label}
		for _, srv := range s.servers {
			row = append(row, medianCell(runs[srv]))
		}
		for _, b := range s.baselines() {
			cells, missed := compare(runs[subject], runs[b], m.targets, b)
			if missed {
				misses++
			}
			row = append(row, cells...)
		}
		rows = append(rows, row)
	}
	for _, r := range s.rss {
		v := "PASS"
		if r.peak-r.idle > rssSlackKiB {
			v = "MISS"
			misses++
		}
		row := []string{"RSS 1GiB /data h" + r.proto, fmt.Sprintf("%.1fM", r.idle/1024)}
		for range len(s.servers) - 1 {
			row = append(row, "-")
		}
		row = append(row, fmt.Sprintf("+%.1fM", (r.peak-r.idle)/1024), fmt.Sprintf("peak %.1fM", r.peak/1024), "", "<= +8MiB", v)
		rows = append(rows, row)
	}
	writeAligned(w, rows)
	if len(s.rss) > 0 {
		fmt.Fprintln(w, "(RSS rows: edgecert's idle RSS, then the growth of the peak over idle during the download, and the peak)")
	}
	fmt.Fprintln(w)
	return misses
}

// compare gives the ×B, per-core, range, target and result cells of subject
// against baseline b, and whether a target was missed.
func compare(e, b []sample, targets map[string]float64, name string) ([]string, bool) {
	if len(e) == 0 || len(b) == 0 {
		return []string{"-", "-", "-", "-", "-"}, false
	}
	plain, ok1 := pairedRatio(e, b, false)
	pc, ok2 := pairedRatio(e, b, true)
	if !ok1 || !ok2 {
		return []string{"-", "-", "-", "-", "-"}, false
	}
	cells := []string{fmt.Sprintf("%.2f", plain.Median), fmt.Sprintf("%.2f", pc.Median), fmt.Sprintf("%.2f-%.2f", pc.Min, pc.Max), "-", "-"}
	t, ok := targets[name]
	if !ok {
		return cells, false
	}
	v := verdict(pc.Median, plain.Median, t)
	cells[3], cells[4] = fmt.Sprintf(">= %.1fx", t), v
	return cells, strings.HasPrefix(v, "MISS")
}

func medianCell(runs []sample) string {
	vals := make([]float64, len(runs))
	for i, r := range runs {
		vals[i] = r.value
	}
	m, ok := median(vals)
	if !ok {
		return "-"
	}
	return formatFigure(m)
}

// writeConns prints the memory per idle connection, per server and kind,
// and the ratio to nginx where it was measured (target: <= 2x nginx).
func writeConns(w io.Writer, s *samples) {
	if len(s.conns) == 0 {
		return
	}
	fmt.Fprintln(w, "RSS per idle connection (median over the rounds of (RSS with N open - RSS before) / N):")
	type key struct{ kind, server string }
	per := map[key][]float64{}
	var kinds []string
	for _, c := range s.conns {
		if c.n <= 0 {
			continue
		}
		k := key{c.kind, c.server}
		if per[k] == nil && !slices.Contains(kinds, c.kind) {
			kinds = append(kinds, c.kind)
		}
		per[k] = append(per[k], (c.after-c.before)/float64(c.n))
	}
	rows := [][]string{append([]string{"connection"}, append(s.servers, "×nginx", "target", "result")...)}
	for _, kind := range kinds {
		row := []string{kind}
		for _, srv := range s.servers {
			if m, ok := median(per[key{kind, srv}]); ok {
				row = append(row, fmt.Sprintf("%.1f KiB", m))
			} else {
				row = append(row, "-")
			}
		}
		e, ok1 := median(per[key{kind, subject}])
		n, ok2 := median(per[key{kind, "nginx"}])
		if ok1 && ok2 && n > 0 {
			v := "PASS"
			if e/n > 2 {
				v = "MISS"
			}
			row = append(row, fmt.Sprintf("%.2f", e/n), "<= 2.0x", v)
		} else {
			row = append(row, "-", "-", "-")
		}
		rows = append(rows, row)
	}
	writeAligned(w, rows)
	fmt.Fprintln(w)
}

// writeCPU prints how much of the server's core each server and everything
// else used during each metric's runs (medians).
func writeCPU(w io.Writer, s *samples) {
	fmt.Fprintln(w, "Server CPU during the runs (median, % of that core): used by the server / by other processes:")
	for _, m := range metrics {
		runs := s.runs[m.key]
		if runs == nil {
			continue
		}
		line := fmt.Sprintf("  %-24s", m.label)
		for _, srv := range s.servers {
			cpu := make([]float64, len(runs[srv]))
			for i, r := range runs[srv] {
				cpu[i] = r.cpu
			}
			c, ok1 := median(cpu)
			o, ok2 := median(s.others[m.key][srv])
			if ok1 && ok2 {
				line += fmt.Sprintf("  %s %3.0f%% / %3.0f%%", srv, c, o)
			}
		}
		fmt.Fprintln(w, line)
	}
}

// writeAligned prints rows as left-aligned columns two spaces apart.
func writeAligned(w io.Writer, rows [][]string) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
