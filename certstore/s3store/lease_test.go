package s3store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/certstore/s3store/s3test"
	"github.com/edgecert/edgecert/internal/poll"
)

// TestLockRace: N hosts race for one lease; exactly one holds it, every
// other one waits for it, and after its release exactly one more gets it.
func TestLockRace(t *testing.T) {
	f := s3test.New(t)
	const n = 8
	var hosts []*host
	for i := range n {
		hosts = append(hosts, newHost(t, f, fmt.Sprintf("host-%d", i), nil))
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	var mu sync.Mutex
	var held []*certstore.Lease
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			l, err := h.Lock(ctx, testName)
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, l)
			mu.Unlock()
		})
	}
	// Wait until one Lock has returned and n-1 distinct hosts wait. (A
	// loser may log waiting more than once, and may do so before the
	// winner's Lock has returned: counting events alone raced.)
	var got int
	poll.Until(t, 20*time.Second, "one host holding the lease and the others waiting", func() bool {
		waiting := 0
		for _, h := range hosts {
			if h.Stats().LeaseEvents["waiting"] > 0 {
				waiting++
			}
		}
		mu.Lock()
		got = len(held)
		mu.Unlock()
		return waiting >= n-1 && got >= 1
	})
	if got != 1 {
		t.Fatalf("%d holders while the others wait, want exactly 1", got)
	}
	first := held[0]
	if first.Generation() != 1 {
		t.Errorf("first generation %d, want 1", first.Generation())
	}
	if err := first.Release(context.Background()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	poll.Until(t, 20*time.Second, "a second holder after the release", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(held) >= 2
	})
	cancel()
	wg.Wait()
	if len(held) != 2 {
		t.Fatalf("%d holders after one release, want 2 in total", len(held))
	}
	// Nothing was published under generation 1 and its lease object was
	// deleted, so the generation may be reused (it can fence nothing).
	if g := held[1].Generation(); g != 1 {
		t.Errorf("second generation %d, want 1", g)
	}
	for _, l := range held[1:] {
		l.Release(context.Background())
	}
}

// TestTakeoverOnlyAfterServerExpiry: a holder that stopped renewing keeps
// the lease until the server's clock says it is older than the TTL, and
// not a moment before, whatever this host's clock says; the takeover gets
// the next generation.
func TestTakeoverOnlyAfterServerExpiry(t *testing.T) {
	f := s3test.New(t)
	a := newHost(t, f, "host-a", nil) // RenewEvery 1h: a frozen holder
	b := newHost(t, f, "host-b", nil)
	la := mustLock(t, a)
	ctx := testCtx(t)

	f.Clock.Advance(time.Minute) // exactly the TTL: still valid
	if l, holder, err := b.tryLock(ctx, testName, true, new(uint64)); l != nil || err != nil || holder != "host-a" {
		t.Fatalf("tryLock at the TTL = %v, %q, %v; want held by host-a", l, holder, err)
	}
	f.Clock.Advance(time.Second)
	lb, _, err := b.tryLock(ctx, testName, true, new(uint64))
	if err != nil || lb == nil {
		t.Fatalf("tryLock after the TTL = %v, %v; want the lease", lb, err)
	}
	defer lb.Release(context.Background())
	if lb.Generation() != la.Generation()+1 {
		t.Errorf("takeover generation %d, want %d", lb.Generation(), la.Generation()+1)
	}
	if len(b.logs.Find("fleet.lease_acquired", map[string]string{"previous_holder": "host-a"})) != 1 {
		t.Error("takeover not logged with previous_holder")
	}
	if b.Stats().LeaseEvents["takeover"] != 1 {
		t.Error("takeover not counted")
	}
}

// TestRenewalRefusedLosesLease: another host takes the lease over; the
// holder's next renewal is refused, reads back the new holder, and the
// lease's Context is cancelled with ErrLeaseLost. Release then leaves the
// new holder's lease alone.
func TestRenewalRefusedLosesLease(t *testing.T) {
	f := s3test.New(t)
	a := newHost(t, f, "host-a", func(o *Options) { o.RenewEvery = 5 * time.Millisecond })
	la := mustLock(t, a)
	// host-b writes its own lease over host-a's (as a takeover would).
	b := newHost(t, f, "host-b", nil)
	body, _ := json.Marshal(leaseBody{Holder: "host-b", Nonce: "n", Generation: 9})
	if _, err := b.put(testCtx(t), b.leaseKey(testName), body, false, ""); err != nil {
		t.Fatal(err)
	}
	waitDone(t, la.Context(), "losing the lease")
	if !errors.Is(la.Err(), certstore.ErrLeaseLost) {
		t.Errorf("lease error %v, want ErrLeaseLost", la.Err())
	}
	if len(a.logs.Find("fleet.lease_lost", map[string]string{"name": testName})) != 1 {
		t.Error("fleet.lease_lost not logged")
	}
	la.Release(context.Background())
	_, cur, err := b.readLease(testCtx(t), testName)
	if err != nil || cur == nil || cur.Holder != "host-b" {
		t.Errorf("after the loser's Release the lease is %+v, %v; want host-b's", cur, err)
	}
}

// TestRenewalKeepsLease: renewals go through and advance LastModified, so
// a waiting host does not take the lease over while the holder is alive.
func TestRenewalKeepsLease(t *testing.T) {
	f := s3test.New(t)
	a := newHost(t, f, "host-a", func(o *Options) { o.RenewEvery = 2 * time.Millisecond })
	la := mustLock(t, a)
	b := newHost(t, f, "host-b", nil)
	key := a.leaseKey(testName)
	for i := range 3 {
		f.Clock.Advance(50 * time.Second) // less than the TTL each time
		before := f.Requests("PUT", key)
		poll.Until(t, 20*time.Second, "a renewal after the advance", func() bool {
			return f.Requests("PUT", key) >= before+2
		})
		if l, holder, err := b.tryLock(testCtx(t), testName, true, new(uint64)); l != nil || err != nil || holder != "host-a" {
			t.Fatalf("round %d: tryLock = %v, %q, %v; want held by host-a", i, l, holder, err)
		}
	}
	if la.Err() != nil {
		t.Errorf("holder lost its lease: %v", la.Err())
	}
}

// TestIdenticalBodiesDoNotFoolCAS: the same instance (a restarted process
// with the same ID) takes its own stale lease over. Without a nonce and a
// generation the new body would equal the old one, and the old process's
// If-Match with the old ETag would still succeed. It must not.
func TestIdenticalBodiesDoNotFoolCAS(t *testing.T) {
	f := s3test.New(t)
	old := newHost(t, f, "host-a", nil)
	lo := mustLock(t, old)
	oldETag := f.ETag(old.leaseKey(testName))
	f.Clock.Advance(2 * time.Minute)
	restarted := newHost(t, f, "host-a", nil)
	ln := mustLock(t, restarted)
	if newETag := f.ETag(old.leaseKey(testName)); newETag == oldETag {
		t.Fatalf("the takeover by the same instance kept ETag %s", newETag)
	}
	// The old process's renewal, with its stale ETag, is refused.
	_, err := old.writeLease(testCtx(t), testName, leaseBody{Holder: "host-a", Nonce: newNonce(), Generation: lo.Generation()}, oldETag)
	if !errors.Is(err, errConditionFailed) {
		t.Errorf("renewal with the stale ETag = %v, want errConditionFailed", err)
	}
	if ln.Generation() <= lo.Generation() {
		t.Errorf("generation %d after takeover, want above %d", ln.Generation(), lo.Generation())
	}
}

// TestLostResponseReadBack: the lease write happens but its response is
// lost; the SDK retries, the retry fails its If-None-Match, and reading
// the lease back shows our nonce: we hold it.
func TestLostResponseReadBack(t *testing.T) {
	f := s3test.New(t)
	a := newHost(t, f, "host-a", nil)
	key := a.leaseKey(testName)
	f.DropNext("PUT", key)
	l := mustLock(t, a)
	if n := f.Requests("PUT", key); n != 2 {
		t.Errorf("%d PUTs of the lease, want 2 (the dropped one and the SDK's retry)", n)
	}
	if l.Generation() != 1 || l.Err() != nil {
		t.Errorf("lease generation %d, err %v; want a held generation 1", l.Generation(), l.Err())
	}
	_, cur, err := a.readLease(testCtx(t), testName)
	if err != nil || cur.Holder != "host-a" {
		t.Errorf("stored lease %+v, %v", cur, err)
	}
}

// TestConditionAnswers: If-Match on a missing key is 404 on AWS and 412 on
// gofakes3; both are "condition failed". A conditional delete with a stale
// ETag keeps the object (AWS).
func TestConditionAnswers(t *testing.T) {
	f := s3test.New(t)
	a := newHost(t, f, "host-a", nil)
	ctx := testCtx(t)
	for _, aws := range []bool{true, false} {
		f.AWS.Store(aws)
		_, err := a.put(ctx, a.key("missing"), []byte("x"), false, `"0123"`)
		if !errors.Is(err, errConditionFailed) {
			t.Errorf("AWS=%v: If-Match on a missing key = %v, want errConditionFailed", aws, err)
		}
	}
	f.AWS.Store(true)
	etag, err := a.put(ctx, a.key("obj"), []byte("one"), true, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.put(ctx, a.key("obj"), []byte("two"), true, ""); !errors.Is(err, errConditionFailed) {
		t.Errorf("If-None-Match on an existing key = %v, want errConditionFailed", err)
	}
	if err := a.del(ctx, a.key("obj"), `"stale"`); !errors.Is(err, errConditionFailed) {
		t.Errorf("conditional delete with a stale ETag = %v, want errConditionFailed", err)
	}
	if f.ETag(a.key("obj")) != etag {
		t.Error("the object changed after a refused conditional delete")
	}
	if err := a.del(ctx, a.key("obj"), etag); err != nil || f.ETag(a.key("obj")) != "" {
		t.Errorf("conditional delete with the right ETag = %v", err)
	}
}

// TestLockUnavailable: S3 refusing every request is ErrUnavailable, not
// contention; the caller decides (the issuer only orders in emergency).
func TestLockUnavailable(t *testing.T) {
	f := s3test.New(t)
	a := newHost(t, f, "host-a", nil)
	f.Down.Store(true)
	_, err := a.Lock(testCtx(t), testName)
	if !errors.Is(err, certstore.ErrUnavailable) {
		t.Fatalf("Lock with S3 down = %v, want ErrUnavailable", err)
	}
	if a.Stats().StoreErrors["lock"] == 0 || len(a.logs.Find("fleet.store_error", map[string]string{"op": "lock"})) == 0 {
		t.Error("store error not counted or logged")
	}
}

// TestCreateBlobRace: hosts creating the account key at once all end up
// with the same one.
func TestCreateBlobRace(t *testing.T) {
	f := s3test.New(t)
	var hosts []*host
	for i := range 5 {
		hosts = append(hosts, newHost(t, f, fmt.Sprint("host-", i), nil))
	}
	got := make([]string, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			b, err := h.CreateBlob(testCtx(t), "acme_account+key", []byte(fmt.Sprint("key-", i)))
			if err != nil {
				t.Error(err)
			}
			got[i] = string(b)
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] || got[i] == "" {
			t.Fatalf("hosts got different account keys: %q", got)
		}
		if b, err := hosts[i].local.Get(testCtx(t), "acme_account+key"); err != nil || string(b) != got[0] {
			t.Errorf("host %d local copy %q, %v", i, b, err)
		}
	}
}

// TestRenewalConflictRetried: a renewal answered 409
// ConditionalRequestConflict that left the lease unchanged is retried at
// the next tick; the lease is kept.
func TestRenewalConflictRetried(t *testing.T) {
	f := s3test.New(t)
	a := newHost(t, f, "host-a", func(o *Options) { o.RenewEvery = 2 * time.Millisecond })
	key := a.leaseKey(testName)
	la := mustLock(t, a)
	f.ConflictNext("PUT", key)
	before := f.Requests("PUT", key)
	poll.Until(t, 20*time.Second, "the refused renewal and two more", func() bool {
		return f.Requests("PUT", key) >= before+3 || la.Err() != nil
	})
	if la.Err() != nil {
		t.Fatalf("lease lost after a 409 conflict: %v", la.Err())
	}
	if a.Stats().StoreErrors["renew"] != 1 {
		t.Errorf("renew errors %d, want the one conflict", a.Stats().StoreErrors["renew"])
	}
}
