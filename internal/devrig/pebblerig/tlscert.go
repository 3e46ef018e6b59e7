package pebblerig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// tlsCerts is the rig's HTTPS identity: a throw-away root and a leaf for
// localhost, pebble, 127.0.0.1 and ::1, generated at Start.
type tlsCerts struct {
	root    *x509.Certificate
	rootPEM []byte
	leaf    tls.Certificate
}

// newTLSCerts generates the root and a leaf that also covers extra (DNS
// names or IP addresses; unspecified addresses and "" are left out).
func newTLSCerts(extra []string) (*tlsCerts, error) {
	now := time.Now()
	rootKey, rootDER, root, err := newKeyCert("root", &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "pebblerig https root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: "pebblerig"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "pebble"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, n := range extra {
		if ip := net.ParseIP(n); ip != nil {
			if !ip.IsUnspecified() {
				leafTmpl.IPAddresses = append(leafTmpl.IPAddresses, ip)
			}
		} else if n != "" {
			leafTmpl.DNSNames = append(leafTmpl.DNSNames, n)
		}
	}
	leafKey, leafDER, leaf, err := newKeyCert("leaf", leafTmpl, root, rootKey)
	if err != nil {
		return nil, err
	}
	return &tlsCerts{
		root:    root,
		rootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}),
		leaf: tls.Certificate{
			Certificate: [][]byte{leafDER, rootDER},
			PrivateKey:  leafKey,
			Leaf:        leaf,
		},
	}, nil
}

// newKeyCert generates an ECDSA P-256 key and its certificate from tmpl,
// signed by parent with parentKey, or self-signed when parent is nil. what
// ("root", "leaf") names it in errors.
func newKeyCert(what string, tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*ecdsa.PrivateKey, []byte, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pebblerig: https %s key: %w", what, err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pebblerig: https %s: %w", what, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pebblerig: https %s: %w", what, err)
	}
	return key, der, cert, nil
}

func (t *tlsCerts) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{t.leaf}, MinVersion: tls.VersionTLS12}
}

func (t *tlsCerts) clientConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(t.root)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func randSerial() *big.Int {
	// rand.Int cannot fail with crypto/rand.Reader (it panics on failure).
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}
