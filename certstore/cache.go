package certstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/acme/autocert"
)

// Get implements autocert.Cache. For a certificate served from the store
// it returns the private key PEM followed by the chain PEM (autocert's
// format); otherwise the blob stored under key; otherwise
// autocert.ErrCacheMiss. Invalid keys are an error.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkName("cache key", key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("certstore: get %q: %w", key, err)
	}
	if !isTokenKey(key) {
		if e, ok := s.Current(key); ok && e.Source == SourceStore {
			chain, key := e.PEM()
			return append(key, chain...), nil
		}
	}
	data, err := os.ReadFile(filepath.Join(s.dataDir, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, autocert.ErrCacheMiss
	}
	if err != nil {
		return nil, fmt.Errorf("certstore: get %q: %w", key, err)
	}
	return data, nil
}

// Put implements autocert.Cache. If data is a private key PEM block followed
// by CERTIFICATE blocks it is stored as a certificate version of name key,
// exactly as PutCert with Meta.Source "acme" (so invalid certificates are
// refused with an error). Anything else is written atomically to data/<key>
// with mode 0600. If ctx is done before the final rename, nothing changes.
// A certificate and a blob may share a key; Get then returns the
// certificate. Invalid keys are an error.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := checkName("cache key", key); err != nil {
		return err
	}
	if keyPEM, chainPEM, ok := splitBundle(data); ok && !isTokenKey(key) {
		_, err := s.PutCert(ctx, key, chainPEM, keyPEM, Meta{Source: "acme"})
		return err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if err := writeBlob(ctx, s.dataDir, key, data); err != nil {
		return fmt.Errorf("certstore: put %q: %w", key, err)
	}
	return nil
}

// Delete implements autocert.Cache: it removes the blob and the stored
// certificate (every version) named key, which then stops being served.
// Operator file pairs are not affected. A missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkName("cache key", key); err != nil {
		return err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("certstore: delete %q: %w", key, err)
	}
	err := os.Remove(filepath.Join(s.dataDir, key))
	if err == nil {
		err = syncDir(s.dataDir)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("certstore: delete %q: %w", key, err)
	}
	if isTokenKey(key) {
		return nil
	}
	if _, ok := s.pairs[key]; ok {
		return nil
	}
	err = removeDir(filepath.Join(s.certsDir, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("certstore: delete %q: %w", key, err)
	}
	return s.reloadLocked(context.WithoutCancel(ctx), nil)
}

// isTokenKey reports whether key names an autocert tls-alpn-01 challenge
// certificate, which must never be served as a regular certificate.
func isTokenKey(key string) bool { return strings.HasSuffix(key, "+token") }

// splitBundle splits autocert's certificate format: one PEM block whose type
// ends in "PRIVATE KEY", then the chain. ok is false if data does not start
// with a private key block or no CERTIFICATE block follows; the chain is
// validated later.
func splitBundle(data []byte) (keyPEM, chainPEM []byte, ok bool) {
	b, rest, err := nextBlock(data)
	if err != nil || b == nil || !strings.HasSuffix(b.Type, "PRIVATE KEY") {
		return nil, nil, false
	}
	if !bytes.Contains(rest, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, nil, false
	}
	return data[:len(data)-len(rest)], rest, true
}
