package certstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Reload rescans the store directory and the operator file pairs now (for
// SIGHUP) and publishes a new index if anything changed. Versions that fail
// validation are logged and the previous entry keeps serving. It returns an
// error only if the certs directory cannot be read or ctx is done.
func (s *Store) Reload(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	return s.reloadLocked(ctx, nil)
}

// reloadLocked builds a new index from disk and publishes it if it differs
// from the current one. hints are entries just written by this process:
// when the content on disk is identical the hint is used without parsing.
// The caller holds opMu.
func (s *Store) reloadLocked(ctx context.Context, hints map[string]*Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("certstore: reload: %w", err)
	}
	des, err := os.ReadDir(s.certsDir)
	if err != nil {
		return fmt.Errorf("certstore: reload: %w", err)
	}
	old := s.idx.Load()
	seenRejects := make(map[string][32]byte)
	entries := make(map[string]*Entry)
	for _, de := range des {
		name := de.Name()
		if !de.IsDir() || checkName("certificate name", name) != nil {
			continue
		}
		if _, ok := s.pairs[name]; ok {
			continue // an operator file pair owns this name
		}
		prev := old.byName[name]
		if prev != nil && prev.Source != SourceStore {
			prev = nil
		}
		if e := s.loadStored(name, prev, hints[name], seenRejects); e != nil {
			entries[name] = e
		}
	}
	for name, p := range s.pairs {
		prev := old.byName[name]
		if prev != nil && prev.Source != SourceFile {
			prev = nil
		}
		if e := s.loadPair(p, prev, hints[name], seenRejects); e != nil {
			entries[name] = e
		}
	}
	s.rejected = seenRejects

	if sameEntries(old, entries) && old.def == entries[s.def] {
		return nil
	}
	s.idx.Store(buildIndex(entries, s.def))
	for name, e := range entries {
		switch prev := old.byName[name]; {
		case prev == nil:
			s.log.Info("cert.loaded", e.logAttrs()...)
			s.observeLoaded()
		case prev != e:
			s.log.Info("cert.reloaded", append(e.logAttrs(), slog.String("old_serial", prev.Serial()), slog.String("old_version", prev.Version))...)
			s.observeLoaded()
		}
	}
	for name, prev := range old.byName {
		if entries[name] == nil {
			s.log.Info("cert.removed", prev.logAttrs()...)
		}
	}
	return nil
}

func sameEntries(old *index, entries map[string]*Entry) bool {
	if len(old.byName) != len(entries) {
		return false
	}
	for name, e := range entries {
		if old.byName[name] != e {
			return false
		}
	}
	return true
}

// rejectLocked logs cert.rejected for content sum under key once: it is not
// logged again while the same content keeps failing on later reloads.
func (s *Store) rejectLocked(seen map[string][32]byte, key string, sum [32]byte, attrs ...any) {
	seen[key] = sum
	if prev, ok := s.rejected[key]; ok && prev == sum {
		return
	}
	s.log.Warn("cert.rejected", attrs...)
	s.observeRejected(attrs)
}

// loadStored returns the entry to serve for store certificate name: the
// version "current" points to if it is valid, else prev (the last good
// entry), else the newest valid older version, else nil.
func (s *Store) loadStored(name string, prev, hint *Entry, seen map[string][32]byte) *Entry {
	nameDir := filepath.Join(s.certsDir, name)
	var (
		version string
		vf      versionFiles
		err     error
	)
	// A concurrent writer in another process may prune the version between
	// reading "current" and reading the files; then "current" has moved
	// on, so read it again.
	for range 3 {
		version, err = readCurrent(nameDir)
		if err != nil {
			break
		}
		vf, err = readVersion(filepath.Join(nameDir, version))
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		if v, cerr := readCurrent(nameDir); cerr != nil || v == version {
			break
		}
	}
	if errors.Is(err, fs.ErrNotExist) && version == "" {
		// No "current" yet: nothing committed, or the name is being deleted.
		return prev
	}
	e, rerr := s.entryFromVersion(name, version, vf, err, hint, prev)
	if rerr == nil {
		return e
	}
	s.rejectLocked(seen, name+"/"+version, contentSum(vf.chain, vf.key, vf.meta),
		slog.String("name", name), slog.String("version", version), slog.String("source", SourceStore),
		slog.String("reason", rerr.Error()))
	if prev != nil {
		return prev
	}
	return s.fallback(name, version, seen)
}

// entryFromVersion validates one version read from disk (readErr is the
// error reading it). It returns hint or prev unchanged when the content is
// identical.
func (s *Store) entryFromVersion(name, version string, vf versionFiles, readErr error, hint, prev *Entry) (*Entry, error) {
	if readErr != nil {
		return nil, readErr
	}
	sum := contentSum(vf.chain, vf.key, vf.meta)
	for _, e := range []*Entry{hint, prev} {
		if e != nil && e.sum == sum && e.Version == version {
			return e, nil
		}
	}
	var meta Meta
	if err := json.Unmarshal(vf.meta, &meta); err != nil {
		return nil, fmt.Errorf("meta.json: %w", err)
	}
	cert, err := validate(vf.chain, vf.key, meta.Names, s.now())
	if err != nil {
		return nil, err
	}
	return &Entry{
		Name: name, Version: version, Cert: cert, Meta: meta, Source: SourceStore,
		chainPEM: vf.chain, keyPEM: vf.key, sum: sum,
	}, nil
}

// fallback returns the newest valid version of name other than bad, or nil.
func (s *Store) fallback(name, bad string, seen map[string][32]byte) *Entry {
	nameDir := filepath.Join(s.certsDir, name)
	vs, err := listVersions(nameDir)
	if err != nil {
		return nil
	}
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		if v == bad {
			continue
		}
		vf, err := readVersion(filepath.Join(nameDir, v))
		e, err := s.entryFromVersion(name, v, vf, err, nil, nil)
		if err != nil {
			s.rejectLocked(seen, name+"/"+v, contentSum(vf.chain, vf.key, vf.meta),
				slog.String("name", name), slog.String("version", v), slog.String("source", SourceStore),
				slog.String("reason", err.Error()))
			continue
		}
		s.log.Warn("cert.fallback", append(e.logAttrs(), slog.String("fallback_from", bad))...)
		return e
	}
	return nil
}
