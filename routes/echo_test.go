package routes

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoServer serves h on loopback and reports on exited each time an /echo
// handler returns.
type echoServer struct {
	*httptest.Server
	exited chan struct{}
}

func newEchoServer(t *testing.T, h http.Handler, baseCtx context.Context) *echoServer {
	t.Helper()
	s := &echoServer{exited: make(chan struct{}, 16)}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/echo" {
			s.exited <- struct{}{}
		}
	}))
	if baseCtx != nil {
		s.Config.BaseContext = func(net.Listener) context.Context { return baseCtx }
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *echoServer) dial(t *testing.T, header http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	conn, resp, err := d.DialContext(t.Context(), "ws"+strings.TrimPrefix(s.URL, "http")+"/echo", header)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	return conn
}

// waitExit fails the test unless an /echo handler returns within 20 s.
func (s *echoServer) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the /echo handler did not return")
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEchoRoundTrip(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newEchoServer(t, newTestHandler(t, Options{Logger: logger}), nil)
	conn := s.dial(t, http.Header{"Origin": {"https://elsewhere.example"}})

	msgs := []struct {
		typ  int
		data []byte
	}{
		{websocket.TextMessage, []byte("hello")},
		{websocket.BinaryMessage, []byte{0, 1, 2, 0xfe, 0xff}},
		{websocket.TextMessage, []byte("")},
		{websocket.BinaryMessage, bytes.Repeat([]byte{0xa5}, 70000)},
		{websocket.TextMessage, []byte("secret-payload-x")},
	}
	for i, m := range msgs {
		if err := conn.WriteMessage(m.typ, m.data); err != nil {
			t.Fatalf("message %d: write: %v", i, err)
		}
		typ, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: read: %v", i, err)
		}
		if typ != m.typ || !bytes.Equal(data, m.data) {
			t.Errorf("message %d: got type %d, %d bytes; want type %d, %d bytes", i, typ, len(data), m.typ, len(m.data))
		}
	}
	conn.Close()
	s.waitExit(t)

	out := logs.String()
	if !strings.Contains(out, "level=DEBUG msg=routes.echo.message") || !strings.Contains(out, "len=70000") {
		t.Errorf("debug log lacks the message records:\n%s", out)
	}
	if strings.Contains(out, "secret-payload") || strings.Contains(out, "level=INFO") {
		t.Errorf("log carries payload or non-debug records:\n%s", out)
	}
}

func TestEchoMessageLimit(t *testing.T) {
	t.Parallel()
	s := newEchoServer(t, newTestHandler(t, Options{EchoMaxMessage: 16}), nil)
	conn := s.dial(t, nil)
	defer conn.Close()

	exact := []byte("0123456789abcdef")
	if err := conn.WriteMessage(websocket.BinaryMessage, exact); err != nil {
		t.Fatal(err)
	}
	if _, data, err := conn.ReadMessage(); err != nil || !bytes.Equal(data, exact) {
		t.Fatalf("16-byte message: %q, %v; want it echoed", data, err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, append(exact, '!')); err != nil {
		t.Fatal(err)
	}
	_, _, err := conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("17-byte message: read error %v, want close 1009", err)
	}
	s.waitExit(t)
}

func TestEchoRejectsPlainRequests(t *testing.T) {
	t.Parallel()
	s := newEchoServer(t, newTestHandler(t, Options{}), nil)
	tests := []struct {
		method string
		header http.Header
		want   int
	}{
		{http.MethodGet, nil, 400},
		{http.MethodPost, nil, 400},
		{http.MethodGet, http.Header{"Connection": {"Upgrade"}}, 400},
		{http.MethodPost, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, 405},
		{http.MethodGet, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}}, 400},
	}
	for _, tt := range tests {
		req, err := http.NewRequestWithContext(t.Context(), tt.method, s.URL+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tt.header {
			req.Header[k] = v
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %v: %v", tt.method, tt.header, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s /echo with %v = %d, want %d", tt.method, tt.header, resp.StatusCode, tt.want)
		}
		s.waitExit(t)
	}
	// A recorder is no Hijacker; a plain GET is still a 400, not a 500.
	if rec := get(newTestHandler(t, Options{}), "/echo"); rec.Code != 400 {
		t.Errorf("plain GET on a recorder = %d, want 400", rec.Code)
	}
}

// TestEchoKeepalive: a client that answers pings stays connected well past
// the idle timeout.
func TestEchoKeepalive(t *testing.T) {
	t.Parallel()
	const idle = 400 * time.Millisecond
	s := newEchoServer(t, newTestHandler(t, Options{EchoIdleTimeout: idle}), nil)
	conn := s.dial(t, nil)
	defer conn.Close()

	pings := make(chan struct{}, 100)
	conn.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	echoes := make(chan []byte, 1)
	go func() {
		defer close(echoes)
		for {
			_, data, err := conn.ReadMessage() // runs the ping handler
			if err != nil {
				return
			}
			echoes <- data
		}
	}()
	start := time.Now()
	for i := 0; i < 4; i++ { // 4 pings at idle/2 apart: the connection outlived idle
		select {
		case <-pings:
		case <-time.After(20 * time.Second):
			t.Fatalf("ping %d not received", i)
		}
	}
	if took := time.Since(start); took < idle {
		t.Errorf("4 pings arrived within %v, want them spread over more than %v", took, idle)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	select {
	case data := <-echoes:
		if string(data) != "still here" {
			t.Errorf("echo %q", data)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no echo after keepalive")
	}
}

// TestEchoIdleTimeout: a client that neither sends nor answers pings is
// disconnected after the idle timeout.
func TestEchoIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	s := newEchoServer(t, newTestHandler(t, Options{EchoIdleTimeout: idle}), nil)
	start := time.Now()
	conn := s.dial(t, nil)
	defer conn.Close()
	s.waitExit(t) // the client never reads, so it never answers a ping
	if took := time.Since(start); took < idle {
		t.Errorf("closed after %v, before the %v idle timeout", took, idle)
	}
}

// TestEchoEndsWithRequestContext: cancelling the server's base context ends
// the connection with 1001 and the handler returns.
func TestEchoEndsWithRequestContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := newEchoServer(t, newTestHandler(t, Options{}), ctx)
	conn := s.dial(t, nil)
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	cancel()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("read after cancel: %v, want close 1001", err)
	}
	s.waitExit(t)
}

// unwrapOnly hides the Hijacker behind Unwrap, like a logging middleware.
type unwrapOnly struct{ w http.ResponseWriter }

func (u unwrapOnly) Header() http.Header         { return u.w.Header() }
func (u unwrapOnly) Write(p []byte) (int, error) { return u.w.Write(p) }
func (u unwrapOnly) WriteHeader(code int)        { u.w.WriteHeader(code) }
func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.w }

// TestEchoThroughWrappingMiddleware: a ResponseWriter wrapper that only
// offers Unwrap still gets a websocket.
func TestEchoThroughWrappingMiddleware(t *testing.T) {
	t.Parallel()
	h := newTestHandler(t, Options{})
	s := newEchoServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(unwrapOnly{w}, r)
	}), nil)
	conn := s.dial(t, nil)
	if err := conn.WriteMessage(websocket.TextMessage, []byte("wrapped")); err != nil {
		t.Fatal(err)
	}
	if _, data, err := conn.ReadMessage(); err != nil || string(data) != "wrapped" {
		t.Errorf("echo through wrapper: %q, %v", data, err)
	}
	conn.Close()
	s.waitExit(t)
}
