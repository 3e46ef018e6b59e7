package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/edgecert/edgecert/internal/attack"
)

// row is one attack. wait is how long, from the attack's start, the row
// watches for the server to close the attack connections: the longer of
// edgecert's and nginx's bound for it, so that neither is reported as
// holding a connection it would have closed; 0 for a row with no
// connections to close.
type row struct {
	name, title string
	wait        func(b bounds) time.Duration
	run         func(ctx context.Context, cfg *config, s server, w *watch) (out, error)
}

// out is what an attack leaves: the connections the server should close,
// a note for the table, and, when the server's own sockets showed it,
// when the server closed them (zero: seen by the client, Closed).
type out struct {
	conns    []net.Conn
	note     string
	serverAt time.Time
	pairs    int // rapid reset: HEADERS+RST_STREAM pairs sent
}

var rows = []row{
	{"quiet", "no attack (baseline)", nil, func(ctx context.Context, cfg *config, _ server, _ *watch) (out, error) {
		select {
		case <-ctx.Done():
		case <-time.After(cfg.quiet):
		}
		return out{}, nil
	}},
	{"slowloris", "HTTP/1 head sent slowly (slowloris)",
		// edgecert's reaper closes a head within 1.5 × HeaderTimeout,
		// nginx's client_header_timeout bounds the whole head: 3× is
		// room for both.
		func(b bounds) time.Duration { return 3 * b.header },
		func(ctx context.Context, cfg *config, s server, _ *watch) (out, error) {
			c, err := attack.Slowloris(ctx, s.tg, cfg.from, cfg.conns, cfg.bounds.header/5)
			return out{conns: c}, err
		}},
	{"slowbody", "HTTP/1 body sent slowly (POST, route that does not read it)",
		// nginx discards an unread body within lingering_time (30 s).
		func(b bounds) time.Duration { return max(b.body, 30*time.Second) },
		func(ctx context.Context, cfg *config, s server, _ *watch) (out, error) {
			c, err := attack.SlowBody(ctx, s.tg, cfg.from, cfg.conns, cfg.bodyPath, cfg.bounds.body/5)
			return out{conns: c}, err
		}},
	{"neverread", "clients that never read a large response",
		func(b bounds) time.Duration { return b.write }, neverRead},
	{"idle", "idle keep-alive connections (one request each)",
		// edgecert's reaper closes within IdleTimeout + HeaderTimeout/2.
		func(b bounds) time.Duration { return b.idle + b.header/2 }, idleFlood},
	{"h2continuation", "HTTP/2 header block sent slowly (CONTINUATION)",
		func(b bounds) time.Duration { return 3 * b.header },
		func(ctx context.Context, cfg *config, s server, _ *watch) (out, error) {
			c, err := attack.H2SlowHeaders(ctx, s.tg, cfg.from, cfg.conns, "/", cfg.bounds.header/5)
			return out{conns: c}, err
		}},
	{"h2bodies", "HTTP/2 streams whose bodies never finish",
		// Once the streams are over the connection is idle and silent:
		// edgecert's PING bound or nginx's keep-alive bound ends it.
		func(b bounds) time.Duration { return max(b.body+b.ping, b.idle+b.body) },
		func(ctx context.Context, cfg *config, s server, _ *watch) (out, error) {
			c, err := attack.H2Bodies(ctx, s.tg, cfg.from, cfg.conns, cfg.streams, cfg.bodyPath)
			return out{conns: c, note: fmt.Sprintf("%d streams each", cfg.streams)}, err
		}},
	{"rapidreset", "HTTP/2 rapid reset (HEADERS + RST_STREAM)", nil, rapidReset},
}

func rowNames() []string {
	var n []string
	for _, r := range rows {
		n = append(n, r.name)
	}
	return n
}

func rowByName(name string) (row, bool) {
	for _, r := range rows {
		if r.name == name {
			return r, true
		}
	}
	return row{}, false
}

// neverRead: GETs of the server's big response, never read. The client
// cannot see the server give up (its FIN waits behind the unread bytes),
// so with a pid the close is seen in the server's sockets: the row waits
// until the server holds no more than before the attack, then drains.
func neverRead(ctx context.Context, cfg *config, s server, w *watch) (out, error) {
	c, err := attack.NeverRead(ctx, s.tg, cfg.from, cfg.conns, s.big)
	o := out{conns: c}
	if err != nil || s.pid == 0 {
		if err == nil {
			time.Sleep(cfg.bounds.write + cfg.slack)
		}
		return o, err
	}
	deadline := time.Now().Add(cfg.bounds.write + cfg.slack)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n, err := w.sockets(); err == nil && n <= w.sockets0 {
			o.serverAt = time.Now()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if o.serverAt.IsZero() {
		o.note = "server still held the sockets"
	}
	return o, nil
}

// idleFlood: cfg.idle keep-alive connections, each after one GET /bench,
// from cfg.idleFrom (spread so that a per-client cap is not what is
// measured; the daemon's test suite checks that one).
func idleFlood(ctx context.Context, cfg *config, s server, w *watch) (out, error) {
	conns, refused := attack.Idle(ctx, s.tg, cfg.idleFrom, cfg.idle, "/bench")
	o := out{conns: conns, note: fmt.Sprintf("%d open, %d refused", len(conns), refused)}
	time.Sleep(time.Second) // let the server settle before the RSS figure
	if kib, ok := w.rssNow(); ok && len(conns) > 0 {
		o.note += fmt.Sprintf("; %.1f KiB RSS each", float64(kib-w.rss0)/float64(len(conns)))
	}
	return o, nil
}

// rapidReset: the loop on new connections until the normal client made
// five requests during it.
func rapidReset(ctx context.Context, cfg *config, s server, w *watch) (out, error) {
	c0 := w.normal.Count()
	loops, pairs, err := attack.RapidReset(ctx, s.tg, cfg.from, cfg.resets, "/bench", func() bool { return w.normal.Count() < c0+5 })
	return out{note: fmt.Sprintf("%d connections, %d pairs", loops, pairs), pairs: pairs}, err
}
