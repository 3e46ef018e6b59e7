package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
)

// maxBadNonce bounds the badNonce retries of one request: a CA rejecting
// half its nonces still fails a request only once in a million.
const maxBadNonce = 20

// badNonceRetry is the one badNonce policy, for acme.Client (retryBackoff)
// and the hand-written newOrderReplaces alike: retry n (from 1) waits
// briefly; after maxBadNonce retries it gives up (false).
func badNonceRetry(n int) (time.Duration, bool) {
	if n > maxBadNonce {
		return 0, false
	}
	return 10*time.Millisecond + time.Duration(mrand.IntN(50))*time.Millisecond, true
}

// retryBackoff is the acme.Client retry policy for single requests: badNonce
// (the only 400 x/crypto retries) as badNonceRetry; 429 and 5xx at most
// twice, briefly. A Retry-After over 10 s ends the retries so the
// scheduler's Backoff honours it instead of blocking an order.
func retryBackoff(n int, _ *http.Request, res *http.Response) time.Duration {
	jitter := time.Duration(mrand.IntN(50)) * time.Millisecond
	if res != nil && res.StatusCode == http.StatusBadRequest {
		d, _ := badNonceRetry(n) // 0 ends the retries
		return d
	}
	if n > 2 {
		return 0
	}
	var ra time.Duration
	if res != nil {
		ra = parseRetryAfter(res.Header.Get("Retry-After"), time.Now())
	}
	switch {
	case ra > 10*time.Second:
		return 0
	case ra > 0:
		return ra + jitter
	}
	return time.Duration(n)*500*time.Millisecond + jitter
}

// getJSON GETs url and decodes a 200 answer into v; other answers become an
// *acme.Error (with the response header, for Retry-After).
func (m *Manager) getJSON(ctx context.Context, url string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	res, err := m.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return res.Header, problemError(res)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(v); err != nil {
		return res.Header, fmt.Errorf("decode %s: %w", url, err)
	}
	return res.Header, nil
}

// problemError turns an error response into an *acme.Error (RFC 7807
// problem document when there is one).
func problemError(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10)) // a short read still gives a usable error
	var p struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	}
	e := &acme.Error{StatusCode: res.StatusCode, Header: res.Header}
	if json.Unmarshal(b, &p) == nil && p.Type != "" {
		e.ProblemType, e.Detail = p.Type, p.Detail
	} else {
		e.Detail = strings.TrimSpace(string(b))
		if e.Detail == "" {
			e.Detail = res.Status
		}
	}
	return e
}

// isProblem reports whether err is an ACME error of the given type suffix
// (e.g. ":accountDoesNotExist").
func isProblem(err error, suffix string) bool {
	var ae *acme.Error
	return errors.As(err, &ae) && strings.HasSuffix(strings.ToLower(ae.ProblemType), strings.ToLower(suffix))
}
