package certstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

var _ autocert.Cache = (*Store)(nil)

// ErrClosed is returned by methods that write when the store is closed.
var ErrClosed = errors.New("certstore: store closed")

// Defaults for Options.
const (
	DefaultKeep     = 3
	DefaultDebounce = 100 * time.Millisecond
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Logger receives the events listed in the package documentation.
	// nil discards them.
	Logger *slog.Logger
	// Keep is how many versions of each certificate are kept on disk,
	// including the current one. Pruning (after PutCert, and in Open) never
	// removes the version "current" points to or the one being served.
	// Zero or less means DefaultKeep (3).
	Keep int
	// Now returns the time used for validation. nil means time.Now.
	Now func() time.Time
	// Default is the certificate name served when the client sends no
	// server name or one that no entry covers. "" means such handshakes
	// fail (GetCertificate returns an error, crypto/tls sends an alert).
	Default string
	// Debounce is how long Watch waits after the first file system event
	// before reloading, so a burst of events causes one reload. Zero or less
	// means DefaultDebounce (100ms).
	Debounce time.Duration
	// Observer, if not nil, is told about every version the store starts
	// serving and every version it refuses (see Observer).
	Observer Observer
	// Alive, if not nil, is called by Watch after each reload it makes: at
	// start, after changes, and at least once a minute (the safety-net
	// rescan, or every poll without fsnotify) while it runs. A caller sees
	// from it that the watcher is not stuck (the daemon's watchdog).
	Alive func()
}

// Observer receives the store's load events for metrics: StoreLoaded with
// each cert.loaded or cert.reloaded, StoreRejected with each cert.rejected
// (once per content, as logged) and the reason's class (RejectClass). It is
// called with the store's write lock held: it must not block or call back
// into the Store.
type Observer interface {
	StoreLoaded()
	StoreRejected(reasonClass string)
}

// Store is a certificate store rooted at one directory. All methods are safe
// for concurrent use. GetCertificate, Current and Entries read an immutable
// index published atomically and never block on writers or reloads.
//
// One Store should own a directory at a time; other processes may add
// versions following the protocol in the package documentation.
type Store struct {
	dir, certsDir, dataDir string
	log                    *slog.Logger
	obs                    Observer // nil: nothing is told
	alive                  func()   // Options.Alive; nil: nothing is told
	keep                   int
	now                    func() time.Time
	def                    string
	debounce               time.Duration
	pollEvery              time.Duration // Watch's rescan period without fsnotify
	rescanEvery            time.Duration // Watch's safety-net rescan period with fsnotify

	idx atomic.Pointer[index] // what is served; replaced whole by reloads

	// opMu serializes disk writes (PutCert, Put, Delete), reloads and
	// AddFilePair, so that a scan never publishes an index older than a
	// write that finished before it. It is held across disk I/O on purpose;
	// it is never taken on the handshake path (GetCertificate, Current,
	// Entries), which only reads idx.
	opMu sync.Mutex
	// pairs holds the operator file pairs by certificate name; guarded by opMu.
	pairs map[string]filePair
	// rejected maps "<name>/<version>" (or a file pair key) to the content
	// sum last logged as cert.rejected, so a bad version is logged once,
	// not on every rescan; guarded by opMu.
	rejected map[string][32]byte
	// pairReasons collects, during one reload (guarded by opMu), why each
	// operator file pair is rejected; pairRejected publishes it (Rejected).
	pairReasons  map[string]string
	pairRejected atomic.Pointer[map[string]string]

	// valid is the validated cache read by Open, used by its first load
	// and dropped after it; opened is set once that load is done; both
	// guarded by opMu. uncached counts the versions validated in full since
	// the cache was last written (loads run on several goroutines).
	valid    validSums
	opened   bool
	uncached atomic.Int64

	leases localLeases // in-process leases (Lock)
	intern *derIntern  // intermediates shared between entries (own lock)

	kick      chan struct{} // wakes Watch to refresh its watch list (buffer 1)
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
}

// Open opens the store in dir, creating dir, dir/certs and dir/data with mode
// 0700 if needed. It removes temporary files and directories left by a crash
// (logged store.cleaned), loads every certificate (falling back to the
// newest valid older version where "current" is bad), and prunes old
// versions. A certificate that fails validation is logged and skipped, not an
// error; Open fails only if the directories cannot be created or read.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	s := &Store{
		dir:         dir,
		certsDir:    filepath.Join(dir, certsDirName),
		dataDir:     filepath.Join(dir, dataDirName),
		log:         opts.Logger,
		obs:         opts.Observer,
		alive:       opts.Alive,
		keep:        opts.Keep,
		now:         opts.Now,
		def:         opts.Default,
		debounce:    opts.Debounce,
		pollEvery:   5 * time.Second,
		rescanEvery: time.Minute,
		pairs:       make(map[string]filePair),
		rejected:    make(map[string][32]byte),
		kick:        make(chan struct{}, 1),
		intern:      newDERIntern(),
		closed:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.keep <= 0 {
		s.keep = DefaultKeep
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.debounce <= 0 {
		s.debounce = DefaultDebounce
	}
	s.idx.Store(emptyIndex)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("certstore: open: %w", err)
	}
	for _, d := range []string{dir, s.certsDir, s.dataDir} {
		if err := os.MkdirAll(d, dirPerm); err != nil {
			return nil, fmt.Errorf("certstore: open: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("certstore: open: %w", err)
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	crowded, err := s.cleanLocked()
	if err != nil {
		return nil, err
	}
	s.valid = readValidCache(dir)
	if err := s.reloadLocked(ctx, nil); err != nil {
		return nil, err
	}
	s.pruneAllLocked(crowded)
	return s, nil
}

// cleanLocked removes temporary entries under certs/, each certs/<name>/ and
// data/, certificate directories that hold nothing, and temporary files of
// the validated cache. The directories are read on several goroutines (a
// large store has thousands); what was removed is logged in order after.
// It returns the names whose directory still holds more than s.keep
// versions (counting every entry but "current" as one: the only ones
// pruning at Open can change), so that Open does not read every
// directory a second time.
func (s *Store) cleanLocked() ([]string, error) {
	names := s.storeNames()
	dirs := []string{s.certsDir, s.dataDir}
	for _, name := range names {
		dirs = append(dirs, filepath.Join(s.certsDir, name))
	}
	type cleaned struct {
		removed []string // paths
		left    int      // entries the directory still holds
		err     error
	}
	res := make([]cleaned, len(dirs))
	forEachParallel(len(dirs), func(i, _ int) {
		res[i].removed, res[i].left, res[i].err = s.cleanDir(dirs[i], i >= 2)
	})
	var errs []error
	var crowded []string
	for i, r := range res {
		for _, p := range r.removed {
			s.log.Info("store.cleaned", slog.String("path", p))
		}
		if r.err != nil {
			errs = append(errs, r.err)
		}
		if i >= 2 && (r.err != nil || r.left-1 > s.keep) {
			crowded = append(crowded, names[i-2])
		}
	}
	removed, err := cleanValidCacheTemp(s.dir)
	for _, p := range removed {
		s.log.Info("store.cleaned", slog.String("path", p))
	}
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, fmt.Errorf("certstore: open: clean temporary files: %w", err)
	}
	return crowded, nil
}

// cleanDir removes the temporary entries of d and, if nameDir, d itself
// when nothing else is in it (a crash between creating the directory and
// committing the first version leaves it empty). It returns the paths
// removed and the number of entries d still holds.
func (s *Store) cleanDir(d string, nameDir bool) ([]string, int, error) {
	removed, had, err := cleanTemp(d)
	var paths []string
	for _, r := range removed {
		paths = append(paths, filepath.Join(d, r))
	}
	left := had - len(removed)
	if err != nil || !nameDir || left > 0 {
		return paths, left, err
	}
	if err := os.Remove(d); err != nil {
		return paths, left, err
	}
	return append(paths, d), 0, nil
}

// storeNames lists the certificate directory names under certs/. Errors
// yield an empty list; callers that need the error read the directory
// themselves.
func (s *Store) storeNames() []string {
	des, err := os.ReadDir(s.certsDir)
	if err != nil {
		return nil
	}
	var names []string
	for _, de := range des {
		if de.IsDir() && checkName("certificate name", de.Name()) == nil {
			names = append(names, de.Name())
		}
	}
	return names
}

// Close stops Watch loops and makes later writes fail with ErrClosed. The
// last index keeps being served by GetCertificate. Close is idempotent and
// always returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// pruneAllLocked prunes the stored certificates names (Open: those
// cleanLocked found with more than s.keep versions): the directories are
// read on several goroutines, the removals made and logged in name order
// after.
func (s *Store) pruneAllLocked(names []string) {
	plans := make([]prunePlan, len(names))
	forEachParallel(len(names), func(i, _ int) { plans[i] = s.planPrune(names[i]) })
	for _, p := range plans {
		s.applyPrune(p)
	}
}

// pruneLocked removes old versions of certificate name so that at most
// s.keep remain, never removing the version "current" points to or the one
// being served. Failures are logged; pruning is retried on the next write.
func (s *Store) pruneLocked(name string) { s.applyPrune(s.planPrune(name)) }

// prunePlan is what pruning one certificate name removes.
type prunePlan struct {
	name   string
	remove []string // version names
	err    error    // listing the versions failed (not "does not exist")
}

// planPrune reads name's versions and chooses those to remove.
func (s *Store) planPrune(name string) prunePlan {
	nameDir := filepath.Join(s.certsDir, name)
	vs, err := listVersions(nameDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		return prunePlan{name: name, err: err}
	}
	keep := make(map[string]bool)
	if cur, err := readCurrent(nameDir); err == nil {
		keep[cur] = true
	}
	if e, ok := s.Current(name); ok && e.Source == SourceStore {
		keep[e.Version] = true
	}
	for i := len(vs) - 1; i >= 0 && len(keep) < s.keep; i-- {
		keep[vs[i]] = true
	}
	p := prunePlan{name: name}
	for _, v := range vs {
		if !keep[v] {
			p.remove = append(p.remove, v)
		}
	}
	return p
}

// applyPrune removes p's versions, logging each (cert.pruned) or the
// failure (store.prune_error).
func (s *Store) applyPrune(p prunePlan) {
	if p.err != nil {
		s.log.Warn("store.prune_error", slog.String("name", p.name), slog.Any("error", p.err))
		return
	}
	nameDir := filepath.Join(s.certsDir, p.name)
	for _, v := range p.remove {
		if err := removeDir(filepath.Join(nameDir, v)); err != nil {
			s.log.Warn("store.prune_error", slog.String("name", p.name), slog.String("version", v), slog.Any("error", err))
			continue
		}
		s.log.Info("cert.pruned", slog.String("name", p.name), slog.String("version", v))
	}
}
