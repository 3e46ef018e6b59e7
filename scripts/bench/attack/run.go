package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/edgecert/edgecert/internal/attack"
)

// result is one row on one server.
type result struct {
	row, server string
	conns       int
	note        string
	stats       attack.Stats
	open        int           // attack connections still open after the row's wait
	closedAfter time.Duration // from the attack's start to the last close seen; 0: none
	wait        time.Duration
	rss         [3]int64      // KiB before, peak, after; all 0 without a pid
	cpu         time.Duration // the server's CPU time during the row; 0 without a pid
	pairs       int
	err         error
}

// watch is what a row sees of the server while it runs: its normal
// client, its sockets and RSS, sampled for the peak.
type watch struct {
	s        server
	normal   *attack.Normal
	sockets0 int
	rss0     int64

	mu   sync.Mutex // guards peak
	peak int64
}

func (w *watch) pids() ([]int, error) {
	if w.s.pid == 0 {
		return nil, errors.New("no pid")
	}
	return attack.WithChildren(w.s.pid)
}

func (w *watch) cpu() time.Duration {
	pids, err := w.pids()
	if err != nil {
		return 0
	}
	d, _ := attack.CPUTime(pids)
	return d
}

func (w *watch) sockets() (int, error) {
	pids, err := w.pids()
	if err != nil {
		return 0, err
	}
	return attack.Sockets(pids)
}

// rssNow reads the RSS (KiB) and folds it into the peak.
func (w *watch) rssNow() (int64, bool) {
	pids, err := w.pids()
	if err != nil {
		return 0, false
	}
	kib, err := attack.RSSKiB(pids)
	if err != nil {
		return 0, false
	}
	w.mu.Lock()
	w.peak = max(w.peak, kib)
	w.mu.Unlock()
	return kib, true
}

// sample reads the RSS every 100 ms until ctx is done.
func (w *watch) sample(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.rssNow()
		}
	}
}

// runAll runs every row on every server in turn, with a pause between
// runs for the server to settle; it stops at a server that no longer
// answers.
func runAll(cfg *config) ([]result, error) {
	var results []result
	for _, name := range cfg.rows {
		r, _ := rowByName(name)
		for _, s := range cfg.targets {
			res := runOne(cfg, r, s)
			logResult(res)
			results = append(results, res)
			if res.err != nil {
				return results, fmt.Errorf("%s on %s: %w", r.name, s.name, res.err)
			}
			time.Sleep(2 * time.Second)
		}
	}
	return results, nil
}

// runOne runs row r against s while a normal client makes requests.
func runOne(cfg *config, r row, s server) result {
	res := result{row: r.name, server: s.name}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &watch{s: s}
	w.rss0, _ = w.rssNow()
	w.normal = attack.StartNormal(s.tg, cfg.normalFrom, cfg.normalPath, 20*time.Millisecond)
	for i := 0; i < 500 && w.normal.Count() < 2; i++ { // both its connections open
		time.Sleep(20 * time.Millisecond)
	}
	w.sockets0, _ = w.sockets()
	sctx, stopSampling := context.WithCancel(ctx)
	go w.sample(sctx)

	start, cpu0 := time.Now(), w.cpu()
	o, err := r.run(ctx, cfg, s, w)
	res.err, res.conns, res.note, res.pairs = err, len(o.conns), o.note, o.pairs
	if r.wait != nil && err == nil {
		res.wait = r.wait(cfg.bounds) + cfg.slack
		open, last := attack.Closed(o.conns, start.Add(res.wait))
		if !o.serverAt.IsZero() {
			last = o.serverAt
		}
		res.open = open
		if !last.IsZero() {
			res.closedAfter = last.Sub(start)
		}
	}
	attack.CloseAll(o.conns)
	res.stats = w.normal.Stop()
	res.cpu = w.cpu() - cpu0
	stopSampling()
	time.Sleep(time.Second)
	if after, ok := w.rssNow(); ok {
		res.rss = [3]int64{w.rss0, w.peak, after}
	}
	if res.err == nil && (res.stats.N == 0 || len(res.stats.Errs) > 0) {
		res.note += fmt.Sprintf("; normal client: %d failed", len(res.stats.Errs))
	}
	return res
}

// logResult prints one run as it finishes (stderr).
func logResult(r result) {
	e := ""
	if len(r.stats.Errs) > 0 {
		e = " first failure: " + r.stats.Errs[0]
	}
	fmt.Fprintf(os.Stderr, "[attack] %-14s %-8s conns %4d open %4d closed after %-8v normal %4d ok %3d failed p50 %-8v p99 %-8v max %-8v RSS %d/%d/%d KiB CPU %v %s%s err=%v\n",
		r.row, r.server, r.conns, r.open, r.closedAfter.Round(10*time.Millisecond), r.stats.N, len(r.stats.Errs),
		r.stats.P50.Round(10*time.Microsecond), r.stats.P99.Round(10*time.Microsecond), r.stats.Max.Round(10*time.Microsecond),
		r.rss[0], r.rss[1], r.rss[2], r.cpu, r.note, e, r.err)
}
