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
	"runtime"
	"sync"
	"sync/atomic"
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
// from the current one, in phases: list the stored names, load them and the
// operator file pairs, log the rejections, publish and log what changed,
// and refresh the validated cache. hints are entries just written by this
// process: when the content on disk is identical the hint is used without
// parsing. The caller holds opMu.
func (s *Store) reloadLocked(ctx context.Context, hints map[string]*Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("certstore: reload: %w", err)
	}
	names, err := s.listStoredLocked()
	if err != nil {
		return fmt.Errorf("certstore: reload: %w", err)
	}
	old := s.idx.Load()
	s.pairReasons = make(map[string]string)
	var rj rejects
	entries := s.loadEntriesLocked(names, old, hints, &rj)
	s.rejectAllLocked(&rj)
	s.intern.retain(entries)
	reasons := s.pairReasons // published read-only; the next reload makes a new one
	s.pairReasons = nil
	s.pairRejected.Store(&reasons)
	s.saveValidLocked(entries)
	if sameEntries(old, entries) && old.def == entries[s.def] {
		return nil
	}
	s.idx.Store(buildIndex(entries, s.def))
	s.logChangesLocked(old, entries)
	return nil
}

// listStoredLocked returns the certificate directories under certs/ that
// no operator file pair owns.
func (s *Store) listStoredLocked() ([]string, error) {
	des, err := os.ReadDir(s.certsDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		name := de.Name()
		if !de.IsDir() || checkName("certificate name", name) != nil {
			continue
		}
		if _, ok := s.pairs[name]; ok {
			continue // an operator file pair owns this name
		}
		names = append(names, name)
	}
	return names, nil
}

// loadEntriesLocked loads every stored name and every operator file pair
// and returns what is to be served, by certificate name. Rejections go to
// rj.
func (s *Store) loadEntriesLocked(names []string, old *index, hints map[string]*Entry, rj *rejects) map[string]*Entry {
	entries := make(map[string]*Entry, len(names)+len(s.pairs))
	for i, e := range s.loadAllStored(names, old, hints, rj) {
		if e != nil {
			entries[names[i]] = e
		}
	}
	for name, p := range s.pairs {
		prev := old.byName[name]
		if prev != nil && prev.Source != SourceFile {
			prev = nil
		}
		if e := s.loadPair(p, prev, hints[name], rj); e != nil {
			entries[name] = e
		}
	}
	return entries
}

// logChangesLocked logs cert.loaded, cert.reloaded and cert.removed for the
// differences between old and the entries just published.
func (s *Store) logChangesLocked(old *index, entries map[string]*Entry) {
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
}

// validRewriteMin is how many fully validated versions, since the
// validated cache was last written, make a reload after Open write it again
// (or an eighth of the store, if more): a renewal wave rewrites it a few
// times, not once per certificate. Open writes it whenever it validated
// anything in full.
const validRewriteMin = 64

// saveValidLocked drops the validated cache read by Open (it serves only
// the first load; later reloads compare with the entries in memory) and
// rewrites the file when enough versions were validated in full since it
// was last written. A failure is logged (store.cache_error) and costs only
// time at the next start.
func (s *Store) saveValidLocked(entries map[string]*Entry) {
	opening := s.valid != nil || !s.opened
	s.valid, s.opened = nil, true
	n := s.uncached.Load()
	if n == 0 || (!opening && n < max(validRewriteMin, int64(len(entries)/8))) {
		return
	}
	if err := writeValidCache(s.dir, entries); err != nil {
		s.log.Warn("store.cache_error", slog.String("path", filepath.Join(s.dir, validCacheName)), slog.Any("error", err))
		return
	}
	s.uncached.Store(0)
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

// parallelLoadMin is the number of certificates from which a reload reads
// and parses them on every CPU: below it, goroutines cost more than they
// save.
const parallelLoadMin = 64

// loadAllStored runs loadStored for every name, on GOMAXPROCS goroutines
// when there are many (parsing dominates a large store's start-up), and
// returns the entries in names' order (nil where nothing is served).
// Rejections are collected in rj, not logged, so the workers share nothing
// but the read-only old index and the concurrency-safe intern table.
func (s *Store) loadAllStored(names []string, old *index, hints map[string]*Entry, rj *rejects) []*Entry {
	out := make([]*Entry, len(names))
	parts := make([]rejects, loadWorkers(len(names)))
	forEachParallel(len(names), func(i, w int) {
		prev := old.byName[names[i]]
		if prev != nil && prev.Source != SourceStore {
			prev = nil
		}
		out[i] = s.loadStored(names[i], prev, hints[names[i]], &parts[w])
	})
	for _, p := range parts {
		rj.items = append(rj.items, p.items...)
	}
	return out
}

// loadWorkers is the number of goroutines forEachParallel uses for n items.
func loadWorkers(n int) int {
	return max(1, min(runtime.GOMAXPROCS(0), n/parallelLoadMin))
}

// forEachParallel calls fn(i, w) for every i in [0, n), on loadWorkers(n)
// goroutines (w is the worker's number, for per-worker results), and
// returns when every call has returned.
func forEachParallel(n int, fn func(i, w int)) {
	workers := loadWorkers(n)
	if workers == 1 {
		for i := range n {
			fn(i, 0)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i, w)
			}
		})
	}
	wg.Wait()
}

// rejects collects the versions a reload refused, to be logged once the
// reload is done (rejectAllLocked).
type rejects struct{ items []rejected }

type rejected struct {
	key   string   // "<name>/<version>" or a file pair key
	sum   [32]byte // content identity, for logging once per content
	attrs []any    // cert.rejected's attributes
}

func (r *rejects) add(key string, sum [32]byte, attrs ...any) {
	r.items = append(r.items, rejected{key, sum, attrs})
}

// rejectAllLocked logs cert.rejected for each of rj once per content: a
// version is not logged again while the same content keeps failing on later
// reloads. It replaces s.rejected with what this reload refused.
func (s *Store) rejectAllLocked(rj *rejects) {
	seen := make(map[string][32]byte, len(rj.items))
	for _, r := range rj.items {
		seen[r.key] = r.sum
		if prev, ok := s.rejected[r.key]; ok && prev == r.sum {
			continue
		}
		s.log.Warn("cert.rejected", r.attrs...)
		s.observeRejected(r.attrs)
	}
	s.rejected = seen
}

// loadStored returns the entry to serve for store certificate name: the
// version "current" points to if it is valid, else prev (the last good
// entry), else the newest valid older version, else nil.
func (s *Store) loadStored(name string, prev, hint *Entry, rj *rejects) *Entry {
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
	rj.add(name+"/"+version, contentSum(vf.chain, vf.key, vf.meta),
		slog.String("name", name), slog.String("version", version), slog.String("source", SourceStore),
		slog.String("reason", rerr.Error()))
	if prev != nil {
		return prev
	}
	return s.fallback(name, version, rj)
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
			if e == hint {
				s.uncached.Add(1) // validated in full by the write
			}
			return e, nil
		}
	}
	var meta Meta
	if err := json.Unmarshal(vf.meta, &meta); err != nil {
		return nil, fmt.Errorf("meta.json: %w", err)
	}
	check := validate
	if s.valid.has(sum) {
		check = validateCached // these bytes passed validate before
	}
	pp, err := check(vf.chain, vf.key, meta.Names, s.now(), s.intern)
	if err != nil {
		return nil, err
	}
	if !s.valid.has(sum) {
		s.uncached.Add(1)
	}
	return &Entry{
		Name: name, Version: version, Cert: pp.cert, Meta: meta, Source: SourceStore,
		keyType: pp.keyType, keyDER: pp.keyDER, sum: sum,
	}, nil
}

// fallback returns the newest valid version of name other than bad, or nil.
func (s *Store) fallback(name, bad string, rj *rejects) *Entry {
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
			rj.add(name+"/"+v, contentSum(vf.chain, vf.key, vf.meta),
				slog.String("name", name), slog.String("version", v), slog.String("source", SourceStore),
				slog.String("reason", err.Error()))
			continue
		}
		s.log.Warn("cert.fallback", append(e.logAttrs(), slog.String("fallback_from", bad))...)
		return e
	}
	return nil
}
