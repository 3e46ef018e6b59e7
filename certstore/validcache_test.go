package certstore

import (
	"crypto"
	"crypto/ecdsa"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
	"github.com/edgecert/edgecert/internal/logtest"
)

// reopen opens dir again with a fresh recorder.
func reopen(t *testing.T, dir string) (*Store, *logtest.Recorder) {
	t.Helper()
	rec := logtest.New()
	s, err := Open(t.Context(), dir, Options{Logger: newLogger(rec)})
	if err != nil {
		t.Fatalf("Open(%q) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, rec
}

// keyIsLazy reports whether the entry served for name was loaded through
// the validated cache (its key not parsed yet).
func keyIsLazy(t *testing.T, s *Store, name string) bool {
	t.Helper()
	e, ok := s.Current(name)
	if !ok {
		t.Fatalf("%s not served", name)
	}
	switch k := e.Cert.PrivateKey.(type) {
	case *lazyKey:
		return true
	case *ecdsa.PrivateKey:
		return false
	default:
		t.Fatalf("%s: key of type %T", name, k)
		return false
	}
}

// TestValidCacheSkipsKeyParseOnRestart: a restart serves the versions it
// validated before without parsing their keys, and the lazily parsed key
// signs what the leaf verifies (a full handshake).
func TestValidCacheSkipsKeyParseOnRestart(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, _, dir := openStore(t, Options{})
	chain, key := ca.Valid(t, "a.example.com")
	mustPut(t, s, "a", chain, key, Meta{Names: []string{"a.example.com"}})
	s.Close()
	if fi, err := os.Stat(filepath.Join(dir, validCacheName)); err == nil && fi.Mode().Perm() != filePerm {
		t.Fatalf("%s mode %v; want 0600", validCacheName, fi.Mode().Perm())
	}

	s2, _ := reopen(t, dir) // validates in full (PutCert's reload does not write the cache), writes it
	if keyIsLazy(t, s2, "a") {
		t.Fatal("first Open served a key it had not validated through the cache")
	}
	s2.Close()
	s3, _ := reopen(t, dir)
	if !keyIsLazy(t, s3, "a") {
		t.Fatal("second Open parsed the key although certs.validated lists the version")
	}
	cfg := &tls.Config{GetCertificate: s3.GetCertificate, SessionTicketsDisabled: true}
	if err := handshake(cfg, &tls.Config{ServerName: "a.example.com", RootCAs: ca.Pool}); err != nil {
		t.Fatalf("handshake with the lazily parsed key: %v", err)
	}
}

// TestValidCacheChangedBytesAreValidated is the test that fails if the cache
// were trusted by name or version instead of by content: version 2 passes,
// is cached, and is then overwritten in place with a key that parses but
// belongs to another certificate. The next Open must reject it and serve
// version 1, the last good one.
func TestValidCacheChangedBytesAreValidated(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, _, dir := openStore(t, Options{})
	chain1, key1 := ca.Valid(t, "a.example.com")
	mustPut(t, s, "a", chain1, key1, Meta{})
	chain2, key2 := ca.Valid(t, "a.example.com")
	e2 := mustPut(t, s, "a", chain2, key2, Meta{})
	s.Close()
	s2, _ := reopen(t, dir) // writes the cache listing version 2
	s2.Close()
	if got := readValidCache(dir); !got.has(e2.sum) {
		t.Fatalf("certs.validated does not list version %s", e2.Version)
	}

	_, otherKey := ca.Valid(t, "a.example.com")
	if err := os.WriteFile(filepath.Join(dir, "certs", "a", e2.Version, keyFile), otherKey, filePerm); err != nil {
		t.Fatal(err)
	}
	s3, rec := reopen(t, dir)
	if got := rec.Find("cert.rejected", map[string]string{"version": e2.Version}); len(got) != 1 ||
		!strings.Contains(got[0].Attrs["reason"], "does not match") {
		t.Fatalf("cert.rejected for the overwritten version: %v; want one, key does not match", got)
	}
	e, ok := s3.Current("a")
	if !ok || e.Version == e2.Version || e.Serial() != certstoretest.Serial(t, chain1) {
		t.Fatalf("served %v; want version 1 (serial %s)", e, certstoretest.Serial(t, chain1))
	}
}

// TestValidCacheDamagedFileIsAMiss: a cache file that is torn, edited or
// written by another toolchain is ignored as a whole.
func TestValidCacheDamagedFileIsAMiss(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, _, dir := openStore(t, Options{})
	chain, key := ca.Valid(t, "a.example.com")
	mustPut(t, s, "a", chain, key, Meta{})
	s.Close()
	s2, _ := reopen(t, dir)
	s2.Close()
	path := filepath.Join(dir, validCacheName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"truncated", good[:len(good)-1]},
		{"sum bit flipped", flip(len(validCacheHeader()))},
		{"checksum bit flipped", flip(len(good) - 1)},
		{"other toolchain", []byte(strings.Replace(string(good), "go", "gx", 1))},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.data, filePerm); err != nil {
				t.Fatal(err)
			}
			if got := readValidCache(dir); got != nil {
				t.Fatalf("readValidCache = %d sums; want a miss", len(got))
			}
			s, _ := reopen(t, dir)
			if keyIsLazy(t, s, "a") {
				t.Fatal("served through a damaged cache")
			}
			s.Close()
		})
	}
}

// TestValidCacheStillChecksTime: a listed version that has expired since is
// rejected: the cache skips only what the bytes decide.
func TestValidCacheStillChecksTime(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, _, dir := openStore(t, Options{})
	chain, key := ca.Valid(t, "a.example.com") // 30 days
	mustPut(t, s, "a", chain, key, Meta{})
	s.Close()
	s2, _ := reopen(t, dir)
	s2.Close()
	later := certstoretest.Leaf(t, chain).NotAfter.Add(1)
	rec := logtest.New()
	s3, err := Open(t.Context(), dir, Options{Logger: newLogger(rec), Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if e, ok := s3.Current("a"); ok {
		t.Fatalf("served %v after its expiry", e)
	}
	if got := rec.Find("cert.rejected", nil); len(got) != 1 || !strings.Contains(got[0].Attrs["reason"], "expired") {
		t.Fatalf("cert.rejected = %v; want one, expired", got)
	}
}

// TestLazyKeyMismatch: a lazily parsed key that does not match the leaf
// never signs.
func TestLazyKeyMismatch(t *testing.T) {
	ca := certstoretest.NewCA(t)
	chain, _ := ca.Valid(t, "a.example.com")
	_, other := ca.Valid(t, "a.example.com")
	b, err := keyBlock(other)
	if err != nil {
		t.Fatal(err)
	}
	k := &lazyKey{pub: certstoretest.Leaf(t, chain).PublicKey, keyType: b.Type, der: b.Bytes}
	digest := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(crand.Reader, digest[:], crypto.SHA256); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Sign with a mismatched key = %v; want does not match", err)
	}
}
