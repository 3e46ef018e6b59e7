package daemon

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener is the public listener: it caps open connections in total
// and per client address, and wraps each accepted connection in a
// progressConn that enforces the write-progress deadline and, with the
// server's trackPhases hook, the HTTP/1 request-head and idle bounds
// (readbound.go). Its reaper goroutine starts with the first Accept and
// ends when the listener is closed.
//
// A connection over a cap is closed at once, before its TLS handshake, and
// logged as conn.limit_reached (at most once per logEvery per cap, with the
// count refused since the previous line). Clients are counted by IP; IPv6
// clients by /64, the smallest block a host is usually given.
type limitListener struct {
	net.Listener
	max, perClient int
	writeTimeout   time.Duration
	headTimeout    time.Duration // Limits.HeaderTimeout
	idleTimeout    time.Duration // Limits.IdleTimeout
	log            *rateLog
	epoch          time.Time // origin of the phase stamps

	reapOnce  sync.Once
	closeOnce sync.Once
	done      chan struct{} // closed by Close: the reaper ends

	mu       sync.Mutex // guards open, byClient and conns
	open     int
	byClient map[netip.Addr]int
	conns    map[*progressConn]struct{} // the open connections, for the reaper
}

func newLimitListener(ln net.Listener, lim Limits, log *slog.Logger) *limitListener {
	return &limitListener{
		Listener:     ln,
		max:          lim.MaxConns,
		perClient:    lim.PerClientConns,
		writeTimeout: lim.WriteTimeout,
		headTimeout:  lim.HeaderTimeout,
		idleTimeout:  lim.IdleTimeout,
		log:          newRateLog(log, logEvery),
		epoch:        time.Now(),
		done:         make(chan struct{}),
		byClient:     make(map[netip.Addr]int),
		conns:        make(map[*progressConn]struct{}),
	}
}

// Accept returns the next connection within the caps; connections over a
// cap are closed and not returned.
func (l *limitListener) Accept() (net.Conn, error) {
	l.reapOnce.Do(func() {
		if every := reapEvery(l.headTimeout, l.idleTimeout); every > 0 {
			go l.reap(every)
		}
	})
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		if flag, limit := l.admit(key); flag != "" {
			_ = c.Close()
			l.log.warn("conn.limit_reached:"+flag, "conn.limit_reached",
				slog.String("limit", flag), slog.Int("max", limit), slog.String("client", key.String()))
			continue
		}
		pc := &progressConn{Conn: c, l: l, key: key, timeout: l.writeTimeout}
		pc.state.Store(l.stamp(phaseHead))
		l.mu.Lock()
		l.conns[pc] = struct{}{}
		l.mu.Unlock()
		return pc, nil
	}
}

// Close closes the listener and ends the reaper; open connections stay.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// admit counts a new connection from key, or names the flag of the cap it
// would exceed.
func (l *limitListener) admit(key netip.Addr) (flag string, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open >= l.max {
		return "max-connections", l.max
	}
	if l.perClient > 0 && l.byClient[key] >= l.perClient {
		return "max-connections-per-client", l.perClient
	}
	l.open++
	l.byClient[key]++
	return "", 0
}

func (l *limitListener) release(key netip.Addr, c *progressConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	l.open--
	if n := l.byClient[key] - 1; n > 0 {
		l.byClient[key] = n
	} else {
		delete(l.byClient, key)
	}
}

// openConns returns the number of connections counted against the caps.
func (l *limitListener) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// clientKey is the address a client is counted by: its IP, or for IPv6
// its /64.
func clientKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// progressConn is an accepted connection. Its writes must make progress:
// before a write, if the write deadline was armed more than timeout/2 ago,
// it is moved to now+timeout, so a write gets between timeout/2 and
// timeout to finish and a download that keeps moving is never cut, while
// a client that stops reading is disconnected (http.write_stalled). The
// deadline costs one timer update per timeout/2, not one per write. A
// deadline set by the user of the connection (the TLS handshake, a
// websocket write) takes over until it is cleared. Close releases the
// connection's place in the caps, once.
//
// Write is called by one goroutine at a time (crypto/tls serialises
// writes); the deadline state is atomic because SetWriteDeadline may come
// from another goroutine.
type progressConn struct {
	net.Conn
	l       *limitListener
	key     netip.Addr
	timeout time.Duration

	head     headWatch    // for watchHeads (headwatch.go)
	armed    atomic.Int64 // UnixNano of the last progress arming; 0 = not armed
	explicit atomic.Bool  // a caller-set write deadline is in force
	closed   atomic.Bool
	state    atomic.Int64 // read phase and its start (readbound.go)
}

func (c *progressConn) Write(b []byte) (int, error) {
	if c.timeout > 0 && !c.explicit.Load() {
		now := time.Now()
		if ns := now.UnixNano(); ns-c.armed.Load() > int64(c.timeout/2) {
			c.armed.Store(ns)
			_ = c.Conn.SetWriteDeadline(now.Add(c.timeout))
		}
	}
	n, err := c.Conn.Write(b)
	if err != nil && !c.explicit.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		c.l.log.warn("http.write_stalled", "http.write_stalled",
			slog.String("remote", c.RemoteAddr().String()), slog.Duration("timeout", c.timeout))
	}
	return n, err
}

// SetWriteDeadline sets a caller's write deadline, which replaces the
// progress deadline until it is cleared. Clearing when no caller deadline
// is in force changes nothing: net/http clears the write deadline after
// every response, and keeping the progress deadline armed saves a timer
// update per request.
func (c *progressConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() && !c.explicit.Load() {
		return nil
	}
	c.explicit.Store(!t.IsZero())
	c.armed.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines; the write side as SetWriteDeadline does.
func (c *progressConn) SetDeadline(t time.Time) error {
	if t.IsZero() && !c.explicit.Load() {
		return c.Conn.SetReadDeadline(t)
	}
	c.explicit.Store(!t.IsZero())
	c.armed.Store(0)
	return c.Conn.SetDeadline(t)
}

func (c *progressConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.key, c)
	}
	return c.Conn.Close()
}
