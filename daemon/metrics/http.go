package metrics

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Routes of the HTTPS server (edgecert_http_requests_total{route}): the
// whoami endpoints; every other path is served by "/" and counted there.
var httpRoutes = [...]string{"/", "/api", "/bench", "/data", "/echo", "/health"}

// Status classes (edgecert_http_requests_total{status_class}); index is
// status/100 - 1.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// httpMetrics are resolved once, so a request costs two atomic adds and no
// map lookup or lock.
type httpMetrics struct {
	requests *prometheus.CounterVec
	byRoute  [len(httpRoutes)][len(statusClasses)]prometheus.Counter
	open     prometheus.Gauge
	pool     sync.Pool // *statusWriter
}

func newHTTPMetrics() *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTPS requests served, by route and status class.",
		}, []string{"route", "status_class"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "http_open_connections",
			Help: "HTTPS connections open now (accepted, not yet closed or hijacked).",
		}),
	}
	for i, route := range httpRoutes {
		for j, class := range statusClasses {
			m.byRoute[i][j] = m.requests.WithLabelValues(route, class)
		}
	}
	return m
}

func (m *httpMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.requests, m.open)
}

func routeIndex(path string) int {
	switch path {
	case "/api":
		return 1
	case "/bench":
		return 2
	case "/data":
		return 3
	case "/echo":
		return 4
	case "/health":
		return 5
	}
	return 0
}

func classIndex(code int) int {
	switch {
	case code < 200:
		return 0
	case code >= 500:
		return 4
	}
	return code/100 - 1
}

// Handler wraps h so every request is counted by route and status class
// when h returns (a hijacked connection, /echo's websocket, counts as
// 1xx). The response writer keeps http.Flusher, http.Hijacker,
// io.ReaderFrom, io.StringWriter and Unwrap (for http.ResponseController). On a nil
// Recorder it returns h.
func (r *Recorder) Handler(h http.Handler) http.Handler {
	if r == nil {
		return h
	}
	m := r.http
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw, _ := m.pool.Get().(*statusWriter)
		if sw == nil {
			sw = new(statusWriter)
		}
		sw.ResponseWriter, sw.code = w, 0
		h.ServeHTTP(sw, req)
		code := sw.code
		if code == 0 {
			code = http.StatusOK // nothing written: net/http sends 200
		}
		m.byRoute[routeIndex(req.URL.Path)][classIndex(code)].Inc()
		sw.ResponseWriter = nil
		m.pool.Put(sw)
	})
}

// ConnState is an http.Server ConnState hook that keeps
// edgecert_http_open_connections; it is a no-op on a nil Recorder.
func (r *Recorder) ConnState(_ net.Conn, s http.ConnState) {
	if r == nil {
		return
	}
	switch s {
	case http.StateNew:
		r.http.open.Inc()
	case http.StateClosed, http.StateHijacked:
		r.http.open.Dec()
	}
}

// statusWriter remembers the first status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 || (w.code < 200 && code >= 200) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// WriteString keeps io.WriteString allocation-free (net/http's writer
// has it; without it the string would be copied to a []byte).
func (w *statusWriter) WriteString(s string) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return io.WriteString(w.ResponseWriter, s)
}

func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	c, rw, err := h.Hijack()
	if err == nil && w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
