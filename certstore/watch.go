package certstore

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch keeps the index in step with the disk until ctx is done or the store
// is closed, then returns nil. It reloads once immediately, then watches
// <dir>/certs, every <dir>/certs/<name> (adding new names as they appear) and
// the directories holding operator file pairs; a watched directory that is
// deleted and recreated is watched again within missingRetry. Any event schedules one full
// reload after Options.Debounce (events during that window do not postpone
// it); a full rescan also runs every minute as a safety net. If fsnotify
// cannot be used, Watch logs store.watch_error and rescans every 5 seconds
// instead. Reload failures are logged as store.watch_error and retried on
// the next event or rescan.
func (s *Store) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Error("store.watch_error", slog.Any("error", err), slog.Bool("fallback", true))
		return s.poll(ctx)
	}
	defer func() {
		if err := w.Close(); err != nil {
			s.log.Warn("store.watch_error", slog.Any("error", err))
		}
	}()

	// watched holds the directories with a live watch; missing those
	// wanted that could not be watched (they do not exist, or not yet).
	// A watched directory that is deleted loses its watch with it (inotify
	// drops it), so a Remove or Rename of the directory itself moves it from
	// watched back to wanted; a missing one is retried every missingRetry
	// until it exists, so a deleted and recreated directory is watched and
	// reloaded again within about missingRetry + Debounce.
	watched := make(map[string]bool)
	missing := make(map[string]bool)
	retry := time.NewTimer(missingRetry)
	retry.Stop()
	defer retry.Stop()
	// add watches d and reports whether it could; the first failure for a
	// directory is logged, repeats are not.
	add := func(d string) bool {
		if err := w.Add(d); err != nil {
			if !missing[d] {
				s.log.Warn("store.watch_error", slog.String("path", d), slog.Any("error", err), slog.Bool("retrying", true))
			}
			missing[d] = true
			return false
		}
		if missing[d] {
			s.log.Info("store.watch_restored", slog.String("path", d))
		}
		delete(missing, d)
		watched[d] = true
		return true
	}
	// refresh updates the watch list, then reloads: a change made after a
	// directory is watched produces an event, one made before is seen by the
	// reload.
	refresh := func() {
		want := s.watchDirs()
		for d := range want {
			if !watched[d] {
				add(d)
			}
		}
		for d := range watched {
			if want[d] {
				continue
			}
			delete(watched, d)
			// Watches on deleted directories are already gone; an error
			// here only means that.
			if err := w.Remove(d); err != nil {
				s.log.Debug("store.watch_remove", slog.String("path", d), slog.Any("error", err))
			}
		}
		for d := range missing {
			if !want[d] {
				delete(missing, d)
			}
		}
		if len(missing) > 0 {
			retry.Reset(missingRetry)
		}
		s.reloadForWatch(ctx)
	}
	refresh()

	rescan := time.NewTicker(s.rescanEvery)
	defer rescan.Stop()
	debounce := time.NewTimer(s.debounce)
	debounce.Stop()
	pending := false
	schedule := func() {
		if !pending {
			pending = true
			debounce.Reset(s.debounce)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				s.log.Error("store.watch_error", slog.String("error", "fsnotify event channel closed"), slog.Bool("fallback", true))
				return s.poll(ctx)
			}
			if ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 && watched[ev.Name] {
				// The directory itself went: its watch is gone (or points
				// at an inode elsewhere); the refresh watches it again.
				delete(watched, ev.Name)
				_ = w.Remove(ev.Name)
			}
			schedule()
		case <-retry.C:
			added := false
			for d := range missing {
				added = add(d) || added
			}
			if added {
				schedule()
			}
			if len(missing) > 0 {
				retry.Reset(missingRetry)
			}
		case err, ok := <-w.Errors:
			if !ok {
				s.log.Error("store.watch_error", slog.String("error", "fsnotify error channel closed"), slog.Bool("fallback", true))
				return s.poll(ctx)
			}
			// Includes queue overflows: events were lost, so rescan.
			s.log.Warn("store.watch_error", slog.Any("error", err))
			schedule()
		case <-s.kick:
			refresh()
		case <-debounce.C:
			pending = false
			refresh()
		case <-rescan.C:
			refresh()
		}
	}
}

// missingRetry is how often Watch retries watching a wanted directory that
// does not exist (deleted, or not created yet).
const missingRetry = 250 * time.Millisecond

// poll is Watch without fsnotify: a full reload every pollEvery.
func (s *Store) poll(ctx context.Context) error {
	t := time.NewTicker(s.pollEvery)
	defer t.Stop()
	for {
		s.reloadForWatch(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case <-s.kick:
		case <-t.C:
		}
	}
}

func (s *Store) reloadForWatch(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	if err := s.Reload(ctx); err != nil {
		s.log.Warn("store.watch_error", slog.Any("error", err))
	}
	if s.alive != nil {
		s.alive()
	}
}

// watchDirs returns the directories Watch should watch.
func (s *Store) watchDirs() map[string]bool {
	dirs := map[string]bool{s.certsDir: true}
	for _, name := range s.storeNames() {
		dirs[filepath.Join(s.certsDir, name)] = true
	}
	s.opMu.Lock()
	for _, p := range s.pairs {
		dirs[filepath.Dir(p.certFile)] = true
		dirs[filepath.Dir(p.keyFile)] = true
	}
	s.opMu.Unlock()
	return dirs
}
