package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "edgecert"

// Order results (edgecert_acme_orders_total{result}).
const (
	OrderValid       = "valid"        // a certificate was issued and stored
	OrderInvalid     = "invalid"      // the CA refused: authorization or order invalid
	OrderRateLimited = "rate_limited" // the CA answered rateLimited / 429
	OrderError       = "error"        // anything else: DNS, Route 53, network, store
	// Fleet results: a peer is renewing (the CA said alreadyReplaced), the
	// lease was lost mid-order (nothing published), the duplicate guard
	// refused a non-ARI order.
	OrderAlreadyReplaced = "already_replaced"
	OrderLeaseLost       = "lease_lost"
	OrderDuplicateGuard  = "duplicate_guard"
)

// Route 53 outcomes (edgecert_route53_requests_total{outcome}), as
// daemon/route53dns classifies them (its Observer.APICall).
const (
	OutcomeOK           = "ok"
	OutcomeThrottled    = "throttled"
	OutcomeConflict     = "conflict"
	OutcomeAccessDenied = "access_denied"
	OutcomeError        = "error"
)

// Propagation stages (edgecert_route53_propagation_seconds{stage}).
const (
	StageInsync        = "insync"        // ChangeResourceRecordSets until GetChange says INSYNC
	StageAuthoritative = "authoritative" // INSYNC until every authoritative server answers the value
)

// Store reload results and the reason classes of rejected versions.
const (
	ReloadOK       = "ok"
	ReloadRejected = "rejected"
)

// route53Operations are the SDK operations edgecert calls; their series
// exist from the start (at 0) so the first throttle shows in increase().
var route53Operations = []string{"ChangeResourceRecordSets", "GetChange", "GetHostedZone", "ListHostedZonesByName", "ListResourceRecordSets"}

// Recorder receives the daemon's events and keeps the counters. All methods
// are safe for concurrent use and do nothing on a nil *Recorder.
type Recorder struct {
	acmeRequests *prometheus.CounterVec
	acmeDuration *prometheus.HistogramVec
	orders       *prometheus.CounterVec
	r53Requests  *prometheus.CounterVec
	propagation  *prometheus.HistogramVec
	reloads      *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	http         *httpMetrics
}

// New returns a Recorder whose metrics are registered on reg. It panics if
// they are already registered there (a programming error, as with
// prometheus.MustRegister).
func New(reg prometheus.Registerer) *Recorder {
	r := &Recorder{
		acmeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "acme_requests_total",
			Help: "HTTP requests to the ACME CA by action and HTTP status (\"error\": no response).",
		}, []string{"action", "status"}),
		acmeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "acme_request_duration_seconds",
			Help:    "Time to the response headers of ACME requests, by action.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "acme_orders_total",
			Help: "Issuance attempts by result: valid, invalid, rate_limited, error, already_replaced, lease_lost, duplicate_guard.",
		}, []string{"result"}),
		r53Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "route53_requests_total",
			Help: "Route 53 API attempts by operation and outcome: ok, throttled, conflict, access_denied, error.",
		}, []string{"operation", "outcome"}),
		propagation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "route53_propagation_seconds",
			Help:    "DNS-01 propagation time by stage: insync (change until INSYNC), authoritative (until every authoritative server answers).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120},
		}, []string{"stage"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_reloads_total",
			Help: "Certificate versions the store loaded (ok) or refused to serve (rejected).",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_rejected_versions_total",
			Help: "Certificate versions the store refused, by reason class.",
		}, []string{"reason"}),
		http: newHTTPMetrics(),
	}
	for _, res := range []string{OrderValid, OrderInvalid, OrderRateLimited, OrderError, OrderAlreadyReplaced, OrderLeaseLost, OrderDuplicateGuard} {
		r.orders.WithLabelValues(res)
	}
	for _, op := range route53Operations {
		for _, o := range []string{OutcomeOK, OutcomeThrottled, OutcomeConflict, OutcomeAccessDenied, OutcomeError} {
			r.r53Requests.WithLabelValues(op, o)
		}
	}
	for _, s := range []string{StageInsync, StageAuthoritative} {
		r.propagation.WithLabelValues(s)
	}
	r.reloads.WithLabelValues(ReloadOK)
	r.reloads.WithLabelValues(ReloadRejected)
	reg.MustRegister(r.acmeRequests, r.acmeDuration, r.orders, r.r53Requests, r.propagation, r.reloads, r.rejected)
	r.http.register(reg)
	return r
}

// ACMERequest records one HTTP exchange with the CA. status is the HTTP
// status code as text, or "error" when there was no response.
func (r *Recorder) ACMERequest(action, status string, d time.Duration) {
	if r == nil {
		return
	}
	r.acmeRequests.WithLabelValues(action, status).Inc()
	r.acmeDuration.WithLabelValues(action).Observe(d.Seconds())
}

// Order records the end of one issuance attempt (an Order* result).
func (r *Recorder) Order(result string) {
	if r == nil {
		return
	}
	r.orders.WithLabelValues(result).Inc()
}

// Route53Request records one Route 53 API attempt (an Outcome* outcome).
func (r *Recorder) Route53Request(operation, outcome string) {
	if r == nil {
		return
	}
	r.r53Requests.WithLabelValues(operation, outcome).Inc()
}

// Propagation records how long one DNS-01 propagation stage took (a Stage*
// stage).
func (r *Recorder) Propagation(stage string, d time.Duration) {
	if r == nil {
		return
	}
	r.propagation.WithLabelValues(stage).Observe(d.Seconds())
}

// StoreLoaded records a certificate version the store now serves.
func (r *Recorder) StoreLoaded() {
	if r == nil {
		return
	}
	r.reloads.WithLabelValues(ReloadOK).Inc()
}

// StoreRejected records a certificate version the store refused, with the
// class of the reason (bounded: see certstore.RejectClass).
func (r *Recorder) StoreRejected(reason string) {
	if r == nil {
		return
	}
	r.reloads.WithLabelValues(ReloadRejected).Inc()
	r.rejected.WithLabelValues(reason).Inc()
}
