package daemon

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgecert/edgecert/daemon/issuer"
	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
)

// cli runs Main with args and returns the exit code and output.
func cli(args ...string) (int, string) {
	var out bytes.Buffer
	code := Main(args, &out, &out)
	return code, out.String()
}

// TestRenewRevokeAndMetrics drives a real daemon against the rig through
// the operator commands — renew (not due, forced, failing), revoke — and
// then scrapes /metrics and checks that every series the alert rules use
// exists with the labels they select on.
func TestRenewRevokeAndMetrics(t *testing.T) {
	t.Parallel()
	r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	d := start(t, r.config(t, t.TempDir(), "-admin-token", "test-admin-token"))
	roots := r.ca.IssuerRoots()
	admin := d.addrs["admin"]
	first := leaf(t, d.addrs["https"], "example.test", roots)

	// Not due, not forced: reported and left alone.
	code, out := cli("renew", "-admin-addr", admin, "example.test")
	if code != exitOK || !strings.Contains(out, "example.test: not due: renewal planned at ") {
		t.Fatalf("renew (not due) = %d\n%s", code, out)
	}
	if got := leaf(t, d.addrs["https"], "example.test", roots); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("renew without -force replaced the certificate")
	}

	// Forced: the rotation is printed as it happens; exit 0 once served.
	code, out = cli("renew", "-admin-addr", admin, "-force")
	if code != exitOK || !contains(out, "cert.order_started", "reason=manual", "cert.issued", "cert.stored", "example.test: renewed: serving serial ") {
		t.Fatalf("renew -force = %d\n%s", code, out)
	}
	t.Logf("edgecert renew -force:\n%s", out)
	second := leaf(t, d.addrs["https"], "www.example.test", roots)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || !strings.Contains(out, "serving serial "+second.SerialNumber.Text(16)) {
		t.Fatalf("after renew -force serving %x (was %x); the output names another serial:\n%s", second.SerialNumber, first.SerialNumber, out)
	}

	// Route 53 refuses: non-zero with the reason, the old certificate serves.
	r.r53.Fail(fakeroute53.OpChangeResourceRecordSets, fakeroute53.Fault{Code: "AccessDenied"})
	code, out = cli("renew", "-force", "-admin-addr", admin, "example.test")
	if code != exitFailure || !contains(out, "cert.renewal_failed", "example.test: FAILED: ", "AccessDenied") {
		t.Fatalf("renew with Route 53 denying = %d; want %d with the reason\n%s", code, exitFailure, out)
	}
	if got := leaf(t, d.addrs["https"], "example.test", roots); got.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("a failed renewal changed the served certificate")
	}
	r.r53.ClearFaults()

	// Unknown names and a missing reason are refused before anything runs.
	if code, out := cli("renew", "-admin-addr", admin, "nosuch.test"); code != exitUsage || !strings.Contains(out, `no certificate named "nosuch.test"`) {
		t.Errorf("renew nosuch.test = %d %q; want %d naming it", code, out, exitUsage)
	}
	if code, out := cli("revoke", "-admin-addr", admin, "example.test"); code != exitUsage || !strings.Contains(out, "explicit reason") {
		t.Errorf("revoke without -reason = %d %q; want %d", code, out, exitUsage)
	}

	// Revoke: at the CA, then a replacement with a new key at once.
	code, out = cli("revoke", "example.test", "-reason", "superseded", "-admin-addr", admin)
	if code != exitOK || !contains(out, "cert.revoked", "reason=revoked", "cert.stored", "example.test: renewed: serving serial ") {
		t.Fatalf("revoke = %d\n%s", code, out)
	}
	third := leaf(t, d.addrs["https"], "example.test", roots)
	if third.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("revoke left the revoked certificate served")
	}
	if pk2, pk3 := second.PublicKey, third.PublicKey; pk3.(interface{ Equal(crypto.PublicKey) bool }).Equal(pk2) {
		t.Error("the replacement reuses the revoked certificate's key")
	}
	if st := pebbleCertStatus(t, r, second.SerialNumber.Text(16)); st != "Revoked" {
		t.Errorf("the CA says the revoked certificate is %q; want Revoked", st)
	}

	// A request on the HTTPS server, then scrape.
	c := httpsClient(t, d.addrs["https"], roots)
	if code, _ := get(t, "https://example.test/bench", c); code != 200 {
		t.Fatalf("/bench = %d", code)
	}
	families := scrape(t, "http://"+admin+"/metrics")
	checkRuleSeries(t, families)

	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, m := range families[name].GetMetric() {
			if hasLabels(m, labels) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
		t.Errorf("no %s%v in /metrics", name, labels)
		return -1
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"edgecert_acme_orders_total", map[string]string{"result": "valid"}, 3},
		{"edgecert_acme_orders_total", map[string]string{"result": "error"}, 1},
		{"edgecert_acme_requests_total", map[string]string{"action": "new_order", "status": "201"}, 3},
		{"edgecert_acme_requests_total", map[string]string{"action": "revoke_cert", "status": "200"}, 1},
		{"edgecert_acme_requests_total", map[string]string{"action": "finalize", "status": "200"}, 3},
		{"edgecert_route53_requests_total", map[string]string{"operation": "ChangeResourceRecordSets", "outcome": "access_denied"}, 1},
		{"edgecert_route53_requests_total", map[string]string{"operation": "ChangeResourceRecordSets", "outcome": "ok"}, 1},
		{"edgecert_store_reloads_total", map[string]string{"result": "ok"}, 3},
		{"edgecert_http_requests_total", map[string]string{"route": "/bench", "status_class": "2xx"}, 1},
		{"edgecert_certificate_ready", map[string]string{"name": "example.test"}, 1},
		{"edgecert_certificate_last_failure_timestamp_seconds", map[string]string{"name": "example.test"}, 1},
	} {
		if got := value(tc.name, tc.labels); got < tc.min {
			t.Errorf("%s%v = %v; want at least %v", tc.name, tc.labels, got, tc.min)
		}
	}
	if got := value("edgecert_certificate_consecutive_failures", map[string]string{"name": "example.test"}); got != 0 {
		t.Errorf("consecutive failures after the revoke's successful replacement = %v; want 0", got)
	}
	if got := value("edgecert_certificate_not_after_timestamp_seconds", map[string]string{"name": "example.test"}); int64(got) != third.NotAfter.Unix() {
		t.Errorf("not_after = %v; want the served certificate's %d", got, third.NotAfter.Unix())
	}
	for _, stage := range []string{"insync", "authoritative"} {
		var n uint64
		for _, m := range families["edgecert_route53_propagation_seconds"].GetMetric() {
			if hasLabels(m, map[string]string{"stage": stage}) {
				n = m.GetHistogram().GetSampleCount()
			}
		}
		if n < 3 {
			t.Errorf("edgecert_route53_propagation_seconds{stage=%q} has %d observations; want one per order (3+)", stage, n)
		}
	}
	if n := len(families["edgecert_http_open_connections"].GetMetric()); n != 1 {
		t.Errorf("edgecert_http_open_connections series = %d; want 1", n)
	}
}

func pebbleCertStatus(t *testing.T, r *rig, serial string) string {
	t.Helper()
	res, err := r.ca.HTTPClient().Get(r.ca.ManagementURL() + "/cert-status-by-serial/" + serial)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st struct{ Status string }
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatalf("cert status %s: %d %v", serial, res.StatusCode, err)
	}
	return st.Status
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// Selectors and aggregations in the rules file: a metric with optional
// matchers, and "by (labels) (rate|increase(metric".
var (
	ruleSelector = regexp.MustCompile(`\b(edgecert_[a-z0-9_]+)(\{([^}]*)\})?`)
	ruleMatcher  = regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	ruleBy       = regexp.MustCompile(`by \(([^)]*)\) \((?:rate|increase)\((edgecert_[a-z0-9_]+)`)
)

// seriesMayBeAbsent are matchers whose series exist only once the event
// happened (an HTTP status is not known in advance); their label must still
// exist on the metric.
var seriesMayBeAbsent = map[string]bool{`edgecert_acme_requests_total{status="429"}`: true}

// checkRuleSeries reads monitoring/edgecert.rules.yml and checks that every
// metric it uses is in the scrape, with every label it matches or
// aggregates on, and — for equality matchers — a series with that value
// (the recorder creates those at zero), and that the per-certificate
// series carry the certificate's name. A renamed metric or label fails
// here, not on the pager.
func checkRuleSeries(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	b, err := os.ReadFile("../monitoring/edgecert.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, line := range strings.Split(string(b), "\n") {
		if s := strings.TrimSpace(line); !strings.HasPrefix(s, "#") && !strings.HasPrefix(s, "summary:") && !strings.HasPrefix(s, "description:") {
			exprs = append(exprs, s)
		}
	}
	rules := strings.Join(exprs, "\n")
	labelsOf := func(f *dto.MetricFamily) map[string]bool {
		ls := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				ls[lp.GetName()] = true
			}
		}
		return ls
	}
	used := 0
	for _, sel := range ruleSelector.FindAllStringSubmatch(rules, -1) {
		name := sel[1]
		f := fams[name]
		if f == nil {
			t.Errorf("the rules use %s; /metrics has no such metric", name)
			continue
		}
		used++
		ls := labelsOf(f)
		if strings.HasPrefix(name, "edgecert_certificate_") {
			found := false
			for _, m := range f.GetMetric() {
				found = found || hasLabels(m, map[string]string{"name": "example.test"})
			}
			if !found {
				t.Errorf("%s has no series for name=\"example.test\"", name)
			}
		}
		for _, m := range ruleMatcher.FindAllStringSubmatch(sel[3], -1) {
			label, op, val := m[1], m[2], m[3]
			if label == "job" || label == "instance" {
				continue // added by Prometheus at scrape time
			}
			if !ls[label] {
				t.Errorf("the rules select %s on label %q; its series have %v", name, label, ls)
				continue
			}
			if op != "=" || seriesMayBeAbsent[name+"{"+label+`="`+val+`"}`] {
				continue
			}
			found := false
			for _, s := range f.GetMetric() {
				found = found || hasLabels(s, map[string]string{label: val})
			}
			if !found {
				t.Errorf("the rules select %s{%s=%q}; /metrics has no such series", name, label, val)
			}
		}
	}
	for _, by := range ruleBy.FindAllStringSubmatch(rules, -1) {
		ls := labelsOf(fams[by[2]])
		for _, l := range strings.Split(by[1], ",") {
			if l = strings.TrimSpace(l); l != "job" && l != "instance" && !ls[l] {
				t.Errorf("the rules aggregate %s by %q; its series have %v", by[2], l, ls)
			}
		}
	}
	if used < 8 {
		t.Errorf("found %d metric uses in the rules file; the parser is broken", used)
	}
}

// TestAdminGuard: state-changing endpoints want POST with a JSON body,
// from loopback, or with the admin token when one is configured.
func TestAdminGuard(t *testing.T) {
	reached := 0
	next := func(w http.ResponseWriter, _ *http.Request) { reached++ }
	for _, tc := range []struct {
		name, remote, ctype, auth string
		token                     string
		want                      int
	}{
		{"loopback", "127.0.0.1:5000", "application/json", "", "", 200},
		{"loopback v6", "[::1]:5000", "application/json", "", "", 200},
		{"remote without token configured", "192.0.2.7:5000", "application/json", "", "", 403},
		{"remote, token configured, none sent", "192.0.2.7:5000", "application/json", "", "s3cret", 401},
		{"remote, wrong token", "192.0.2.7:5000", "application/json", "Bearer nope", "s3cret", 401},
		{"remote, right token", "192.0.2.7:5000", "application/json", "Bearer s3cret", "s3cret", 200},
		{"form post (a browser's cross-site request)", "127.0.0.1:5000", "application/x-www-form-urlencoded", "", "", 415},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &adminOps{mgr: new(issuer.Manager)} // guard only checks it is set
			if tc.token != "" {
				o.token, o.hasTk = sha256.Sum256([]byte(tc.token)), true
			}
			req := httptest.NewRequest(http.MethodPost, "/renew", strings.NewReader("{}"))
			req.RemoteAddr = tc.remote
			req.Header.Set("Content-Type", tc.ctype)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			before := reached
			w := httptest.NewRecorder()
			o.guard(next)(w, req)
			if got := w.Code; got != tc.want {
				t.Errorf("status = %d (%s); want %d", got, strings.TrimSpace(w.Body.String()), tc.want)
			}
			if (reached > before) != (tc.want == 200) {
				t.Errorf("handler reached = %v; want %v", reached > before, tc.want == 200)
			}
		})
	}
	// GET is refused by the mux pattern.
	mux := http.NewServeMux()
	(&adminOps{}).register(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/renew", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /renew = %d; want 405", w.Code)
	}
}

// TestOpsCommandUsage: the commands refuse bad usage before contacting
// anything, and say so when the daemon cannot be reached.
func TestOpsCommandUsage(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	dead := strings.TrimPrefix(ln.URL, "http://")
	ln.Close() // nothing listens there now
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"renew", "-h"}, exitOK, "Usage: edgecert renew"},
		{[]string{"revoke", "-h"}, exitOK, "Usage: edgecert revoke"},
		{[]string{"revoke", "a", "b", "-reason", "superseded"}, exitUsage, "exactly one certificate name"},
		{[]string{"revoke", "a", "-reason", "because"}, exitUsage, "explicit reason: one of"},
		{[]string{"revoke", "-admin-addr", dead, "a"}, exitUsage, "explicit reason"},
		{[]string{"renew", "-admin-addr", dead, "a"}, exitUsage, "is the daemon running?"},
		{[]string{"renew", "-nosuchflag"}, exitUsage, "flag provided but not defined"},
	} {
		code, out := cli(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("edgecert %s = %d %q; want %d containing %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}
}
