package certstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrNoCertificate is returned (wrapped) by GetCertificate when no entry
// matches the client's server name and there is no default entry; crypto/tls
// then fails the handshake with an alert.
var ErrNoCertificate = errors.New("certstore: no certificate")

// index is an immutable snapshot of everything served. It is built whole by
// a reload and published through Store.idx; readers never lock.
//
// The selection rule (see GetCertificate) lives here and only here: an exact
// SAN always beats a wildcard; among entries of the same kind the newest
// wins (newer).
type index struct {
	byName map[string]*Entry // certificate name -> entry
	// exact maps a lower-case DNS name to the newest entry naming it exactly.
	exact map[string]*Entry
	// wild maps the parent of a wildcard SAN ("example.com" for
	// "*.example.com") to the newest entry carrying that wildcard.
	wild   map[string]*Entry
	def    *Entry   // Options.Default's entry, or nil
	sorted []*Entry // all entries by name
}

var emptyIndex = buildIndex(nil, "")

// newer reports whether candidate should be served instead of current, two
// entries matching a name the same way (both exactly, or both by wildcard):
// the one issued last (latest leaf NotBefore) wins, then the one expiring
// last (latest NotAfter); on a full tie current is kept. Issue time comes
// first so that a renewal wins even when it is shorter-lived than what it
// replaces (a change of ACME profile).
func newer(candidate, current *Entry) bool {
	if current == nil {
		return true
	}
	c, cur := candidate.Cert.Leaf, current.Cert.Leaf
	if !c.NotBefore.Equal(cur.NotBefore) {
		return c.NotBefore.After(cur.NotBefore)
	}
	return c.NotAfter.After(cur.NotAfter)
}

// buildIndex indexes entries (keyed by certificate name) by their leaf DNS
// SANs. defName selects the default entry.
func buildIndex(entries map[string]*Entry, defName string) *index {
	ix := &index{
		byName: make(map[string]*Entry, len(entries)),
		exact:  make(map[string]*Entry),
		wild:   make(map[string]*Entry),
	}
	for name, e := range entries {
		ix.byName[name] = e
		ix.sorted = append(ix.sorted, e)
	}
	// Deterministic tie-breaking: the first entry by name wins a tie.
	sort.Slice(ix.sorted, func(i, j int) bool { return ix.sorted[i].Name < ix.sorted[j].Name })
	for _, e := range ix.sorted {
		for _, san := range e.Cert.Leaf.DNSNames {
			n := normalizeHost(san)
			m := ix.exact
			if parent, ok := strings.CutPrefix(n, "*."); ok {
				n, m = parent, ix.wild
			}
			if newer(e, m[n]) {
				m[n] = e
			}
		}
	}
	ix.def = ix.byName[defName]
	return ix
}

// parentDomain returns name without its first label, or "" if name has a
// single label or an empty first label.
func parentDomain(name string) string {
	i := strings.IndexByte(name, '.')
	if i <= 0 {
		return ""
	}
	return name[i+1:]
}

// lookup returns the entry to serve for a server name, or nil.
func (ix *index) lookup(serverName string) *Entry {
	if serverName == "" {
		return ix.def
	}
	n := normalizeHost(serverName)
	if e := ix.exact[n]; e != nil {
		return e
	}
	if p := parentDomain(n); p != "" {
		if e := ix.wild[p]; e != nil {
			return e
		}
	}
	return ix.def
}

// GetCertificate returns the certificate to present for hello, for use as
// tls.Config.GetCertificate. It reads the current immutable index without
// locking or I/O and never panics (hello may be nil).
//
// Entries are indexed by their leaf's DNS SANs (not by certificate name or
// Common Name). Server names match case-insensitively with a trailing dot
// ignored. A wildcard SAN "*.example.com" matches exactly one extra label
// ("a.example.com", not "a.b.example.com" or "example.com"). When several
// entries match:
//
//  1. an entry with the name as an exact SAN always beats one matching it
//     by wildcard, however new the wildcard (as nginx, Caddy and Traefik
//     choose), so a dedicated certificate keeps its name across renewals;
//  2. among exact matches, and failing those among wildcard matches, the
//     newest wins: the latest leaf NotBefore, then the latest NotAfter,
//     then the first certificate name in sort order.
//
// Without a match, or without SNI, the Options.Default entry is served;
// if there is none the error wraps ErrNoCertificate and the handshake fails.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var sni string
	if hello != nil {
		sni = hello.ServerName
	}
	if e := s.idx.Load().lookup(sni); e != nil {
		return e.Cert, nil
	}
	if sni == "" {
		return nil, fmt.Errorf("%w: client sent no server name and no default is set", ErrNoCertificate)
	}
	return nil, fmt.Errorf("%w for server name %q", ErrNoCertificate, sni)
}

// Current returns the entry served for certificate name (the last good one:
// a rejected newer version does not replace it), and whether there is one.
// It does not lock or do I/O.
func (s *Store) Current(name string) (*Entry, bool) {
	e, ok := s.idx.Load().byName[name]
	return e, ok
}

// Entries returns a snapshot of all served entries, sorted by name. The
// slice is the caller's; the entries are shared and must not be modified.
func (s *Store) Entries() []*Entry {
	ix := s.idx.Load()
	out := make([]*Entry, len(ix.sorted))
	copy(out, ix.sorted)
	return out
}
