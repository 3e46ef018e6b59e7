package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{[]float64{3}, 3, true},
		{[]float64{5, 1, 3}, 3, true},
		{[]float64{4, 1, 3, 2}, 2.5, true},
		{[]float64{7, 7, 1, 100, 7}, 7, true},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		got, ok := median(in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("median(%v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median(%v) reordered its input to %v", tt.in, in)
				break
			}
		}
	}
}

func TestPairedRatio(t *testing.T) {
	// Round 2: edgecert got half the CPU nginx got, so per core it is
	// twice as good as its plain ratio says.
	e := []sample{{100, 100}, {50, 50}, {90, 100}}
	n := []sample{{100, 100}, {100, 100}, {100, 100}}
	plain, ok := pairedRatio(e, n, false)
	if !ok || plain != (spread{0.9, 0.5, 1}) {
		t.Errorf("plain = %+v, %v; want median 0.9 of 1, 0.5, 0.9", plain, ok)
	}
	pc, ok := pairedRatio(e, n, true)
	if !ok || pc != (spread{1, 0.9, 1}) {
		t.Errorf("per-core = %+v, %v; want median 1 of 1, 1, 0.9", pc, ok)
	}
	// Unpaired tails and zero denominators are left out.
	if r, ok := pairedRatio([]sample{{10, 50}, {10, 0}, {5, 5}}, []sample{{0, 50}, {10, 50}}, true); ok {
		t.Errorf("pairedRatio with no usable pair = %+v, true; want false", r)
	}
	if _, ok := pairedRatio(nil, n, false); ok {
		t.Error("pairedRatio(nil, ...) ok; want false")
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		perCore, plain, target float64
		want                   string
	}{
		{1.0, 1.0, 1.0, "PASS"},
		{1.05, 0.97, 1.0, "PASS*"},
		{0.97, 1.02, 1.0, "MISS*"},
		{0.6, 0.62, 0.8, "MISS"},
	}
	for _, tt := range tests {
		if got := verdict(tt.perCore, tt.plain, tt.target); got != tt.want {
			t.Errorf("verdict(%v, %v, %v) = %s; want %s", tt.perCore, tt.plain, tt.target, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"run\t/bench\tedgecert\t100\t99\n",           // a field short
		"run\t/bench\tedgecert\tfast\t99\t0\n",       // not a number
		"walk\t/bench\tedgecert\t100\t99\t0\n",       // unknown record
		"rss\t1.1\t1000\n",                           // a field short
		"conn\ttls\tnginx\t100\t1000\t2000\textra\n", // a field long
	} {
		if _, err := parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("parse(%q) = %v; want an error naming line 1", in, err)
		}
	}
}

// TestReport runs the whole report on a small file: three servers, two
// rounds, an RSS pair and idle connections; it checks the figures a reader
// acts on.
func TestReport(t *testing.T) {
	in := strings.Join([]string{
		"run\t/bench\tedgecert\t100\t100\t0",
		"run\t/bench\tnethttp\t90\t100\t0",
		"run\t/bench\tnginx\t150\t90\t10",
		"run\t/bench\tedgecert\t110\t100\t0",
		"run\t/bench\tnethttp\t100\t100\t0",
		"run\t/bench\tnginx\t160\t90\t10",
		"run\t/\tedgecert\t60\t100\t0",
		"run\t/\tnginx\t100\t100\t0",
		"rss\t1.1\t10240\t12288",
		"rss\t2\t10240\t30720",
		"conn\ttls\tedgecert\t1000\t10000\t40000",
		"conn\ttls\tnginx\t1000\t5000\t19000",
		"conn\tws\tedgecert\t1000\t10000\t20000",
	}, "\n") + "\n"
	s, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.servers, ","); got != "edgecert,nethttp,nginx" {
		t.Errorf("servers = %s; want edgecert,nethttp,nginx in order of appearance", got)
	}
	var out bytes.Buffer
	write(&out, s)
	report := out.String()
	line := func(prefix string) []string {
		for _, l := range strings.Split(report, "\n") {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(strings.TrimPrefix(l, prefix))
			}
		}
		t.Fatalf("no line starting %q in:\n%s", prefix, report)
		return nil
	}
	// /bench: medians 105, 95, 155; ×nethttp 1.111, 1.10 -> 1.11 (per-core
	// the same: equal CPU); ×nginx 0.67, 0.69 -> 0.68 plain, per core
	// ×0.9 -> 0.60, 0.62 -> 0.61: a MISS of the 0.8 target.
	want := []string{"105", "95.0", "155", "1.11", "1.11", "1.10-1.11", ">=", "1.0x", "PASS", "0.68", "0.61", "0.60-0.62", ">=", "0.8x", "MISS"}
	if got := line("/bench req/s"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("/bench row = %q\nwant        %q\n%s", got, want, report)
	}
	// / has no nethttp run: its cells are dashes, nginx is compared.
	if got := strings.Join(line("/ req/s"), " "); got != "60.0 - 100 - - - - - 0.60 0.60 0.60-0.60 >= 0.5x PASS" {
		t.Errorf("/ row = %q", got)
	}
	if got := line("RSS 1GiB /data h2"); got[len(got)-1] != "MISS" || got[0] != "10.0M" {
		t.Errorf("RSS h2 row = %q; want idle 10.0M, +20 MiB a MISS", got)
	}
	if got := line("RSS 1GiB /data h1.1"); got[len(got)-1] != "PASS" {
		t.Errorf("RSS h1.1 row = %q; want a PASS (+2 MiB)", got)
	}
	// 30 KiB vs 14 KiB per connection: 2.14x, over the 2x target.
	if got := strings.Join(line("tls"), " "); got != "30.0 KiB - 14.0 KiB 2.14 <= 2.0x MISS" {
		t.Errorf("tls row = %q", got)
	}
	if got := strings.Join(line("ws"), " "); got != "10.0 KiB - - - - -" {
		t.Errorf("ws row = %q", got)
	}
	if got := line("Targets missed:"); got[0] != "2" {
		t.Errorf("Targets missed: %s; want 2 (/bench vs nginx, RSS h2)", got[0])
	}
}

// TestReportConnsOnly: samples of the per-connection rows only
// (BENCH_STEPS=conns) print that table and no empty throughput table.
func TestReportConnsOnly(t *testing.T) {
	s, err := parse(strings.NewReader("conn\ttls\tedgecert\t1000\t10000\t40000\nconn\ttls\tnginx\t1000\t5000\t19000\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	write(&out, s)
	report := out.String()
	if !strings.Contains(report, "RSS per idle connection") || strings.Contains(report, "metric ") || strings.Contains(report, "Server CPU") {
		t.Errorf("conns-only report:\n%s", report)
	}
}
