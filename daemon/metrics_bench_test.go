package daemon

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgecert/edgecert/daemon/metrics"
	"github.com/edgecert/edgecert/routes"
)

// BenchmarkBenchMetrics measures GET /bench over real TLS on loopback
// (keep-alive HTTP/1.1 clients in parallel) through the routes handler bare
// and as the daemon serves it: counted by the recorder's Handler, with the
// ConnState hook keeping the open-connection gauge. Compare the two ns/op
// of one run (BENCHMARKS.md "Cost of the metrics").
func BenchmarkBenchMetrics(b *testing.B) {
	h, err := routes.New(routes.Options{Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	rec := metrics.New(prometheus.NewRegistry())
	for _, bc := range []struct {
		name string
		h    http.Handler
		cs   func(srv *http.Server)
	}{
		{"bare", h, func(*http.Server) {}},
		{"instrumented", rec.Handler(h), func(srv *http.Server) { instrument(srv, rec) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewUnstartedServer(bc.h)
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short at Close
			bc.cs(srv.Config)
			srv.StartTLS()
			defer srv.Close()
			tr := srv.Client().Transport.(*http.Transport)
			tr.MaxIdleConnsPerHost = 64
			c := srv.Client()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := c.Get(srv.URL + "/bench")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		})
	}
}
