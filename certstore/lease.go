package certstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Lease errors. Lease.Context is cancelled with one of them as its cause.
var (
	// ErrLeaseLost means another process took the lease over, or it could
	// not be renewed before it lapsed: whatever was started under it must
	// stop and must not be published.
	ErrLeaseLost = errors.New("certstore: lease lost")
	// ErrLeaseReleased means Release was called.
	ErrLeaseReleased = errors.New("certstore: lease released")
	// ErrSuperseded is returned by a shared store's Lock when, while it
	// waited, a peer published a newer certificate, which the store then
	// installed: the caller re-checks what it serves instead of ordering.
	ErrSuperseded = errors.New("certstore: a peer published a newer certificate while waiting for the lease")
	// ErrUnavailable marks a failure to reach a shared store (network,
	// throttling, server errors) as opposed to a refusal such as
	// contention. Implementations wrap it; callers test with errors.Is.
	ErrUnavailable = errors.New("certstore: shared store unavailable")
)

// Issuance is one certificate in a store's issuance history, used to stay
// under a CA's limit on duplicate certificates for one set of names.
type Issuance struct {
	Serial   string    `json:"serial"`
	Names    []string  `json:"names"`
	IssuedAt time.Time `json:"issued_at"`
	// ARI is true when the order replaced a certificate through ARI
	// (RFC 9773 "replaces"), which CAs exempt from duplicate limits.
	ARI bool `json:"ari,omitempty"`
}

// SameNames reports whether a and b are the same set of names
// (case-insensitive, trailing dots ignored, order and duplicates ignored).
func SameNames(a, b []string) bool {
	norm := func(s []string) []string {
		out := make([]string, len(s))
		for i, v := range s {
			out[i] = strings.ToLower(strings.TrimSuffix(v, "."))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

// LeaseInfo describes a lease when it is granted.
type LeaseInfo struct {
	// Name is the certificate the lease is for.
	Name string
	// Generation is the fencing token: it is greater than the generation
	// of every certificate published for Name and of every earlier lease
	// that was lost or taken over (a lease released without publishing may
	// see its generation granted again: nothing can be published under it). A certificate is published under the generation it was
	// ordered with; a store refuses a generation that is not newer than
	// the one it has.
	Generation uint64
	// Holder is the instance holding the lease.
	Holder string
	// Shared is true when other processes can hold leases for Name (a
	// fleet store). When false, a CA's "alreadyReplaced" cannot mean that
	// a peer is renewing.
	Shared bool
	// History is the store's issuance history for Name as read when the
	// lease was granted (nil for a store that keeps none).
	History []Issuance
}

// Lease is the exclusive right to order and publish one certificate. It is
// granted by a store's Lock and ends with Release, or when the store
// finds it lost. Its methods are safe for concurrent use.
type Lease struct {
	info    LeaseInfo
	ctx     context.Context
	cancel  context.CancelCauseFunc
	release func(context.Context) error // called at most once, by Release

	once sync.Once
	err  error // result of release; written once under once
}

// NewLease returns a held lease described by info, for implementations
// of Lock. release gives the lease up in the store (nil: nothing to do);
// Release calls it at most once, and not after Lose.
func NewLease(info LeaseInfo, release func(context.Context) error) *Lease {
	ctx, cancel := context.WithCancelCause(context.Background())
	info.History = slices.Clone(info.History)
	return &Lease{info: info, ctx: ctx, cancel: cancel, release: release}
}

// Info returns what the lease was granted with.
func (l *Lease) Info() LeaseInfo { return l.info }

// Generation is the lease's fencing token (LeaseInfo.Generation).
func (l *Lease) Generation() uint64 { return l.info.Generation }

// Context is done when the lease ends: context.Cause is ErrLeaseLost
// (wrapped with the reason) or ErrLeaseReleased. Work done under the lease
// derives from it, so losing the lease cancels the work at once.
func (l *Lease) Context() context.Context { return l.ctx }

// Err returns nil while the lease is held, else why it ended.
func (l *Lease) Err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

// Lose ends the lease as lost, for implementations: why is wrapped with
// ErrLeaseLost. Release afterwards does not touch the store (the lease is
// someone else's now).
func (l *Lease) Lose(why error) {
	l.cancel(fmt.Errorf("%w: %w", ErrLeaseLost, why))
}

// Release gives the lease up. It is idempotent, returns the first call's
// result, and does nothing in the store if the lease was lost before.
// The release function must itself check Err after stopping renewals: the
// lease may be lost while Release runs.
func (l *Lease) Release(ctx context.Context) error {
	l.once.Do(func() {
		if l.ctx.Err() == nil && l.release != nil {
			l.err = l.release(ctx)
		}
		l.cancel(ErrLeaseReleased)
	})
	return l.err
}

// localLeases grants in-process leases, one holder per name at a time.
type localLeases struct {
	mu   sync.Mutex               // guards sems and gens
	sems map[string]chan struct{} // per name, capacity 1, held while leased
	gens map[string]uint64        // last generation granted per name
}

// Lock grants the in-process lease for certificate name, waiting while
// another caller in this process holds it, until ctx is done. The lease is
// never lost (no other process shares this store), so Context ends only
// with Release. Generations increase per name for the life of the Store.
func (s *Store) Lock(ctx context.Context, name string) (*Lease, error) {
	s.leases.mu.Lock()
	if s.leases.sems == nil {
		s.leases.sems, s.leases.gens = map[string]chan struct{}{}, map[string]uint64{}
	}
	sem := s.leases.sems[name]
	if sem == nil {
		sem = make(chan struct{}, 1)
		s.leases.sems[name] = sem
	}
	s.leases.mu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("certstore: lock %q: %w", name, ctx.Err())
	}
	s.leases.mu.Lock()
	s.leases.gens[name]++
	gen := s.leases.gens[name]
	s.leases.mu.Unlock()
	l := NewLease(LeaseInfo{Name: name, Generation: gen, Holder: "local"}, nil)
	context.AfterFunc(l.Context(), func() { <-sem })
	return l, nil
}

// PublishCert stores a certificate obtained under lease as PutCert does,
// after checking that the lease is still held: a certificate ordered
// under a lease that ended is refused with the lease's error. A nil lease
// means a certificate obtained without one; it is stored as is. The
// generation is recorded in meta.Generation when the lease is shared.
func (s *Store) PublishCert(ctx context.Context, lease *Lease, name string, chainPEM, keyPEM []byte, meta Meta) (*Entry, error) {
	if lease != nil {
		if err := lease.Err(); err != nil {
			return nil, fmt.Errorf("certstore: publish %q: %w", name, err)
		}
	}
	return s.PutCert(ctx, name, chainPEM, keyPEM, meta)
}

// CreateBlob stores data under key unless a blob is already stored there,
// and returns the blob stored under key afterwards: data, or the existing
// one. Concurrent callers all get the same blob.
func (s *Store) CreateBlob(ctx context.Context, key string, data []byte) ([]byte, error) {
	if err := checkName("cache key", key); err != nil {
		return nil, err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isClosed() {
		return nil, ErrClosed
	}
	b, err := os.ReadFile(filepath.Join(s.dataDir, key))
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("certstore: create %q: %w", key, err)
	}
	if err := writeBlob(ctx, s.dataDir, key, data); err != nil {
		return nil, fmt.Errorf("certstore: create %q: %w", key, err)
	}
	return slices.Clone(data), nil
}
