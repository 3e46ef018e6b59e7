package certstore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Entry sources.
const (
	// SourceStore marks an entry loaded from <dir>/certs.
	SourceStore = "store"
	// SourceFile marks an entry loaded from an operator file pair
	// (AddFilePair).
	SourceFile = "file"
)

// maxClockSkew is how far in the future a leaf's NotBefore may be and still
// be served; it absorbs clock differences between this host and the CA.
const maxClockSkew = time.Hour

// Meta is the metadata stored next to each certificate version, as
// <version>/meta.json. All fields are optional.
type Meta struct {
	// Names are the identifiers the certificate was ordered for. PutCert
	// rejects a certificate whose leaf does not carry every one of them as a
	// SAN (DNS names compared case-insensitively, wildcards as text; IP
	// addresses against the IP SANs).
	Names []string `json:"names,omitempty"`
	// Profile is the ACME profile the certificate was ordered with.
	Profile string `json:"profile,omitempty"`
	// Issuer is the ACME directory URL the certificate came from.
	Issuer string `json:"issuer,omitempty"`
	// Replaces is the ARI certificate ID of the certificate this one
	// replaces (RFC 9773), if any.
	Replaces string `json:"replaces,omitempty"`
	// ObtainedAt is when the certificate was obtained.
	ObtainedAt time.Time `json:"obtained_at,omitzero"`
	// Source says where the certificate came from: "acme", "import" or
	// "file". PutCert stores "import" when it is empty.
	Source string `json:"source,omitempty"`
	// Generation is the fleet generation the certificate was published
	// under (see Lease); 0 for a certificate never shared through a fleet
	// store.
	Generation uint64 `json:"generation,omitempty"`
}

// Entry is one validated certificate as served by the store. Entries are
// immutable and shared: callers must not modify an Entry or its Cert.
type Entry struct {
	// Name is the certificate name: the directory under <dir>/certs, or
	// the name given to AddFilePair.
	Name string
	// Version is the version directory name for store entries, or a short
	// content hash for operator file pairs.
	Version string
	// Cert is the parsed chain and key; Cert.Leaf is set.
	Cert *tls.Certificate
	// Meta is the stored metadata. For file pairs it is synthesised: the
	// leaf's DNS names and Source "file".
	Meta Meta
	// Source is SourceStore or SourceFile.
	Source string

	// The entry keeps the chain once, as DER in Cert.Certificate (the leaf's
	// parsed fields point into it; intermediates are shared between entries,
	// see derIntern), and the key's DER next to the parsed key; PEM is
	// re-encoded from them on demand instead of being held a second time.
	keyType string            // the key's PEM block type
	keyDER  []byte            // the key's PEM block bytes
	sum     [sha256.Size]byte // content identity: chain, key and meta as read
}

// String describes e for logs and test failures, without key material.
func (e *Entry) String() string {
	if e == nil {
		return "<nil entry>"
	}
	return fmt.Sprintf("%s@%s (%s, serial %s, not after %s)", e.Name, e.Version, e.Source,
		e.Serial(), e.NotAfter().UTC().Format(time.RFC3339))
}

// Serial returns the leaf serial number in hex, as logged.
func (e *Entry) Serial() string { return e.Cert.Leaf.SerialNumber.Text(16) }

// PEM returns the chain and key in PEM, encoded afresh from what the entry
// holds: byte for byte what it was loaded from when that was canonical PEM
// (as PutCert's callers and encoding/pem write it); text outside the PEM
// blocks and line-wrapping differences are not kept. The slices are the
// caller's.
func (e *Entry) PEM() (chainPEM, keyPEM []byte) {
	for _, der := range e.Cert.Certificate {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return chainPEM, pem.EncodeToMemory(&pem.Block{Type: e.keyType, Bytes: e.keyDER})
}

// NotAfter returns the leaf's expiry time.
func (e *Entry) NotAfter() time.Time { return e.Cert.Leaf.NotAfter }

func (e *Entry) logAttrs() []any {
	return []any{
		slog.String("name", e.Name),
		slog.String("serial", e.Serial()),
		slog.String("not_after", e.NotAfter().UTC().Format(time.RFC3339)),
		slog.String("version", e.Version),
		slog.String("source", e.Source),
	}
}

func contentSum(chainPEM, keyPEM, metaJSON []byte) [sha256.Size]byte {
	h := sha256.New()
	for _, b := range [][]byte{chainPEM, keyPEM, metaJSON} {
		h.Write(b)
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// parsedPair is a validated chain and key: what an Entry holds.
type parsedPair struct {
	cert    *tls.Certificate // Leaf set
	keyType string           // PEM block type of the key
	keyDER  []byte
}

// validate parses chainPEM and keyPEM strictly and checks the pair for
// serving at now: key matches the leaf, leaf currently valid, names all in the
// leaf's SANs. Intermediates already in in (nil: none) are shared instead of
// held again, and not parsed again. Errors describe the reason without a
// component prefix; they are used as the cert.rejected reason and wrapped by
// callers.
func validate(chainPEM, keyPEM []byte, names []string, now time.Time, in *derIntern) (parsedPair, error) {
	ders, leaf, err := parseChain(chainPEM, in)
	if err != nil {
		return parsedPair{}, err
	}
	key, kb, err := parseKey(keyPEM)
	if err != nil {
		return parsedPair{}, err
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return parsedPair{}, errors.New("private key does not match the leaf certificate")
	}
	if err := checkServable(leaf, names, now); err != nil {
		return parsedPair{}, err
	}
	return parsedPair{
		cert:    &tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
		keyType: kb.Type, keyDER: kb.Bytes,
	}, nil
}

// validateCached is validate for content whose sum the validated cache
// lists (see validcache.go): the chain is parsed (the leaf is needed to
// serve) and checked against now and names as validate does, the key's PEM
// is decoded but its parse and match with the leaf, done for these bytes
// before, are left to its first signature (lazyKey).
func validateCached(chainPEM, keyPEM []byte, names []string, now time.Time, in *derIntern) (parsedPair, error) {
	ders, leaf, err := parseChain(chainPEM, in)
	if err != nil {
		return parsedPair{}, err
	}
	kb, err := keyBlock(keyPEM)
	if err != nil {
		return parsedPair{}, err
	}
	if err := checkServable(leaf, names, now); err != nil {
		return parsedPair{}, err
	}
	key := &lazyKey{pub: leaf.PublicKey, keyType: kb.Type, der: kb.Bytes}
	return parsedPair{
		cert:    &tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
		keyType: kb.Type, keyDER: kb.Bytes,
	}, nil
}

// checkServable checks what changes with time and metadata, not with the
// bytes: the leaf valid at now (an hour of clock skew allowed for
// NotBefore) and every name of names among its SANs.
func checkServable(leaf *x509.Certificate, names []string, now time.Time) error {
	switch {
	case !leaf.NotAfter.After(leaf.NotBefore):
		return fmt.Errorf("leaf validity window is empty (not_before %s, not_after %s)",
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return fmt.Errorf("leaf expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case leaf.NotBefore.After(now.Add(maxClockSkew)):
		return fmt.Errorf("leaf not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, n := range names {
		if !hasSAN(leaf, n) {
			return fmt.Errorf("leaf does not cover name %q (SANs %q)", n, leaf.DNSNames)
		}
	}
	return nil
}

// nextBlock decodes the PEM block at the start of data, allowing only
// whitespace before it (pem.Decode alone skips arbitrary leading text).
// It returns nil, nil at the end of the input.
func nextBlock(data []byte) (*pem.Block, []byte, error) {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return nil, nil, nil
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN ")) {
		return nil, nil, errors.New("data outside PEM blocks")
	}
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, nil, errors.New("malformed or truncated PEM block")
	}
	return b, rest, nil
}

// parseChain decodes the chain's blocks, parses every certificate (the
// leaf's parse is returned, an intermediate already in in is taken from
// there), and returns the DER of each (a shared copy for interned ones).
func parseChain(chainPEM []byte, in *derIntern) ([][]byte, *x509.Certificate, error) {
	var ders [][]byte
	var leaf *x509.Certificate
	rest := chainPEM
	for {
		b, r, err := nextBlock(rest)
		if err != nil {
			return nil, nil, fmt.Errorf("chain: block %d: %w", len(ders)+1, err)
		}
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("chain: block %d: unexpected PEM type %q", len(ders)+1, b.Type)
		}
		der := b.Bytes
		if len(ders) == 0 {
			if leaf, err = x509.ParseCertificate(der); err != nil {
				return nil, nil, fmt.Errorf("chain: block 1: %w", err)
			}
		} else if shared, ok := in.get(der); ok {
			der = shared
		} else {
			if _, err := x509.ParseCertificate(der); err != nil {
				return nil, nil, fmt.Errorf("chain: block %d: %w", len(ders)+1, err)
			}
			der = in.add(der)
		}
		ders = append(ders, der)
		rest = r
	}
	if len(ders) == 0 {
		return nil, nil, errors.New("chain: no certificate")
	}
	return slices.Clip(ders), leaf, nil
}

// derIntern shares identical intermediate certificates between entries: a
// store of 10k certificates from one CA holds the CA's DER once and parses
// it once per reload. A nil *derIntern shares nothing. Safe for concurrent
// use.
type derIntern struct {
	mu sync.Mutex        // guards m
	m  map[string][]byte // DER (as a string key) -> the shared copy
}

func newDERIntern() *derIntern { return &derIntern{m: make(map[string][]byte)} }

func (in *derIntern) get(der []byte) ([]byte, bool) {
	if in == nil {
		return nil, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	v, ok := in.m[string(der)]
	return v, ok
}

// add records der (already parsed successfully) and returns the shared
// copy: der itself unless another caller added the same bytes first.
func (in *derIntern) add(der []byte) []byte {
	if in == nil {
		return der
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[string(der)]; ok {
		return v
	}
	in.m[string(der)] = der
	return der
}

// retain drops the intermediates no entry of entries holds, so the table
// does not grow with every CA a store has ever seen.
func (in *derIntern) retain(entries map[string]*Entry) {
	if in == nil {
		return
	}
	keep := make(map[string]bool)
	for _, e := range entries {
		for _, der := range e.Cert.Certificate[1:] {
			keep[string(der)] = true
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for k := range in.m {
		if !keep[k] {
			delete(in.m, k)
		}
	}
}

// keyBlock decodes the one PEM block of keyPEM, refusing anything around
// it.
func keyBlock(keyPEM []byte) (*pem.Block, error) {
	b, rest, err := nextBlock(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if b == nil {
		return nil, errors.New("key: no PEM block")
	}
	if extra, _, err := nextBlock(rest); err != nil || extra != nil {
		return nil, errors.New("key: data after the private key block")
	}
	return b, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, *pem.Block, error) {
	b, err := keyBlock(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	k, err := parseKeyDER(b.Type, b.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return k, b, nil
}

// parseKeyDER parses a private key of PEM block type typ.
func parseKeyDER(typ string, der []byte) (crypto.Signer, error) {
	var k any
	var err error
	switch typ {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(der)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(der)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(der)
	default:
		return nil, fmt.Errorf("key: unexpected PEM type %q", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("key: unsupported key type %T", k)
	}
}

// hasSAN reports whether name is literally one of leaf's SANs.
func hasSAN(leaf *x509.Certificate, name string) bool {
	if ip := net.ParseIP(name); ip != nil {
		for _, a := range leaf.IPAddresses {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	n := normalizeHost(name)
	for _, d := range leaf.DNSNames {
		if normalizeHost(d) == n {
			return true
		}
	}
	return false
}

// normalizeHost lower-cases a DNS name and drops one trailing dot. It does
// not allocate for names that are already lower case.
func normalizeHost(s string) string {
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
