package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestRecorder(t *testing.T) (*Recorder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(reg), reg
}

// A nil Recorder is usable everywhere and records nothing.
func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.ACMERequest("new_order", "201", time.Second)
	r.Order(OrderValid)
	r.Route53Request("GetChange", OutcomeOK)
	r.Propagation(StageInsync, time.Second)
	r.StoreLoaded()
	r.StoreRejected("expired")
	r.ConnState(nil, http.StateNew)
	h := http.NotFoundHandler()
	if got := r.Handler(h); got == nil {
		t.Fatal("Handler(nil recorder) = nil")
	}
	if got := r.Transport(http.DefaultTransport, "x"); got != http.DefaultTransport {
		t.Errorf("Transport on a nil Recorder wraps: %T", got)
	}
}

// Every metric follows the Prometheus naming conventions (promlint).
func TestLint(t *testing.T) {
	r, reg := newTestRecorder(t)
	reg.MustRegister(NewCertCollector(func() []Cert {
		return []Cert{{Name: "a", Serial: "1", NotBefore: time.Unix(1, 0), NotAfter: time.Unix(2, 0), Managed: true, Renewal: time.Unix(2, 0)}}
	}, nil))
	r.ACMERequest(ActionNewOrder, "201", time.Millisecond)
	r.StoreRejected("expired")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// Series that alerts use with increase() exist at zero from the start.
func TestInitialSeries(t *testing.T) {
	_, reg := newTestRecorder(t)
	want := `
# HELP edgecert_acme_orders_total Issuance attempts by result: valid, invalid, rate_limited, error, already_replaced, lease_lost, duplicate_guard.
# TYPE edgecert_acme_orders_total counter
edgecert_acme_orders_total{result="already_replaced"} 0
edgecert_acme_orders_total{result="duplicate_guard"} 0
edgecert_acme_orders_total{result="error"} 0
edgecert_acme_orders_total{result="invalid"} 0
edgecert_acme_orders_total{result="lease_lost"} 0
edgecert_acme_orders_total{result="rate_limited"} 0
edgecert_acme_orders_total{result="valid"} 0
# HELP edgecert_store_reloads_total Certificate versions the store loaded (ok) or refused to serve (rejected).
# TYPE edgecert_store_reloads_total counter
edgecert_store_reloads_total{result="ok"} 0
edgecert_store_reloads_total{result="rejected"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "edgecert_acme_orders_total", "edgecert_store_reloads_total"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(reg, "edgecert_route53_requests_total")
	if err != nil || n != len(route53Operations)*5 {
		t.Errorf("route53 series at start = %d, %v; want %d", n, err, len(route53Operations)*5)
	}
}

func TestStoreEvents(t *testing.T) {
	r, reg := newTestRecorder(t)
	r.StoreLoaded()
	r.StoreLoaded()
	r.StoreRejected("expired")
	r.StoreRejected("key_mismatch")
	r.StoreRejected("expired")
	want := `
# HELP edgecert_store_rejected_versions_total Certificate versions the store refused, by reason class.
# TYPE edgecert_store_rejected_versions_total counter
edgecert_store_rejected_versions_total{reason="expired"} 2
edgecert_store_rejected_versions_total{reason="key_mismatch"} 1
# HELP edgecert_store_reloads_total Certificate versions the store loaded (ok) or refused to serve (rejected).
# TYPE edgecert_store_reloads_total counter
edgecert_store_reloads_total{result="ok"} 2
edgecert_store_reloads_total{result="rejected"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "edgecert_store_reloads_total", "edgecert_store_rejected_versions_total"); err != nil {
		t.Error(err)
	}
}

// The transport labels requests by the action in the context, except
// nonce and directory requests, and by HTTP status ("error" without one).
func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/limited":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/new-order":
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer srv.Close()
	r, reg := newTestRecorder(t)
	hc := &http.Client{Transport: r.Transport(nil, srv.URL+"/dir")}
	do := func(ctx context.Context, method, path string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	ctx := context.Background()
	order := WithACMEAction(ctx, ActionNewOrder)
	do(ctx, http.MethodGet, "/dir")
	do(order, http.MethodHead, "/nonce") // a nonce fetched inside new_order
	do(order, http.MethodPost, "/new-order")
	do(WithACMEAction(ctx, ActionFinalize), http.MethodPost, "/limited")
	do(ctx, http.MethodPost, "/other")
	srv.Close()
	req, _ := http.NewRequestWithContext(WithACMEAction(ctx, ActionChallenge), http.MethodPost, srv.URL+"/gone", nil)
	if _, err := hc.Do(req); err == nil {
		t.Fatal("request to a closed server succeeded")
	}
	want := `
# HELP edgecert_acme_requests_total HTTP requests to the ACME CA by action and HTTP status ("error": no response).
# TYPE edgecert_acme_requests_total counter
edgecert_acme_requests_total{action="challenge",status="error"} 1
edgecert_acme_requests_total{action="directory",status="200"} 1
edgecert_acme_requests_total{action="finalize",status="429"} 1
edgecert_acme_requests_total{action="new_nonce",status="200"} 1
edgecert_acme_requests_total{action="new_order",status="201"} 1
edgecert_acme_requests_total{action="unnamed",status="200"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "edgecert_acme_requests_total"); err != nil {
		t.Error(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "edgecert_acme_request_duration_seconds"); n != 6 {
		t.Errorf("duration series = %d, want one per action (6)", n)
	}
}
