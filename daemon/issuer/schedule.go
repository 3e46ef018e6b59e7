package issuer

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
)

// Window is an ARI suggested renewal window, [Start, End).
type Window struct {
	Start, End time.Time
}

// Reasons RenewalTime gives for its choice.
const (
	// ReasonARI: a time inside the CA's ARI window (now if it has passed).
	ReasonARI = "ari"
	// ReasonLifetime: no ARI window; the lifetime rule.
	ReasonLifetime = "lifetime"
	// ReasonLifetimeCap: the ARI choice was later than the 1/20 cap.
	ReasonLifetimeCap = "lifetime_cap"
	// ReasonExpired: the certificate has expired (or has no lifetime).
	ReasonExpired = "expired"
)

// shortLifetime is the lifetime up to which half, not a third, of the
// lifetime is left at renewal.
const shortLifetime = 10 * 24 * time.Hour

// RenewalTime returns when a certificate valid from notBefore to notAfter
// should be renewed, and why. It is a pure function of its inputs; rnd
// returns uniform values in [0, 1) (nil means math/rand/v2.Float64).
//
//   - With an ARI window (non-empty), a uniformly random time inside it
//     (RFC 9773 section 4.2).
//   - Without one, when a third of the lifetime remains (half for
//     lifetimes of 10 days or less), moved earlier by a random jitter of up
//     to 1/20 of the lifetime.
//   - Never later than when 1/20 of the lifetime remains, whatever ARI says.
//   - A time in the past becomes now (renew now); an expired certificate
//     gives now with ReasonExpired.
func RenewalTime(notBefore, notAfter time.Time, ari *Window, now time.Time, rnd func() float64) (time.Time, string) {
	if rnd == nil {
		rnd = rand.Float64
	}
	life := notAfter.Sub(notBefore)
	if life <= 0 || !now.Before(notAfter) {
		return now, ReasonExpired
	}
	latest := notAfter.Add(-life / 20)
	var at time.Time
	var why string
	if ari != nil && ari.End.After(ari.Start) {
		at = ari.Start.Add(time.Duration(rnd() * float64(ari.End.Sub(ari.Start))))
		why = ReasonARI
		if at.After(latest) {
			at, why = latest, ReasonLifetimeCap
		}
	} else {
		remain := life / 3
		if life <= shortLifetime {
			remain = life / 2
		}
		at = notAfter.Add(-remain).Add(-time.Duration(rnd() * float64(life/20)))
		why = ReasonLifetime
	}
	if at.Before(now) {
		at = now
	}
	return at, why
}

// Backoff bounds.
const (
	// BackoffMin is the delay after the first failure.
	BackoffMin = time.Minute
	// BackoffMax caps the exponential part.
	BackoffMax = 6 * time.Hour
	// maxRetryAfter caps what a server's Retry-After can impose.
	maxRetryAfter = 7 * 24 * time.Hour
	// rateLimitDefault is the wait after a rate-limit error without
	// Retry-After.
	rateLimitDefault = time.Hour
)

// Backoff returns the delay before the next attempt after failures
// consecutive failures (values below 1 count as 1): BackoffMin doubling per
// failure, plus up to 50% random jitter, capped at BackoffMax; but never
// less than retryAfter (itself capped at 7 days). rnd returns uniform values
// in [0, 1) (nil means math/rand/v2.Float64). It is a pure function.
func Backoff(failures int, retryAfter time.Duration, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	d := BackoffMin
	for i := 1; i < failures && d < BackoffMax; i++ {
		d *= 2
	}
	d += time.Duration(rnd() * float64(d) / 2)
	d = min(d, BackoffMax)
	return max(d, min(retryAfter, maxRetryAfter))
}

// retryAfterOf extracts how long the server (or the solver) asked us to
// wait before retrying: an error with a RetryAfter() method, an ACME
// rate-limit error (1 hour if it has no Retry-After), or any ACME error
// response carrying Retry-After. 0 means no such request.
func retryAfterOf(err error) time.Duration {
	var d time.Duration
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		d = ra.RetryAfter()
	}
	var ae *acme.Error
	if errors.As(err, &ae) {
		if v, ok := acme.RateLimit(ae); ok {
			if v <= 0 {
				v = rateLimitDefault
			}
			d = max(d, v)
		}
		if ae.Header != nil {
			d = max(d, parseRetryAfter(ae.Header.Get("Retry-After"), time.Now()))
		}
	}
	return d
}

// parseRetryAfter parses a Retry-After value: delay seconds or an HTTP date
// (relative to now). Unparseable or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil || !t.After(now) {
		return 0
	}
	return t.Sub(now)
}
