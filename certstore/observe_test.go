package certstore

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

// countingObserver records the Observer calls.
type countingObserver struct {
	mu       sync.Mutex // guards both fields
	loaded   int
	rejected []string
}

func (o *countingObserver) StoreLoaded() { o.mu.Lock(); o.loaded++; o.mu.Unlock() }
func (o *countingObserver) StoreRejected(class string) {
	o.mu.Lock()
	o.rejected = append(o.rejected, class)
	o.mu.Unlock()
}

// The Observer hears one StoreLoaded per cert.loaded/cert.reloaded and one
// StoreRejected per cert.rejected (not again on a rescan of the same
// content), with the reason's class.
func TestObserver(t *testing.T) {
	ca := certstoretest.NewCA(t)
	obs := &countingObserver{}
	s, _, dir := openStore(t, Options{Observer: obs})
	chain, key := ca.Valid(t, "example.com")
	mustPut(t, s, "site", chain, key, Meta{})
	chain2, key2 := ca.Valid(t, "example.com")
	mustPut(t, s, "site", chain2, key2, Meta{})
	_, otherKey := ca.Valid(t, "example.com")
	old, oldKey := ca.Issue(t, []string{"example.com"}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	future, futureKey := ca.Issue(t, []string{"example.com"}, time.Now().Add(48*time.Hour), time.Now().Add(96*time.Hour))

	for _, c := range []struct {
		chain, key, meta []byte
		class            string
	}{
		{[]byte("garbage"), key2, []byte("{}"), RejectChain},
		{chain2, []byte("garbage"), []byte("{}"), RejectKey},
		{chain2, otherKey, []byte("{}"), RejectKeyMismatch},
		{chain2, key2, []byte("{not json"), RejectMeta},
		{chain2, key2, metaJSON(t, Meta{Names: []string{"other.example"}}), RejectNames},
		{old, oldKey, []byte("{}"), RejectExpired},
		{future, futureKey, []byte("{}"), RejectNotYetValid},
	} {
		writeExternal(t, dir, "site", c.chain, c.key, c.meta)
		for range 2 {
			if err := s.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		obs.mu.Lock()
		got := slices.Clone(obs.rejected)
		obs.mu.Unlock()
		if len(got) == 0 || got[len(got)-1] != c.class {
			t.Errorf("rejected classes = %v, want the last to be %q", got, c.class)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.rejected) != 7 {
		t.Errorf("StoreRejected calls = %d (%v), want 7: once per bad content", len(obs.rejected), obs.rejected)
	}
	if obs.loaded != 2 {
		t.Errorf("StoreLoaded calls = %d, want 2 (loaded, reloaded)", obs.loaded)
	}
}

func TestRejectClass(t *testing.T) {
	for reason, want := range map[string]string{
		"open /x/chain.pem: no such file or directory": RejectUnreadable,
		"chain: block 1: data outside PEM blocks":      RejectChain,
		"key: malformed or truncated PEM block":        RejectKey,
		"something new":                                RejectOther,
	} {
		if got := RejectClass(reason); got != want {
			t.Errorf("RejectClass(%q) = %q, want %q", reason, got, want)
		}
	}
}
