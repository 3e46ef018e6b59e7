// x/net/http2's server API is deprecated in favour of net/http's bundled
// copy, which cannot serve the wrapped connection h2Conn needs; see
// configureHTTP2.
//
//lint:file-ignore SA1019 net/http cannot serve a connection that watches header blocks
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/net/http2"
)

// configureHTTP2 serves HTTP/2 on srv within lim: at most H2MaxStreams
// concurrent streams, the receive windows, PING after H2PingAfter of
// silence, the idle bound, and every header block bounded by
// HeaderTimeout (see h2Conn). The settings are in srv.HTTP2, where net/http
// keeps them; x/net/http2 serves the connections only because net/http's
// bundled copy cannot be handed a connection that watches header blocks
// (TLSNextProto passes a *tls.Conn). onHeaderTimeout is called when a
// header block's bound closes a connection.
func configureHTTP2(srv *http.Server, lim Limits, onHeaderTimeout func(remote net.Addr)) error {
	srv.HTTP2 = &http.HTTP2Config{
		MaxConcurrentStreams:          lim.H2MaxStreams,
		MaxReceiveBufferPerStream:     lim.H2StreamWindow,
		MaxReceiveBufferPerConnection: lim.H2ConnWindow,
		SendPingTimeout:               lim.H2PingAfter,
		PingTimeout:                   lim.H2PingTimeout,
	}
	h2 := &http2.Server{IdleTimeout: lim.IdleTimeout}
	if err := http2.ConfigureServer(srv, h2); err != nil {
		return fmt.Errorf("http2: %w", err)
	}
	delete(srv.TLSNextProto, "unencrypted_http2") // the listener is TLS only
	srv.TLSNextProto[http2.NextProtoTLS] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		unbound(c) // HTTP/2 bounds heads and idle connections itself
		// net/http passes the connection's base context through the
		// handler, as x/net/http2.ConfigureServer's own hook reads it.
		var ctx context.Context
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext()
		}
		wc := &h2Conn{Conn: c, timeout: lim.HeaderTimeout, preface: len(http2.ClientPreface), onTimeout: onHeaderTimeout}
		h2.ServeConn(wc, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs})
	}
	return nil
}

// HTTP/2 frame types and flags that h2Conn follows (RFC 9113 §6).
const (
	h2FrameHeaders      = 0x1
	h2FrameContinuation = 0x9
	h2FlagEndHeaders    = 0x4
	h2FrameHeaderLen    = 9
)

// h2Conn is the decrypted side of an HTTP/2 server connection. It follows
// the frame headers the server reads (nothing is buffered or copied) and
// bounds every header block: when a HEADERS frame starts, the read deadline
// becomes now+timeout; when the frame that carries END_HEADERS is complete,
// it is cleared. A header block may not be interleaved with other frames
// (RFC 9113 §4.3), so while one is open the connection can make no other
// progress, and closing it at the deadline is exact. That is how a
// CONTINUATION sent slowly gets HTTP/1's request-head bound.
//
// Read is called by the server's one frame-reading goroutine only, so the
// parser state needs no lock. The embedded *tls.Conn provides
// ConnectionState, from which the server fills Request.TLS.
type h2Conn struct {
	*tls.Conn
	timeout   time.Duration
	onTimeout func(net.Addr) // may be nil

	preface int                    // client preface bytes still to skip
	hdr     [h2FrameHeaderLen]byte // the frame header being read
	nhdr    int                    // bytes of hdr read so far
	payload int                    // payload bytes of the current frame still unread
	ends    bool                   // the current frame ends a header block
	inBlock bool                   // a header block is open: the deadline is armed
}

// Read reads from the connection and follows the frames in what it read.
func (c *h2Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.follow(p[:n])
	if err != nil && c.inBlock && c.onTimeout != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.onTimeout(c.RemoteAddr())
		c.onTimeout = nil
	}
	return n, err
}

// follow advances the frame parser over b, arming and clearing the read
// deadline at header-block boundaries.
func (c *h2Conn) follow(b []byte) {
	for len(b) > 0 {
		switch {
		case c.preface > 0:
			k := min(c.preface, len(b))
			c.preface -= k
			b = b[k:]
		case c.payload > 0:
			k := min(c.payload, len(b))
			c.payload -= k
			b = b[k:]
			if c.payload == 0 {
				c.frameDone()
			}
		default:
			k := copy(c.hdr[c.nhdr:], b)
			c.nhdr += k
			b = b[k:]
			if c.nhdr == h2FrameHeaderLen {
				c.nhdr = 0
				c.frameStart()
			}
		}
	}
}

// frameStart handles a complete frame header.
func (c *h2Conn) frameStart() {
	c.payload = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
	typ, flags := c.hdr[3], c.hdr[4]
	c.ends = false
	switch typ {
	case h2FrameHeaders:
		if !c.inBlock {
			c.inBlock = true
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
		}
		c.ends = flags&h2FlagEndHeaders != 0
	case h2FrameContinuation:
		c.ends = flags&h2FlagEndHeaders != 0
	}
	if c.payload == 0 {
		c.frameDone()
	}
}

// frameDone handles the end of a frame's payload.
func (c *h2Conn) frameDone() {
	if c.ends && c.inBlock {
		c.inBlock = false
		c.ends = false
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
}
