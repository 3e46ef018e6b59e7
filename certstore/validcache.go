package certstore

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// The validated cache lets a restart skip the expensive half of validating a
// version it validated before: <dir>/certs.validated (0600, replaced
// atomically) lists the content sums (contentSum: chain, key and meta as
// read) of versions that passed full validation. At Open, a version whose
// sum is listed is still read and hashed, its leaf parsed and checked
// against the clock and Meta.Names, but its key is not parsed and matched
// against the leaf: that has been done for exactly these bytes. The key is
// parsed on its first signature instead (lazyKey), and checked against the
// leaf again then.
//
// The file is trusted only as a whole: a header naming the format and the
// Go toolchain (a new toolchain may parse differently), the sums, and a
// SHA-256 of everything before it. Anything else (missing, short, torn,
// another toolchain) is a miss of every version, which only costs time.
// Nothing is trusted by name or version: changed bytes have another sum.
const (
	validCacheName    = "certs.validated"
	validCacheMaxSums = 4 << 20 // 128 MiB of sums: more is not a cache this store wrote
)

// validCacheHeader identifies the format and the toolchain that validated.
func validCacheHeader() []byte {
	return []byte("edgecert certs.validated v1 " + runtime.Version() + "\n")
}

// validSums is a set of content sums known to have passed validation. A nil
// validSums holds nothing. Read-only once loaded.
type validSums map[[sha256.Size]byte]struct{}

func (v validSums) has(sum [sha256.Size]byte) bool {
	_, ok := v[sum]
	return ok
}

// readValidCache returns the sums in dir's cache; any problem is a miss
// (nil), never an error.
func readValidCache(dir string) validSums {
	f, err := os.Open(filepath.Join(dir, validCacheName))
	if err != nil {
		return nil
	}
	defer f.Close()
	hdr := validCacheHeader()
	data, err := io.ReadAll(io.LimitReader(f, int64(len(hdr))+validCacheMaxSums*sha256.Size+sha256.Size+1))
	if err != nil || len(data) < len(hdr)+sha256.Size || !bytes.HasPrefix(data, hdr) {
		return nil
	}
	body, check := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	sum := sha256.Sum256(body)
	if subtle.ConstantTimeCompare(sum[:], check) != 1 {
		return nil
	}
	sums := body[len(hdr):]
	if len(sums)%sha256.Size != 0 || len(sums)/sha256.Size > validCacheMaxSums {
		return nil
	}
	out := make(validSums, len(sums)/sha256.Size)
	for i := 0; i < len(sums); i += sha256.Size {
		out[[sha256.Size]byte(sums[i:i+sha256.Size])] = struct{}{}
	}
	return out
}

// encodeValidCache is the file content listing sums.
func encodeValidCache(sums [][sha256.Size]byte) []byte {
	hdr := validCacheHeader()
	b := make([]byte, 0, len(hdr)+(len(sums)+1)*sha256.Size)
	b = append(b, hdr...)
	for _, s := range sums {
		b = append(b, s[:]...)
	}
	check := sha256.Sum256(b)
	return append(b, check[:]...)
}

// writeValidCache replaces dir's cache with the sums of every store entry
// of entries (each validated, in full or through the cache, by this
// toolchain): temporary file, fsync, rename, fsync dir.
func writeValidCache(dir string, entries map[string]*Entry) error {
	sums := make([][sha256.Size]byte, 0, len(entries))
	for _, e := range entries {
		if e.Source == SourceStore {
			sums = append(sums, e.sum)
		}
	}
	return writeBlob(context.Background(), dir, validCacheName, encodeValidCache(sums))
}

// cleanValidCacheTemp removes temporary files a crash left while the cache
// was written, and returns their paths.
func cleanValidCacheTemp(dir string) ([]string, error) {
	tmps, err := filepath.Glob(filepath.Join(dir, tmpPrefix+validCacheName+"-*"))
	if err != nil {
		return nil, err
	}
	var errs []error
	var removed []string
	for _, t := range tmps {
		if err := os.Remove(t); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, t)
	}
	return removed, errors.Join(errs...)
}

// lazyKey is the private key of an entry validated through the cache: a
// crypto.Signer (and, for RSA, crypto.Decrypter) whose public half is the
// leaf's and whose private half is parsed from the stored DER on first use.
// The parse checks the key against the leaf once more; if it failed (it
// cannot for bytes this toolchain validated), every signature fails and
// the handshake with it. Safe for concurrent use.
type lazyKey struct {
	pub     crypto.PublicKey // the leaf's public key
	keyType string           // PEM block type of der
	der     []byte

	once sync.Once // guards the parse; key and err are set inside it
	key  crypto.Signer
	err  error
}

// Public returns the leaf's public key, without parsing the private key.
func (k *lazyKey) Public() crypto.PublicKey { return k.pub }

func (k *lazyKey) signer() (crypto.Signer, error) {
	k.once.Do(func() {
		key, err := parseKeyDER(k.keyType, k.der)
		if err == nil {
			if pub, ok := k.pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
				err = errors.New("private key does not match the leaf certificate")
			}
		}
		k.key, k.err = key, err
	})
	if k.err != nil {
		return nil, fmt.Errorf("certstore: cached key: %w", k.err)
	}
	return k.key, nil
}

// Sign parses the key on first use and signs with it.
func (k *lazyKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s, err := k.signer()
	if err != nil {
		return nil, err
	}
	return s.Sign(rand, digest, opts)
}

// Decrypt parses the key on first use and decrypts with it (RSA keys; an
// error for others).
func (k *lazyKey) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	s, err := k.signer()
	if err != nil {
		return nil, err
	}
	d, ok := s.(crypto.Decrypter)
	if !ok {
		return nil, fmt.Errorf("certstore: a %T key cannot decrypt", s)
	}
	return d.Decrypt(rand, msg, opts)
}
