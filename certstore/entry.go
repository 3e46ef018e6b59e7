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
	"strings"
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

	chainPEM, keyPEM []byte
	sum              [sha256.Size]byte // content identity: chain, key and meta
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

// PEM returns copies of the chain and key PEM the entry was loaded from.
func (e *Entry) PEM() (chainPEM, keyPEM []byte) { return clone(e.chainPEM), clone(e.keyPEM) }

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

// validate parses chainPEM and keyPEM strictly and checks the pair for
// serving at now: key matches the leaf, leaf currently valid, names all in the
// leaf's SANs. Errors describe the reason without a component prefix; they
// are used as the cert.rejected reason and wrapped by callers.
func validate(chainPEM, keyPEM []byte, names []string, now time.Time) (*tls.Certificate, error) {
	ders, err := parseChain(chainPEM)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return nil, fmt.Errorf("chain: leaf: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("private key does not match the leaf certificate")
	}
	switch {
	case !leaf.NotAfter.After(leaf.NotBefore):
		return nil, fmt.Errorf("leaf validity window is empty (not_before %s, not_after %s)",
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("leaf expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case leaf.NotBefore.After(now.Add(maxClockSkew)):
		return nil, fmt.Errorf("leaf not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, n := range names {
		if !hasSAN(leaf, n) {
			return nil, fmt.Errorf("leaf does not cover name %q (SANs %q)", n, leaf.DNSNames)
		}
	}
	return &tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf}, nil
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

func parseChain(chainPEM []byte) ([][]byte, error) {
	var ders [][]byte
	rest := chainPEM
	for {
		b, r, err := nextBlock(rest)
		if err != nil {
			return nil, fmt.Errorf("chain: block %d: %w", len(ders)+1, err)
		}
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("chain: block %d: unexpected PEM type %q", len(ders)+1, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return nil, fmt.Errorf("chain: block %d: %w", len(ders)+1, err)
		}
		ders = append(ders, b.Bytes)
		rest = r
	}
	if len(ders) == 0 {
		return nil, errors.New("chain: no certificate")
	}
	return ders, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
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
	var k any
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("key: unexpected PEM type %q", b.Type)
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
