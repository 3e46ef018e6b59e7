package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/edgecert/edgecert/certstore/certstoretest"
	"github.com/edgecert/edgecert/internal/poll"
	"github.com/edgecert/edgecert/routes"
)

// limitServer is the public server (routes behind newHTTPSServer and
// newLimitListener) on a loopback port, with lim.
type limitServer struct {
	addr  string
	roots *x509.CertPool
	ln    *limitListener
	logs  *syncBuffer
}

// testLimits are defaultLimits with the timeouts that tests wait for made
// short. Bounds a test does not exercise stay long, so a slow machine cannot
// trip them.
func testLimits() Limits {
	l := defaultLimits()
	l.HeaderTimeout = 300 * time.Millisecond
	l.BodyTimeout = 300 * time.Millisecond
	l.WriteTimeout = 400 * time.Millisecond
	return l
}

// give is how long a test waits for a bound of a few hundred milliseconds
// to bite: generous, so that only a missing bound fails it.
const give = 15 * time.Second

func startLimitServer(t *testing.T, lim Limits) *limitServer {
	t.Helper()
	ca := certstoretest.NewCA(t)
	chain, key := ca.Valid(t, "a.example.test")
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := routes.New(routes.Options{Hostname: "test", Addrs: func() ([]string, error) { return []string{"127.0.0.1"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := newTLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := newHTTPSServer(h, tlsCfg, ctx, lim, log)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(raw, lim, log)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		<-done
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &limitServer{addr: raw.Addr().String(), roots: ca.Pool, ln: ln, logs: logs}
}

func (s *limitServer) dialTLS(t *testing.T, proto string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr, &tls.Config{ServerName: "a.example.test", RootCAs: s.roots, NextProtos: []string{proto}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if got := c.ConnectionState().NegotiatedProtocol; got != proto {
		t.Fatalf("negotiated %q; want %q", got, proto)
	}
	return c
}

// client is a normal client of s (HTTP/2 when h2).
func (s *limitServer) client(h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "a.example.test", RootCAs: s.roots}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: give}
}

// closedWithin reads from c until it fails and reports whether that
// happened within d; reads of data are discarded.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// h2Client is a raw HTTP/2 client: it speaks frames, so it can misbehave.
type h2Client struct {
	conn *tls.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

func (s *limitServer) h2(t *testing.T) *h2Client {
	t.Helper()
	c := s.dialTLS(t, "h2")
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	h := &h2Client{conn: c, fr: http2.NewFramer(c, c)}
	h.enc = hpack.NewEncoder(&h.hbuf)
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// headerBlock encodes a request for path.
func (h *h2Client) headerBlock(method, path string) []byte {
	h.hbuf.Reset()
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "a.example.test"}, {":path", path}} {
		_ = h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return append([]byte(nil), h.hbuf.Bytes()...)
}

// serverSettings reads frames until the server's first SETTINGS frame and
// returns its values.
func (h *h2Client) serverSettings(t *testing.T) map[http2.SettingID]uint32 {
	t.Helper()
	_ = h.conn.SetReadDeadline(time.Now().Add(give))
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			m := map[http2.SettingID]uint32{}
			_ = sf.ForeachSetting(func(s http2.Setting) error { m[s.ID] = s.Val; return nil })
			return m
		}
	}
}

// streamEnd reads frames until stream id ends (END_STREAM or RST_STREAM)
// and describes how; "" if the connection failed first.
func (h *h2Client) streamEnd(id uint32) string {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return ""
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "rst " + f.ErrCode.String()
			}
		case *http2.HeadersFrame:
			if f.StreamID == id && f.StreamEnded() {
				return "end"
			}
		case *http2.DataFrame:
			if f.StreamID == id && f.StreamEnded() {
				return "end"
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		}
	}
}

// TestHTTP2StreamsCapped: the server announces H2MaxStreams, well below
// Go's default of 250, and refuses a stream beyond it.
func TestHTTP2StreamsCapped(t *testing.T) {
	lim := testLimits()
	lim.BodyTimeout = time.Minute // the open streams must stay open
	s := startLimitServer(t, lim)
	h := s.h2(t)
	if got := h.serverSettings(t)[http2.SettingMaxConcurrentStreams]; got != uint32(lim.H2MaxStreams) || got > 100 {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d; want %d (well below 250)", got, lim.H2MaxStreams)
	}
	// H2MaxStreams streams whose bodies never come, then one more.
	for i := range lim.H2MaxStreams + 1 {
		id := uint32(2*i + 1)
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.headerBlock("POST", "/"), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	last := uint32(2*lim.H2MaxStreams + 1)
	_ = h.conn.SetReadDeadline(time.Now().Add(give))
	if got := h.streamEnd(last); !strings.HasPrefix(got, "rst ") {
		t.Fatalf("stream %d beyond the cap ended %q; want a RST_STREAM", last, got)
	}
}

// TestHTTP2BodyDeadline: a stream whose request body never finishes is
// ended after BodyTimeout, and the server keeps serving the connection.
func TestHTTP2BodyDeadline(t *testing.T) {
	s := startLimitServer(t, testLimits())
	h := s.h2(t)
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h.headerBlock("POST", "/"), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteData(1, false, []byte("part of a body")); err != nil {
		t.Fatal(err)
	}
	_ = h.conn.SetReadDeadline(time.Now().Add(give))
	if got := h.streamEnd(1); got == "" {
		t.Fatalf("stream with an unfinished body still open after %v (BodyTimeout %v)", give, testLimits().BodyTimeout)
	}
	// The connection itself is fine: a GET on it is answered.
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h.headerBlock("GET", "/bench"), EndHeaders: true, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	if got := h.streamEnd(3); got != "end" {
		t.Fatalf("GET after the timed-out stream ended %q; want an answer", got)
	}
	poll.Until(t, give, "http.body_timeout in the log", func() bool { return strings.Contains(s.logs.String(), "http.body_timeout") })
}

// TestHTTP2SlowHeaderBlock: a header block left open (HEADERS without
// END_HEADERS, CONTINUATION trickling) closes the connection after
// HeaderTimeout, as HTTP/1 does for a slow request head.
func TestHTTP2SlowHeaderBlock(t *testing.T) {
	lim := testLimits()
	s := startLimitServer(t, lim)
	h := s.h2(t)
	block := h.headerBlock("GET", "/")
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:2]}); err != nil {
		t.Fatal(err)
	}
	// Trickle one byte per CONTINUATION, never END_HEADERS, until the
	// server hangs up (or give passes).
	stop := time.Now().Add(give)
	go func() {
		for time.Now().Before(stop) {
			time.Sleep(50 * time.Millisecond)
			if h.fr.WriteContinuation(1, false, block[2:3]) != nil {
				return
			}
		}
	}()
	if !closedWithin(h.conn, give) {
		t.Fatalf("connection with an open header block still open after %v (HeaderTimeout %v)", give, lim.HeaderTimeout)
	}
	poll.Until(t, give, "http.header_timeout in the log", func() bool { return strings.Contains(s.logs.String(), "http.header_timeout") })
}

// TestHTTP2NormalRequests: the frame watcher does not disturb ordinary
// HTTP/2 traffic, including header blocks split over CONTINUATION frames
// and request bodies read in full.
func TestHTTP2NormalRequests(t *testing.T) {
	s := startLimitServer(t, testLimits())
	c := s.client(true)
	big := strings.Repeat("x", 40<<10) // a header block of several frames
	for i := range 20 {
		req, _ := http.NewRequest("POST", "https://"+s.addr+"/", strings.NewReader(fmt.Sprintf("body %d", i)))
		req.Header.Set("X-Big", big)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || !strings.Contains(string(b), fmt.Sprintf("body %d", i)) || !strings.Contains(string(b), "X-Big") {
			t.Fatalf("request %d: %s %d, body %.200q", i, resp.Proto, resp.StatusCode, b)
		}
	}
}

// TestHTTP1BodyDeadline: a request body that stops arriving fails after
// BodyTimeout and the connection is closed, on a route that reads the body
// (/) and on one that does not (/bench).
func TestHTTP1BodyDeadline(t *testing.T) {
	lim := testLimits()
	s := startLimitServer(t, lim)
	for _, path := range []string{"/", "/bench", "/health"} {
		c := s.dialTLS(t, "http/1.1")
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: a.example.test\r\nContent-Length: 1000\r\n\r\n12", path)
		if !closedWithin(c, give) {
			t.Errorf("%s: connection with a stalled body still open after %v (BodyTimeout %v)", path, give, lim.BodyTimeout)
		}
	}
	// A body that arrives in time is served, on a connection that stays
	// usable.
	c := s.dialTLS(t, "http/1.1")
	br := bufio.NewReader(c)
	for i := range 2 {
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: a.example.test\r\nContent-Length: 5\r\n\r\nhello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasSuffix(string(b), "hello") {
			t.Fatalf("request %d: body %q does not end with the request body", i, b)
		}
	}
}

// TestHTTP2IdleAndPing: a connection that never answers the server's PING
// is closed after H2PingAfter + H2PingTimeout, and one with no open stream
// after IdleTimeout, however politely it answers PINGs.
func TestHTTP2IdleAndPing(t *testing.T) {
	t.Run("unanswered ping", func(t *testing.T) {
		lim := testLimits()
		lim.H2PingAfter, lim.H2PingTimeout = 200*time.Millisecond, 200*time.Millisecond
		s := startLimitServer(t, lim)
		h := s.h2(t)
		h.serverSettings(t) // and never answer anything
		if !closedWithin(h.conn, give) {
			t.Fatalf("connection ignoring PINGs still open after %v", give)
		}
	})
	t.Run("idle", func(t *testing.T) {
		lim := testLimits()
		lim.IdleTimeout = 300 * time.Millisecond
		lim.H2PingAfter = 50 * time.Millisecond
		s := startLimitServer(t, lim)
		h := s.h2(t)
		_ = h.conn.SetReadDeadline(time.Now().Add(give))
		closed := false
		for !closed {
			f, err := h.fr.ReadFrame()
			if err != nil {
				break
			}
			switch f := f.(type) {
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = h.fr.WritePing(true, f.Data)
				}
			case *http2.GoAwayFrame:
				closed = true
			}
		}
		if !closedWithin(h.conn, give) {
			t.Fatalf("idle connection answering PINGs still open after %v (IdleTimeout %v)", give, lim.IdleTimeout)
		}
	})
}

// TestConnectionCaps: connections beyond the per-client cap and beyond the
// total cap are closed at once and logged (rate-limited); closing
// connections frees their places.
func TestConnectionCaps(t *testing.T) {
	lim := testLimits()
	lim.MaxConns, lim.PerClientConns = 6, 3
	lim.HeaderTimeout = time.Minute // the held connections send no request
	s := startLimitServer(t, lim)
	dial := func(from string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		return tls.DialWithDialer(&d, "tcp", s.addr, &tls.Config{ServerName: "a.example.test", RootCAs: s.roots})
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 3 {
		c, err := dial("127.0.0.1")
		if err != nil {
			t.Fatalf("connection %d within the per-client cap: %v", i, err)
		}
		held = append(held, c)
	}
	if c, err := dial("127.0.0.1"); err == nil {
		c.Close()
		t.Fatal("a 4th connection from one client was accepted; per-client cap is 3")
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.3"} {
		c, err := dial(ip)
		if err != nil {
			t.Fatalf("connection from %s within the caps: %v", ip, err)
		}
		held = append(held, c)
	}
	if c, err := dial("127.0.0.4"); err == nil {
		c.Close()
		t.Fatal("a 7th connection was accepted; the cap is 6")
	}
	held[0].Close()
	held = held[1:]
	poll.Until(t, give, "the closed connection to free its place", func() bool { return s.ln.openConns() < 6 })
	c, err := dial("127.0.0.1")
	if err != nil {
		t.Fatalf("after a close, a new connection was refused: %v", err)
	}
	held = append(held, c)
	logs := s.logs.String()
	for _, want := range []string{"limit=max-connections-per-client max=3 client=127.0.0.1", "limit=max-connections max=6"} {
		if !strings.Contains(logs, "msg=conn.limit_reached") || !strings.Contains(logs, want) {
			t.Errorf("log lacks conn.limit_reached with %q:\n%s", want, logs)
		}
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":              "192.0.2.1",
		"[::ffff:192.0.2.1]:443":     "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::",
		"[2001:db8:1:2:ffff::1]:1":   "2001:db8:1:2::",
		"[fe80::1%eth0]:1":           "fe80::",
	} {
		a, _ := net.ResolveTCPAddr("tcp", in)
		if got := clientKey(a).String(); got != want {
			t.Errorf("clientKey(%s) = %s; want %s", in, got, want)
		}
	}
}

func TestRateLog(t *testing.T) {
	var buf syncBuffer
	r := newRateLog(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for range 5 {
		r.warn("a", "ev.a")
	}
	r.warn("b", "ev.b")
	if got := strings.Count(buf.String(), "msg=ev.a"); got != 1 {
		t.Errorf("ev.a logged %d times within the interval; want 1:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "msg=ev.b") {
		t.Errorf("another key was suppressed too:\n%s", buf.String())
	}
	r.keys["a"].last = time.Now().Add(-2 * time.Hour)
	r.warn("a", "ev.a")
	if !strings.Contains(buf.String(), "suppressed=4") {
		t.Errorf("the line after a quiet spell does not count the 4 suppressed:\n%s", buf.String())
	}
}
