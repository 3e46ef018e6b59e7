package s3store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/certstore/certstoretest"
	"github.com/edgecert/edgecert/certstore/s3store/s3test"
	"github.com/edgecert/edgecert/internal/poll"
)

var testNames = []string{testName, "*.example.test"}

func publish(t *testing.T, h *host, l *certstore.Lease, chain, key []byte) (*certstore.Entry, error) {
	t.Helper()
	return h.PublishCert(testCtx(t), l, testName, chain, key, certstore.Meta{Names: testNames, Source: "acme"})
}

// TestPublishThenSync: a certificate published under a lease is served by
// the publisher with its generation; a new host with an empty store
// installs and serves it on its first Sync; further syncs of a quiet fleet
// cost one HEAD each.
func TestPublishThenSync(t *testing.T) {
	f := s3test.New(t)
	ca := certstoretest.NewCA(t)
	a := newHost(t, f, "host-a", nil)
	l := mustLock(t, a)
	chain, key := ca.Valid(t, testNames...)
	e, err := publish(t, a, l, chain, key)
	if err != nil {
		t.Fatalf("PublishCert: %v", err)
	}
	if e.Meta.Generation != 1 {
		t.Errorf("publisher serves generation %d, want 1", e.Meta.Generation)
	}
	l.Release(context.Background())

	b := newHost(t, f, "host-b", nil)
	if err := b.Sync(testCtx(t)); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got, ok := b.local.Current(testName)
	if !ok || got.Serial() != e.Serial() || got.Meta.Generation != 1 {
		t.Fatalf("new host serves %v, want serial %s generation 1", got, e.Serial())
	}
	if len(b.logs.Find("fleet.cert_installed", map[string]string{"serial": e.Serial(), "generation": "1"})) != 1 {
		t.Error("fleet.cert_installed not logged")
	}
	before := b.Stats().Requests
	for range 10 {
		if err := b.Sync(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	after := b.Stats().Requests
	if after["head"]-before["head"] != 10 || after["get"] != before["get"] || after["put"] != before["put"] {
		t.Errorf("10 quiet syncs cost %v -> %v, want exactly 10 HEADs", before, after)
	}
	if st := b.Status(); len(st) != 1 || st[0].SharedGeneration != 1 || st[0].ServingGeneration != 1 {
		t.Errorf("Status = %+v", st)
	}
}

// TestNextLeaseFencesPast: after a publish under generation 1, the next
// lease is generation 2; the history records the issuance; a publish
// under the superseded lease is refused and changes nothing.
func TestNextLeaseFencesPast(t *testing.T) {
	f := s3test.New(t)
	ca := certstoretest.NewCA(t)
	a := newHost(t, f, "host-a", nil)
	b := newHost(t, f, "host-b", nil)
	la := mustLock(t, a) // host-a stalls (no renewals) and is taken over
	f.Clock.Advance(2 * time.Minute)
	lb := mustLock(t, b)
	if lb.Generation() != 2 {
		t.Fatalf("takeover generation %d, want 2", lb.Generation())
	}
	chain, key := ca.Valid(t, testNames...)
	eb, err := publish(t, b, lb, chain, key)
	if err != nil {
		t.Fatal(err)
	}
	lb.Release(context.Background())

	// host-a wakes up, still believing it holds generation 1.
	chain2, key2 := ca.Valid(t, testNames...)
	if _, err := publish(t, a, la, chain2, key2); !errors.Is(err, ErrStaleGeneration) {
		t.Fatalf("publish under the superseded generation = %v, want ErrStaleGeneration", err)
	}
	if _, ok := a.local.Current(testName); ok {
		t.Error("the refused certificate is served")
	}
	lc := mustLock(t, a)
	if lc.Generation() != 3 {
		t.Errorf("next generation %d, want 3", lc.Generation())
	}
	if h := lc.Info().History; len(h) != 1 || h[0].Serial != eb.Serial() || !certstore.SameNames(h[0].Names, testNames) {
		t.Errorf("history %+v, want host-b's issuance", h)
	}
}

// TestPublishLostResponse: the pointer write happens but its response is
// lost; the retry fails its condition, the read-back shows our generation
// and serial, and the publish succeeds.
func TestPublishLostResponse(t *testing.T) {
	f := s3test.New(t)
	ca := certstoretest.NewCA(t)
	a := newHost(t, f, "host-a", nil)
	l := mustLock(t, a)
	f.DropNext("PUT", "current.json")
	chain, key := ca.Valid(t, testNames...)
	if _, err := publish(t, a, l, chain, key); err != nil {
		t.Fatalf("publish with a lost response: %v", err)
	}
	if n := f.Requests("PUT", "current.json"); n != 2 {
		t.Errorf("%d pointer PUTs, want 2", n)
	}
}

// TestPublishUnderLostLease: nothing is written once the lease is lost.
func TestPublishUnderLostLease(t *testing.T) {
	f := s3test.New(t)
	ca := certstoretest.NewCA(t)
	a := newHost(t, f, "host-a", nil)
	l := mustLock(t, a)
	l.Lose(errors.New("test"))
	chain, key := ca.Valid(t, testNames...)
	if _, err := publish(t, a, l, chain, key); !errors.Is(err, certstore.ErrLeaseLost) {
		t.Fatalf("publish under a lost lease = %v, want ErrLeaseLost", err)
	}
	if f.Requests("PUT", "current.json") != 0 {
		t.Error("the pointer was written under a lost lease")
	}
}

// TestEmergencyPublishedWhenBack: a certificate obtained while S3 was down
// is served at once with generation 0, and published by the first Sync
// after S3 is back; peers then install it.
func TestEmergencyPublishedWhenBack(t *testing.T) {
	f := s3test.New(t)
	ca := certstoretest.NewCA(t)
	a := newHost(t, f, "host-a", nil)
	f.Down.Store(true)
	chain, key := ca.Valid(t, testNames...)
	e, err := publish(t, a, nil, chain, key)
	if err != nil || e.Meta.Generation != 0 {
		t.Fatalf("unfenced publish = %v, %v; want served with generation 0", e, err)
	}
	if err := a.Sync(testCtx(t)); !errors.Is(err, certstore.ErrUnavailable) {
		t.Errorf("Sync with S3 down = %v, want ErrUnavailable", err)
	}
	if cur, _ := a.local.Current(testName); cur.Serial() != e.Serial() {
		t.Error("the served certificate changed while S3 was down")
	}
	f.Down.Store(false)
	if err := a.Sync(testCtx(t)); err != nil {
		t.Fatalf("Sync after S3 returned: %v", err)
	}
	if cur, _ := a.local.Current(testName); cur.Meta.Generation != 1 || cur.Serial() != e.Serial() {
		t.Errorf("after publishing, serving %v generation %d; want generation 1", cur, cur.Meta.Generation)
	}
	b := newHost(t, f, "host-b", nil)
	if err := b.Sync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if cur, ok := b.local.Current(testName); !ok || cur.Serial() != e.Serial() {
		t.Errorf("peer serves %v, want the emergency certificate", cur)
	}
}

// TestSyncNeverInstallsOlder: the pointer moves forward only, and a host
// never replaces what it serves by an older certificate.
func TestSyncNeverInstallsOlder(t *testing.T) {
	now := time.Now()
	ca := certstoretest.NewCA(t)
	mk := func(gen uint64, notAfter time.Time) *certstore.Entry {
		st, err := certstore.Open(t.Context(), t.TempDir(), certstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		chain, key := ca.Issue(t, testNames, now.Add(-time.Hour), notAfter)
		e, err := st.PutCert(t.Context(), testName, chain, key, certstore.Meta{Generation: gen})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	later, sooner := now.Add(48*time.Hour), now.Add(24*time.Hour)
	for _, tc := range []struct {
		name string
		p    pointer
		e    *certstore.Entry
		want bool
	}{
		{"nothing served", pointer{Generation: 1, NotAfter: sooner}, nil, true},
		{"newer generation", pointer{Generation: 3, NotAfter: sooner}, mk(2, later), true},
		{"older generation", pointer{Generation: 1, NotAfter: later}, mk(2, sooner), false},
		{"unpublished, shared lives longer", pointer{Generation: 1, NotAfter: later}, mk(0, sooner), true},
		{"unpublished, ours lives longer", pointer{Generation: 1, NotAfter: sooner}, mk(0, later), false},
	} {
		if got := newer(&tc.p, tc.e); got != tc.want {
			t.Errorf("%s: newer = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSyncDelay(t *testing.T) {
	half := func() float64 { return 0.5 }
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 63 * time.Second},
		{1, 15*time.Second + 750*time.Millisecond},
		{2, 31*time.Second + 500*time.Millisecond},
		{3, 63 * time.Second},
		{10, 10*time.Minute + 30*time.Second},
	} {
		if got := SyncDelay(time.Minute, tc.failures, half); got != tc.want {
			t.Errorf("SyncDelay(1m, %d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

// TestSyncBoundedWhenBlackholed: with S3 not answering at all, a sync
// fails within the request bound (logged and counted, so Run backs off)
// instead of hanging.
func TestSyncBoundedWhenBlackholed(t *testing.T) {
	f := s3test.New(t)
	a := newHost(t, f, "host-a", func(o *Options) { o.RequestTimeout = 50 * time.Millisecond })
	f.Hang.Store(true)
	ctx := testCtx(t)
	if err := a.Sync(ctx); !errors.Is(err, certstore.ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("Sync against a black hole = %v (test context %v), want ErrUnavailable from the request bound", err, ctx.Err())
	}
	if a.Stats().StoreErrors["sync"] != 1 || len(a.logs.Find("fleet.store_error", map[string]string{"op": "sync"})) != 1 {
		t.Error("the failed sync was not logged and counted")
	}
}

// TestWaiterInstallsWithoutTakingLease: a host waiting for the lease sees
// the holder publish; it installs the certificate and returns
// ErrSuperseded without writing the lease.
func TestWaiterInstallsWithoutTakingLease(t *testing.T) {
	f := s3test.New(t)
	ca := certstoretest.NewCA(t)
	a := newHost(t, f, "host-a", nil)
	b := newHost(t, f, "host-b", nil)
	la := mustLock(t, a)
	errc := make(chan error, 1)
	go func() {
		_, err := b.Lock(testCtx(t), testName)
		errc <- err
	}()
	poll.Until(t, 20*time.Second, "host-b waiting for the lease", func() bool {
		return b.Stats().LeaseEvents["waiting"] > 0
	})
	chain, key := ca.Valid(t, testNames...)
	e, err := publish(t, a, la, chain, key)
	if err != nil {
		t.Fatal(err)
	}
	la.Release(context.Background())
	if err := <-errc; !errors.Is(err, certstore.ErrSuperseded) {
		t.Fatalf("waiting Lock = %v, want ErrSuperseded", err)
	}
	if cur, ok := b.local.Current(testName); !ok || cur.Serial() != e.Serial() {
		t.Errorf("the waiter serves %v, want the published certificate", cur)
	}
	if n := f.Requests("PUT", b.leaseKey(testName)); n != 1 {
		t.Errorf("%d lease PUTs, want 1 (host-a's only)", n)
	}
}

// TestSyncRefusesForeignBundle: a pointer whose version holds another
// certificate than it names is refused; nothing is installed.
func TestSyncRefusesForeignBundle(t *testing.T) {
	f := s3test.New(t)
	ca := certstoretest.NewCA(t)
	a := newHost(t, f, "host-a", nil)
	l := mustLock(t, a)
	chain, key := ca.Valid(t, testNames...)
	if _, err := publish(t, a, l, chain, key); err != nil {
		t.Fatal(err)
	}
	p, etag, err := a.readPointer(testCtx(t), testName)
	if err != nil {
		t.Fatal(err)
	}
	p.Serial = "1234"
	body, _ := json.Marshal(p)
	if _, err := a.put(testCtx(t), a.pointerKey(testName), body, false, etag); err != nil {
		t.Fatal(err)
	}
	b := newHost(t, f, "host-b", nil)
	b.Sync(testCtx(t))
	if e, ok := b.local.Current(testName); ok {
		t.Errorf("installed %v from a pointer naming another serial", e)
	}
	if b.Stats().StoreErrors["sync"] == 0 {
		t.Error("the refusal was not counted")
	}
}
