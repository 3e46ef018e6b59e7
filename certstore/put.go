package certstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PutCert validates chainPEM (leaf first, then intermediates) and keyPEM
// against meta and stores them as a new version of certificate name, then
// makes it current, prunes old versions (keeping Options.Keep) and publishes
// the new index, so GetCertificate serves it when PutCert returns.
//
// If validation fails nothing is written and the error describes why. The
// version becomes visible atomically (see the package documentation); if ctx
// is cancelled or the process dies before that, nothing changes. An empty
// meta.Source is stored as "import". The returned entry is the one now
// served for name. PutCert fails for a name registered with AddFilePair.
// Writers are serialized; concurrent PutCert calls for one name each commit
// a version, the last one to commit is current.
func (s *Store) PutCert(ctx context.Context, name string, chainPEM, keyPEM []byte, meta Meta) (*Entry, error) {
	if err := checkName("certificate name", name); err != nil {
		return nil, err
	}
	if meta.Source == "" {
		meta.Source = "import"
	}
	pp, err := validate(chainPEM, keyPEM, meta.Names, s.now(), s.intern)
	if err != nil {
		return nil, fmt.Errorf("certstore: put %q: %w", name, err)
	}
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("certstore: put %q: %w", name, err)
	}
	metaJSON = append(metaJSON, '\n')
	chainPEM, keyPEM = clone(chainPEM), clone(keyPEM)

	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isClosed() {
		return nil, ErrClosed
	}
	if _, ok := s.pairs[name]; ok {
		return nil, fmt.Errorf("certstore: put %q: name is an operator file pair", name)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("certstore: put %q: %w", name, err)
	}
	nameDir := filepath.Join(s.certsDir, name)
	if err := os.Mkdir(nameDir, dirPerm); err == nil {
		err = syncDir(s.certsDir)
		if err != nil {
			return nil, fmt.Errorf("certstore: put %q: %w", name, err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("certstore: put %q: %w", name, err)
	}
	version, err := writeVersion(ctx, nameDir, versionFiles{chain: chainPEM, key: keyPEM, meta: metaJSON})
	if err != nil {
		return nil, fmt.Errorf("certstore: put %q: write version: %w", name, err)
	}
	if err := flipCurrent(nameDir, version); err != nil {
		return nil, fmt.Errorf("certstore: put %q: switch to version %s: %w", name, version, err)
	}
	e := &Entry{
		Name: name, Version: version, Cert: pp.cert, Meta: meta, Source: SourceStore,
		keyType: pp.keyType, keyDER: pp.keyDER, sum: contentSum(chainPEM, keyPEM, metaJSON),
	}
	// The version is committed; a cancelled ctx must not keep it from being
	// served.
	if err := s.reloadLocked(context.WithoutCancel(ctx), map[string]*Entry{name: e}); err != nil {
		return nil, fmt.Errorf("certstore: put %q: %w", name, err)
	}
	s.pruneLocked(name)
	if cur, ok := s.Current(name); ok {
		return cur, nil
	}
	return e, nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
