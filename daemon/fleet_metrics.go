package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgecert/edgecert/certstore/s3store"
)

// fleetCollector exports the fleet store's state at scrape time. An alert
// on max by (cert)(edgecert_fleet_shared_generation) != min by
// (cert)(edgecert_fleet_serving_generation) catches a host that serves a
// different certificate from the fleet.
type fleetCollector struct {
	fleet                                         *s3store.Store
	shared, serving, held, events, errs, reqs, ls *prometheus.Desc
}

func newFleetCollector(fleet *s3store.Store) *fleetCollector {
	return &fleetCollector{
		fleet:   fleet,
		shared:  prometheus.NewDesc("edgecert_fleet_shared_generation", "Generation of the certificate in the shared store (the pointer), as last read.", []string{"cert"}, nil),
		serving: prometheus.NewDesc("edgecert_fleet_serving_generation", "Generation of the certificate this host serves (0: not from the fleet).", []string{"cert"}, nil),
		held:    prometheus.NewDesc("edgecert_fleet_lease_held", "1 while this host holds the certificate's lease.", []string{"cert"}, nil),
		events:  prometheus.NewDesc("edgecert_fleet_lease_events_total", "Lease and certificate events by kind (acquired, takeover, waiting, lost, released, published, installed).", []string{"event"}, nil),
		errs:    prometheus.NewDesc("edgecert_fleet_store_errors_total", "Failed shared-store operations by operation.", []string{"op"}, nil),
		reqs:    prometheus.NewDesc("edgecert_fleet_requests_total", "S3 requests sent, by kind (get, head, put, delete).", []string{"op"}, nil),
		ls:      prometheus.NewDesc("edgecert_fleet_last_sync_timestamp_seconds", "When a sync last reached the shared store.", nil, nil),
	}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.shared, c.serving, c.held, c.events, c.errs, c.reqs, c.ls} {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.fleet.Status() {
		held := 0.0
		if st.Held {
			held = 1
		}
		ch <- prometheus.MustNewConstMetric(c.shared, prometheus.GaugeValue, float64(st.SharedGeneration), st.Name)
		ch <- prometheus.MustNewConstMetric(c.serving, prometheus.GaugeValue, float64(st.ServingGeneration), st.Name)
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, held, st.Name)
	}
	stats := c.fleet.Stats()
	for _, kind := range []string{"acquired", "takeover", "waiting", "lost", "released", "published", "installed"} {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(stats.LeaseEvents[kind]), kind)
	}
	for _, op := range []string{"get", "put", "delete", "create", "lock", "renew", "release", "publish", "sync"} {
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(stats.StoreErrors[op]), op)
	}
	for _, op := range []string{"get", "head", "put", "delete"} {
		ch <- prometheus.MustNewConstMetric(c.reqs, prometheus.CounterValue, float64(stats.Requests[op]), op)
	}
	if !stats.LastSync.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.ls, prometheus.GaugeValue, float64(stats.LastSync.UnixNano())/1e9)
	}
}
