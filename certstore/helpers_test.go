package certstore

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/edgecert/edgecert/internal/logtest"
)

// openStore opens a store in a fresh temporary directory with a recording
// logger; the store is closed when the test ends.
func openStore(t testing.TB, opts Options) (*Store, *logtest.Recorder, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	rec := logtest.New()
	if opts.Logger == nil {
		opts.Logger = slog.New(rec)
	}
	s, err := Open(t.Context(), dir, opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s, rec, dir
}

func mustPut(t testing.TB, s *Store, name string, chain, key []byte, meta Meta) *Entry {
	t.Helper()
	e, err := s.PutCert(t.Context(), name, chain, key, meta)
	if err != nil {
		t.Fatalf("PutCert(%q) = %v", name, err)
	}
	return e
}

// writeExternal commits a version of certificate name the way another
// process following the documented protocol would (temporary directory,
// fsync, rename to the next sequence number, symlink flip), without the
// Store. It returns the version name.
func writeExternal(t testing.TB, dir, name string, chain, key, meta []byte) string {
	t.Helper()
	nameDir := filepath.Join(dir, "certs", name)
	if err := os.MkdirAll(nameDir, 0o700); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(nameDir, ".ext-")
	if err != nil {
		t.Fatal(err)
	}
	for f, data := range map[string][]byte{"chain.pem": chain, "key.pem": key, "meta.json": meta} {
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	des, err := os.ReadDir(nameDir)
	if err != nil {
		t.Fatal(err)
	}
	var max int
	for _, de := range des {
		if n, err := strconv.Atoi(de.Name()); err == nil && n > max {
			max = n
		}
	}
	version := formatVersion(uint64(max + 1))
	if err := os.Rename(tmp, filepath.Join(nameDir, version)); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(nameDir, ".ext-link")
	if err := os.Symlink(version, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link, filepath.Join(nameDir, "current")); err != nil {
		t.Fatal(err)
	}
	return version
}

func metaJSON(t testing.TB, m Meta) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// servedSerial returns the serial GetCertificate serves for serverName, or
// "" with the error.
func servedSerial(s *Store, serverName string) (string, error) {
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: serverName})
	if err != nil {
		return "", err
	}
	return c.Leaf.SerialNumber.Text(16), nil
}

func newLogger(rec *logtest.Recorder) *slog.Logger { return slog.New(rec) }

// watch runs s.Watch until the test ends (stopped before the store is
// closed: t.Cleanup runs last-registered first); an error from it fails the
// test.
func watch(t testing.TB, s *Store) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Watch(ctx); err != nil {
			t.Errorf("Watch() = %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}
