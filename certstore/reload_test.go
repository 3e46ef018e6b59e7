package certstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/logtest"
	"github.com/edgecert/edgecert/internal/poll"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

// TestCorruptCurrent flips "current" to hand-written garbage: the reload
// rejects it and the previous version keeps serving; a restart falls back to
// the newest valid version; a later good version is picked up again.
func TestCorruptCurrent(t *testing.T) {
	ca := certstoretest.NewCA(t)
	dir := t.TempDir()
	rec := logtest.New()
	s, err := Open(t.Context(), dir, Options{Logger: newLogger(rec)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chain1, key1 := ca.Valid(t, "example.com")
	mustPut(t, s, "site", chain1, key1, Meta{})
	chain2, key2 := ca.Valid(t, "example.com")
	good := mustPut(t, s, "site", chain2, key2, Meta{Names: []string{"example.com"}})
	_, otherKey := ca.Valid(t, "example.com")

	corruptions := []struct {
		name             string
		chain, key, meta []byte
		reason           string
	}{
		{"garbage", []byte("garbage"), []byte("garbage"), []byte("{}"), "outside PEM"},
		{"mismatched key", chain2, otherKey, []byte("{}"), "does not match"},
		{"truncated chain", chain2[:200], key2, []byte("{}"), "truncated"},
		{"bad meta", chain2, key2, []byte("{not json"), "meta.json"},
		{"names missing", chain2, key2, metaJSON(t, Meta{Names: []string{"other.example"}}), "does not cover"},
	}
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			v := writeExternal(t, dir, "site", c.chain, c.key, c.meta)
			if err := s.Reload(t.Context()); err != nil {
				t.Fatalf("Reload() = %v", err)
			}
			if got, err := servedSerial(s, "example.com"); err != nil || got != good.Serial() {
				t.Errorf("served serial = %s, %v; want the previous good %s", got, err, good.Serial())
			}
			rej := rec.Find("cert.rejected", map[string]string{"name": "site", "version": v})
			if len(rej) != 1 || !strings.Contains(rej[0].Attrs["reason"], c.reason) {
				t.Errorf("cert.rejected records for version %s = %v; want one with reason containing %q", v, rej, c.reason)
			}
			// Reloading the same bad content does not log it again.
			if err := s.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := len(rec.Find("cert.rejected", map[string]string{"name": "site", "version": v})); n != 1 {
				t.Errorf("cert.rejected for %s logged %d times after a second reload; want 1", v, n)
			}
		})
	}

	// A dangling "current" is rejected as well.
	if err := flipCurrent(filepath.Join(dir, "certs", "site"), "9999999999"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := servedSerial(s, "example.com"); got != good.Serial() {
		t.Errorf("served serial with dangling current = %s; want %s", got, good.Serial())
	}

	// Restart: current is bad and nothing is in memory, so the newest valid
	// version (not the oldest) is served.
	writeExternal(t, dir, "site", []byte("garbage"), []byte("garbage"), []byte("{}"))
	rec2 := logtest.New()
	s2, err := Open(t.Context(), dir, Options{Logger: newLogger(rec2), Keep: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	e, ok := s2.Current("site")
	if !ok || e.Serial() != good.Serial() || e.Version != good.Version {
		t.Fatalf("after restart Current(site) = %v, %v; want version %s serial %s", e, ok, good.Version, good.Serial())
	}
	if len(rec2.Find("cert.fallback", map[string]string{"name": "site", "version": good.Version})) != 1 {
		t.Errorf("cert.fallback not logged for version %s", good.Version)
	}

	// A good version written by another process replaces it on reload.
	chain3, key3 := ca.Valid(t, "example.com")
	v3 := writeExternal(t, dir, "site", chain3, key3, metaJSON(t, Meta{Source: "acme"}))
	if err := s2.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e, _ := s2.Current("site"); e.Version != v3 || e.Serial() != certstoretest.Serial(t, chain3) {
		t.Errorf("after a good external version Current(site) = version %s serial %s; want %s %s", e.Version, e.Serial(), v3, certstoretest.Serial(t, chain3))
	}
	if len(rec2.Find("cert.reloaded", map[string]string{"name": "site", "old_serial": good.Serial(), "version": v3})) != 1 {
		t.Errorf("cert.reloaded with old_serial not logged")
	}
}

// TestFilePairMidCopy replaces the operator's certificate file before its key
// file: the inconsistent pair is rejected and the old pair keeps serving
// until the key arrives.
func TestFilePairMidCopy(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, rec, _ := openStore(t, Options{})
	op := t.TempDir()
	certFile, keyFile := filepath.Join(op, "cert.pem"), filepath.Join(op, "key.pem")
	chain1, key1 := ca.Valid(t, "op.example.com")
	must(t, os.WriteFile(certFile, chain1, 0o600))
	must(t, os.WriteFile(keyFile, key1, 0o600))
	if err := s.AddFilePair("operator", certFile, keyFile); err != nil {
		t.Fatalf("AddFilePair() = %v", err)
	}
	e, ok := s.Current("operator")
	if !ok || e.Source != SourceFile || e.Meta.Source != "file" || e.Serial() != certstoretest.Serial(t, chain1) {
		t.Fatalf("Current(operator) = %v, %v; want the file pair", e, ok)
	}

	chain2, key2 := ca.Valid(t, "op.example.com")
	steps := []struct {
		name       string
		write      func()
		wantSerial string
		rejected   bool
	}{
		{"cert replaced, key not yet", func() { must(t, os.WriteFile(certFile, chain2, 0o600)) }, certstoretest.Serial(t, chain1), true},
		{"key half written", func() { must(t, os.WriteFile(keyFile, key2[:len(key2)/2], 0o600)) }, certstoretest.Serial(t, chain1), true},
		{"key missing", func() { must(t, os.Remove(keyFile)) }, certstoretest.Serial(t, chain1), true},
		{"both consistent", func() { must(t, os.WriteFile(keyFile, key2, 0o600)) }, certstoretest.Serial(t, chain2), false},
	}
	for _, st := range steps {
		before := len(rec.Find("cert.rejected", map[string]string{"name": "operator"}))
		st.write()
		if err := s.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got, err := servedSerial(s, "op.example.com"); err != nil || got != st.wantSerial {
			t.Errorf("%s: served serial = %s, %v; want %s", st.name, got, err, st.wantSerial)
		}
		after := len(rec.Find("cert.rejected", map[string]string{"name": "operator", "source": "file"}))
		if (after > before) != st.rejected {
			t.Errorf("%s: cert.rejected logged = %v; want %v", st.name, after > before, st.rejected)
		}
	}

	t.Run("errors", func(t *testing.T) {
		if err := s.AddFilePair("operator", certFile, keyFile); err == nil {
			t.Errorf("AddFilePair of an existing name = nil; want error")
		}
		if _, err := s.PutCert(t.Context(), "operator", chain2, key2, Meta{}); err == nil {
			t.Errorf("PutCert to a file pair name = nil; want error")
		}
		must(t, os.WriteFile(filepath.Join(op, "other.pem"), chain1, 0o600))
		if err := s.AddFilePair("mismatch", filepath.Join(op, "other.pem"), keyFile); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("AddFilePair(mismatched) = %v; want a mismatch error", err)
		}
		if _, ok := s.Current("mismatch"); ok {
			t.Errorf("a rejected file pair is served")
		}
		if err := s.AddFilePair("missing", filepath.Join(op, "nope.pem"), keyFile); err == nil {
			t.Errorf("AddFilePair(missing file) = nil; want error")
		}
		mustPut(t, s, "stored", chain2, key2, Meta{})
		if err := s.AddFilePair("stored", certFile, keyFile); err == nil {
			t.Errorf("AddFilePair over a stored name = nil; want error")
		}
	})
}

// TestWatch runs Watch and changes the disk behind the store's back: a new
// name, a new version, a corrupt version, an operator file pair swapped by
// atomic rename, and a deleted name. Each change must be served (or
// rejected) without calling Reload.
func TestWatch(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, rec, dir := openStore(t, Options{Debounce: 10 * time.Millisecond})
	op := t.TempDir()
	certFile, keyFile := filepath.Join(op, "cert.pem"), filepath.Join(op, "key.pem")
	opChain, opKey := ca.Valid(t, "op.example.com")
	must(t, os.WriteFile(certFile, opChain, 0o600))
	must(t, os.WriteFile(keyFile, opKey, 0o600))
	must(t, s.AddFilePair("operator", certFile, keyFile))

	watch(t, s)
	const timeout = 10 * time.Second
	serves := func(sni, serial string) func() bool {
		return func() bool { got, _ := servedSerial(s, sni); return got == serial }
	}

	chain, key := ca.Valid(t, "new.example.com")
	writeExternal(t, dir, "new", chain, key, []byte("{}"))
	poll.Until(t, timeout, "a new name written by another process", serves("new.example.com", certstoretest.Serial(t, chain)))

	chain2, key2 := ca.Valid(t, "new.example.com")
	writeExternal(t, dir, "new", chain2, key2, []byte("{}"))
	poll.Until(t, timeout, "a new version written by another process", serves("new.example.com", certstoretest.Serial(t, chain2)))

	bad := writeExternal(t, dir, "new", chain2, []byte("garbage"), []byte("{}"))
	poll.Until(t, timeout, "cert.rejected for a corrupt version", func() bool {
		return len(rec.Find("cert.rejected", map[string]string{"name": "new", "version": bad})) > 0
	})
	if got, _ := servedSerial(s, "new.example.com"); got != certstoretest.Serial(t, chain2) {
		t.Errorf("after a corrupt version served %s; want %s", got, certstoretest.Serial(t, chain2))
	}

	// Operator pair replaced by atomic renames (new inodes).
	opChain2, opKey2 := ca.Valid(t, "op.example.com")
	must(t, os.WriteFile(filepath.Join(op, ".cert.tmp"), opChain2, 0o600))
	must(t, os.WriteFile(filepath.Join(op, ".key.tmp"), opKey2, 0o600))
	must(t, os.Rename(filepath.Join(op, ".cert.tmp"), certFile))
	must(t, os.Rename(filepath.Join(op, ".key.tmp"), keyFile))
	poll.Until(t, timeout, "the renamed operator pair", serves("op.example.com", certstoretest.Serial(t, opChain2)))

	// PutCert from this process still works alongside the watcher.
	chain3, key3 := ca.Valid(t, "new.example.com")
	mustPut(t, s, "new", chain3, key3, Meta{})
	if got, _ := servedSerial(s, "new.example.com"); got != certstoretest.Serial(t, chain3) {
		t.Errorf("right after PutCert served %s; want %s", got, certstoretest.Serial(t, chain3))
	}

	// The index is swapped before cert.removed is logged, so wait for the
	// log line, not for the name to vanish, before counting.
	must(t, os.RemoveAll(filepath.Join(dir, "certs", "new")))
	poll.Until(t, timeout, "cert.removed for a deleted name", func() bool {
		return len(rec.Find("cert.removed", map[string]string{"name": "new"})) > 0
	})
	if _, ok := s.Current("new"); ok {
		t.Errorf("a deleted name is still served after cert.removed")
	}
	if n := len(rec.Find("cert.removed", map[string]string{"name": "new"})); n != 1 {
		t.Errorf("cert.removed logged %d times for one deleted name; want 1", n)
	}
}

// TestPollFallback runs the periodic rescan used when fsnotify is not
// available.
func TestPollFallback(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, _, dir := openStore(t, Options{})
	s.pollEvery = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.poll(ctx); err != nil {
			t.Errorf("poll() = %v", err)
		}
	})
	chain, key := ca.Valid(t, "example.com")
	writeExternal(t, dir, "site", chain, key, []byte("{}"))
	poll.Until(t, 10*time.Second, "the poll loop to serve an external write", func() bool {
		_, ok := s.Current("site")
		return ok
	})
	if got, err := servedSerial(s, "example.com"); err != nil || got != certstoretest.Serial(t, chain) {
		t.Errorf("served %s, %v; want %s", got, err, certstoretest.Serial(t, chain))
	}
	// Close ends the loop as well as the context does.
	must(t, s.Close())
	wg.Wait()
	cancel()
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, _, _ := openStore(t, Options{})
	chain, key := ca.Valid(t, "example.com")
	e := mustPut(t, s, "site", chain, key, Meta{})
	must(t, s.Close())
	if _, err := s.PutCert(t.Context(), "site", chain, key, Meta{}); err != ErrClosed {
		t.Errorf("PutCert after Close = %v; want ErrClosed", err)
	}
	if err := s.Put(t.Context(), "blob", []byte("x")); err != ErrClosed {
		t.Errorf("Put after Close = %v; want ErrClosed", err)
	}
	if err := s.Watch(t.Context()); err != nil {
		t.Errorf("Watch after Close = %v; want nil (returns at once)", err)
	}
	if got, _ := servedSerial(s, "example.com"); got != e.Serial() {
		t.Errorf("after Close served %q; want %s (last index keeps serving)", got, e.Serial())
	}
}

// TestWatchRecreatedDirectory: an operator pair's directory deleted and
// recreated (as a configuration tool or a secret mount does) is watched
// again, so the new pair is served at the next change instead of at the
// minute rescan; so is a store name's directory.
func TestWatchRecreatedDirectory(t *testing.T) {
	ca := certstoretest.NewCA(t)
	s, _, dir := openStore(t, Options{Debounce: 10 * time.Millisecond})
	s.rescanEvery = time.Hour // only the watch can see the changes
	op := filepath.Join(t.TempDir(), "tls")
	must(t, os.Mkdir(op, 0o700))
	certFile, keyFile := filepath.Join(op, "cert.pem"), filepath.Join(op, "key.pem")
	writePair := func() string {
		chain, key := ca.Valid(t, "op.example.com")
		must(t, os.WriteFile(keyFile, key, 0o600))
		must(t, os.WriteFile(certFile, chain, 0o600))
		return certstoretest.Serial(t, chain)
	}
	writePair()
	must(t, s.AddFilePair("operator", certFile, keyFile))
	chain, key := ca.Valid(t, "new.example.com")
	writeExternal(t, dir, "new", chain, key, []byte("{}"))

	watch(t, s)
	const timeout = 10 * time.Second // well below the rescan, far above the retry
	serves := func(sni, serial string) func() bool {
		return func() bool { got, _ := servedSerial(s, sni); return got == serial }
	}
	poll.Until(t, timeout, "the first load", serves("new.example.com", certstoretest.Serial(t, chain)))

	for round := range 3 {
		must(t, os.RemoveAll(op))
		time.Sleep(50 * time.Millisecond) // let the watcher see the directory gone
		must(t, os.Mkdir(op, 0o700))
		serial := writePair()
		poll.Until(t, timeout, fmt.Sprintf("round %d: the pair in the recreated directory", round), serves("op.example.com", serial))
		// A later change in the recreated directory is seen as well.
		serial = writePair()
		poll.Until(t, timeout, fmt.Sprintf("round %d: a change in the recreated directory", round), serves("op.example.com", serial))
	}
}
