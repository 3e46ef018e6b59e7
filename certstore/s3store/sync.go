package s3store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/edgecert/edgecert/certstore"
)

// maxSyncBackoff bounds the wait between syncs while the bucket fails.
const maxSyncBackoff = 10 * time.Minute

// Sync brings this host in line with the bucket, for every name in
// Options.Names: one HEAD of the pointer per name when nothing changed;
// when its ETag moved, the pointer and then the version are read and a
// newer certificate is installed into the local store (crash-safe put,
// hot reload). A certificate this host obtained but could not publish
// (generation 0, from ACME) is published when it outlives the shared one.
// It returns the joined errors; what is served never changes on failure.
func (s *Store) Sync(ctx context.Context) error {
	var errs []error
	reached := false
	for _, name := range s.names {
		err := s.syncOne(ctx, name)
		if err == nil || !errors.Is(err, certstore.ErrUnavailable) {
			reached = true
		}
		if err != nil {
			s.storeError("sync", name, err)
			errs = append(errs, fmt.Errorf("s3store: sync %s: %w", name, err))
		}
	}
	if reached {
		s.mu.Lock()
		s.synced = s.now()
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (s *Store) syncOne(ctx context.Context, name string) error {
	cur, _ := s.local.Current(name)
	pending := cur != nil && cur.Meta.Generation == 0 && cur.Meta.Source == "acme"
	s.mu.Lock()
	seen := s.status(name).pointerETag
	s.mu.Unlock()
	if !pending && seen != "" {
		etag, err := s.head(ctx, s.pointerKey(name))
		if err == nil && etag == seen {
			return nil
		}
		if err != nil && !errors.Is(err, errNotFound) {
			return err
		}
	}
	p, etag, err := s.readPointer(ctx, name)
	switch {
	case errors.Is(err, errNotFound):
		if pending {
			return s.publishPending(ctx, name, cur)
		}
		return nil
	case err != nil:
		return err
	}
	if pending && cur.Serial() != p.Serial && !p.NotAfter.After(cur.NotAfter()) {
		return s.publishPending(ctx, name, cur)
	}
	if newer(p, cur) && !s.install(ctx, name, p) {
		return nil // logged; retried next time (the ETag is not recorded)
	}
	s.mu.Lock()
	s.status(name).pointerETag = etag
	s.mu.Unlock()
	return nil
}

// publishPending shares a certificate obtained without the bucket, under
// the next generation, and records that generation locally.
func (s *Store) publishPending(ctx context.Context, name string, e *certstore.Entry) error {
	chain, key := e.PEM()
	meta := e.Meta
	if err := s.share(ctx, nil, name, e.Serial(), e.NotAfter(), chain, key, meta); err != nil {
		return err
	}
	s.mu.Lock()
	meta.Generation = s.status(name).sharedGen
	s.mu.Unlock()
	_, err := s.local.PutCert(ctx, name, chain, key, meta)
	return err
}

// Run calls Sync every interval plus up to 10% jitter until ctx is done;
// while Sync fails it retries with a doubling backoff from interval/4 up
// to max(interval, 10 minutes), so an outage costs few requests and a
// recovery is noticed soon.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	failures := 0
	for {
		d := SyncDelay(interval, failures, rand.Float64)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.Sync(ctx); err != nil {
			failures++
		} else {
			failures = 0
		}
	}
}

// SyncDelay is the wait before the next sync: interval plus up to 10%
// jitter after a success; after failures consecutive failures,
// interval/4 doubled per further failure, capped at max(interval,
// maxSyncBackoff), plus the same jitter. rnd returns [0,1).
func SyncDelay(interval time.Duration, failures int, rnd func() float64) time.Duration {
	d := interval
	if failures > 0 {
		d = interval / 4
		limit := max(interval, maxSyncBackoff)
		for i := 1; i < failures && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
	}
	return d + time.Duration(rnd()*float64(d)/10)
}
