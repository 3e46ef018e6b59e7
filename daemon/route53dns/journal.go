package route53dns

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// journalVersion is the format of the journal file.
const journalVersion = 1

// entry is one TXT value this process (or an earlier run on this host) wrote
// or is about to write. The persisted fields are exported.
type entry struct {
	Zone  string    `json:"zone"`
	Name  string    `json:"name"` // canonical
	Value string    `json:"value"`
	Time  time.Time `json:"time"` // when it was recorded

	live     bool      // between Present and CleanUp in this process
	failures int       // consecutive failed removals
	nextTry  time.Time // no removal attempt before this
}

type entryKey struct{ zone, name, value string }

func (e *entry) key() entryKey { return entryKey{e.Zone, e.Name, e.Value} }

// journal records every TXT value before it is written to Route 53 and
// forgets it once the value has been removed, so that values left behind by
// a crash are found and removed by the next run (Provider.Run). With an
// empty path it is kept in memory only.
//
// The file is JSON, replaced atomically (temporary file, fsync, rename,
// fsync of the directory) with mode 0600 on every change.
type journal struct {
	path string

	// writeMu serialises file writes and is held across them; it guards
	// nothing in memory. Taking the snapshot under it makes the last write
	// the newest state.
	writeMu sync.Mutex
	mu      sync.Mutex // guards entries
	entries map[entryKey]*entry
}

type journalFile struct {
	Version int      `json:"version"`
	Entries []*entry `json:"entries"`
}

// openJournal loads path (a missing file is an empty journal). A file that
// cannot be parsed is renamed aside to path+".corrupt" and reported in
// err together with a usable empty journal: its values cannot be trusted,
// and the daemon must not stop over it.
func openJournal(path string) (*journal, error) {
	j := &journal{path: path, entries: make(map[entryKey]*entry)}
	if path == "" {
		return j, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("route53: journal: %w", err)
	}
	var f journalFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != journalVersion {
		if err == nil {
			err = fmt.Errorf("version %d, want %d", f.Version, journalVersion)
		}
		aside := path + ".corrupt"
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("route53: journal %s is unreadable (%v) and cannot be moved aside: %w", path, err, rerr)
		}
		return j, fmt.Errorf("route53: journal %s is unreadable, moved to %s: %w", path, aside, err)
	}
	for _, e := range f.Entries {
		if e == nil || e.Zone == "" || e.Name == "" {
			continue
		}
		e.Name = canonical(e.Name)
		j.entries[e.key()] = e
	}
	return j, nil
}

// track notes a value Present is about to write, in memory only (add
// persists it before the write). It is live until untrack.
func (j *journal) track(zone, name, value string, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	k := entryKey{zone, name, value}
	if e := j.entries[k]; e != nil {
		e.live = true
		return
	}
	j.entries[k] = &entry{Zone: zone, Name: name, Value: value, Time: now, live: true}
}

// untrack marks a value as no longer in use by an order: from now on, Run
// removes it whenever it finds it still recorded.
func (j *journal) untrack(zone, name, value string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.entries[entryKey{zone, name, value}]; e != nil {
		e.live = false
	}
}

// persist writes the journal to disk if any of keys is not on disk yet.
// It is called before the change that writes those values.
func (j *journal) persist(keys []entryKey, now time.Time) error {
	j.mu.Lock()
	for _, k := range keys {
		if j.entries[k] == nil {
			j.entries[k] = &entry{Zone: k.zone, Name: k.name, Value: k.value, Time: now}
		}
	}
	j.mu.Unlock()
	return j.save()
}

// forget drops the entries of values that are no longer in Route 53.
func (j *journal) forget(keys []entryKey) error {
	j.mu.Lock()
	n := len(j.entries)
	for _, k := range keys {
		delete(j.entries, k)
	}
	changed := len(j.entries) != n
	j.mu.Unlock()
	if !changed {
		return nil
	}
	return j.save()
}

// failed records a failed removal and schedules the next one with delay.
func (j *journal) failed(k entryKey, now time.Time, delay func(failures int) time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.entries[k]; e != nil {
		e.failures++
		e.nextTry = now.Add(delay(e.failures))
	}
}

// due returns the entries Run should remove now: not live (or live for
// longer than staleAfter, which no order lasts), and past their backoff.
func (j *journal) due(now time.Time, staleAfter time.Duration) []entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []entry
	for _, e := range j.entries {
		if (e.live && now.Sub(e.Time) < staleAfter) || now.Before(e.nextTry) {
			continue
		}
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Value, b.Value))
	})
	return out
}

// len returns the number of recorded values.
func (j *journal) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

// save replaces the file with the current entries.
func (j *journal) save() error {
	if j.path == "" {
		return nil
	}
	j.writeMu.Lock()
	defer j.writeMu.Unlock()
	j.mu.Lock()
	f := journalFile{Version: journalVersion, Entries: make([]*entry, 0, len(j.entries))}
	for _, e := range j.entries {
		c := *e
		f.Entries = append(f.Entries, &c)
	}
	j.mu.Unlock()
	slices.SortFunc(f.Entries, func(a, b *entry) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Value, b.Value))
	})
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("route53: journal: %w", err)
	}
	if err := writeAtomic(j.path, append(b, '\n')); err != nil {
		return fmt.Errorf("route53: journal: %w", err)
	}
	return nil
}

// writeAtomic replaces path with data (mode 0600): a temporary file in the
// same directory, fsync, rename, fsync of the directory.
func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
