package daemon

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// certView is what the admin listener reports about one certificate: what is
// served now and what the renewal scheduler plans.
type certView struct {
	Name        string    `json:"name"`
	Names       []string  `json:"names,omitempty"`
	Source      string    `json:"source,omitempty"`
	Serial      string    `json:"serial,omitempty"`
	NotBefore   time.Time `json:"not_before,omitzero"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	Profile     string    `json:"profile,omitempty"`
	NextRenewal time.Time `json:"next_renewal,omitzero"`
	Reason      string    `json:"reason,omitempty"`
	ARIStart    time.Time `json:"ari_window_start,omitzero"`
	ARIEnd      time.Time `json:"ari_window_end,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Failures    int       `json:"consecutive_failures"`
}

// adminHandler serves /livez (the process answers), /readyz (at least one
// valid certificate is being served), /status (JSON of certViews) and
// /metrics (Prometheus). It is meant for loopback only.
func adminHandler(views func() []certView, ready func() (bool, string), reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, why := ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write([]byte(why + "\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"version": version(), "certificates": views()})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// certCollector exports certificate state at scrape time, so nothing is
// counted on the handshake or request path.
type certCollector struct {
	views func() []certView

	notAfter, nextRenewal, lastSuccess, failures, info *prometheus.Desc
}

func newCertCollector(views func() []certView) *certCollector {
	l := []string{"name"}
	return &certCollector{
		views:       views,
		notAfter:    prometheus.NewDesc("edgecert_certificate_not_after_timestamp_seconds", "Expiry of the certificate being served.", l, nil),
		nextRenewal: prometheus.NewDesc("edgecert_certificate_next_renewal_timestamp_seconds", "When the next renewal attempt is scheduled.", l, nil),
		lastSuccess: prometheus.NewDesc("edgecert_certificate_last_success_timestamp_seconds", "Last successful issuance.", l, nil),
		failures:    prometheus.NewDesc("edgecert_certificate_consecutive_failures", "Failed renewal attempts since the last success.", l, nil),
		info:        prometheus.NewDesc("edgecert_certificate_info", "Certificate served (value 1).", []string{"name", "serial", "source", "profile"}, nil),
	}
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.notAfter, c.nextRenewal, c.lastSuccess, c.failures, c.info} {
		ch <- d
	}
}

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	ts := func(d *prometheus.Desc, t time.Time, name string) {
		if !t.IsZero() {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(t.Unix()), name)
		}
	}
	for _, v := range c.views() {
		ts(c.notAfter, v.NotAfter, v.Name)
		ts(c.nextRenewal, v.NextRenewal, v.Name)
		ts(c.lastSuccess, v.LastSuccess, v.Name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.GaugeValue, float64(v.Failures), v.Name)
		if v.Serial != "" {
			ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, v.Name, v.Serial, v.Source, v.Profile)
		}
	}
}
