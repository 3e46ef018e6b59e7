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
	wt := &watcher{
		s:        s,
		w:        w,
		watched:  make(map[string]bool),
		missing:  make(map[string]bool),
		retry:    stoppedTimer(missingRetry),
		debounce: stoppedTimer(s.debounce),
	}
	defer wt.retry.Stop()
	wt.refresh(ctx)
	return wt.loop(ctx)
}

// watcher is the state of one fsnotify Watch; only the goroutine running
// that Watch uses it.
//
// watched holds the directories with a live watch; missing those wanted
// that could not be watched (they do not exist, or not yet). A watched
// directory that is deleted loses its watch with it (inotify drops it), so
// a Remove or Rename of the directory itself moves it from watched back to
// wanted; a missing one is retried every missingRetry until it exists, so a
// deleted and recreated directory is watched and reloaded again within
// about missingRetry + Debounce.
type watcher struct {
	s        *Store
	w        *fsnotify.Watcher
	watched  map[string]bool
	missing  map[string]bool
	retry    *time.Timer // runs while missing is not empty
	debounce *time.Timer // runs while pending
	pending  bool        // a reload is scheduled on debounce
}

// stoppedTimer is a timer of d that has not been started.
func stoppedTimer(d time.Duration) *time.Timer {
	t := time.NewTimer(d)
	t.Stop()
	return t
}

// loop serves events, timers and kicks until ctx is done or the store is
// closed (nil), or fsnotify closes a channel (then it falls back to poll).
func (wt *watcher) loop(ctx context.Context) error {
	s := wt.s
	rescan := time.NewTicker(s.rescanEvery)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case ev, ok := <-wt.w.Events:
			if !ok {
				s.log.Error("store.watch_error", slog.String("error", "fsnotify event channel closed"), slog.Bool("fallback", true))
				return s.poll(ctx)
			}
			wt.event(ev)
		case <-wt.retry.C:
			wt.retryMissing()
		case err, ok := <-wt.w.Errors:
			if !ok {
				s.log.Error("store.watch_error", slog.String("error", "fsnotify error channel closed"), slog.Bool("fallback", true))
				return s.poll(ctx)
			}
			// Includes queue overflows: events were lost, so rescan.
			s.log.Warn("store.watch_error", slog.Any("error", err))
			wt.schedule()
		case <-s.kick:
			wt.refresh(ctx)
		case <-wt.debounce.C:
			wt.pending = false
			wt.refresh(ctx)
		case <-rescan.C:
			wt.refresh(ctx)
		}
	}
}

// schedule arranges one reload after Debounce, unless one is pending
// already (events do not postpone it).
func (wt *watcher) schedule() {
	if !wt.pending {
		wt.pending = true
		wt.debounce.Reset(wt.s.debounce)
	}
}

// event schedules a reload for ev. When ev is the Remove or Rename of a
// watched directory itself, its watch is gone (or points at an inode
// elsewhere): it is forgotten, and the refresh watches it again.
func (wt *watcher) event(ev fsnotify.Event) {
	if ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 && wt.watched[ev.Name] {
		delete(wt.watched, ev.Name)
		_ = wt.w.Remove(ev.Name)
	}
	wt.schedule()
}

// add watches d and reports whether it could; the first failure for a
// directory is logged, repeats are not.
func (wt *watcher) add(d string) bool {
	if err := wt.w.Add(d); err != nil {
		if !wt.missing[d] {
			wt.s.log.Warn("store.watch_error", slog.String("path", d), slog.Any("error", err), slog.Bool("retrying", true))
		}
		wt.missing[d] = true
		return false
	}
	if wt.missing[d] {
		wt.s.log.Info("store.watch_restored", slog.String("path", d))
	}
	delete(wt.missing, d)
	wt.watched[d] = true
	return true
}

// retryMissing tries to watch every missing directory again; one that
// could be watched schedules a reload.
func (wt *watcher) retryMissing() {
	added := false
	for d := range wt.missing {
		added = wt.add(d) || added
	}
	if added {
		wt.schedule()
	}
	if len(wt.missing) > 0 {
		wt.retry.Reset(missingRetry)
	}
}

// refresh updates the watch list, then reloads: a change made after a
// directory is watched produces an event, one made before is seen by the
// reload.
func (wt *watcher) refresh(ctx context.Context) {
	want := wt.s.watchDirs()
	for d := range want {
		if !wt.watched[d] {
			wt.add(d)
		}
	}
	for d := range wt.watched {
		if want[d] {
			continue
		}
		delete(wt.watched, d)
		// Watches on deleted directories are already gone; an error
		// here only means that.
		if err := wt.w.Remove(d); err != nil {
			wt.s.log.Debug("store.watch_remove", slog.String("path", d), slog.Any("error", err))
		}
	}
	for d := range wt.missing {
		if !want[d] {
			delete(wt.missing, d)
		}
	}
	if len(wt.missing) > 0 {
		wt.retry.Reset(missingRetry)
	}
	wt.s.reloadForWatch(ctx)
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
