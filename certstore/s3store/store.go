package s3store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/crypto/acme/autocert"

	"github.com/edgecert/edgecert/certstore"
)

// Defaults and bounds for Options.
const (
	DefaultLeaseTTL     = 2 * time.Minute
	MinLeaseTTL         = 10 * time.Second
	DefaultSyncInterval = time.Minute
)

// Options configures a Store.
type Options struct {
	// Client is the S3 client (required); its retryer, endpoint and path
	// style are the caller's.
	Client *s3.Client
	// Bucket (required) and Prefix ("" or ending in "/") locate the fleet
	// state; see the package documentation for the layout.
	Bucket, Prefix string
	// KMSKeyID, if set, encrypts every object written with that SSE-KMS
	// key; otherwise the bucket's default encryption applies.
	KMSKeyID string
	// Local is this host's store: what the TLS server serves, and where
	// shared certificates are installed (required).
	Local *certstore.Store
	// Instance names this host in leases and logs (required).
	Instance string
	// Names are the certificates the fleet shares (Sync installs them).
	Names []string
	// LeaseTTL is how long a lease is valid without renewal, judged by the
	// server's clock; 0 means DefaultLeaseTTL; at least MinLeaseTTL.
	LeaseTTL time.Duration
	// RenewEvery is how often the holder renews its lease; 0 means
	// LeaseTTL/4. PollEvery is how often a waiting host reads the lease;
	// 0 means min(2s, LeaseTTL/10). Tests shorten both.
	RenewEvery, PollEvery time.Duration
	// RequestTimeout bounds every S3 call, the SDK's retries included, so
	// a black-holed endpoint fails fast (logged, counted, backed off)
	// instead of hanging a sync or a renewal; 0 means min(10s, LeaseTTL/4).
	RequestTimeout time.Duration
	// Logger receives the fleet.* events; nil discards them.
	Logger *slog.Logger
	// Now is the clock for issuance history and status; nil is time.Now.
	// Lease staleness never uses it: it is judged by the server's clock.
	Now func() time.Time
}

// Store shares certificates and ACME state through one S3 bucket, with
// the local certstore as the copy that is served. It implements the
// issuer's Store contract. All methods are safe for concurrent use.
type Store struct {
	c                     *s3.Client
	bucket, prefix        string
	kmsKeyID              string
	local                 *certstore.Store
	instance              string
	names                 []string
	ttl, renewEvery, poll time.Duration
	reqTimeout            time.Duration
	log                   *slog.Logger
	now                   func() time.Time

	mu     sync.Mutex             // guards every field below
	certs  map[string]*certStatus // per certificate name
	events map[string]uint64      // lease events by kind
	errs   map[string]uint64      // store errors by operation
	reqs   map[string]uint64      // S3 requests by kind (get, head, put, delete)
	synced time.Time              // last Sync that reached the bucket
}

// certStatus is what the Store knows about one certificate; guarded by
// Store.mu.
type certStatus struct {
	sharedGen    uint64
	sharedSerial string
	pointerETag  string // ETag of the pointer as last installed or checked
	holder       string // lease holder as last seen ("" none)
	holderSince  time.Time
	held         bool // this host holds the lease
	lastEvent    string
	lastEventAt  time.Time
}

// New checks opts and returns a Store. It does no I/O.
func New(opts Options) (*Store, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("s3store: Options.Client is required")
	case opts.Bucket == "":
		return nil, errors.New("s3store: Options.Bucket is required")
	case opts.Local == nil:
		return nil, errors.New("s3store: Options.Local is required")
	case opts.Instance == "":
		return nil, errors.New("s3store: Options.Instance is required")
	case opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/"):
		return nil, fmt.Errorf("s3store: Options.Prefix %q must end in /", opts.Prefix)
	case opts.LeaseTTL != 0 && opts.LeaseTTL < MinLeaseTTL:
		return nil, fmt.Errorf("s3store: Options.LeaseTTL %v is below %v", opts.LeaseTTL, MinLeaseTTL)
	}
	s := &Store{
		c: opts.Client, bucket: opts.Bucket, prefix: opts.Prefix, kmsKeyID: opts.KMSKeyID,
		local: opts.Local, instance: opts.Instance, names: slices.Clone(opts.Names),
		ttl: opts.LeaseTTL, renewEvery: opts.RenewEvery, poll: opts.PollEvery, reqTimeout: opts.RequestTimeout,
		log: opts.Logger, now: opts.Now,
		certs: map[string]*certStatus{}, events: map[string]uint64{}, errs: map[string]uint64{}, reqs: map[string]uint64{},
	}
	if s.ttl == 0 {
		s.ttl = DefaultLeaseTTL
	}
	if s.renewEvery <= 0 {
		s.renewEvery = s.ttl / 4
	}
	if s.reqTimeout <= 0 {
		s.reqTimeout = min(10*time.Second, s.ttl/4)
	}
	if s.poll <= 0 {
		s.poll = min(2*time.Second, s.ttl/10)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Key layout under the prefix.
func (s *Store) blobKey(key string) string     { return s.key("data/", key) }
func (s *Store) leaseKey(name string) string   { return s.key("leases/", name, ".json") }
func (s *Store) pointerKey(name string) string { return s.key("certs/", name, "/current.json") }
func (s *Store) bundleKey(name string, gen uint64, serial string) string {
	return s.key("certs/", name, "/", fmt.Sprintf("%020d-%s.json", gen, serial))
}

// Get implements autocert.Cache: the shared blob (cached in the local
// store), or the local copy when the bucket cannot be reached.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	o, err := s.get(ctx, s.blobKey(key))
	switch {
	case err == nil:
		if lerr := s.local.Put(ctx, key, o.body); lerr != nil {
			s.log.Warn("fleet.cache_failed", "key", key, "error", lerr)
		}
		return o.body, nil
	case errors.Is(err, errNotFound):
		return nil, autocert.ErrCacheMiss
	}
	s.storeError("get", "", err)
	if b, lerr := s.local.Get(ctx, key); lerr == nil {
		return b, nil
	}
	return nil, fmt.Errorf("s3store: get %s: %w", key, err)
}

// Put implements autocert.Cache: it writes the local copy, then the
// shared one.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := s.local.Put(ctx, key, data); err != nil {
		return err
	}
	if _, err := s.put(ctx, s.blobKey(key), data, false, ""); err != nil {
		s.storeError("put", "", err)
		return fmt.Errorf("s3store: put %s: %w", key, err)
	}
	return nil
}

// Delete implements autocert.Cache for both copies.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.del(ctx, s.blobKey(key), ""); err != nil {
		s.storeError("delete", "", err)
		return fmt.Errorf("s3store: delete %s: %w", key, err)
	}
	return s.local.Delete(ctx, key)
}

// CreateBlob creates key in the bucket with If-None-Match: * unless it
// exists, and returns the shared value (cached locally). When the bucket
// cannot be reached, a locally cached value is returned; a new value is
// never created locally alone (the fleet would get two ACME accounts).
func (s *Store) CreateBlob(ctx context.Context, key string, data []byte) ([]byte, error) {
	_, err := s.put(ctx, s.blobKey(key), data, true, "")
	if errors.Is(err, errConditionFailed) {
		var o *object
		if o, err = s.get(ctx, s.blobKey(key)); err == nil {
			data = o.body
		}
	}
	if err != nil {
		s.storeError("create", "", err)
		if b, lerr := s.local.Get(ctx, key); lerr == nil {
			return b, nil
		}
		return nil, fmt.Errorf("s3store: create %s: %w", key, err)
	}
	if err := s.local.Put(ctx, key, data); err != nil {
		s.log.Warn("fleet.cache_failed", "key", key, "error", err)
	}
	return data, nil
}

// Current returns what this host serves for name (the local store's
// entry). It does no I/O.
func (s *Store) Current(name string) (*certstore.Entry, bool) { return s.local.Current(name) }

// status returns the bookkeeping of name, creating it; s.mu must be held.
func (s *Store) status(name string) *certStatus {
	st := s.certs[name]
	if st == nil {
		st = &certStatus{}
		s.certs[name] = st
	}
	return st
}

// event records a lease or certificate event for status and metrics.
func (s *Store) event(name, kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events[kind]++
	st := s.status(name)
	st.lastEvent, st.lastEventAt = kind, s.now()
}

func (s *Store) count(op string) {
	s.mu.Lock()
	s.reqs[op]++
	s.mu.Unlock()
}

// storeError records and logs a failed operation (op: get, put, delete,
// create, lock, renew, release, publish, sync).
func (s *Store) storeError(op, name string, err error) {
	s.mu.Lock()
	s.errs[op]++
	s.mu.Unlock()
	attrs := []any{"op", op, "instance", s.instance, "error", err}
	if name != "" {
		attrs = append(attrs, "name", name)
	}
	s.log.Warn("fleet.store_error", attrs...)
}

// CertStatus is the fleet state of one certificate.
type CertStatus struct {
	Name string
	// SharedGeneration is the generation of the bucket's pointer as last
	// read; ServingGeneration is Meta.Generation of what this host serves
	// (0: not from the fleet, or nothing).
	SharedGeneration, ServingGeneration uint64
	SharedSerial                        string
	// Holder is the lease holder as last seen ("" if none), since
	// HolderSince; Held is true while this host holds it.
	Holder      string
	HolderSince time.Time
	Held        bool
	// LastEvent is the last fleet event for the certificate (acquired,
	// waiting, takeover, lost, released, published, installed, ...).
	LastEvent   string
	LastEventAt time.Time
}

// Stats are the Store's counters since New.
type Stats struct {
	LeaseEvents map[string]uint64 // by kind
	StoreErrors map[string]uint64 // by operation
	Requests    map[string]uint64 // S3 requests by kind
	LastSync    time.Time         // last Sync that reached the bucket
}

// Status returns the fleet state of every certificate in Options.Names and
// every other one the Store has seen, sorted by name.
func (s *Store) Status() []CertStatus {
	s.mu.Lock()
	names := slices.Clone(s.names)
	for n := range s.certs {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]CertStatus, 0, len(names))
	for _, n := range names {
		st := s.status(n)
		out = append(out, CertStatus{Name: n, SharedGeneration: st.sharedGen, SharedSerial: st.sharedSerial,
			Holder: st.holder, HolderSince: st.holderSince, Held: st.held, LastEvent: st.lastEvent, LastEventAt: st.lastEventAt})
	}
	s.mu.Unlock()
	for i := range out {
		if e, ok := s.local.Current(out[i].Name); ok {
			out[i].ServingGeneration = e.Meta.Generation
		}
	}
	return out
}

// Stats returns a copy of the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{LeaseEvents: maps.Clone(s.events), StoreErrors: maps.Clone(s.errs), Requests: maps.Clone(s.reqs), LastSync: s.synced}
}
