package daemon

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgecert/edgecert/daemon/metrics"
)

// certView is what the admin listener reports about one certificate: what is
// served now and what the renewal scheduler plans.
type certView struct {
	Name        string    `json:"name"`
	Names       []string  `json:"names,omitempty"`
	Source      string    `json:"source,omitempty"`
	Serial      string    `json:"serial,omitempty"`
	Issuer      string    `json:"issuer,omitempty"`
	NotBefore   time.Time `json:"not_before,omitzero"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	Profile     string    `json:"profile,omitempty"`
	NextRenewal time.Time `json:"next_renewal,omitzero"`
	// PlannedRenewal is the chosen renewal time; NextRenewal is the next
	// attempt (later than planned while failures back off).
	PlannedRenewal time.Time `json:"planned_renewal,omitzero"`
	Reason         string    `json:"reason,omitempty"`
	ARIStart       time.Time `json:"ari_window_start,omitzero"`
	ARIEnd         time.Time `json:"ari_window_end,omitzero"`
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastFailure    time.Time `json:"last_failure,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	Failures       int       `json:"consecutive_failures"`
	Managed        bool      `json:"managed"` // renewed by the issuer (not an operator file pair)
	// Rejected is why the operator files on disk were refused (the last
	// good pair, if any, keeps serving); empty when they are in use.
	Rejected string     `json:"rejected,omitempty"`
	Fleet    *fleetView `json:"fleet,omitempty"` // fleet mode only
}

// adminHandler serves /livez (the process answers), /readyz (at least one
// valid certificate is being served), /status (JSON of certViews) and
// /metrics (Prometheus), and with ops POST /renew and POST /revoke. It is
// meant for loopback only.
func adminHandler(views func() []certView, ready func() (bool, string), reg *prometheus.Registry, ops *adminOps) http.Handler {
	mux := http.NewServeMux()
	if ops != nil {
		ops.register(mux)
	}
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

// metricCerts converts the admin views to the metrics package's model.
func metricCerts(views []certView) []metrics.Cert {
	out := make([]metrics.Cert, len(views))
	for i, v := range views {
		out[i] = metrics.Cert{
			Name: v.Name, Serial: v.Serial, Issuer: v.Issuer, Profile: v.Profile, Source: v.Source,
			NotBefore: v.NotBefore, NotAfter: v.NotAfter,
			Renewal: v.PlannedRenewal, NextAttempt: v.NextRenewal,
			ARIStart: v.ARIStart, ARIEnd: v.ARIEnd,
			LastSuccess: v.LastSuccess, LastFailure: v.LastFailure, Failures: v.Failures,
			Managed: v.Managed,
		}
	}
	return out
}
