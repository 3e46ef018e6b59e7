package routes

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

var _ http.Handler = (*Handler)(nil)

// testAddrs is the address list the test handlers report.
var testAddrs = []string{"127.0.0.1", "::1", "fe80::1"}

// newTestHandler returns a Handler with a fixed hostname and address list
// unless opts sets them.
func newTestHandler(t testing.TB, opts Options) *Handler {
	t.Helper()
	if opts.Hostname == "" {
		opts.Hostname = "test-host"
	}
	if opts.Addrs == nil {
		opts.Addrs = func() ([]string, error) { return testAddrs, nil }
	}
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// serve runs one request through h and returns the recorded response.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func get(h http.Handler, target string) *httptest.ResponseRecorder {
	return serve(h, httptest.NewRequest(http.MethodGet, target, nil))
}

// discardWriter is a ResponseWriter that counts and drops the body. Like
// the copy into a socket buffer, it copies every byte written into a fixed
// scratch buffer, so writers that avoid copies get no unfair advantage.
type discardWriter struct {
	h       http.Header
	code    int
	n       int64
	scratch [32 << 10]byte
}

func newDiscardWriter() *discardWriter { return &discardWriter{h: make(http.Header)} }

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}

func (d *discardWriter) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = http.StatusOK
	}
	for rest := p; len(rest) > 0; {
		rest = rest[copy(d.scratch[:], rest):]
	}
	d.n += int64(len(p))
	return len(p), nil
}

func TestNewRejectsNegativeLimits(t *testing.T) {
	tests := []struct {
		field string
		opts  Options
	}{
		{"DataMax", Options{DataMax: -1}},
		{"WaitMax", Options{WaitMax: -time.Second}},
		{"EchoMaxMessage", Options{EchoMaxMessage: -1}},
		{"EchoIdleTimeout", Options{EchoIdleTimeout: -1}},
		{"AddrRefresh", Options{AddrRefresh: -time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			tt.opts.Hostname = "h"
			h, err := New(tt.opts)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.opts, h)
			}
			if got := err.Error(); !strings.Contains(got, "Options."+tt.field) || !strings.HasPrefix(got, "routes: ") {
				t.Errorf("error = %q, want it to start with %q and name Options.%s", got, "routes: ", tt.field)
			}
		})
	}

	_, err := New(Options{Hostname: "h", DataMax: -1, WaitMax: -1})
	if err == nil || !strings.Contains(err.Error(), "DataMax") || !strings.Contains(err.Error(), "WaitMax") {
		t.Errorf("two negative fields: error = %v, want both named", err)
	}
}

func TestNewDefaults(t *testing.T) {
	h, err := New(Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want, err := os.Hostname()
	if err != nil {
		t.Fatalf("os.Hostname: %v", err)
	}
	if h.hostname != want {
		t.Errorf("hostname = %q, want os.Hostname() %q", h.hostname, want)
	}
	checks := []struct {
		name      string
		got, want int64
	}{
		{"dataMax", h.dataMax, DefaultDataMax},
		{"waitMax", int64(h.waitMax), int64(DefaultWaitMax)},
		{"echoMax", h.echoMax, DefaultEchoMaxMessage},
		{"echoIdle", int64(h.echoIdle), int64(DefaultEchoIdleTimeout)},
		{"addrs.refresh", int64(h.addrs.refresh), int64(DefaultAddrRefresh)},
		{"health", int64(h.health.Load()), http.StatusOK},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if h.hasToken || h.allowEnv {
		t.Errorf("hasToken = %v, allowEnv = %v; want both false", h.hasToken, h.allowEnv)
	}
}

// TestRouting checks which endpoint answers each path: paths that match no
// route get the / response.
func TestRouting(t *testing.T) {
	h := newTestHandler(t, Options{})
	whoami := func(path string) string {
		return "Hostname: test-host\nIP: 127.0.0.1\nIP: ::1\nIP: fe80::1\nRemoteAddr: 192.0.2.1:1234\n" +
			"GET " + path + " HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"
	}
	tests := []struct {
		target   string
		wantCode int
		wantBody string
	}{
		{"/", 200, whoami("/")},
		{"/foo/bar?x=1", 200, whoami("/foo/bar?x=1")},
		{"/api/", 200, whoami("/api/")},
		{"/bench/x", 200, whoami("/bench/x")},
		{"/openapi.yaml", 200, whoami("/openapi.yaml")},
		{"/whoami.Whoami/Bench", 200, whoami("/whoami.Whoami/Bench")},
		{"/?header=X-Evil=1", 200, whoami("/?header=X-Evil=1")},
		{"/bench", 200, "1"},
		{"/data?size=3", 200, "|A|"},
		{"/health", 200, ""},
		{"/echo", 400, "Bad Request\n"},
		{"/api", 200, `{"hostname":"test-host","ip":["127.0.0.1","::1","fe80::1"],"url":"/api","host":"example.com","method":"GET","remoteAddr":"192.0.2.1:1234"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			r.Host = "example.com"
			rec := serve(h, r)
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Errorf("GET %s = %d %q, want %d %q", tt.target, rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
			for k := range rec.Header() {
				if strings.Contains(strings.ToLower(k), "evil") {
					t.Errorf("response header %q set from the query", k)
				}
			}
		})
	}
}

// TestRedirectsToCleanPath: the ServeMux redirects unclean paths, keeping
// the query. Go 1.26's ServeMux answers 307 (older releases, and so older
// whoami builds, answered 301).
func TestRedirectsToCleanPath(t *testing.T) {
	h := newTestHandler(t, Options{})
	tests := []struct{ target, wantLocation string }{
		{"//api", "/api"},
		{"/a/../api", "/api"},
		{"/api/./", "/api/"},
		{"//api?x=1", "/api?x=1"},
		{"/./bench", "/bench"},
		{"//data?size=10", "/data?size=10"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := get(h, tt.target)
			if rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != tt.wantLocation {
				t.Errorf("GET %s = %d Location %q, want 307 Location %q",
					tt.target, rec.Code, rec.Header().Get("Location"), tt.wantLocation)
			}
		})
	}
}

func TestBench(t *testing.T) {
	h := newTestHandler(t, Options{})
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodHead} {
		t.Run(method, func(t *testing.T) {
			rec := serve(h, httptest.NewRequest(method, "/bench", nil))
			const wantBody = "1" // the recorder keeps HEAD bodies; net/http drops them
			if rec.Code != 200 || rec.Body.String() != wantBody {
				t.Errorf("%s /bench = %d %q, want 200 %q", method, rec.Code, rec.Body.String(), wantBody)
			}
			wantHeaders := map[string]string{"Content-Type": "text/plain", "Connection": "keep-alive"}
			for k, v := range wantHeaders {
				if got := rec.Header().Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("header %s = %q, want [%q]", k, got, v)
				}
			}
		})
	}

	// The shared header values must survive a middleware that appends to
	// them.
	w := newDiscardWriter()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/bench", nil))
	w.Header().Add("Content-Type", "x/y")
	rec := get(h, "/bench")
	if got := rec.Header().Values("Content-Type"); len(got) != 1 || got[0] != "text/plain" {
		t.Errorf("after an Add on an earlier response, Content-Type = %q, want [text/plain]", got)
	}
}

// TestServedOverHTTP runs the handler behind a real server to check what
// net/http adds (Content-Length, sniffing) does not change the contract.
func TestServedOverHTTP(t *testing.T) {
	h := newTestHandler(t, Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/bench")
	if err != nil {
		t.Fatalf("GET /bench: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading /bench: %v", err)
	}
	if string(body) != "1" || resp.ContentLength != 1 || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("/bench = %q, Content-Length %d, Content-Type %q; want \"1\", 1, text/plain",
			body, resp.ContentLength, resp.Header.Get("Content-Type"))
	}

	resp, err = srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatalf("GET /: %v", err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("/ Content-Type = %q, want text/plain; charset=utf-8", got)
	}
}

// errReader fails every read.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }
