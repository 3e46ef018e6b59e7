package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore"
	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/certstore/certstoretest"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/logtest"
)

// sharedStore is a memStore whose leases are shared (as a fleet store's
// are): it records them, can refuse them as unavailable, and can run a
// hook inside Lock (a peer publishing while we wait).
type sharedStore struct {
	*memStore
	history []certstore.Issuance
	lockErr error
	onLock  func()
	// supersede makes the Lock that runs onLock answer ErrSuperseded (the
	// store installed a peer's certificate while waiting).
	supersede bool

	mu     sync.Mutex // guards leases
	leases []*certstore.Lease
}

func (s *sharedStore) Lock(_ context.Context, name string) (*certstore.Lease, error) {
	if s.lockErr != nil {
		return nil, s.lockErr
	}
	if s.onLock != nil {
		s.onLock()
		if s.supersede {
			return nil, fmt.Errorf("shared: %w", certstore.ErrSuperseded)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := certstore.NewLease(certstore.LeaseInfo{Name: name, Generation: uint64(len(s.leases) + 1), Holder: "host-a", Shared: true, History: s.history}, nil)
	s.leases = append(s.leases, l)
	return l, nil
}

func (s *sharedStore) lastLease() *certstore.Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.leases) == 0 {
		return nil
	}
	return s.leases[len(s.leases)-1]
}

// TestLeaseLostCancelsOrder: the lease is lost while the order waits for
// DNS; the order's context ends at once, nothing is published, the
// challenge records are cleaned up, and the lease is not released (it is a
// peer's now).
func TestLeaseLostCancelsOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebblerig.Options{})
	st := &sharedStore{memStore: newMemStore()}
	e.store = st
	inWait := make(chan struct{}, 4)
	e.solver.waitHook = func(ctx context.Context) error {
		inWait <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	m := e.manager(t, apexWild, nil)
	ctx := testCtx(t)
	errc := make(chan error, 1)
	go func() { errc <- m.Obtain(ctx) }()
	<-inWait
	st.lastLease().Lose(errors.New("taken over by host-b"))
	var err error
	select {
	case err = <-errc:
	case <-time.After(20 * time.Second):
		t.Fatal("the order did not end within 20s of losing the lease")
	}
	if !errors.Is(err, certstore.ErrLeaseLost) {
		t.Errorf("Obtain = %v, want an error wrapping ErrLeaseLost", err)
	}
	if st.puts != 0 {
		t.Errorf("%d certificates stored after the lease was lost, want 0", st.puts)
	}
	if p, c := e.solver.counts(); p == 0 || p != c {
		t.Errorf("presented %d, cleaned %d: want every record cleaned", p, c)
	}
}

// TestDuplicateGuard: with three recent non-ARI certificates for the same
// names in the shared history, a fourth is refused before any order; with
// two, or with ARI renewals, the order goes ahead.
func TestDuplicateGuard(t *testing.T) {
	t.Parallel()
	now := time.Now()
	dup := func(n int, ari bool, age time.Duration) []certstore.Issuance {
		var h []certstore.Issuance
		for i := range n {
			h = append(h, certstore.Issuance{Serial: fmt.Sprint(i), Names: []string{"*.example.test", "EXAMPLE.test."}, IssuedAt: now.Add(-age), ARI: ari})
		}
		return h
	}
	for _, tc := range []struct {
		name    string
		history []certstore.Issuance
		refused bool
	}{
		{"three recent", dup(3, false, time.Hour), true},
		{"two recent", dup(2, false, time.Hour), false},
		{"three ARI", dup(3, true, time.Hour), false},
		{"three old", dup(3, false, 8*24*time.Hour), false},
		{"other names", append(dup(2, false, time.Hour), certstore.Issuance{Names: []string{"example.test"}, IssuedAt: now}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, pebblerig.Options{})
			e.store = &sharedStore{memStore: newMemStore(), history: tc.history}
			err := e.manager(t, apexWild, nil).Obtain(testCtx(t))
			guarded := len(e.logs.Find("fleet.duplicate_guard", map[string]string{"name": "example.test"})) == 1
			switch {
			case tc.refused && (!errors.Is(err, errDuplicateGuard) || !guarded || len(e.ca.NewOrders()) != 0):
				t.Errorf("Obtain = %v, guard logged %v, %d orders; want refused before any order", err, guarded, len(e.ca.NewOrders()))
			case !tc.refused && (err != nil || guarded || e.ca.CreatedOrders() != 1):
				t.Errorf("Obtain = %v, guard logged %v, %d orders; want one order", err, guarded, e.ca.CreatedOrders())
			}
		})
	}
}

// TestPeerPublishedWhileWaiting: while this host waits for the lease, a
// peer publishes and the store installs its certificate; after Lock the
// manager serves it and orders nothing.
func TestPeerPublishedWhileWaiting(t *testing.T) {
	t.Parallel()
	for _, supersede := range []bool{false, true} {
		t.Run(fmt.Sprint("superseded=", supersede), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, pebblerig.Options{})
			ca := certstoretest.NewCA(t)
			st := &sharedStore{memStore: newMemStore(), supersede: supersede}
			st.onLock = func() {
				chain, key := ca.Valid(t, apexWild...)
				if _, err := st.PutCert(t.Context(), "example.test", chain, key, certstore.Meta{Names: apexWild, Profile: "short", Generation: 7}); err != nil {
					t.Error(err)
				}
			}
			e.store = st
			if err := e.manager(t, apexWild, nil).Obtain(testCtx(t)); err != nil {
				t.Fatalf("Obtain: %v", err)
			}
			if n := len(e.ca.NewOrders()); n != 0 {
				t.Errorf("%d orders, want 0: a peer's certificate was installed", n)
			}
			if c := current(t, st, "example.test"); c.Meta.Generation != 7 {
				t.Errorf("serving generation %d, want the peer's 7", c.Meta.Generation)
			}
		})
	}
}

// TestEmergencyOrderWhenStoreUnavailable: with the shared store
// unreachable, a certificate with time to spare is not ordered; one in
// emergency is, logged fleet.emergency_order, and stored unfenced.
func TestEmergencyOrderWhenStoreUnavailable(t *testing.T) {
	t.Parallel()
	e, ctx := issued(t, pebblerig.Options{})
	cur := current(t, e.store, "example.test")
	st := &sharedStore{memStore: e.store.(*memStore), lockErr: fmt.Errorf("s3: dial: %w", certstore.ErrUnavailable)}
	e.store = st
	before := e.ca.CreatedOrders()

	m := e.manager(t, apexWild, nil)
	if err := m.attempt(ctx, m.certs[0], reasonRenewal, cur); !errors.Is(err, certstore.ErrUnavailable) {
		t.Errorf("attempt with time to spare = %v, want ErrUnavailable", err)
	}
	if n := e.ca.CreatedOrders() - before; n != 0 {
		t.Errorf("%d orders without the lease outside an emergency, want 0", n)
	}

	life := cur.NotAfter().Sub(cur.Cert.Leaf.NotBefore)
	late := cur.NotAfter().Add(-life / 40)
	m = e.manager(t, apexWild, func(c *Config) { c.Now = func() time.Time { return late } })
	if err := m.attempt(ctx, m.certs[0], reasonRenewal, cur); err != nil {
		t.Fatalf("emergency attempt: %v", err)
	}
	if n := e.ca.CreatedOrders() - before; n != 1 {
		t.Errorf("%d orders in emergency, want 1", n)
	}
	if len(e.logs.Find("fleet.emergency_order", map[string]string{"name": "example.test"})) != 1 {
		t.Error("fleet.emergency_order not logged")
	}
	if c := current(t, st, "example.test"); c.Serial() == cur.Serial() {
		t.Error("the emergency certificate is not served")
	}
}

// TestAlreadyReplacedUnderSharedLease: the CA says the certificate already
// has a replacement (a peer is renewing it). Under a shared lease the
// manager backs off with errPeerRenewing and sends no order without
// "replaces"; alone (a local lease) it retries without, as before. (A fake
// CA: Pebble races on a replacement right after another one finalizes.)
func TestAlreadyReplacedUnderSharedLease(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name      string
		f         fence
		wantPeer  bool
		wantPosts int
	}{
		{"shared", fence{lease: certstore.NewLease(certstore.LeaseInfo{Name: "example.test", Generation: 3, Shared: true}, nil)}, true, 1},
		{"shared in emergency", fence{lease: certstore.NewLease(certstore.LeaseInfo{Name: "example.test", Generation: 3, Shared: true}, nil), emergency: true}, false, 2},
		{"alone", fence{lease: certstore.NewLease(certstore.LeaseInfo{Name: "example.test", Generation: 1}, nil)}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeNewOrderCA{t: t, pub: key.Public(), kid: "https://ca.test/acct/7", refuse: true, nonces: map[string]bool{}}
			var srv *httptest.Server
			srv = httptest.NewServer(f.handler(func() string { return srv.URL }))
			defer srv.Close()
			s := &session{
				client: &acme.Client{Key: key, DirectoryURL: srv.URL + "/dir", HTTPClient: srv.Client(), KID: acme.KeyID(f.kid), UserAgent: userAgent},
				key:    key, kid: f.kid,
				dir: &directory{NewNonce: srv.URL + "/nonce", NewOrder: srv.URL + "/order"},
			}
			logs := logtest.New()
			m, err := New(Config{DirectoryURL: "https://ca.test/dir", HTTPClient: srv.Client(), Store: newMemStore(), Solver: &dnsSolver{},
				Certs: []CertSpec{{Domains: apexWild}}, Logger: slog.New(logs)})
			if err != nil {
				t.Fatal(err)
			}
			replaces := "aki.serial"
			_, err = m.createOrder(t.Context(), s, m.certs[0], tc.f, &replaces)
			if got := errors.Is(err, errPeerRenewing); got != tc.wantPeer {
				t.Errorf("createOrder = %v; errPeerRenewing %v, want %v", err, got, tc.wantPeer)
			}
			f.mu.Lock()
			posts := f.posts
			f.mu.Unlock()
			if posts != tc.wantPosts {
				t.Errorf("%d newOrder requests, want %d", posts, tc.wantPosts)
			}
			if peer := len(logs.Find("fleet.peer_renewing", nil)) == 1; peer != tc.wantPeer {
				t.Errorf("fleet.peer_renewing logged %v, want %v", peer, tc.wantPeer)
			}
		})
	}
}

func TestInEmergency(t *testing.T) {
	ca := certstoretest.NewCA(t)
	chain, key := ca.Valid(t, "example.test")
	dir := t.TempDir()
	st, err := certstore.Open(t.Context(), dir, certstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := st.PutCert(t.Context(), "example.test", chain, key, certstore.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	nb, na := e.Cert.Leaf.NotBefore, e.NotAfter()
	life := na.Sub(nb)
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{nb, false},
		{na.Add(-life / 10), false},
		{na.Add(-life/20 + time.Second), true},
		{na.Add(time.Hour), true},
	} {
		if got := inEmergency(e, tc.at); got != tc.want {
			t.Errorf("inEmergency at %v before expiry = %v, want %v", na.Sub(tc.at), got, tc.want)
		}
	}
	if inEmergency(nil, nb) {
		t.Error("a missing certificate is not an emergency")
	}
}
