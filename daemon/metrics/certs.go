package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Cert is the state of one certificate as the daemon sees it when scraped.
// Zero times are not exported (the series is absent).
type Cert struct {
	Name string // the certificate's configured name (label name)
	// Served certificate; Serial "" means none is served.
	Serial, Issuer, Profile, Source string
	NotBefore, NotAfter             time.Time
	// Renewal is the chosen renewal time of the served certificate (ARI or
	// lifetime rule); NextAttempt is when the next attempt is due, which a
	// failure moves later by the backoff.
	Renewal, NextAttempt time.Time
	ARIStart, ARIEnd     time.Time
	LastSuccess          time.Time
	LastFailure          time.Time
	Failures             int
	// Managed is true for certificates the issuer renews (false for
	// operator file pairs, which have no renewal series).
	Managed bool
}

// Ready reports whether c is served, valid at now and not past its renewal
// deadline: the end of the CA's ARI window when known, else the point where
// 1/20 of the lifetime remains (the latest the scheduler ever renews).
func (c Cert) Ready(now time.Time) bool {
	if c.Serial == "" || now.Before(c.NotBefore) || !now.Before(c.NotAfter) {
		return false
	}
	deadline := c.NotAfter.Add(-c.NotAfter.Sub(c.NotBefore) / 20)
	if !c.ARIEnd.IsZero() && c.ARIEnd.Before(deadline) {
		deadline = c.ARIEnd
	}
	return !c.Managed || now.Before(deadline)
}

// CertCollector exports per-certificate series from a snapshot taken at
// scrape time. Its series carry the label name; the serial, issuer, profile
// and source are on edgecert_certificate_info only, so a renewal does not
// churn the timestamp series.
type CertCollector struct {
	certs func() []Cert
	now   func() time.Time

	notBefore, notAfter, renewal, nextAttempt, ariStart, ariEnd,
	ready, lastSuccess, lastFailure, failures, info *prometheus.Desc
}

// NewCertCollector returns a collector calling certs on every scrape (it
// must be safe for concurrent use and must not block on I/O). now is the
// clock for Ready; nil means time.Now.
func NewCertCollector(certs func() []Cert, now func() time.Time) *CertCollector {
	if now == nil {
		now = time.Now
	}
	l := []string{"name"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_certificate_"+name, help, l, nil)
	}
	return &CertCollector{
		certs:       certs,
		now:         now,
		notBefore:   d("not_before_timestamp_seconds", "Start of the served certificate's validity (Unix seconds)."),
		notAfter:    d("not_after_timestamp_seconds", "Expiry of the served certificate (Unix seconds)."),
		renewal:     d("renewal_timestamp_seconds", "Chosen renewal time of the served certificate: in the ARI window, else when a third (half for lifetimes up to 10 days) of the lifetime remains."),
		nextAttempt: d("next_renewal_timestamp_seconds", "When the next issuance attempt is due (the renewal time, or later after failures: backoff)."),
		ariStart:    d("ari_window_start_timestamp_seconds", "Start of the CA's ARI suggested renewal window for the served certificate."),
		ariEnd:      d("ari_window_end_timestamp_seconds", "End of the CA's ARI suggested renewal window for the served certificate."),
		ready:       d("ready", "1 if a certificate is served, valid, and not past its renewal deadline (ARI window end, or 1/20 of the lifetime left); else 0."),
		lastSuccess: d("last_success_timestamp_seconds", "Last successful issuance by this process."),
		lastFailure: d("last_failure_timestamp_seconds", "Last failed issuance attempt by this process."),
		failures:    d("consecutive_failures", "Failed issuance attempts since the last success."),
		info: prometheus.NewDesc(namespace+"_certificate_info", "The served certificate (value 1).",
			[]string{"name", "serial", "issuer", "profile", "source"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *CertCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.notBefore, c.notAfter, c.renewal, c.nextAttempt, c.ariStart, c.ariEnd,
		c.ready, c.lastSuccess, c.lastFailure, c.failures, c.info} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *CertCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ts := func(d *prometheus.Desc, t time.Time, name string) {
		if !t.IsZero() {
			gauge(d, float64(t.UnixMilli())/1e3, name)
		}
	}
	for _, cert := range c.certs() {
		n := cert.Name
		ready := 0.0
		if cert.Ready(now) {
			ready = 1
		}
		gauge(c.ready, ready, n)
		if cert.Serial != "" {
			ts(c.notBefore, cert.NotBefore, n)
			ts(c.notAfter, cert.NotAfter, n)
			gauge(c.info, 1, n, cert.Serial, cert.Issuer, cert.Profile, cert.Source)
		}
		if !cert.Managed {
			continue
		}
		ts(c.renewal, cert.Renewal, n)
		ts(c.nextAttempt, cert.NextAttempt, n)
		ts(c.ariStart, cert.ARIStart, n)
		ts(c.ariEnd, cert.ARIEnd, n)
		ts(c.lastSuccess, cert.LastSuccess, n)
		ts(c.lastFailure, cert.LastFailure, n)
		gauge(c.failures, float64(cert.Failures), n)
	}
}
