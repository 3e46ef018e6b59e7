package certstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

func TestPutCertValidation(t *testing.T) {
	ca := certstoretest.NewCA(t)
	now := time.Now()
	chain, key := ca.Valid(t, "example.com", "*.example.com")
	otherChain, otherKey := ca.Valid(t, "example.com")
	expiredChain, expiredKey := ca.Issue(t, []string{"example.com"}, now.Add(-48*time.Hour), now.Add(-time.Hour))
	futureChain, futureKey := ca.Issue(t, []string{"example.com"}, now.Add(3*time.Hour), now.Add(72*time.Hour))
	ecKey := certstoretest.NewKey(t)
	ecChain := ca.IssueForKey(t, ecKey, []string{"example.com"}, now.Add(-time.Hour), now.Add(time.Hour))
	oldFormatKey := encodeECKey(t, ecKey)

	tests := []struct {
		name       string
		chain, key []byte
		names      []string
		wantErr    string // substring; "" means success
	}{
		{name: "valid", chain: chain, key: key, names: []string{"example.com", "*.example.com"}},
		{name: "valid without names", chain: chain, key: key},
		{name: "names case and trailing dot", chain: chain, key: key, names: []string{"EXAMPLE.com."}},
		{name: "EC PRIVATE KEY block", chain: ecChain, key: oldFormatKey},
		{name: "mismatched key", chain: chain, key: otherKey, wantErr: "does not match"},
		{name: "mismatched chain", chain: otherChain, key: key, wantErr: "does not match"},
		{name: "garbage chain", chain: []byte("not a certificate at all\n"), key: key, wantErr: "outside PEM"},
		{name: "garbage before chain", chain: append([]byte("junk\n"), chain...), key: key, wantErr: "outside PEM"},
		{name: "garbage after chain", chain: append(bytes.Clone(chain), "junk"...), key: key, wantErr: "block 3"},
		{name: "corrupt DER in chain", chain: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), key: key, wantErr: "chain: block 1"},
		{name: "key block in chain", chain: append(bytes.Clone(key), chain...), key: key, wantErr: "unexpected PEM type"},
		{name: "empty chain", chain: nil, key: key, wantErr: "no certificate"},
		{name: "truncated chain", chain: chain[:len(chain)/2], key: key, wantErr: "truncated"},
		{name: "truncated second block", chain: chain[:len(chain)-40], key: key, wantErr: "block 2"},
		{name: "truncated key", chain: chain, key: key[:len(key)-30], wantErr: "key:"},
		{name: "empty key", chain: chain, key: nil, wantErr: "key: no PEM block"},
		{name: "two keys", chain: chain, key: append(bytes.Clone(key), key...), wantErr: "data after"},
		{name: "expired", chain: expiredChain, key: expiredKey, wantErr: "expired"},
		{name: "not yet valid", chain: futureChain, key: futureKey, wantErr: "not valid before"},
		{name: "name missing", chain: chain, key: key, names: []string{"example.com", "www.other.com"}, wantErr: `does not cover name "www.other.com"`},
		{name: "wildcard is literal", chain: chain, key: key, names: []string{"a.example.com"}, wantErr: "does not cover"},
		{name: "wildcard not covered by apex", chain: otherChain, key: otherKey, names: []string{"*.example.com"}, wantErr: "does not cover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, dir := openStore(t, Options{})
			e, err := s.PutCert(t.Context(), "site", tt.chain, tt.key, Meta{Names: tt.names})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("PutCert() = %v; want success", err)
				}
				if got, want := e.Serial(), certstoretest.Serial(t, tt.chain); got != want {
					t.Errorf("entry serial = %s; want %s", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("PutCert() = %v; want error containing %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "certstore: ") {
				t.Errorf("error %q lacks the certstore: prefix", err)
			}
			des, rerr := os.ReadDir(filepath.Join(dir, "certs"))
			if rerr != nil {
				t.Fatal(rerr)
			}
			if len(des) != 0 {
				t.Errorf("certs/ holds %d entries after a rejected put; want 0", len(des))
			}
			if _, ok := s.Current("site"); ok {
				t.Errorf("Current(site) found an entry after a rejected put")
			}
		})
	}
}

func TestValidateUsesOptionsNow(t *testing.T) {
	ca := certstoretest.NewCA(t)
	now := time.Now()
	chain, key := ca.Issue(t, []string{"example.com"}, now.Add(-time.Hour), now.Add(24*time.Hour))
	s, _, _ := openStore(t, Options{Now: func() time.Time { return now.Add(48 * time.Hour) }})
	_, err := s.PutCert(t.Context(), "site", chain, key, Meta{})
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("PutCert() with Now two days ahead = %v; want expired", err)
	}
}

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"example.com", true},
		{"acme_account+key", true},
		{"*.example.com", true},
		{"example.com+rsa", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a..b", false},
		{"a/b", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{".hidden", false},
		{strings.Repeat("a", maxNameLen+1), false},
	} {
		err := checkName("key", tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("checkName(%q) = %v; want ok=%v", tt.in, err, tt.ok)
		}
	}
}

// encodeECKey returns key as an "EC PRIVATE KEY" (SEC 1) block, the format
// autocert writes.
func encodeECKey(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}
