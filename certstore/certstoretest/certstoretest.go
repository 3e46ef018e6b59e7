// Package certstoretest generates throw-away X.509 material for tests: a tiny
// ECDSA P-256 certificate authority and leaf certificates issued by it, built
// at test time so nothing expires in the repository.
//
// Everything here is for tests only. Failures call tb.Fatal.
package certstoretest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a test certificate authority. It is safe for concurrent use.
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert encoded as one PEM CERTIFICATE block.
	CertPEM []byte
	// Pool holds only Cert, ready for tls.Config.RootCAs.
	Pool *x509.CertPool

	key    *ecdsa.PrivateKey
	serial atomic.Int64 // last serial number handed out
}

// NewCA returns a CA valid from one hour ago for ten years.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("certstoretest: generate CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "certstoretest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("certstoretest: create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("certstoretest: parse CA certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ca := &CA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Pool:    pool,
		key:     key,
	}
	// Serial numbers start high and grow, so each issued certificate has a
	// distinct serial for the lifetime of the CA.
	ca.serial.Store(now.UnixNano())
	return ca
}

// Issue returns a fresh ECDSA P-256 key and a leaf certificate for names
// (DNS names, or IP addresses in textual form) valid from notBefore to
// notAfter. chainPEM holds the leaf followed by the CA certificate; keyPEM is
// a PKCS#8 "PRIVATE KEY" block. The leaf's serial number is unique per CA.
func (ca *CA) Issue(tb testing.TB, names []string, notBefore, notAfter time.Time) (chainPEM, keyPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("certstoretest: generate leaf key: %v", err)
	}
	return ca.IssueForKey(tb, key, names, notBefore, notAfter), EncodeKey(tb, key)
}

// IssueForKey is Issue with a caller-supplied key; it returns only the chain.
// Tests use it to build a chain that does not match some other key.
func (ca *CA) IssueForKey(tb testing.TB, key *ecdsa.PrivateKey, names []string, notBefore, notAfter time.Time) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if len(names) > 0 {
		tmpl.Subject.CommonName = names[0]
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("certstoretest: create leaf certificate: %v", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, ca.CertPEM...)
}

// EncodeKey returns key as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodeKey(tb testing.TB, key *ecdsa.PrivateKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("certstoretest: marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// NewKey returns a fresh ECDSA P-256 key.
func NewKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("certstoretest: generate key: %v", err)
	}
	return key
}

// Valid is a convenience for Issue with a validity window of one hour ago to
// thirty days from now.
func (ca *CA) Valid(tb testing.TB, names ...string) (chainPEM, keyPEM []byte) {
	tb.Helper()
	now := time.Now()
	return ca.Issue(tb, names, now.Add(-time.Hour), now.Add(30*24*time.Hour))
}

// Serial returns the hex serial number of the first certificate in chainPEM,
// in the same form certstore logs ("serial" attribute).
func Serial(tb testing.TB, chainPEM []byte) string {
	tb.Helper()
	return Leaf(tb, chainPEM).SerialNumber.Text(16)
}

// Leaf parses the first certificate in chainPEM.
func Leaf(tb testing.TB, chainPEM []byte) *x509.Certificate {
	tb.Helper()
	b, _ := pem.Decode(chainPEM)
	if b == nil {
		tb.Fatalf("certstoretest: no PEM block in chain")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		tb.Fatalf("certstoretest: parse leaf: %v", err)
	}
	return c
}
