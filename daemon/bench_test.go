package daemon

import (
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
)

// BenchmarkStartToFirstCertificate measures the time from starting the
// daemon to the first TLS handshake served with a CA-issued certificate, on
// the in-process rig (Pebble without validation sleeps). "cold" starts with
// an empty store, so it includes a whole DNS-01 order through the Route 53
// API (INSYNC after 50 ms) and the authoritative DNS check; "warm" restarts
// on the stored certificate with the CA down. Run with
// -benchtime=20x; the median is reported as ms/median.
func BenchmarkStartToFirstCertificate(b *testing.B) {
	r := newRig(b, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	roots := r.ca.IssuerRoots()
	warmDir := b.TempDir()
	prime := start(b, r.config(b, warmDir))
	prime.stop(b)

	for _, mode := range []string{"cold", "warm"} {
		b.Run(mode, func(b *testing.B) {
			// A warm start must serve with the CA unreachable.
			r.ca.SetDown(mode == "warm")
			defer r.ca.SetDown(false)
			var samples []time.Duration
			for i := 0; b.Loop(); i++ {
				dir := warmDir
				if mode == "cold" {
					dir = filepath.Join(b.TempDir(), strconv.Itoa(i))
				}
				cfg := r.config(b, dir)
				t0 := time.Now()
				d := start(b, cfg)
				leaf(b, d.addrs["https"], "example.test", roots)
				samples = append(samples, time.Since(t0))
				d.stop(b)
			}
			slices.Sort(samples)
			b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms/median")
			b.ReportMetric(float64(samples[len(samples)-1].Microseconds())/1000, "ms/max")
		})
	}
}
