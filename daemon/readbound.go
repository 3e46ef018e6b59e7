package daemon

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"time"
)

// The HTTP/1 request-head and idle bounds (Limits.HeaderTimeout and
// IdleTimeout) are enforced here, coarsely, instead of by http.Server's
// ReadHeaderTimeout and IdleTimeout: net/http re-arms the socket's read
// deadline two or three times per request for those (a runtime timer
// update and a clock read each), which was most of what edgecert paid per
// keep-alive request over a bare net/http server (BENCHMARKS.md). Here a
// request costs two atomic stores and one compare-and-swap, and no timer.
//
// Each progressConn has a read phase, stamped with when it began:
//
//   - head: from accept (the TLS handshake and the first request head), and
//     from the first bytes of each later request until net/http has read
//     its head (http.StateActive). Bound: HeaderTimeout.
//   - idle: from the end of a response (http.StateIdle) until the first
//     bytes of the next request. Bound: IdleTimeout.
//   - busy: a handler is running; its body is bounded by boundBodies, its
//     writes by the write-progress deadline.
//   - off: an HTTP/2 connection (x/net/http2 bounds header blocks and idle
//     connections itself, see configureHTTP2) or a hijacked one (/echo
//     bounds itself). No phase follows.
//   - expired: a bound passed; every read fails with a timeout.
//
// One reaper goroutine per listener looks at every connection each
// reapEvery (half the shorter bound) and expires those in head or idle
// for longer than their bound: it sets a read deadline in the past, which
// wakes a blocked read with os.ErrDeadlineExceeded, and net/http closes the
// connection as it would at its own deadline (silently for a head or an
// idle connection, "TLS handshake error … i/o timeout" at debug for a
// handshake). A bound therefore bites between its value and 1.5× it.
const (
	phaseHead int64 = iota
	phaseIdle
	phaseBusy
	phaseOff
	phaseExpired
	phaseBits = 3
	phaseMask = 1<<phaseBits - 1
)

// stamp returns the state word of phase begun now: the time since the
// listener's epoch (monotonic) above the phase bits.
func (l *limitListener) stamp(phase int64) int64 {
	return int64(time.Since(l.epoch))<<phaseBits | phase
}

// Read reads from the connection; the first bytes read while idle start
// the next request head's bound. After an expiry every read fails. A read
// that fails at a deadline is noted for watchHeads.
func (c *progressConn) Read(b []byte) (int, error) {
	s := c.state.Load()
	if s&phaseMask == phaseExpired {
		c.head.timedOut.Store(true)
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	n, err := c.Conn.Read(b)
	if n > 0 && s&phaseMask == phaseIdle {
		c.state.CompareAndSwap(s, c.l.stamp(phaseHead))
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.head.timedOut.Store(true)
	}
	return n, err
}

// setPhase moves c to phase unless it is off or expired.
func (c *progressConn) setPhase(phase int64) {
	for {
		s := c.state.Load()
		if p := s & phaseMask; p == phaseOff || p == phaseExpired {
			return
		}
		if c.state.CompareAndSwap(s, c.l.stamp(phase)) {
			return
		}
	}
}

// trackPhases is the http.Server ConnState hook that moves HTTP/1
// connections between the head, idle and busy phases. net/http passes the
// *tls.Conn over the progressConn; anything else (x/net/http2's wrapped
// connections) is left alone.
func trackPhases(c net.Conn, s http.ConnState) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return
	}
	pc, ok := tc.NetConn().(*progressConn)
	if !ok {
		return
	}
	switch s {
	case http.StateActive:
		pc.setPhase(phaseBusy)
	case http.StateIdle:
		pc.setPhase(phaseIdle)
	case http.StateHijacked:
		pc.setPhase(phaseOff)
	}
}

// unbound takes c, an HTTP/2 connection, out of the head and idle phases:
// HTTP/2 bounds them itself.
func unbound(c *tls.Conn) {
	if pc, ok := c.NetConn().(*progressConn); ok {
		pc.setPhase(phaseOff)
	}
}

// reapEvery is how often the reaper runs for bounds head and idle (0:
// unbounded): half the shorter one, so each bites within 1.5× its value;
// 0 when neither is set.
func reapEvery(head, idle time.Duration) time.Duration {
	d := head
	if d <= 0 || (idle > 0 && idle < d) {
		d = idle
	}
	return d / 2
}

// expired reports whether a connection in state s has passed its bound at
// now (since the epoch).
func expired(s int64, now, head, idle time.Duration) bool {
	since := now - time.Duration(s>>phaseBits)
	switch s & phaseMask {
	case phaseHead:
		return head > 0 && since > head
	case phaseIdle:
		return idle > 0 && since > idle
	}
	return false
}

// reap runs every reapEvery until the listener is closed, expiring the
// connections past their bound.
func (l *limitListener) reap(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var due []*progressConn
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		due = due[:0]
		now := time.Since(l.epoch)
		l.mu.Lock()
		for c := range l.conns {
			if s := c.state.Load(); expired(s, now, l.headTimeout, l.idleTimeout) && c.state.CompareAndSwap(s, phaseExpired) {
				due = append(due, c)
			}
		}
		l.mu.Unlock()
		for _, c := range due {
			_ = c.Conn.SetReadDeadline(aLongTimeAgo)
		}
		clear(due)
	}
}

// aLongTimeAgo is a read deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)
