package daemon

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
)

// watchHeads makes the HeaderTimeout bound on the TLS handshake and on
// HTTP/1 request heads visible: net/http closes such a connection
// silently (a handshake only at debug, as http.error), so an operator
// could not tell a slowloris from a quiet site. A connection closed by
// the bound is logged at info, rate-limited by rl:
//
//   - http.handshake_timeout remote=… timeout=…: the TLS handshake did
//     not finish within HeaderTimeout;
//   - http.header_timeout remote=… timeout=… proto=http/1.1: a request
//     head (or, on a new connection, the first byte of one) did not
//     arrive within HeaderTimeout. HTTP/2 header blocks log the same event
//     from h2Conn.
//
// An idle keep-alive connection closed by IdleTimeout, a body deadline
// (http.body_timeout) and a client that hangs up are not logged here.
//
// It follows each connection through srv.ConnState and srv.ConnContext
// (set here; chain other hooks after it) and the headWatch in the
// listener's progressConn. Connections of other listeners are ignored.
func watchHeads(srv *http.Server, lim Limits, rl *rateLog) {
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if hw := headWatchOf(c); hw != nil {
			return context.WithValue(ctx, headWatchKey{}, hw)
		}
		return ctx
	}
	h := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hw, ok := r.Context().Value(headWatchKey{}).(*headWatch); ok && !hw.served.Load() {
			hw.served.Store(true)
		}
		h.ServeHTTP(w, r)
	})
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		hw := headWatchOf(c)
		if hw == nil {
			return
		}
		prev := http.ConnState(hw.state.Swap(int32(s)))
		switch s {
		case http.StateIdle:
			hw.timedOut.Store(false)
			hw.served.Store(false)
		case http.StateClosed:
			if hw.timedOut.Load() && !hw.served.Load() {
				logHeadTimeout(c.(*tls.Conn), prev, lim, rl)
			}
		}
	}
}

// logHeadTimeout logs a connection closed after a read passed its
// deadline with no request served since it was last idle: during the
// handshake, or while a request head was being read (the connection's
// state is still new, or active without a handler; an idle connection
// timed out by IdleTimeout is not a head).
func logHeadTimeout(c *tls.Conn, prev http.ConnState, lim Limits, rl *rateLog) {
	cs := c.ConnectionState()
	remote := slog.String("remote", c.RemoteAddr().String())
	timeout := slog.Duration("timeout", lim.HeaderTimeout)
	switch {
	case !cs.HandshakeComplete:
		rl.info("http.handshake_timeout", "http.handshake_timeout", remote, timeout)
	case cs.NegotiatedProtocol == "h2":
		// h2Conn logs its header blocks; other HTTP/2 ends are not heads.
	case prev == http.StateNew || prev == http.StateActive:
		rl.info("http.header_timeout", "http.header_timeout", remote, timeout, slog.String("proto", "http/1.1"))
	}
}

// headWatchKey is the context key of a connection's *headWatch.
type headWatchKey struct{}

// headWatch is what watchHeads knows of one connection of the public
// listener. Its fields are atomic: the connection's reads, its state
// hooks and (for HTTP/2) its handlers run on different goroutines.
type headWatch struct {
	timedOut atomic.Bool  // a read failed at its deadline since the connection was last idle
	served   atomic.Bool  // a handler started since the connection was last idle
	state    atomic.Int32 // the last http.ConnState (StateNew is 0)
}

// headWatchOf returns the headWatch of a public connection (a *tls.Conn
// over a progressConn), or nil.
func headWatchOf(c net.Conn) *headWatch {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	pc, ok := tc.NetConn().(*progressConn)
	if !ok {
		return nil
	}
	return &pc.head
}
