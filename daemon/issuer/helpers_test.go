package issuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/logtest"

	"golang.org/x/crypto/acme/autocert"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/internal/devrig/authdns"
	"github.com/edgecert/edgecert/internal/devrig/authdns/authdnstest"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
)

// The real store satisfies the consumer-side interface.
var _ Store = (*certstore.Store)(nil)

// rig is one in-process CA with its authoritative DNS server.
type rig struct {
	ca  *pebblerig.CA
	dns *authdns.Server
}

func startRig(t *testing.T, opts pebblerig.Options) *rig {
	t.Helper()
	dns := authdnstest.Start(t)
	opts.DNSAddr = dns.Addr()
	if opts.Profiles == nil {
		opts.Profiles = map[string]time.Duration{"short": 10 * time.Minute, "default": 90 * 24 * time.Hour}
	}
	ca, err := pebblerig.Start(opts)
	if err != nil {
		t.Fatalf("pebblerig.Start: %v", err)
	}
	t.Cleanup(ca.Close)
	return &rig{ca: ca, dns: dns}
}

// memStore is an in-memory Store.
type memStore struct {
	mu    sync.Mutex
	blobs map[string][]byte
	certs map[string]*certstore.Entry
	n     int
	puts  int
}

func newMemStore() *memStore {
	return &memStore{blobs: map[string][]byte{}, certs: map[string]*certstore.Entry{}}
}

func (s *memStore) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[key]
	if !ok {
		return nil, autocert.ErrCacheMiss
	}
	return slices.Clone(b), nil
}

func (s *memStore) Put(_ context.Context, key string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobs[key] = slices.Clone(data)
	return nil
}

func (s *memStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blobs, key)
	return nil
}

func (s *memStore) PutCert(_ context.Context, name string, chainPEM, keyPEM []byte, meta certstore.Meta) (*certstore.Entry, error) {
	c, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	for _, n := range meta.Names {
		if !slices.Contains(c.Leaf.DNSNames, n) {
			return nil, fmt.Errorf("memstore: leaf does not cover %q", n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.puts++
	e := &certstore.Entry{Name: name, Version: fmt.Sprintf("%010d", s.n), Cert: &c, Meta: meta, Source: certstore.SourceStore}
	s.certs[name] = e
	return e, nil
}

func (s *memStore) CreateBlob(_ context.Context, key string, data []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.blobs[key]; ok {
		return slices.Clone(b), nil
	}
	s.blobs[key] = slices.Clone(data)
	return slices.Clone(data), nil
}

// Lock grants a lease at once (attempts for one name never overlap: the
// Manager serialises them).
func (s *memStore) Lock(_ context.Context, name string) (*certstore.Lease, error) {
	return certstore.NewLease(certstore.LeaseInfo{Name: name, Generation: 1, Holder: "mem"}, nil), nil
}

func (s *memStore) PublishCert(ctx context.Context, lease *certstore.Lease, name string, chainPEM, keyPEM []byte, meta certstore.Meta) (*certstore.Entry, error) {
	if lease != nil && lease.Err() != nil {
		return nil, lease.Err()
	}
	return s.PutCert(ctx, name, chainPEM, keyPEM, meta)
}

func (s *memStore) Current(name string) (*certstore.Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.certs[name]
	return e, ok
}

// dnsSolver publishes TXT values straight into authdns.
type dnsSolver struct {
	dns *authdns.Server

	mu        sync.Mutex // guards the fields below and TXT read-modify-write
	presented int
	cleaned   int
	// presentErr, if set, is returned by the Present call number failAt
	// (1-based) after it has written the value.
	presentErr error
	failAt     int
	// waitHook, if set, replaces Wait's visibility check.
	waitHook func(ctx context.Context) error
}

func (s *dnsSolver) record(domain string) string { return "_acme-challenge." + domain }

func (s *dnsSolver) Present(_ context.Context, domain, value string) error {
	if strings.HasPrefix(domain, "*.") {
		return fmt.Errorf("solver: got wildcard domain %q", domain)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.presented++
	s.dns.SetTXT(s.record(domain), 60, append(s.dns.TXT(s.record(domain)), value)...)
	if s.presentErr != nil && s.presented == s.failAt {
		return s.presentErr
	}
	return nil
}

func (s *dnsSolver) Wait(ctx context.Context, domain, value string) error {
	s.mu.Lock()
	hook := s.waitHook
	visible := slices.Contains(s.dns.TXT(s.record(domain)), value)
	s.mu.Unlock()
	if hook != nil {
		return hook(ctx)
	}
	if !visible {
		return fmt.Errorf("solver: %s not visible", value)
	}
	return nil
}

func (s *dnsSolver) CleanUp(_ context.Context, domain, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleaned++
	vals := slices.DeleteFunc(s.dns.TXT(s.record(domain)), func(v string) bool { return v == value })
	s.dns.SetTXT(s.record(domain), 60, vals...)
	return nil
}

func (s *dnsSolver) counts() (presented, cleaned int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presented, s.cleaned
}

// retryErr is a solver error asking for a pause, like route53's AccessDenied.
type retryErr struct{ d time.Duration }

func (e *retryErr) Error() string             { return "solver: access denied" }
func (e *retryErr) RetryAfter() time.Duration { return e.d }

// issued returns a fresh env whose store already holds the apex + wildcard
// certificate, obtained by a default manager, and the test's context.
func issued(t *testing.T, opts pebblerig.Options) (*env, context.Context) {
	t.Helper()
	e := newEnv(t, opts)
	ctx := testCtx(t)
	if err := e.manager(t, apexWild, nil).Obtain(ctx); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	return e, ctx
}

// env is one test's manager set-up.
type env struct {
	*rig
	store  Store
	solver *dnsSolver
	logs   *logtest.Recorder
}

func newEnv(t *testing.T, opts pebblerig.Options) *env {
	r := startRig(t, opts)
	e := &env{rig: r, store: newMemStore(), solver: &dnsSolver{dns: r.dns}, logs: logtest.New()}
	t.Cleanup(func() {
		if t.Failed() {
			e.logs.Dump(t)
		}
	})
	return e
}

// manager returns a Manager for domains on e's CA and store; mod adjusts
// the config.
func (e *env) manager(t *testing.T, domains []string, mod func(*Config)) *Manager {
	t.Helper()
	cfg := Config{
		DirectoryURL: e.ca.DirectoryURL(),
		HTTPClient:   e.ca.HTTPClient(),
		Email:        "ops@example.test",
		AcceptTOS:    true,
		Profile:      "short",
		Certs:        []CertSpec{{Domains: domains}},
		Store:        e.store,
		Solver:       e.solver,
		Logger:       slog.New(e.logs),
		OrderTimeout: 45 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// current returns the served entry for name or fails.
func current(t *testing.T, s Store, name string) *certstore.Entry {
	t.Helper()
	e, ok := s.Current(name)
	if !ok {
		t.Fatalf("store has no certificate %q", name)
	}
	return e
}

func leafPEM(e *certstore.Entry) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Cert.Certificate[0]})
}

// verifyChain checks e's chain against roots for every host.
func verifyChain(t *testing.T, e *certstore.Entry, roots *x509.CertPool, hosts ...string) {
	t.Helper()
	inter := x509.NewCertPool()
	for _, der := range e.Cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(c)
	}
	for _, h := range hosts {
		if _, err := e.Cert.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("verify %s: %v", h, err)
		}
	}
}

// runManager runs m.Run until the returned stop function is called; stop
// waits for Run to return.
func runManager(t *testing.T, m *Manager) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	var done atomic.Bool
	finished := make(chan error, 1)
	go func() { finished <- m.Run(ctx) }()
	return func() {
		if done.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-finished:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancellation")
		}
	}
}

func isErr[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}
