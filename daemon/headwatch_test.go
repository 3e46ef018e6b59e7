package daemon

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/edgecert/edgecert/internal/poll"
)

// TestHeadTimeoutsLogged: each way HeaderTimeout bites on HTTP/1 shows in
// the log at info with the client's address, as README's "Limits and
// timeouts" table says: a TLS handshake that never finishes, a new
// connection that sends no request, and a request head sent slowly. A
// keep-alive connection closed by IdleTimeout is not a head timeout.
func TestHeadTimeoutsLogged(t *testing.T) {
	// firstLine waits for event naming remote and returns the first
	// line of event in the log.
	firstLine := func(t *testing.T, s *limitServer, event, remote string) string {
		t.Helper()
		poll.Until(t, give, event+" remote="+remote+" in the log", func() bool {
			return strings.Contains(s.logs.String(), "msg="+event+" remote="+remote+" ")
		})
		for l := range strings.Lines(s.logs.String()) {
			if strings.Contains(l, "msg="+event+" ") {
				return l
			}
		}
		return ""
	}
	t.Run("handshake never finishes", func(t *testing.T) {
		lim := testLimits()
		s := startLimitServer(t, lim)
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !closedWithin(c, give) {
			t.Fatalf("connection without a handshake still open after %v (HeaderTimeout %v)", give, lim.HeaderTimeout)
		}
		l := firstLine(t, s, "http.handshake_timeout", c.LocalAddr().String())
		if !strings.Contains(l, "level=INFO") || !strings.Contains(l, "timeout="+lim.HeaderTimeout.String()) {
			t.Errorf("handshake timeout line %q; want level INFO and timeout=%v", l, lim.HeaderTimeout)
		}
	})
	t.Run("no request after the handshake", func(t *testing.T) {
		lim := testLimits()
		s := startLimitServer(t, lim)
		c := s.dialTLS(t, "http/1.1")
		if !closedWithin(c, give) {
			t.Fatalf("connection without a request still open after %v (HeaderTimeout %v)", give, lim.HeaderTimeout)
		}
		l := firstLine(t, s, "http.header_timeout", c.LocalAddr().String())
		if !strings.Contains(l, "level=INFO") || !strings.Contains(l, "proto=http/1.1") {
			t.Errorf("header timeout line %q; want level INFO and proto=http/1.1", l)
		}
	})
	t.Run("slow head after an idle keep-alive connection", func(t *testing.T) {
		lim := testLimits()
		lim.IdleTimeout = lim.HeaderTimeout
		s := startLimitServer(t, lim)
		// A served request, then IdleTimeout: not a head timeout.
		idle := s.dialTLS(t, "http/1.1")
		fmt.Fprintf(idle, "GET /bench HTTP/1.1\r\nHost: a.example.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !closedWithin(idle, give) {
			t.Fatalf("idle connection still open after %v (IdleTimeout %v)", give, lim.IdleTimeout)
		}
		// The server has closed it (its state hook runs right after).
		poll.Until(t, give, "the idle connection's place freed", func() bool { return s.ln.openConns() == 0 })
		// A head that never ends: the first header_timeout line is its
		// (the idle connection, had it been logged, would come first).
		slow := s.dialTLS(t, "http/1.1")
		fmt.Fprintf(slow, "GET /bench HTTP/1.1\r\nHost: a.exa")
		if !closedWithin(slow, give) {
			t.Fatalf("connection with a partial head still open after %v (HeaderTimeout %v)", give, lim.HeaderTimeout)
		}
		l := firstLine(t, s, "http.header_timeout", slow.LocalAddr().String())
		if !strings.Contains(l, "remote="+slow.LocalAddr().String()+" ") {
			t.Errorf("first header timeout line %q is not the slow head's (%s); idle connection %s", l, slow.LocalAddr(), idle.LocalAddr())
		}
	})
}

// TestHeadWatchIgnoresServedRequests: a request whose body times out
// (http.body_timeout) is served, so its connection's close is no head
// timeout, although a read passed its deadline.
func TestHeadWatchIgnoresServedRequests(t *testing.T) {
	lim := testLimits()
	s := startLimitServer(t, lim)
	c := s.dialTLS(t, "http/1.1")
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: a.example.test\r\nContent-Length: 10\r\n\r\n1")
	if !closedWithin(c, give) {
		t.Fatalf("stalled body still open after %v", give)
	}
	// The client sees the close before the server's lingering close
	// ends; wait for that (its state hook runs right after).
	poll.Until(t, give, "the served connection's place freed", func() bool { return s.ln.openConns() == 0 })
	// Then a head timeout on a second connection: the first
	// header_timeout line must be its.
	slow := s.dialTLS(t, "http/1.1")
	if !closedWithin(slow, give) {
		t.Fatalf("connection without a request still open after %v", give)
	}
	poll.Until(t, give, "the second connection's http.header_timeout", func() bool {
		return strings.Contains(s.logs.String(), "msg=http.header_timeout remote="+slow.LocalAddr().String()+" ")
	})
	for l := range strings.Lines(s.logs.String()) {
		if strings.Contains(l, "msg=http.header_timeout") && !strings.Contains(l, "remote="+slow.LocalAddr().String()+" ") {
			t.Errorf("a header timeout line not for the head that timed out: %q (served request from %s)", l, c.LocalAddr())
		}
	}
	poll.Until(t, give, "http.body_timeout", func() bool { return strings.Contains(s.logs.String(), "msg=http.body_timeout") })
}
