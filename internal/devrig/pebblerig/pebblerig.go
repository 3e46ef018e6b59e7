// Package pebblerig runs Pebble v2.10.3, Let's Encrypt's test CA, inside the
// calling process: the ACME API and Pebble's management API each behind an
// httptest TLS server with an HTTPS certificate generated at start (no fixture
// files, no external binaries). DNS-01 validation queries the DNS server named
// in Options.DNSAddr over TCP (internal/devrig/authdns).
//
// On top of Pebble the rig adds fault and feature switches used by tests and
// the offline demo: a CA without ARI (Options.NoARI), a CA that is down
// (CA.SetDown), forced ARI answers (CA.SetRenewalInfo), and counters of what
// the CA served (CA.Requests, CA.NewAccounts, CA.NewOrders).
//
// Environment: Pebble reads its knobs (PEBBLE_VA_NOSLEEP,
// PEBBLE_WFE_NONCEREJECT, PEBBLE_AUTHZREUSE, PEBBLE_VA_ALWAYS_VALID) from the
// process environment inside va.New and wfe.New. Start sets them from Options
// for the duration of those two calls, under a package mutex, and restores the
// previous values afterwards; a running CA never reads the environment again.
// Start is therefore safe to call from parallel tests, but code elsewhere in
// the process that reads those variables while a Start is in progress may see
// the rig's values.
package pebblerig

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Options configures Start. The zero value is usable except for DNSAddr.
type Options struct {
	// DNSAddr is the host:port of the DNS server Pebble's validator queries
	// (over TCP) for _acme-challenge TXT records. Required.
	DNSAddr string
	// Addr is where the ACME API listens; "" means "127.0.0.1:0" (a free
	// port). A fixed port such as "127.0.0.1:14000" works too. Use a
	// concrete address: the directory URLs are built from it.
	Addr string
	// MgmtAddr is where Pebble's management API listens; "" means
	// "127.0.0.1:0".
	MgmtAddr string
	// Profiles maps profile names to certificate validity. Nil means
	// {"default": 90 days, "shortlived": 160 hours}. Validity is truncated to
	// whole seconds and must be at least one second. Note that Pebble picks
	// a random profile for orders that name none.
	Profiles map[string]time.Duration
	// RequireEAB makes newAccount require external account binding
	// (directory meta externalAccountRequired).
	RequireEAB bool
	// EABKeys are the EAB MAC keys the CA accepts: key ID -> base64url
	// (unpadded) HMAC key.
	EABKeys map[string]string
	// NoARI removes renewalInfo from the directory and answers 404 on the
	// ARI path: a CA without ARI.
	NoARI bool
	// ARIRetryAfter, if positive, replaces the Retry-After Pebble sends with
	// every ARI answer (always 6 h), so that clients poll again soon and see
	// a window forced by SetRenewalInfo. Truncated to whole seconds, at
	// least one.
	ARIRetryAfter time.Duration
	// NonceReject is the percentage (0-99) of valid nonces Pebble rejects with
	// badNonce. 0, the default, never rejects (Pebble's own default is 5).
	NonceReject int
	// AuthzReuse is the percentage (0-100) of order identifiers for which
	// Pebble reuses an existing valid authorization of the account. 0, the
	// default, never reuses (Pebble's own default is 50), which keeps tests
	// deterministic.
	AuthzReuse int
	// TLSNames are extra DNS names or IP addresses for the HTTPS
	// certificate, which always covers localhost, pebble, 127.0.0.1, ::1 and
	// the hosts of Addr and MgmtAddr (e.g. a network namespace's address).
	TLSNames []string
	// Logger receives Pebble's log lines at debug level; nil discards them.
	Logger *slog.Logger
}

// NewOrder is one newOrder request the CA received, decoded from its JWS
// payload.
type NewOrder struct {
	Identifiers []string `json:"identifiers"` // identifier values, as sent
	Profile     string   `json:"profile"`
	Replaces    string   `json:"replaces"` // ARI certID of the replaced certificate, "" if none
	Status      int      `json:"status"`   // HTTP status the CA answered with
}

// CA is a running in-process Pebble. Its methods are safe for concurrent use.
type CA struct {
	api, mgmt  *httptest.Server
	pca        *ca.CAImpl
	client     *http.Client
	tlsRootPEM []byte
	noARI      bool
	ariRetry   time.Duration

	down     atomic.Bool
	requests atomic.Int64
	accounts atomic.Int64

	db    *db.MemoryStore
	apiMu sync.Mutex // held while one of Pebble's ACME handlers runs (serialize.go)

	mu       sync.Mutex       // guards orders, statuses and clients
	orders   []NewOrder       // every newOrder request, in arrival order
	statuses map[int]int      // response status code -> count
	clients  map[string]int64 // client IP -> requests
}

// DefaultProfiles is the profile set used when Options.Profiles is nil.
var DefaultProfiles = map[string]time.Duration{
	"default":    90 * 24 * time.Hour,
	"shortlived": 160 * time.Hour,
}

// envMu serialises Start's changes to the process environment.
var envMu sync.Mutex

// Start runs a new CA until Close. Errors name the failing step.
func Start(opts Options) (*CA, error) {
	pprof, err := opts.check()
	if err != nil {
		return nil, err
	}
	pca, mdb, w, err := newPebble(opts, pprof)
	if err != nil {
		return nil, err
	}
	certs, err := newTLSCerts(opts.tlsNames())
	if err != nil {
		return nil, err
	}
	c := &CA{
		pca:        pca,
		db:         mdb,
		tlsRootPEM: certs.rootPEM,
		noARI:      opts.NoARI,
		ariRetry:   opts.ARIRetryAfter,
		statuses:   make(map[int]int),
		clients:    make(map[string]int64),
		client: &http.Client{
			Transport: &http.Transport{TLSClientConfig: certs.clientConfig()},
			Timeout:   time.Minute,
		},
	}
	c.api, err = serveTLS(orDefault(opts.Addr), c.wrap(c.serialized(w.Handler())), certs)
	if err != nil {
		return nil, fmt.Errorf("pebblerig: acme listener: %w", err)
	}
	c.mgmt, err = serveTLS(orDefault(opts.MgmtAddr), w.ManagementHandler(), certs)
	if err != nil {
		c.api.Close()
		return nil, fmt.Errorf("pebblerig: management listener: %w", err)
	}
	return c, nil
}

// check validates opts and returns Pebble's profiles for it (Profiles, or
// DefaultProfiles when nil).
func (opts Options) check() (map[string]ca.Profile, error) {
	if opts.DNSAddr == "" {
		return nil, errors.New("pebblerig: Options.DNSAddr is required")
	}
	if opts.NonceReject < 0 || opts.NonceReject > 99 {
		return nil, fmt.Errorf("pebblerig: Options.NonceReject %d is not in 0..99", opts.NonceReject)
	}
	if opts.AuthzReuse < 0 || opts.AuthzReuse > 100 {
		return nil, fmt.Errorf("pebblerig: Options.AuthzReuse %d is not in 0..100", opts.AuthzReuse)
	}
	profiles := opts.Profiles
	if profiles == nil {
		profiles = DefaultProfiles
	}
	pprof := make(map[string]ca.Profile, len(profiles))
	for name, d := range profiles {
		if d < time.Second {
			return nil, fmt.Errorf("pebblerig: profile %q validity %v is shorter than 1s", name, d)
		}
		pprof[name] = ca.Profile{Description: name + " (" + d.String() + ")", ValidityPeriod: uint64(d / time.Second)}
	}
	if len(pprof) == 0 {
		return nil, errors.New("pebblerig: Options.Profiles is empty")
	}
	return pprof, nil
}

// newPebble builds Pebble's CA, memory store (with opts.EABKeys) and web
// front end, configured by opts through Pebble's environment variables.
func newPebble(opts Options, pprof map[string]ca.Profile) (*ca.CAImpl, *db.MemoryStore, wfe.WebFrontEndImpl, error) {
	plog := log.New(io.Discard, "", 0)
	if opts.Logger != nil {
		plog = slog.NewLogLogger(opts.Logger.With("component", "pebble").Handler(), slog.LevelDebug)
	}
	mdb := db.NewMemoryStore()
	for kid, key := range opts.EABKeys {
		if err := mdb.AddExternalAccountKeyByID(kid, key); err != nil {
			return nil, nil, wfe.WebFrontEndImpl{}, fmt.Errorf("pebblerig: EAB key %q: %w", kid, err)
		}
	}
	// keyAlg ecdsa keeps issuance fast; one intermediate, no alternate roots.
	pca := ca.New(plog, mdb, "", "ecdsa", 0, 1, pprof)

	var w wfe.WebFrontEndImpl
	withEnv(map[string]string{
		"PEBBLE_VA_NOSLEEP":      "1",
		"PEBBLE_VA_ALWAYS_VALID": "0",
		"PEBBLE_WFE_NONCEREJECT": strconv.Itoa(opts.NonceReject),
		"PEBBLE_AUTHZREUSE":      strconv.Itoa(opts.AuthzReuse),
	}, func() {
		// HTTP-01/TLS-ALPN-01 ports are unused: only DNS-01 is exercised.
		pva := va.New(plog, 0, 0, false, opts.DNSAddr, mdb)
		w = wfe.New(plog, mdb, pva, pca, []string{"pebble.letsencrypt.org"}, false, opts.RequireEAB, 0, 0)
	})
	return pca, mdb, w, nil
}

// tlsNames are the names of the CA's HTTPS certificate: opts.TLSNames and
// the hosts of Addr and MgmtAddr.
func (opts Options) tlsNames() []string {
	names := slices.Clone(opts.TLSNames)
	for _, a := range []string{opts.Addr, opts.MgmtAddr} {
		if host, _, err := net.SplitHostPort(a); err == nil && host != "" {
			names = append(names, host)
		}
	}
	return names
}

func orDefault(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// withEnv runs f with the environment variables in vars set, restoring the
// previous values afterwards.
func withEnv(vars map[string]string, f func()) {
	envMu.Lock()
	defer envMu.Unlock()
	type prev struct {
		val string
		ok  bool
	}
	saved := make(map[string]prev, len(vars))
	for k, v := range vars {
		old, ok := os.LookupEnv(k)
		saved[k] = prev{old, ok}
		os.Setenv(k, v) //nolint:errcheck // cannot fail for these names
	}
	defer func() {
		for k, p := range saved {
			if p.ok {
				os.Setenv(k, p.val) //nolint:errcheck
			} else {
				os.Unsetenv(k) //nolint:errcheck
			}
		}
	}()
	f()
}

func serveTLS(addr string, h http.Handler, certs *tlsCerts) (*httptest.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close() // the ephemeral listener httptest opened; replaced below
	s.Listener = l
	s.TLS = certs.serverConfig()
	s.StartTLS()
	return s, nil
}

// Close stops both listeners and waits for in-flight requests. Pebble's
// validator keeps one idle goroutine per CA that cannot be stopped.
func (c *CA) Close() {
	c.api.Close()
	c.mgmt.Close()
	c.client.CloseIdleConnections()
}

// DirectoryURL is the ACME directory, e.g. "https://127.0.0.1:40123/dir".
func (c *CA) DirectoryURL() string { return c.api.URL + wfe.DirectoryPath }

// ManagementURL is the base URL of Pebble's management API (/roots/0,
// /intermediates/0, /set-renewal-info/, ...).
func (c *CA) ManagementURL() string { return c.mgmt.URL }

// HTTPClient returns a client that trusts the rig's HTTPS certificate (and
// nothing else). The same client is returned on every call.
func (c *CA) HTTPClient() *http.Client { return c.client }

// TLSRootPEM is the PEM of the root that signed the rig's HTTPS certificate:
// what a daemon passes as -acme-ca-roots.
func (c *CA) TLSRootPEM() []byte { return bytes.Clone(c.tlsRootPEM) }

// IssuerRoots returns a pool with the root that issued certificates chain to.
// Pebble generates it at Start, so it differs per CA.
func (c *CA) IssuerRoots() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range c.IssuerRootCerts() {
		p.AddCert(r)
	}
	return p
}

// IssuerRootCerts returns the roots issued certificates chain to (one: the
// rig configures no alternate roots), e.g. to write them as PEM.
func (c *CA) IssuerRootCerts() []*x509.Certificate {
	return []*x509.Certificate{c.pca.GetRootCert(0).Cert}
}

// SetDown makes the ACME API answer every request with 503 (down) or
// serve normally again. The management API stays up.
func (c *CA) SetDown(down bool) { c.down.Store(down) }

// Requests reports how many requests the ACME API received, including those
// refused while down.
func (c *CA) Requests() int64 { return c.requests.Load() }

// RequestsByClient reports how many requests the ACME API received from
// each client IP address (the same requests as Requests).
func (c *CA) RequestsByClient() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.clients)
}

// NewAccounts reports how many newAccount requests the ACME API received.
func (c *CA) NewAccounts() int64 { return c.accounts.Load() }

// NewOrders returns every newOrder request received so far, oldest first.
func (c *CA) NewOrders() []NewOrder {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NewOrder, len(c.orders))
	copy(out, c.orders)
	return out
}

// CreatedOrders reports how many newOrder requests created an order (201).
func (c *CA) CreatedOrders() int {
	n := 0
	for _, o := range c.NewOrders() {
		if o.Status == http.StatusCreated {
			n++
		}
	}
	return n
}

// StatusCount reports how many ACME responses had the given HTTP status, e.g.
// 400 for (mostly) badNonce rejections.
func (c *CA) StatusCount(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statuses[status]
}

// SetRenewalInfo forces the ARI answer for the certificate in certPEM (its
// first CERTIFICATE block) to the window [start, end), through Pebble's
// management API. Pebble then sends it with Retry-After: 21600.
func (c *CA) SetRenewalInfo(ctx context.Context, certPEM []byte, start, end time.Time) error {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("pebblerig: set renewal info: no CERTIFICATE block in certPEM")
	}
	window, err := json.Marshal(map[string]any{
		"suggestedWindow": map[string]time.Time{"start": start.UTC(), "end": end.UTC()},
	})
	if err != nil {
		return fmt.Errorf("pebblerig: set renewal info: %w", err)
	}
	body, err := json.Marshal(map[string]string{
		"certificate": string(pem.EncodeToMemory(block)),
		"ariResponse": string(window),
	})
	if err != nil {
		return fmt.Errorf("pebblerig: set renewal info: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.mgmt.URL+"/set-renewal-info/", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("pebblerig: set renewal info: %w", err)
	}
	req.Header.Set("User-Agent", "pebblerig") // Pebble refuses requests without one
	req.Header.Set("Content-Type", "application/json")
	res, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("pebblerig: set renewal info: %w", err)
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096)) // best effort, for the error text
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("pebblerig: set renewal info: %s: %s", res.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
