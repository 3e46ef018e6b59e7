package issuer

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestRenewalTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	d90, d6 := 90*day, 6*day
	tests := []struct {
		name    string
		nb, na  time.Time
		ari     *Window
		now     time.Time
		u       float64
		wantAt  time.Time
		wantWhy string
	}{
		{"90d: a third left, no jitter", t0, t0.Add(d90), nil, t0, 0, t0.Add(60 * day), ReasonLifetime},
		{"90d: 3/4 jitter", t0, t0.Add(d90), nil, t0, 0.75, t0.Add(60*day - d90/20*3/4), ReasonLifetime},
		{"90d: half jitter", t0, t0.Add(d90), nil, t0, 0.5, t0.Add(60*day - d90/40), ReasonLifetime},
		{"6d: half left (<=10d rule)", t0, t0.Add(d6), nil, t0, 0, t0.Add(3 * day), ReasonLifetime},
		{"exactly 10d: half left", t0, t0.Add(10 * day), nil, t0, 0, t0.Add(5 * day), ReasonLifetime},
		{"11d: a third left", t0, t0.Add(11 * day), nil, t0, 0, t0.Add(11 * day * 2 / 3), ReasonLifetime},
		{"10m: half left", t0, t0.Add(10 * time.Minute), nil, t0, 0, t0.Add(5 * time.Minute), ReasonLifetime},
		{"lifetime time passed: now", t0, t0.Add(d90), nil, t0.Add(70 * day), 0, t0.Add(70 * day), ReasonLifetime},
		{"ari start", t0, t0.Add(d90), &Window{t0.Add(50 * day), t0.Add(52 * day)}, t0, 0, t0.Add(50 * day), ReasonARI},
		{"ari middle", t0, t0.Add(d90), &Window{t0.Add(50 * day), t0.Add(52 * day)}, t0, 0.5, t0.Add(51 * day), ReasonARI},
		{"ari inside window: random time may be past -> now", t0, t0.Add(d90), &Window{t0.Add(50 * day), t0.Add(52 * day)}, t0.Add(51 * day), 0.25, t0.Add(51 * day), ReasonARI},
		{"ari inside window: future part kept", t0, t0.Add(d90), &Window{t0.Add(50 * day), t0.Add(52 * day)}, t0.Add(51 * day), 0.75, t0.Add(51*day + 12*time.Hour), ReasonARI},
		{"ari window in the past: now", t0, t0.Add(d90), &Window{t0.Add(-2 * time.Hour), t0.Add(-time.Hour)}, t0.Add(time.Minute), 0.9, t0.Add(time.Minute), ReasonARI},
		{"ari later than 1/20 cap", t0, t0.Add(d90), &Window{t0.Add(88 * day), t0.Add(89 * day)}, t0, 0, t0.Add(d90 - d90/20), ReasonLifetimeCap},
		{"ari after expiry: cap", t0, t0.Add(d6), &Window{t0.Add(7 * day), t0.Add(8 * day)}, t0, 0.3, t0.Add(d6 - d6/20), ReasonLifetimeCap},
		{"ari window empty: lifetime rule", t0, t0.Add(d90), &Window{t0.Add(50 * day), t0.Add(50 * day)}, t0, 0, t0.Add(60 * day), ReasonLifetime},
		{"expired", t0, t0.Add(d90), nil, t0.Add(d90), 0, t0.Add(d90), ReasonExpired},
		{"no lifetime", t0, t0, nil, t0.Add(-time.Hour), 0, t0.Add(-time.Hour), ReasonExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, why := RenewalTime(tc.nb, tc.na, tc.ari, tc.now, fixed(tc.u))
			if !at.Equal(tc.wantAt) || why != tc.wantWhy {
				t.Errorf("RenewalTime = %v %q, want %v %q", at, why, tc.wantAt, tc.wantWhy)
			}
		})
	}
}

// TestRenewalTimeBounds checks invariants over many random draws: never
// after the 1/20 cap, never before now, inside the ARI window when it is
// in the future and before the cap, and inside the jitter band otherwise.
func TestRenewalTimeBounds(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, life := range []time.Duration{5 * time.Minute, 160 * time.Hour, 10 * 24 * time.Hour, 45 * 24 * time.Hour, 90 * 24 * time.Hour} {
		na := t0.Add(life)
		cap := na.Add(-life / 20)
		remain := life / 3
		if life <= 10*24*time.Hour {
			remain = life / 2
		}
		ideal := na.Add(-remain)
		win := &Window{t0.Add(life / 2), t0.Add(life * 3 / 4)}
		for i := range 500 {
			at, _ := RenewalTime(t0, na, nil, t0, nil)
			if at.After(ideal) || at.Before(ideal.Add(-life/20)) {
				t.Fatalf("life %v draw %d: %v outside jitter band [%v, %v]", life, i, at, ideal.Add(-life/20), ideal)
			}
			at, why := RenewalTime(t0, na, win, t0, nil)
			if why != ReasonARI || at.Before(win.Start) || !at.Before(win.End) || at.After(cap) {
				t.Fatalf("life %v draw %d: ARI choice %v %q outside window %v..%v or after cap %v", life, i, at, why, win.Start, win.End, cap)
			}
		}
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		ra       time.Duration
		u        float64
		want     time.Duration
	}{
		{0, 0, 0, time.Minute},
		{1, 0, 0, time.Minute},
		{1, 0, 0.5, time.Minute + 15*time.Second},
		{1, 0, 0.999, time.Minute + time.Duration(0.999*float64(30*time.Second))},
		{2, 0, 0, 2 * time.Minute},
		{3, 0, 0, 4 * time.Minute},
		{5, 0, 0, 16 * time.Minute},
		{9, 0, 0, 256 * time.Minute},
		{9, 0, 0.9, BackoffMax}, // 256m * 1.45 > 6h: capped
		{10, 0, 0, BackoffMax},
		{1000, 0, 0.99, BackoffMax},
		{1, time.Hour, 0, time.Hour},            // Retry-After floor
		{1, 30 * time.Second, 0, time.Minute},   // shorter Retry-After does not shorten
		{10, 24 * time.Hour, 0, 24 * time.Hour}, // above the cap: honoured
		{1, 30 * 24 * time.Hour, 0, 7 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d_%v_%v", tc.failures, tc.ra, tc.u), func(t *testing.T) {
			if got := Backoff(tc.failures, tc.ra, fixed(tc.u)); got != tc.want {
				t.Errorf("Backoff(%d, %v, %v) = %v, want %v", tc.failures, tc.ra, tc.u, got, tc.want)
			}
		})
	}
	// Growth is monotonic without jitter and every value is within bounds
	// with random jitter.
	prev := time.Duration(0)
	for n := 1; n < 20; n++ {
		d := Backoff(n, 0, fixed(0))
		if d < prev {
			t.Errorf("Backoff(%d) = %v < Backoff(%d) = %v", n, d, n-1, prev)
		}
		prev = d
		for range 100 {
			if r := Backoff(n, 0, nil); r < d || r > BackoffMax || r > d*3/2 {
				t.Fatalf("Backoff(%d) with jitter = %v, want in [%v, min(%v, %v)]", n, r, d, d*3/2, BackoffMax)
			}
		}
	}
}

func TestRetryAfterOf(t *testing.T) {
	hdr := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	rl := "urn:ietf:params:acme:error:rateLimited"
	future := time.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name     string
		err      error
		min, max time.Duration
	}{
		{"plain error", fmt.Errorf("boom"), 0, 0},
		{"solver RetryAfter", &retryErr{time.Hour}, time.Hour, time.Hour},
		{"wrapped solver RetryAfter", fmt.Errorf("issuer: present: %w", &retryErr{time.Hour}), time.Hour, time.Hour},
		{"rate limit with Retry-After", &acme.Error{StatusCode: 429, ProblemType: rl, Header: hdr("120")}, 2 * time.Minute, 2 * time.Minute},
		{"wrapped rate limit", fmt.Errorf("x: %w", &acme.Error{StatusCode: 429, ProblemType: rl, Header: hdr("90")}), 90 * time.Second, 90 * time.Second},
		{"rate limit without Retry-After", &acme.Error{StatusCode: 429, ProblemType: rl}, time.Hour, time.Hour},
		{"503 with HTTP date", &acme.Error{StatusCode: 503, Header: hdr(future)}, 119 * time.Minute, 2 * time.Hour},
		{"503 without Retry-After", &acme.Error{StatusCode: 503, Header: http.Header{}}, 0, 0},
		{"joined errors", fmt.Errorf("a: %w", errors.Join(fmt.Errorf("x"), &retryErr{3 * time.Hour})), 3 * time.Hour, 3 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := retryAfterOf(tc.err)
			if got < tc.min || got > tc.max {
				t.Errorf("retryAfterOf = %v, want in [%v, %v]", got, tc.min, tc.max)
			}
		})
	}
}

func TestPollInterval(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, 6 * time.Hour},
		{time.Second, time.Minute},
		{2 * time.Hour, 2 * time.Hour},
		{21600 * time.Second, 6 * time.Hour},
		{72 * time.Hour, 24 * time.Hour},
	} {
		if got := pollInterval(tc.in); got != tc.want {
			t.Errorf("pollInterval(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCertID(t *testing.T) {
	aki := []byte{0x69, 0x88, 0x5b, 0x6b, 0x87, 0x46, 0x40, 0x41, 0xe1, 0xb3, 0x7b, 0x84, 0x7b, 0xa0, 0xae, 0x2c, 0xde, 0x01, 0xc8, 0xd4}
	// RFC 9773 section 4.1 example: serial 0x87654321 needs a leading zero.
	serial, _ := new(big.Int).SetString("0087654321", 16)
	got, err := CertID(&x509.Certificate{AuthorityKeyId: aki, SerialNumber: serial})
	if want := "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"; err != nil || got != want {
		t.Errorf("CertID = %q, %v, want %q", got, err, want)
	}
	got, err = CertID(&x509.Certificate{AuthorityKeyId: aki, SerialNumber: big.NewInt(0x1234)})
	if !strings.HasSuffix(got, ".EjQ") || err != nil {
		t.Errorf("CertID(serial 0x1234) = %q, %v, want suffix .EjQ", got, err)
	}
	if _, err := CertID(&x509.Certificate{SerialNumber: big.NewInt(1)}); err == nil {
		t.Error("CertID without AKI: got nil error")
	}
}
