package attack

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/edgecert/edgecert/internal/poll"
)

// give bounds a wait for something the server under test must do; generous
// so that a loaded machine never fails it.
const give = 20 * time.Second

// local are the attackers' source addresses in these tests.
var local = []string{"127.0.0.1"}

// tlsServer starts srv (HTTP/2 enabled with h2) on loopback and returns
// its Target.
func tlsServer(t *testing.T, srv *httptest.Server, h2 bool) Target {
	t.Helper()
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return Target{Addr: srv.Listener.Addr().String(), ServerName: "example.com", Roots: roots}
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

// TestSlowlorisAndClosed: a server with a head timeout closes every
// slowloris connection and Closed sees it; one without keeps them, and
// Closed reports them open at its deadline.
func TestSlowlorisAndClosed(t *testing.T) {
	bounded := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	bounded.Config.ReadHeaderTimeout = 200 * time.Millisecond
	tg := tlsServer(t, bounded, false)
	start := time.Now()
	conns, err := Slowloris(t.Context(), tg, local, 3, 20*time.Millisecond)
	defer CloseAll(conns)
	if err != nil || len(conns) != 3 {
		t.Fatalf("Slowloris: %d conns, %v", len(conns), err)
	}
	open, last := Closed(conns, time.Now().Add(give))
	if open != 0 || last.Before(start) {
		t.Errorf("bounded server: %d of 3 open, last closed at %v (started %v)", open, last, start)
	}

	unbounded := tlsServer(t, httptest.NewUnstartedServer(http.HandlerFunc(ok)), false)
	conns, err = Slowloris(t.Context(), unbounded, local, 2, 20*time.Millisecond)
	defer CloseAll(conns)
	if err != nil {
		t.Fatal(err)
	}
	if open, last := Closed(conns, time.Now().Add(300*time.Millisecond)); open != 2 || !last.IsZero() {
		t.Errorf("unbounded server: Closed says %d of 2 open, last closed %v; want 2 and none", open, last)
	}
}

// TestSlowBody: the body really trickles (the handler sees it arrive a
// byte at a time) and a server that bounds reads closes the connection.
func TestSlowBody(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 10)
		for {
			n, err := r.Body.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	srv.Config.ReadTimeout = time.Second
	tg := tlsServer(t, srv, false)
	conns, err := SlowBody(t.Context(), tg, local, 1, "/upload", 50*time.Millisecond)
	defer CloseAll(conns)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, give, "three body bytes at the handler", func() bool { return got.Load() >= 3 })
	if open, _ := Closed(conns, time.Now().Add(give)); open != 0 {
		t.Errorf("connection still open past the server's read timeout")
	}
	if n := got.Load(); n >= 100000 {
		t.Errorf("handler got %d body bytes; the attack sends one per pause", n)
	}
}

// TestNeverRead: the server's writes stall (a write deadline fails
// them) because the client reads nothing.
func TestNeverRead(t *testing.T) {
	stalled := make(chan error, 2)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1<<20)
		for range 1 << 10 {
			if _, err := w.Write(chunk); err != nil {
				stalled <- err
				return
			}
		}
		stalled <- nil
	}))
	srv.Config.WriteTimeout = 500 * time.Millisecond
	tg := tlsServer(t, srv, false)
	conns, err := NeverRead(t.Context(), tg, local, 2, "/big")
	defer CloseAll(conns)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-stalled:
			if err == nil {
				t.Fatal("the server wrote 1 GiB to a client that reads nothing")
			}
		case <-time.After(give):
			t.Fatal("the server's write never failed")
		}
	}
	if open, _ := Closed(conns, time.Now().Add(give)); open != 0 {
		t.Errorf("%d connections still open after the server gave up", open)
	}
}

// TestIdle: connections that made one request are kept; those whose
// request fails count as refused.
func TestIdle(t *testing.T) {
	var reqs atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		if r.URL.Path == "/no" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	}))
	tg := tlsServer(t, srv, false)
	conns, refused := Idle(t.Context(), tg, local, 4, "/yes")
	defer CloseAll(conns)
	if len(conns) != 4 || refused != 0 || reqs.Load() != 4 {
		t.Errorf("Idle /yes: %d kept, %d refused, %d requests; want 4, 0, 4", len(conns), refused, reqs.Load())
	}
	conns2, refused := Idle(t.Context(), tg, local, 2, "/no")
	defer CloseAll(conns2)
	if len(conns2) != 0 || refused != 2 {
		t.Errorf("Idle /no: %d kept, %d refused; want 0, 2", len(conns2), refused)
	}
	conns3, refused := Idle(t.Context(), tg, local, 2, "")
	defer CloseAll(conns3)
	if len(conns3) != 2 || refused != 0 || reqs.Load() != 6 {
		t.Errorf("Idle without a request: %d kept, %d refused, %d requests; want 2, 0, 6", len(conns3), refused, reqs.Load())
	}
	if _, refused := Idle(t.Context(), Target{Addr: "127.0.0.1:1", ServerName: "x"}, local, 1, ""); refused != 1 {
		t.Errorf("a refused dial: %d refused, want 1", refused)
	}
}

// TestH2Bodies: every stream reaches a handler as a POST whose body
// never ends.
func TestH2Bodies(t *testing.T) {
	started := make(chan string, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.Method + " " + r.URL.Path + " " + r.Proto
		_, err := r.Body.Read(make([]byte, 1))
		if err == nil || err == io.EOF {
			t.Errorf("a body came (%v)", err)
		}
	}))
	tg := tlsServer(t, srv, true)
	conns, err := H2Bodies(t.Context(), tg, local, 2, 3, "/up")
	defer CloseAll(conns)
	if err != nil || len(conns) != 2 {
		t.Fatalf("H2Bodies: %d conns, %v", len(conns), err)
	}
	for i := range 6 {
		select {
		case s := <-started:
			if s != "POST /up HTTP/2.0" {
				t.Errorf("stream %d: %s", i, s)
			}
		case <-time.After(give):
			t.Fatalf("%d of 6 streams reached a handler", i)
		}
	}
}

// frameServer is a TLS listener speaking "h2" that hands each accepted
// connection's frames (after the preface) to serve.
func frameServer(t *testing.T, serve func(fr *http2.Framer, c net.Conn)) Target {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil) // for its certificate only
	srv.StartTLS()
	srv.Close()
	cert := srv.TLS.Certificates[0]
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.ReadFull(c, make([]byte, len(http2.ClientPreface))); err != nil {
					return
				}
				serve(http2.NewFramer(c, c), c)
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return Target{Addr: ln.Addr().String(), ServerName: "example.com", Roots: roots}
}

// TestH2SlowHeaders: a HEADERS frame without END_HEADERS, then
// one-byte CONTINUATION frames, none ending the block.
func TestH2SlowHeaders(t *testing.T) {
	frames := make(chan string, 100)
	tg := frameServer(t, func(fr *http2.Framer, _ net.Conn) {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.HeadersFrame:
				frames <- "headers " + strings.Repeat("end", boolInt(f.HeadersEnded()))
			case *http2.ContinuationFrame:
				frames <- "continuation " + strings.Repeat("end", boolInt(f.HeadersEnded())) + string(rune('0'+len(f.HeaderBlockFragment())))
			}
		}
	})
	conns, err := H2SlowHeaders(t.Context(), tg, local, 1, "/", 10*time.Millisecond)
	defer CloseAll(conns)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 4 {
		select {
		case f := <-frames:
			got = append(got, f)
		case <-time.After(give):
			t.Fatalf("frames so far: %q", got)
		}
	}
	if want := []string{"headers ", "continuation 1", "continuation 1", "continuation 1"}; !slices.Equal(got, want) {
		t.Errorf("frames %q; want %q", got, want)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRapidReset: HEADERS and RST_STREAM in pairs until the server
// closes the connection, then again on a new one while more says so.
func TestRapidReset(t *testing.T) {
	const perConn = 50 // the server closes after this many pairs
	var headers, resets atomic.Int32
	tg := frameServer(t, func(fr *http2.Framer, c net.Conn) {
		for n := 0; n < perConn; {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f.(type) {
			case *http2.HeadersFrame:
				headers.Add(1)
			case *http2.RSTStreamFrame:
				resets.Add(1)
				n++
			}
		}
		_ = fr.WriteGoAway(0, http2.ErrCodeEnhanceYourCalm, nil)
	})
	calls := 0
	loops, pairs, err := RapidReset(t.Context(), tg, local, 100000, "/", func() bool { calls++; return calls < 3 })
	if err != nil {
		t.Fatal(err)
	}
	if loops != 3 {
		t.Errorf("%d connections; want 3 (more said yes twice)", loops)
	}
	poll.Until(t, give, "the server to read 3 connections' pairs", func() bool { return resets.Load() == 3*perConn })
	if pairs < 3*perConn || pairs >= 3*100000 || headers.Load() < 3*perConn {
		t.Errorf("%d pairs written, server read %d HEADERS and %d RST_STREAM", pairs, headers.Load(), resets.Load())
	}
}

// TestNormal: a normal client's requests are counted and timed, and
// failures reported.
func TestNormal(t *testing.T) {
	var protos [3]atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos[r.ProtoMajor].Add(1)
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		ok(w, r)
	}))
	tg := tlsServer(t, srv, true)
	n := StartNormal(tg, "127.0.0.2", "/", time.Millisecond)
	poll.Until(t, give, "ten requests", func() bool { return n.Count() >= 10 })
	st := n.Stop()
	if st.N < 10 || len(st.Errs) != 0 || st.P50 <= 0 || st.P50 > st.P99 || st.P99 > st.Max {
		t.Errorf("stats %+v", st)
	}
	if protos[1].Load() == 0 || protos[2].Load() == 0 {
		t.Errorf("HTTP/1 requests %d, HTTP/2 %d; want both", protos[1].Load(), protos[2].Load())
	}
	f := StartNormal(tg, "", "/fail", time.Millisecond)
	poll.Until(t, give, "a failure", func() bool { return f.Count() >= 1 })
	if st := f.Stop(); st.N != 0 || len(st.Errs) == 0 || !strings.Contains(st.Errs[0], "status 500") {
		t.Errorf("failing route: %+v", st)
	}
}

func TestStatsOf(t *testing.T) {
	ms := func(v ...int) (d []time.Duration) {
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	var hundred []int
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, i)
	}
	for _, tc := range []struct {
		name          string
		lat           []time.Duration
		p50, p99, max time.Duration
	}{
		{"none", nil, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"hundred", ms(hundred...), 51 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := statsOf(tc.lat, nil)
			if s.N != len(tc.lat) || s.P50 != tc.p50 || s.P99 != tc.p99 || s.Max != tc.max {
				t.Errorf("got %+v; want N %d p50 %v p99 %v max %v", s, len(tc.lat), tc.p50, tc.p99, tc.max)
			}
		})
	}
}

// TestProc: RSS, sockets and children of real processes.
func TestProc(t *testing.T) {
	self := []int{os.Getpid()}
	if kib, err := RSSKiB(self); err != nil || kib <= 0 {
		t.Errorf("RSSKiB(self) = %d, %v", kib, err)
	}
	before, err := Sockets(self)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := Sockets(self)
	ln.Close()
	if after != before+1 {
		t.Errorf("sockets %d with a listener, %d without; want one more", after, before)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pids, err := WithChildren(os.Getpid())
	if err != nil || pids[0] != os.Getpid() || !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("WithChildren = %v, %v; want self first and the child %d", pids, err, cmd.Process.Pid)
	}
	cpu0, err := CPUTime(self)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the figure moves by three ticks (real time is no
	// measure of CPU on a loaded machine; give bounds it).
	var cpu1 time.Duration
	for end := time.Now().Add(give); time.Now().Before(end) && cpu1-cpu0 < 30*time.Millisecond; {
		if cpu1, err = CPUTime(self); err != nil {
			t.Fatal(err)
		}
	}
	if cpu1-cpu0 < 30*time.Millisecond {
		t.Errorf("CPUTime rose %v in %v of spinning; want 30 ms", cpu1-cpu0, give)
	}
	if _, err := RSSKiB([]int{1 << 30}); err == nil {
		t.Error("RSSKiB of a process that does not exist: no error")
	}
}

// TestCurves: Target.Curves is what the handshake offers.
func TestCurves(t *testing.T) {
	tg := tlsServer(t, httptest.NewUnstartedServer(http.HandlerFunc(ok)), true)
	for _, tc := range []struct {
		curves []tls.CurveID
		want   tls.CurveID
	}{{nil, tls.X25519MLKEM768}, {[]tls.CurveID{tls.X25519}, tls.X25519}} {
		tg.Curves = tc.curves
		c, err := tg.Dial(t.Context(), "", "h2")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ConnectionState().CurveID; got != tc.want {
			t.Errorf("Curves %v: negotiated %v; want %v", tc.curves, got, tc.want)
		}
		c.Close()
	}
}
