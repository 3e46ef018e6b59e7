package s3store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgecert/edgecert/certstore"
)

// historyWindow is how long issuance history is kept in the pointer: the
// CA's duplicate-certificate window (Let's Encrypt: 7 days).
const historyWindow = 7 * 24 * time.Hour

// ErrStaleGeneration refuses to publish a certificate whose generation is
// not newer than the shared pointer's: a peer published under a later
// lease.
var ErrStaleGeneration = errors.New("s3store: a newer generation is already published")

// pointer is certs/<name>/current.json: the current version. It only moves
// forward, by compare-and-swap on its ETag.
type pointer struct {
	Generation uint64               `json:"generation"`
	Serial     string               `json:"serial"`
	Bundle     string               `json:"bundle"` // object key of the version
	NotAfter   time.Time            `json:"not_after"`
	Instance   string               `json:"instance"` // who published it
	History    []certstore.Issuance `json:"history,omitempty"`
}

// bundle is certs/<name>/<generation>-<serial>.json: one certificate
// version, written once with If-None-Match: * and never changed.
type bundle struct {
	Name  string         `json:"name"`
	Chain string         `json:"chain_pem"`
	Key   string         `json:"key_pem"`
	Meta  certstore.Meta `json:"meta"`
}

// readPointer returns name's pointer and its ETag (errNotFound if none).
func (s *Store) readPointer(ctx context.Context, name string) (*pointer, string, error) {
	o, err := s.get(ctx, s.pointerKey(name))
	if err != nil {
		return nil, "", err
	}
	var p pointer
	if err := json.Unmarshal(o.body, &p); err != nil {
		return nil, "", fmt.Errorf("pointer %s: %w", s.pointerKey(name), err)
	}
	s.mu.Lock()
	st := s.status(name)
	st.sharedGen, st.sharedSerial = p.Generation, p.Serial
	s.mu.Unlock()
	return &p, o.etag, nil
}

// newer reports whether p should replace what this host serves (e, nil if
// nothing): by generation, then by expiry. A certificate this host
// obtained but has not published (generation 0) is replaced only by one
// that lives longer.
func newer(p *pointer, e *certstore.Entry) bool {
	switch {
	case e == nil:
		return true
	case e.Serial() == p.Serial:
		return false
	case e.Meta.Generation == 0:
		return p.NotAfter.After(e.NotAfter())
	case p.Generation != e.Meta.Generation:
		return p.Generation > e.Meta.Generation
	}
	return p.NotAfter.After(e.NotAfter())
}

// install fetches the version p points to and stores it locally (crash
// safe, hot reloaded) if it is newer than what is served. Failures are
// logged; the served certificate stays.
func (s *Store) install(ctx context.Context, name string, p *pointer) bool {
	cur, _ := s.local.Current(name)
	if !newer(p, cur) {
		return false
	}
	o, err := s.get(ctx, p.Bundle)
	if err != nil {
		s.storeError("sync", name, err)
		return false
	}
	var b bundle
	if err := json.Unmarshal(o.body, &b); err != nil || b.Name != name {
		s.storeError("sync", name, fmt.Errorf("bundle %s is not a version of %s: %v", p.Bundle, name, err))
		return false
	}
	if pair, err := tls.X509KeyPair([]byte(b.Chain), []byte(b.Key)); err != nil || pair.Leaf.SerialNumber.Text(16) != p.Serial {
		s.storeError("sync", name, fmt.Errorf("bundle %s does not hold the pointer's serial %s (%v)", p.Bundle, p.Serial, err))
		return false
	}
	b.Meta.Generation = p.Generation
	e, err := s.local.PutCert(ctx, name, []byte(b.Chain), []byte(b.Key), b.Meta)
	if err != nil {
		s.storeError("sync", name, err)
		return false
	}
	s.event(name, "installed")
	s.log.Info("fleet.cert_installed", "name", name, "serial", e.Serial(), "generation", p.Generation,
		"instance", s.instance, "publisher", p.Instance, "not_after", e.NotAfter().UTC().Format(time.RFC3339))
	return true
}

// PublishCert stores a certificate obtained under lease: the version
// object first (If-None-Match: *), then the pointer by compare-and-swap
// (If-Match on the ETag read, or If-None-Match: * for the first), and only
// if the lease is still held and its generation is above the pointer's;
// then the local copy, served at once. A refused condition is read back
// (a lost response of a write that happened counts as done).
//
// A certificate the bucket could not take (unreachable), or one obtained
// without a lease (lease nil: an emergency), is stored locally with
// generation 0 and published by Sync when the bucket is back; the
// forward-only pointer settles conflicts. A lost lease or a stale
// generation is an error and nothing is stored.
func (s *Store) PublishCert(ctx context.Context, lease *certstore.Lease, name string, chainPEM, keyPEM []byte, meta certstore.Meta) (*certstore.Entry, error) {
	if lease == nil {
		meta.Generation = 0
		return s.local.PutCert(ctx, name, chainPEM, keyPEM, meta)
	}
	if err := lease.Err(); err != nil {
		return nil, fmt.Errorf("s3store: publish %s: %w", name, err)
	}
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("s3store: publish %s: %w", name, err)
	}
	meta.Generation = lease.Generation()
	err = s.share(ctx, lease, name, pair.Leaf.SerialNumber.Text(16), pair.Leaf.NotAfter, chainPEM, keyPEM, meta)
	switch {
	case errors.Is(err, certstore.ErrUnavailable):
		s.storeError("publish", name, err)
		meta.Generation = 0 // shared later by Sync
	case err != nil:
		s.storeError("publish", name, err)
		return nil, fmt.Errorf("s3store: publish %s: %w", name, err)
	}
	return s.local.PutCert(ctx, name, chainPEM, keyPEM, meta)
}

// share writes the version and advances the pointer to it under
// generation meta.Generation. lease nil means an unfenced publish of a
// pending certificate: the generation is then the pointer's plus one.
func (s *Store) share(ctx context.Context, lease *certstore.Lease, name, serial string, notAfter time.Time, chainPEM, keyPEM []byte, meta certstore.Meta) error {
	old, etag, err := s.readPointer(ctx, name)
	if err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	if lease == nil {
		meta.Generation = 1
		if old != nil {
			meta.Generation = old.Generation + 1
		}
	}
	if old != nil && old.Generation >= meta.Generation {
		return fmt.Errorf("%w (generation %d by %s; ours %d)", ErrStaleGeneration, old.Generation, old.Instance, meta.Generation)
	}
	key := s.bundleKey(name, meta.Generation, serial)
	body, err := json.Marshal(bundle{Name: name, Chain: string(chainPEM), Key: string(keyPEM), Meta: meta})
	if err != nil {
		return err
	}
	if err := s.writeVersion(ctx, key, body); err != nil {
		return err
	}
	if lease != nil {
		if err := lease.Err(); err != nil {
			return err
		}
	}
	p := s.nextPointer(old, key, serial, notAfter, meta)
	if err := s.advancePointer(ctx, name, p, etag); err != nil {
		return err
	}
	s.mu.Lock()
	st := s.status(name)
	st.sharedGen, st.sharedSerial = p.Generation, p.Serial
	st.pointerETag = ""
	s.mu.Unlock()
	s.event(name, "published")
	s.log.Info("fleet.cert_published", "name", name, "serial", serial, "generation", p.Generation,
		"instance", s.instance, "not_after", notAfter.UTC().Format(time.RFC3339), "fenced", lease != nil)
	return nil
}

// writeVersion creates the version object key with body (If-None-Match).
// One that exists with the same body was ours (a lost response, retried).
func (s *Store) writeVersion(ctx context.Context, key string, body []byte) error {
	_, err := s.put(ctx, key, body, true, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, errConditionFailed) {
		return err
	}
	o, rerr := s.get(ctx, key)
	if rerr != nil || string(o.body) != string(body) {
		return fmt.Errorf("version %s exists with other content: %w", key, err)
	}
	return nil
}

// nextPointer is the pointer to the version at key that follows old (nil
// if none): old's history within historyWindow plus this issuance.
func (s *Store) nextPointer(old *pointer, key, serial string, notAfter time.Time, meta certstore.Meta) pointer {
	p := pointer{Generation: meta.Generation, Serial: serial, Bundle: key, NotAfter: notAfter, Instance: s.instance}
	if old != nil {
		for _, h := range old.History {
			if s.now().Sub(h.IssuedAt) < historyWindow {
				p.History = append(p.History, h)
			}
		}
	}
	p.History = append(p.History, certstore.Issuance{Serial: serial, Names: meta.Names, IssuedAt: s.now().UTC(), ARI: meta.Replaces != ""})
	return p
}

// advancePointer writes p as the pointer of name, created when etag is ""
// and otherwise replaced with If-Match: etag. A refused condition is
// ErrStaleGeneration unless the pointer reads back as p (a lost response).
func (s *Store) advancePointer(ctx context.Context, name string, p pointer, etag string) error {
	pb, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = s.put(ctx, s.pointerKey(name), pb, etag == "", etag)
	if err == nil {
		return nil
	}
	if !errors.Is(err, errConditionFailed) {
		return err
	}
	now, _, rerr := s.readPointer(ctx, name)
	if rerr != nil || now.Generation != p.Generation || now.Serial != p.Serial {
		return fmt.Errorf("%w: the pointer moved meanwhile: %w", ErrStaleGeneration, err)
	}
	return nil
}
