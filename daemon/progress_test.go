package daemon

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgecert/edgecert/internal/poll"
)

// TestWriteProgressDeadline: over a connection with no buffer (net.Pipe),
// a reader that keeps taking bytes — slowly, for many timeouts in all —
// never has a write cut (progress is a write completing; on TCP a write is
// at most one 16 KiB TLS record), and one that stops reading gets the write aborted
// within the timeout, logged as http.write_stalled.
func TestWriteProgressDeadline(t *testing.T) {
	const timeout = 400 * time.Millisecond
	newConn := func(logs io.Writer) (*progressConn, net.Conn) {
		lim := defaultLimits()
		lim.WriteTimeout = timeout
		l := newLimitListener(nil, lim, slog.New(slog.NewTextHandler(logs, nil)))
		srv, cli := net.Pipe()
		l.admit(clientKey(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}))
		return &progressConn{Conn: srv, l: l, timeout: timeout}, cli
	}
	chunk := make([]byte, 16<<10)

	t.Run("slow steady reader", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, cli := newConn(io.Discard)
			defer c.Close()
			done := make(chan struct{})
			go func() { // 1 KiB every 100 ms: 40 KiB take 4 s = 10 timeouts
				defer close(done)
				buf := make([]byte, 1<<10)
				for {
					time.Sleep(100 * time.Millisecond)
					if _, err := cli.Read(buf); err != nil {
						return
					}
				}
			}()
			start := time.Now()
			for i := range 40 {
				if _, err := c.Write(chunk[:1<<10]); err != nil {
					t.Fatalf("write %d to a reader that keeps reading failed after %v: %v", i, time.Since(start), err)
				}
			}
			if d := time.Since(start); d < 9*timeout {
				t.Fatalf("the transfer took %v; the test needs it to outlast many timeouts", d)
			}
			cli.Close()
			<-done
		})
	})
	t.Run("stalled reader", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var logs syncBuffer
			c, cli := newConn(&logs)
			defer cli.Close()
			go func() { _, _ = cli.Read(make([]byte, 100)) }() // then never again
			start := time.Now()
			_, err := c.Write(chunk)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write to a stalled reader: %v; want a deadline error", err)
			}
			if d := time.Since(start); d > timeout {
				t.Errorf("stalled write aborted after %v; want within %v", d, timeout)
			}
			if !strings.Contains(logs.String(), "msg=http.write_stalled") {
				t.Errorf("no http.write_stalled line: %q", logs.String())
			}
			c.Close()
			if n := c.l.openConns(); n != 0 {
				t.Errorf("%d connections counted after Close; want 0", n)
			}
		})
	})
}

// TestDataToStalledClientAborted: 1 GiB of /data to a client that never
// reads is cut after WriteTimeout (once the socket buffers are full), not
// held.
func TestDataToStalledClientAborted(t *testing.T) {
	lim := testLimits()
	s := startLimitServer(t, lim)
	c := s.dialTLS(t, "http/1.1")
	if _, err := io.WriteString(c, "GET /data?size=1&unit=gb HTTP/1.1\r\nHost: a.example.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Read nothing until the server gives up. Waiting for its log line,
	// not for a fixed WriteTimeout: on a loaded machine the server may
	// take longer than that to fill the socket buffers and start the
	// write that stalls, and a drain begun earlier lets it finish.
	poll.Until(t, give, "http.write_stalled in the log", func() bool {
		return strings.Contains(s.logs.String(), "http.write_stalled")
	})
	// Now drain: the response was aborted, so the body ends short.
	n, _ := io.Copy(io.Discard, io.LimitReader(c, 2<<30))
	if n >= 1<<30 {
		t.Fatalf("received all %d bytes; want the stalled response aborted", n)
	}
}
