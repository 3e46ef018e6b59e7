package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// ACME actions (edgecert_acme_requests_total{action}). The issuer tags the
// context of each ACME call with WithACMEAction; requests it did not tag
// are classified by Transport as directory, new_nonce or unnamed.
const (
	ActionDirectory     = "directory"
	ActionNewNonce      = "new_nonce"
	ActionNewAccount    = "new_account"
	ActionNewOrder      = "new_order"
	ActionAuthorization = "authorization"
	ActionChallenge     = "challenge"
	ActionOrder         = "order"    // polling an order
	ActionFinalize      = "finalize" // finalize, its polling and the certificate download
	ActionRenewalInfo   = "renewal_info"
	ActionRevoke        = "revoke_cert"
	ActionUnnamed       = "unnamed"
)

type actionKey struct{}

// WithACMEAction returns ctx tagged with an ACME action (an Action*
// constant) for the requests Transport sees under it.
func WithACMEAction(ctx context.Context, action string) context.Context {
	return context.WithValue(ctx, actionKey{}, action)
}

// Transport returns an http.RoundTripper that sends through base (nil means
// http.DefaultTransport) and records every exchange with the CA at
// directoryURL: action, status and the time to the response headers. Nonce
// requests (HEAD) are new_nonce and a GET of directoryURL is directory,
// whatever the context says, since x/crypto makes them inside other calls.
// On a nil Recorder it returns base.
func (r *Recorder) Transport(base http.RoundTripper, directoryURL string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if r == nil {
		return base
	}
	return &acmeTransport{base: base, dir: directoryURL, r: r}
}

type acmeTransport struct {
	base http.RoundTripper
	dir  string
	r    *Recorder
}

func (t *acmeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	action := acmeAction(req, t.dir)
	start := time.Now()
	res, err := t.base.RoundTrip(req)
	status := "error"
	if err == nil {
		status = strconv.Itoa(res.StatusCode)
	}
	t.r.ACMERequest(action, status, time.Since(start))
	return res, err
}

func acmeAction(req *http.Request, dir string) string {
	switch {
	case req.Method == http.MethodHead:
		return ActionNewNonce
	case req.Method == http.MethodGet && req.URL.String() == dir:
		return ActionDirectory
	}
	if a, ok := req.Context().Value(actionKey{}).(string); ok && a != "" {
		return a
	}
	return ActionUnnamed
}
