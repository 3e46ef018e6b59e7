package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgecert/edgecert/internal/poll"
)

func TestHandlerCountsByRouteAndClass(t *testing.T) {
	r, reg := newTestRecorder(t)
	h := r.Handler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/health":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/api":
			io.WriteString(w, "{}") // implicit 200
		case "/data":
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusBadRequest)
		case "/echo":
			c, _, err := http.NewResponseController(w).Hijack() // through Unwrap, as gorilla would directly
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
		case "/bench":
			// writes nothing: net/http answers 200
		default:
			http.NotFound(w, req)
		}
	}))
	// The client sees the hijacked /echo connection close before the
	// wrapper has counted the request (it counts when the handler returns):
	// wait for the wrapper itself to return, not for the client.
	echoDone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.ServeHTTP(w, req)
		if req.URL.Path == "/echo" {
			close(echoDone)
		}
	}))
	defer srv.Close()
	for _, p := range []string{"/health", "/api", "/api", "/data", "/bench", "/no/such/path", "/echo"} {
		res, err := srv.Client().Get(srv.URL + p)
		if err == nil {
			res.Body.Close()
		}
	}
	select {
	case <-echoDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the /echo handler did not return within 10s")
	}
	want := map[[2]string]float64{
		{"/health", "5xx"}: 1, {"/api", "2xx"}: 2, {"/data", "4xx"}: 1, {"/bench", "2xx"}: 1, {"/", "4xx"}: 1, {"/echo", "1xx"}: 1,
	}
	for i, route := range httpRoutes {
		for j, class := range statusClasses {
			if got := testutil.ToFloat64(r.http.byRoute[i][j]); got != want[[2]string{route, class}] {
				t.Errorf("requests{route=%q,status_class=%q} = %v, want %v", route, class, got, want[[2]string{route, class}])
			}
		}
	}
	if n, _ := testutil.GatherAndCount(reg, "edgecert_http_requests_total"); n != len(httpRoutes)*len(statusClasses) {
		t.Errorf("http series = %d, want every route x class from the start", n)
	}
}

// The wrapper costs no allocation per request (pooled writer, counters
// resolved in advance).
func TestHandlerAllocs(t *testing.T) {
	r, _ := newTestRecorder(t)
	h := r.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "1") }))
	req := httptest.NewRequest(http.MethodGet, "/bench", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req) // warm the pool
	if n := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) }); n != 0 {
		t.Errorf("allocations per request = %v, want 0", n)
	}
}

func TestConnState(t *testing.T) {
	r, _ := newTestRecorder(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = r.ConnState
	srv.Start()
	defer srv.Close()
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	res, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := testutil.ToFloat64(r.http.open); got != 1 {
		t.Errorf("open connections with one keep-alive connection = %v, want 1", got)
	}
	tr.CloseIdleConnections()
	// The server sees the close asynchronously.
	poll.Until(t, 10*time.Second, "no open connection after the close", func() bool {
		return testutil.ToFloat64(r.http.open) == 0
	})
}

func BenchmarkHandler(b *testing.B) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, strings.Repeat("x", 16)) })
	r := New(prometheus.NewRegistry())
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", inner}, {"instrumented", r.Handler(inner)}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/bench", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				w.Body.Reset()
				bc.h.ServeHTTP(w, req)
			}
		})
	}
}
