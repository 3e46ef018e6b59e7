package certstore

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

// autocertBundle encodes a certificate the way autocert's cachePut does:
// the key block, then the chain blocks.
func autocertBundle(t testing.TB, ca *certstoretest.CA, notAfter time.Time, names ...string) (bundle, chain []byte) {
	t.Helper()
	key := certstoretest.NewKey(t)
	chain = ca.IssueForKey(t, key, names, time.Now().Add(-time.Hour), notAfter)
	return append(encodeECKey(t, key), chain...), chain
}

func TestCacheRoundTrip(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, _, dir := openStore(t, Options{})
	ctx := t.Context()

	t.Run("miss", func(t *testing.T) {
		if got, err := s.Get(ctx, "nothing"); !errors.Is(err, autocert.ErrCacheMiss) {
			t.Errorf("Get(nothing) = %q, %v; want ErrCacheMiss", got, err)
		}
	})

	t.Run("blob", func(t *testing.T) {
		accountKey := encodeECKey(t, certstoretest.NewKey(t)) // a key with no certificate: a blob
		for _, blob := range [][]byte{accountKey, []byte(`{"ari":"state"}`), {}, accountKey[:20]} {
			if err := s.Put(ctx, "acme_account+key", blob); err != nil {
				t.Fatalf("Put(acme_account+key) = %v", err)
			}
			got, err := s.Get(ctx, "acme_account+key")
			if err != nil || !bytes.Equal(got, blob) {
				t.Fatalf("Get(acme_account+key) = %q, %v; want %q", got, err, blob)
			}
		}
		if _, ok := s.Current("acme_account+key"); ok {
			t.Errorf("a blob is served as a certificate")
		}
		assertMode(t, filepath.Join(dir, "data", "acme_account+key"), 0o600)
		assertNoTemp(t, filepath.Join(dir, "data"))
		if err := s.Delete(ctx, "acme_account+key"); err != nil {
			t.Fatalf("Delete(acme_account+key) = %v", err)
		}
		if got, err := s.Get(ctx, "acme_account+key"); !errors.Is(err, autocert.ErrCacheMiss) {
			t.Errorf("Get after Delete = %q, %v; want ErrCacheMiss", got, err)
		}
		if err := s.Delete(ctx, "acme_account+key"); err != nil {
			t.Errorf("Delete of a missing key = %v; want nil", err)
		}
	})

	t.Run("certificate", func(t *testing.T) {
		bundle, chain := autocertBundle(t, ca, time.Now().Add(90*24*time.Hour), "example.com")
		if err := s.Put(ctx, "example.com", bundle); err != nil {
			t.Fatalf("Put(example.com, bundle) = %v", err)
		}
		e, ok := s.Current("example.com")
		if !ok || e.Meta.Source != "acme" || e.Source != SourceStore {
			t.Fatalf("Current(example.com) = %v, %v; want an acme store entry", e, ok)
		}
		if got, want := e.Serial(), certstoretest.Serial(t, chain); got != want {
			t.Errorf("served serial %s; want %s", got, want)
		}
		got, err := s.Get(ctx, "example.com")
		if err != nil || !bytes.Equal(got, bundle) {
			t.Fatalf("Get(example.com) = %q, %v; want the bundle put", got, err)
		}
		// The stored version is an ordinary version directory.
		v := filepath.Join(dir, "certs", "example.com", e.Version)
		for _, f := range []string{"chain.pem", "key.pem", "meta.json"} {
			assertMode(t, filepath.Join(v, f), 0o600)
		}
		for _, d := range []string{dir, filepath.Join(dir, "certs"), filepath.Join(dir, "data"), filepath.Join(dir, "certs", "example.com"), v} {
			assertMode(t, d, fs.ModeDir|0o700)
		}

		// autocert itself reads it back as a valid cached certificate.
		m := &autocert.Manager{
			Cache:  s,
			Prompt: autocert.AcceptTOS,
			Client: &acme.Client{DirectoryURL: "http://127.0.0.1:1/directory"}, // never reached on a hit
		}
		hello := &tls.ClientHelloInfo{
			ServerName:       "example.com",
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:  []tls.CurveID{tls.CurveP256},
		}
		c, err := m.GetCertificate(hello)
		if err != nil {
			t.Fatalf("autocert.Manager.GetCertificate(example.com) over the store = %v", err)
		}
		if got, want := c.Leaf.SerialNumber.Text(16), e.Serial(); got != want {
			t.Errorf("autocert served serial %s; want %s", got, want)
		}

		if err := s.Delete(ctx, "example.com"); err != nil {
			t.Fatalf("Delete(example.com) = %v", err)
		}
		if _, ok := s.Current("example.com"); ok {
			t.Errorf("Current(example.com) still served after Delete")
		}
		if got, err := s.Get(ctx, "example.com"); !errors.Is(err, autocert.ErrCacheMiss) {
			t.Errorf("Get(example.com) after Delete = %q, %v; want ErrCacheMiss", got, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "certs", "example.com")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("certs/example.com after Delete: stat = %v; want not exist", err)
		}
		assertNoTemp(t, filepath.Join(dir, "certs"))
	})

	t.Run("invalid certificate refused", func(t *testing.T) {
		bundle, _ := autocertBundle(t, ca, time.Now().Add(-time.Minute), "expired.example.com")
		if err := s.Put(ctx, "expired.example.com", bundle); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("Put(expired bundle) = %v; want an expired error", err)
		}
		if _, err := s.Get(ctx, "expired.example.com"); !errors.Is(err, autocert.ErrCacheMiss) {
			t.Errorf("Get(expired.example.com) = %v; want ErrCacheMiss", err)
		}
	})

	t.Run("token certificate is a blob", func(t *testing.T) {
		bundle, _ := autocertBundle(t, ca, time.Now().Add(time.Hour), "tok.example.com")
		if err := s.Put(ctx, "tok.example.com+token", bundle); err != nil {
			t.Fatalf("Put(+token) = %v", err)
		}
		if _, ok := s.Current("tok.example.com+token"); ok {
			t.Errorf("a tls-alpn-01 token certificate is served")
		}
		if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "tok.example.com"}); err == nil {
			t.Errorf("GetCertificate(tok.example.com) served the token certificate")
		}
		if got, err := s.Get(ctx, "tok.example.com+token"); err != nil || !bytes.Equal(got, bundle) {
			t.Errorf("Get(+token) = %q, %v; want the bundle", got, err)
		}
	})
}

func TestCacheBadKeys(t *testing.T) {
	s, _, dir := openStore(t, Options{})
	ctx := t.Context()
	for _, key := range []string{"", ".", "..", "../escape", "a/../../b", "a/b", "/abs", `a\b`, "nul\x00byte", ".hidden", "x..y"} {
		t.Run(key, func(t *testing.T) {
			if err := s.Put(ctx, key, []byte("data")); err == nil {
				t.Errorf("Put(%q) = nil; want error", key)
			}
			if _, err := s.Get(ctx, key); err == nil || errors.Is(err, autocert.ErrCacheMiss) {
				t.Errorf("Get(%q) = %v; want a non-miss error", key, err)
			}
			if err := s.Delete(ctx, key); err == nil {
				t.Errorf("Delete(%q) = nil; want error", key)
			}
		})
	}
	// Nothing was written anywhere: the parent of dir holds only dir, and
	// data/ is empty.
	des, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 1 {
		t.Errorf("parent of the store holds %d entries; want 1", len(des))
	}
	if des, _ := os.ReadDir(filepath.Join(dir, "data")); len(des) != 0 {
		t.Errorf("data/ holds %d entries; want 0", len(des))
	}
}

func TestSplitBundle(t *testing.T) {
	ca := certstoretest.NewCA(t)
	bundle, chain := autocertBundle(t, ca, time.Now().Add(time.Hour), "example.com")
	keyOnly := encodeECKey(t, certstoretest.NewKey(t))
	for _, tt := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"autocert bundle", bundle, true},
		{"key only", keyOnly, false},
		{"chain only", chain, false},
		{"json", []byte(`{"k":1}`), false},
		{"empty", nil, false},
		{"chain then key", append(bytes.Clone(chain), keyOnly...), false},
	} {
		k, c, ok := splitBundle(tt.data)
		if ok != tt.ok {
			t.Errorf("splitBundle(%s) ok = %v; want %v", tt.name, ok, tt.ok)
			continue
		}
		if ok {
			if b, _ := pem.Decode(k); b == nil || b.Type != "EC PRIVATE KEY" {
				t.Errorf("splitBundle(%s) key part is not the key block", tt.name)
			}
			if !bytes.Equal(c, chain) {
				t.Errorf("splitBundle(%s) chain part differs from the chain", tt.name)
			}
		}
	}
}

func assertMode(t testing.TB, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (fs.ModeType | fs.ModePerm); got != want {
		t.Errorf("mode of %s = %v; want %v", path, got, want)
	}
}

// assertNoTemp fails if dir holds an entry whose name starts with ".".
func assertNoTemp(t testing.TB, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			t.Errorf("temporary entry %s left in %s", de.Name(), dir)
		}
	}
}
