package s3store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgecert/edgecert/certstore"
)

// leaseBody is the JSON of leases/<name>.json. Every write carries a fresh
// nonce, so two writes never have the same body (ETags are content hashes:
// an identical body would let a stale If-Match succeed).
type leaseBody struct {
	Holder     string `json:"holder"`
	Nonce      string `json:"nonce"`
	Generation uint64 `json:"generation"`
}

func newNonce() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// readLease returns the lease object of name, or nil if there is none.
func (s *Store) readLease(ctx context.Context, name string) (*object, *leaseBody, error) {
	o, err := s.get(ctx, s.leaseKey(name))
	if errors.Is(err, errNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var b leaseBody
	if err := json.Unmarshal(o.body, &b); err != nil {
		// A lease nobody can read is treated as held by "unknown" until it
		// goes stale; then it is taken over like any other.
		b = leaseBody{Holder: "unknown"}
	}
	return o, &b, nil
}

// writeLease writes body as the lease of name: created with If-None-Match
// when etag is "", else replaced with If-Match: etag. A refused condition
// is read back: if the lease holds our nonce, the write happened and only
// its response was lost (the SDK retried it, and the retry failed its own
// condition). It returns the new ETag, or errConditionFailed when someone
// else holds the lease.
func (s *Store) writeLease(ctx context.Context, name string, body leaseBody, etag string) (string, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	newETag, err := s.put(ctx, s.leaseKey(name), data, etag == "", etag)
	if !errors.Is(err, errConditionFailed) {
		return newETag, err
	}
	o, cur, rerr := s.readLease(ctx, name)
	switch {
	case rerr != nil:
		return "", rerr
	case cur != nil && cur.Nonce == body.Nonce:
		return o.etag, nil
	case etag != "" && cur != nil && o.etag == etag:
		// Unchanged since our If-Match: the refusal was a 409
		// ConditionalRequestConflict with a concurrent request, not a
		// change of holder. Retry later, as AWS advises.
		return "", fmt.Errorf("%w: lease unchanged after a refused write: %v", certstore.ErrUnavailable, err)
	}
	return "", err
}

// Lock waits for and takes the lease of certificate name: it creates the
// lease object with If-None-Match: *, or takes over a stale one (older
// than the TTL by the server's clock: its Date against LastModified) with
// If-Match on its ETag, with a generation above both the old lease's and
// the shared pointer's. While another host holds a fresh lease it polls
// (logging fleet.lease_waiting once per holder) until ctx is done. Then it
// re-reads the shared pointer and installs a newer certificate, and keeps
// the lease renewed until Release; if a renewal is refused and the lease
// reads back as someone else's, or it cannot be renewed before it lapses,
// the lease's Context is cancelled (fleet.lease_lost).
//
// Errors wrap certstore.ErrUnavailable when the bucket cannot be reached.
func (s *Store) Lock(ctx context.Context, name string) (*certstore.Lease, error) {
	waitingFor := ""
	seenGen := uint64(0)
	for first := true; ; first = false {
		l, holder, err := s.tryLock(ctx, name, first, &seenGen)
		if errors.Is(err, certstore.ErrSuperseded) {
			return nil, fmt.Errorf("s3store: lock %s: %w", name, err)
		}
		if err != nil {
			s.storeError("lock", name, err)
			return nil, fmt.Errorf("s3store: lock %s: %w", name, err)
		}
		if l != nil {
			return l, nil
		}
		if holder != waitingFor {
			waitingFor = holder
			s.event(name, "waiting")
			s.log.Info("fleet.lease_waiting", "name", name, "holder", holder, "instance", s.instance)
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("s3store: lock %s: waiting for %s: %w", name, holder, ctx.Err())
		case <-t.C:
		}
	}
}

// tryLock makes one attempt: the lease, or (nil, holder) while another
// holder's lease is fresh. *seenGen is the pointer generation of the first
// attempt; on later ones a higher generation means a peer published while
// we waited: it is installed and ErrSuperseded returned, without taking
// the lease.
func (s *Store) tryLock(ctx context.Context, name string, first bool, seenGen *uint64) (*certstore.Lease, string, error) {
	o, cur, err := s.readLease(ctx, name)
	if err != nil {
		return nil, "", err
	}
	ptr, _, err := s.readPointer(ctx, name)
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, "", err
	}
	var gen uint64
	if ptr != nil {
		gen = ptr.Generation
	}
	switch {
	case first:
		*seenGen = gen
	case gen > *seenGen:
		s.install(ctx, name, ptr)
		return nil, "", certstore.ErrSuperseded
	}
	etag, kind := "", "acquired"
	if cur != nil {
		if o.age <= s.ttl {
			s.sawHolder(name, cur.Holder)
			return nil, cur.Holder, nil
		}
		etag, kind = o.etag, "takeover"
		gen = max(gen, cur.Generation)
	}
	body := leaseBody{Holder: s.instance, Nonce: newNonce(), Generation: gen + 1}
	newETag, err := s.writeLease(ctx, name, body, etag)
	if errors.Is(err, errConditionFailed) {
		return nil, "another host", nil // someone else won the race; poll again
	}
	if err != nil {
		return nil, "", err
	}
	return s.granted(ctx, name, body, newETag, kind, o, cur), "", nil
}

// granted finishes taking the lease of name, written as body with ETag
// etag (kind "acquired" or "takeover" of prev, the stale lease object o):
// it installs the shared pointer if a peer published since, starts the
// renewal goroutine, records the status and logs fleet.lease_acquired.
func (s *Store) granted(ctx context.Context, name string, body leaseBody, etag, kind string, o *object, prev *leaseBody) *certstore.Lease {
	// Re-read the pointer now that we hold the lease: a peer may have
	// published since; install it before the caller decides to order.
	ptr, _, err := s.readPointer(ctx, name)
	if err != nil && !errors.Is(err, errNotFound) {
		s.storeError("lock", name, err)
	} else if ptr != nil {
		s.install(ctx, name, ptr)
	}
	var hist []certstore.Issuance
	if ptr != nil {
		hist = ptr.History
	}

	h := &heldLease{s: s, name: name, body: body, etag: etag, renewed: time.Now()}
	l := certstore.NewLease(certstore.LeaseInfo{Name: name, Generation: body.Generation, Holder: s.instance, Shared: true, History: hist}, h.release)
	h.lease = l
	h.stop, h.done = make(chan struct{}), make(chan struct{})
	go h.keep()

	s.mu.Lock()
	st := s.status(name)
	st.holder, st.holderSince, st.held = s.instance, s.now(), true
	s.mu.Unlock()
	s.event(name, kind)
	attrs := []any{"name", name, "generation", body.Generation, "instance", s.instance}
	if prev != nil {
		attrs = append(attrs, "previous_holder", prev.Holder, "stale_for", (o.age - s.ttl).Round(time.Second).String())
	}
	s.log.Info("fleet.lease_acquired", attrs...)
	return l
}

// sawHolder records the lease holder seen while waiting.
func (s *Store) sawHolder(name, holder string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status(name)
	if st.holder != holder {
		st.holder, st.holderSince = holder, s.now()
	}
	st.held = false
}

// heldLease keeps one granted lease renewed. Its fields are owned by the
// keep goroutine until done is closed; release waits for that.
type heldLease struct {
	s       *Store
	name    string
	lease   *certstore.Lease
	body    leaseBody
	etag    string
	renewed time.Time     // this host's clock when the last successful renewal was sent
	stop    chan struct{} // closed by release: stop renewing
	done    chan struct{} // closed when keep has returned
}

// keep renews the lease every RenewEvery with If-Match until the lease
// ends. A refusal that reads back as another holder loses the lease at
// once; failures to reach the bucket are retried until 3/4 of the TTL has
// passed since the last successful renewal was sent (by this host's
// monotonic clock), when the lease is given up as lost: peers judge by the
// server's clock, which cannot have seen a later write.
func (h *heldLease) keep() {
	defer close(h.done)
	s := h.s
	ctx := h.lease.Context()
	for {
		t := time.NewTimer(s.renewEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-h.stop:
			t.Stop()
			return
		case <-t.C:
		}
		sent := time.Now()
		body := leaseBody{Holder: s.instance, Nonce: newNonce(), Generation: h.body.Generation}
		rctx, cancel := context.WithTimeout(ctx, s.ttl/4)
		etag, err := s.writeLease(rctx, h.name, body, h.etag)
		cancel()
		switch {
		case err == nil:
			h.body, h.etag, h.renewed = body, etag, sent
			continue
		case ctx.Err() != nil:
			return // released meanwhile
		case errors.Is(err, errConditionFailed):
			h.lost("another host took the lease over")
			return
		}
		s.storeError("renew", h.name, err)
		if time.Since(h.renewed) > s.ttl*3/4 {
			h.lost(fmt.Sprintf("not renewed for %v: %v", time.Since(h.renewed).Round(time.Second), err))
			return
		}
	}
}

func (h *heldLease) lost(why string) {
	s := h.s
	s.mu.Lock()
	s.status(h.name).held = false
	s.mu.Unlock()
	s.event(h.name, "lost")
	s.log.Error("fleet.lease_lost", "name", h.name, "generation", h.body.Generation, "instance", s.instance, "why", why)
	h.lease.Lose(errors.New(why)) // last: whoever waits on the Context sees the log and status
}

// release deletes the lease object with If-Match on its last ETag, once
// the renewal goroutine has stopped.
func (h *heldLease) release(ctx context.Context) error {
	s := h.s
	close(h.stop)
	<-h.done
	if h.lease.Err() != nil {
		return nil // lost while stopping: the lease object is a peer's now
	}
	err := s.del(ctx, s.leaseKey(h.name), h.etag)
	s.mu.Lock()
	st := s.status(h.name)
	st.held, st.holder = false, ""
	s.mu.Unlock()
	if errors.Is(err, errConditionFailed) {
		err = nil // no longer ours: nothing to release
	}
	if err != nil {
		s.storeError("release", h.name, err)
		return fmt.Errorf("s3store: release %s: %w", h.name, err)
	}
	s.event(h.name, "released")
	s.log.Info("fleet.lease_released", "name", h.name, "generation", h.body.Generation, "instance", s.instance)
	return nil
}
