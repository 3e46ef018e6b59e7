package route53dns

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/poll"
)

// certDomains returns the apex names c0.example.test ... c<n-1>.example.test.
func certDomains(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("c%d.example.test", i))
	}
	return out
}

func val(domain, kind string) string { return kind + "-" + strings.ReplaceAll(domain, ".", "-") }

// each runs f for every domain concurrently and fails the test on errors.
func each(t *testing.T, domains []string, f func(d string) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(domains))
	for i, d := range domains {
		wg.Go(func() { errs[i] = f(d) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", domains[i], err)
		}
	}
}

// counts observes API calls by operation and outcome.
type counts struct {
	mu      sync.Mutex // guards m, insync, auth
	m       map[string]int
	insync  int
	auth    int
	zeroDur int
}

func (c *counts) observer() Observer {
	return Observer{
		APICall: func(op, outcome string) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.m[op+"/"+outcome]++
		},
		Insync: func(d time.Duration) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.insync++
			if d <= 0 {
				c.zeroDur++
			}
		},
		Authoritative: func(d time.Duration) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.auth++
		},
	}
}

func (c *counts) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

func TestWritesReadsAndPollsAreShared(t *testing.T) {
	e := newEnv(t, envOpts{insync: 30 * time.Millisecond})
	obs := &counts{m: map[string]int{}}
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()},
		BatchWindow: 200 * time.Millisecond, Observer: obs.observer()})
	ctx := ctxTimeout(t)
	domains := certDomains(40)
	e.fake.ResetCalls()

	// Apex and wildcard of 40 names, all at once: one read page, one batch.
	// The batch window ends when all 80 are queued (not after a time, which
	// a loaded machine could overrun).
	p.gather = gatherAll(t, 80)
	each(t, domains, func(d string) error {
		var wg sync.WaitGroup
		var e1, e2 error
		wg.Go(func() { e1 = p.Present(ctx, d, val(d, "apex")) })
		wg.Go(func() { e2 = p.Present(ctx, "*."+d, val(d, "wild")) })
		wg.Wait()
		return cmpErr(e1, e2)
	})
	if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != 1 {
		t.Errorf("ChangeResourceRecordSets calls for 80 values = %d; want 1", got)
	}
	if got := e.fake.Calls(fakeroute53.OpListResourceRecordSets); got != 1 {
		t.Errorf("ListResourceRecordSets calls for 40 names = %d; want 1 page", got)
	}
	for _, d := range domains {
		want := sorted([]string{val(d, "apex"), val(d, "wild")})
		if got := sorted(e.fake.TXT("ZA", RecordName(d))); !slices.Equal(got, want) {
			t.Fatalf("TXT at %s = %q; want %q", RecordName(d), got, want)
		}
	}

	// 80 waiters share the GetChange poll of at most two changes and one DNS
	// poll per name.
	each(t, domains, func(d string) error {
		if err := p.Wait(ctx, d, val(d, "apex")); err != nil {
			return err
		}
		return p.Wait(ctx, d, val(d, "wild"))
	})
	changes := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets)
	if got := e.fake.Calls(fakeroute53.OpGetChange); got > 4*changes {
		t.Errorf("GetChange calls = %d for %d changes and 80 waiters; want at most %d", got, changes, 4*changes)
	}
	if obs.insync != changes {
		t.Errorf("Observer.Insync called %d times; want once per change (%d)", obs.insync, changes)
	}
	if obs.auth != 80 || obs.zeroDur != 0 {
		t.Errorf("Observer.Authoritative called %d times (want 80), %d zero INSYNC durations", obs.auth, obs.zeroDur)
	}

	// Cleanup of everything: one batch, no read (the provider knows what it
	// wrote).
	e.fake.ResetCalls()
	p.gather = gatherAll(t, 80)
	each(t, domains, func(d string) error {
		var wg sync.WaitGroup
		var e1, e2 error
		wg.Go(func() { e1 = p.CleanUp(context.Background(), d, val(d, "apex")) })
		wg.Go(func() { e2 = p.CleanUp(context.Background(), d, val(d, "wild")) })
		wg.Wait()
		return cmpErr(e1, e2)
	})
	if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != 1 {
		t.Errorf("ChangeResourceRecordSets calls for 80 removals = %d; want 1", got)
	}
	if got := e.fake.Calls(fakeroute53.OpListResourceRecordSets); got != 0 {
		t.Errorf("ListResourceRecordSets calls for cleanup = %d; want 0", got)
	}
	for _, d := range domains {
		if got := e.fake.TXT("ZA", RecordName(d)); got != nil {
			t.Fatalf("TXT at %s = %q after cleanup", RecordName(d), got)
		}
	}
	if n := p.Journaled(); n != 0 {
		t.Errorf("journal holds %d values after cleanup", n)
	}
	total := 0
	for _, op := range []string{fakeroute53.OpListResourceRecordSets, fakeroute53.OpChangeResourceRecordSets, fakeroute53.OpGetChange} {
		total += obs.get(op + "/ok")
	}
	if total == 0 || obs.get("ChangeResourceRecordSets/ok") != changes+1 {
		t.Errorf("Observer saw %v; want every call reported ok", obs.m)
	}
}

// gatherAll returns a batch-window replacement that waits until n ops are
// queued, then lets every later batch go at once.
func gatherAll(t *testing.T, n int) func(func() int) {
	var once sync.Once
	return func(queued func() int) {
		once.Do(func() {
			poll.Until(t, 10*time.Second, fmt.Sprintf("%d queued writes", n), func() bool { return queued() >= n })
		})
	}
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestConflictRetriesOnlyTheChangedSet: another tool changes one of the
// sets between our write and our cleanup. Route 53 rejects the whole batch;
// the provider re-reads that set alone and resends, and every set ends as it
// should: ours gone, the other tool's value kept.
func TestConflictRetriesOnlyTheChangedSet(t *testing.T) {
	e := newEnv(t, envOpts{})
	obs := &counts{m: map[string]int{}}
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()},
		BatchWindow: 100 * time.Millisecond, Observer: obs.observer()})
	ctx := ctxTimeout(t)
	domains := certDomains(3)
	p.gather = gatherAll(t, 3)
	each(t, domains, func(d string) error { return p.Present(ctx, d, val(d, "apex")) })
	// c1's set changes behind our back: another tool adds its value.
	mid := RecordName(domains[1])
	if _, err := e.fake.UpsertTXT("ZA", mid, 10, val(domains[1], "apex"), "foreign"); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCalls()
	p.gather = gatherAll(t, 3)
	each(t, domains, func(d string) error { return p.CleanUp(ctx, d, val(d, "apex")) })
	if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != 2 {
		t.Errorf("ChangeResourceRecordSets calls = %d; want 2 (rejected, then resent)", got)
	}
	if got := e.fake.Calls(fakeroute53.OpListResourceRecordSets); got != 1 {
		t.Errorf("ListResourceRecordSets calls = %d; want 1 (only the changed set re-read)", got)
	}
	if got := obs.get("ChangeResourceRecordSets/conflict"); got != 1 {
		t.Errorf("conflict outcomes = %d; want 1", got)
	}
	for i, d := range domains {
		var want []string
		if i == 1 {
			want = []string{"foreign"}
		}
		if got := e.fake.TXT("ZA", RecordName(d)); !slices.Equal(got, want) {
			t.Errorf("TXT at %s = %q; want %q", RecordName(d), got, want)
		}
	}
}

// TestStaleAbsenceIsCorrected: the provider believes a set is absent (it
// removed it), another tool creates it; the CREATE is rejected, the set
// re-read, and the merged set written.
func TestStaleAbsenceIsCorrected(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
	ctx := ctxTimeout(t)
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if err := p.CleanUp(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fake.UpsertTXT("ZA", challengeName, 300, "foreign"); err != nil {
		t.Fatal(err)
	}
	if err := p.Present(ctx, "example.test", wildcardValue); err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(e.fake.TXT("ZA", challengeName)), sorted([]string{"foreign", wildcardValue}); !slices.Equal(got, want) {
		t.Errorf("TXT = %q; want %q", got, want)
	}
}

func readJournal(t *testing.T, path string) []entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var f journalFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("journal %s: %v\n%s", path, err, b)
	}
	var out []entry
	for _, e := range f.Entries {
		out = append(out, *e)
	}
	return out
}

func TestJournalRecordsBeforeWriteAndForgetsAfterCleanup(t *testing.T) {
	e := newEnv(t, envOpts{})
	path := filepath.Join(t.TempDir(), "route53-journal.json")
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}, Journal: path})
	ctx := ctxTimeout(t)
	// The change fails for good: the value was journaled before the attempt.
	e.fake.Fail(fakeroute53.OpChangeResourceRecordSets, fakeroute53.Fault{Code: "InvalidInput", Times: 1})
	if err := p.Present(ctx, "example.test", apexValue); err == nil {
		t.Fatal("Present succeeded against a failing change")
	}
	got := readJournal(t, path)
	if len(got) != 1 || got[0].Name != challengeName || got[0].Value != apexValue || got[0].Zone != "ZA" || got[0].Time.IsZero() {
		t.Fatalf("journal after a failed write = %+v; want the value recorded", got)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if got := readJournal(t, path); len(got) != 1 {
		t.Errorf("journal after Present = %+v; want one entry", got)
	}
	if err := p.CleanUp(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if got := readJournal(t, path); len(got) != 0 {
		t.Errorf("journal after CleanUp = %+v; want empty", got)
	}
	des, _ := os.ReadDir(filepath.Dir(path))
	for _, de := range des {
		if de.Name() != filepath.Base(path) {
			t.Errorf("stray file %s next to the journal", de.Name())
		}
	}
}

// TestRunRemovesWhatAnEarlierRunLeft: a provider presents and "dies"; a new
// one with the same journal removes its values at start-up and leaves a
// foreign value at the same name.
func TestRunRemovesWhatAnEarlierRunLeft(t *testing.T) {
	e := newEnv(t, envOpts{})
	path := filepath.Join(t.TempDir(), "route53-journal.json")
	ctx := ctxTimeout(t)
	dead := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}, Journal: path})
	if _, err := e.fake.UpsertTXT("ZA", challengeName, 300, "foreign"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"example.test", "*.example.test", "c1.example.test"} {
		if err := dead.Present(ctx, d, val(d, "v")); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	p := e.provider(t, Options{ZoneID: "ZA", Journal: path, Logger: slog.New(rec)})
	p.gather = gatherAll(t, 3)
	if n := p.Journaled(); n != 3 {
		t.Fatalf("restarted provider journals %d values; want 3", n)
	}
	e.fake.ResetCalls()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	poll.Until(t, 10*time.Second, "the journal to empty", func() bool { return p.Journaled() == 0 && len(readJournal(t, path)) == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if got := e.fake.TXT("ZA", challengeName); !slices.Equal(got, []string{"foreign"}) {
		t.Errorf("TXT at %s = %q; want only the foreign value", challengeName, got)
	}
	if got := e.fake.TXT("ZA", RecordName("c1.example.test")); got != nil {
		t.Errorf("TXT at c1 = %q; want none", got)
	}
	if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != 1 {
		t.Errorf("ChangeResourceRecordSets calls = %d; want 1 batch for all three", got)
	}
	if _, ok := rec.attr("dns.orphan_removed", "name"); !ok {
		t.Error("no dns.orphan_removed event")
	}
}

// TestFailedCleanupIsRetriedUntilItSucceeds: Route 53 fails every cleanup
// for a while (longer than one call's retries); CleanUp reports it, Run
// keeps trying with backoff and removes the value once Route 53 recovers.
func TestFailedCleanupIsRetriedUntilItSucceeds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
	ctx := ctxTimeout(t)
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	e.fake.Fail(fakeroute53.OpChangeResourceRecordSets, fakeroute53.Fault{Code: "ServiceUnavailable", Times: 3 * p.api.attempts})
	err := p.CleanUp(ctx, "example.test", apexValue)
	if err == nil || !strings.Contains(err.Error(), "retried in the background") {
		t.Fatalf("CleanUp during an outage = %v; want an error saying it is retried", err)
	}
	if p.Journaled() != 1 {
		t.Fatalf("journal holds %d values; want the value kept", p.Journaled())
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go p.Run(rctx)
	poll.Until(t, 10*time.Second, "the value to be removed", func() bool { return e.fake.TXT("ZA", challengeName) == nil && p.Journaled() == 0 })
	if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != 1+3*p.api.attempts+1 {
		t.Errorf("ChangeResourceRecordSets calls = %d; want %d (every failure retried, then one success)", got, 1+3*p.api.attempts+1)
	}
}

func TestCorruptJournalIsMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "route53-journal.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := New(newClient("http://127.0.0.1:1"), Options{Journal: path})
	if p == nil || err == nil || !strings.Contains(err.Error(), "moved to") {
		t.Fatalf("New with a corrupt journal = %v, %v; want a provider and an error naming where it went", p, err)
	}
	if b, rerr := os.ReadFile(path + ".corrupt"); rerr != nil || string(b) != "{not json" {
		t.Errorf("corrupt journal not kept aside: %v", rerr)
	}
}

func TestChunksKeepWithinRoute53Limits(t *testing.T) {
	mk := func(n, values, size int) []*setPlan {
		var out []*setPlan
		for i := range n {
			sp := &setPlan{name: fmt.Sprintf("n%d.", i)}
			p := &Provider{opts: Options{TTL: 10}}
			var ops []*op
			for v := range values {
				ops = append(ops, &op{value: fmt.Sprintf("%0*d", size, v), add: true})
			}
			sp = p.planSet("Z", sp.name, ops)
			out = append(out, sp)
		}
		return out
	}
	tests := []struct {
		name             string
		sets, vals, size int
		wantChunks       int
	}{
		{"small", 10, 2, 43, 1},
		{"500 sets of 1 value fit the change limit", 500, 1, 10, 1},
		{"600 sets exceed 1000 records", 600, 2, 10, 2},
		{"chars limit", 400, 2, 43, 2}, // 800 values of 45 chars > 32000
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := chunks(mk(tt.sets, tt.vals, tt.size))
			if len(cs) != tt.wantChunks {
				t.Errorf("%d chunks; want %d", len(cs), tt.wantChunks)
			}
			n := 0
			for _, c := range cs {
				changes, records, chars := 0, 0, 0
				for _, sp := range c {
					n++
					changes += len(sp.changes)
					for _, ch := range sp.changes {
						for _, rr := range ch.ResourceRecordSet.ResourceRecords {
							records++
							chars += len(*rr.Value)
						}
					}
				}
				if changes > maxBatchChanges || records > maxBatchRecords || chars > maxBatchChars {
					t.Errorf("chunk with %d changes, %d records, %d chars", changes, records, chars)
				}
			}
			if n != tt.sets {
				t.Errorf("chunks hold %d sets; want %d", n, tt.sets)
			}
		})
	}
}

func TestCompareNamesFollowsRoute53Order(t *testing.T) {
	// Route 53 sorts by the reversed name as text, trailing dot included.
	in := []string{"b.example.test.", "a-b.example.test.", "a.example.test.", "example.test.", "x.a.example.test.", "_acme-challenge.c10.example.test.", "_acme-challenge.c1.example.test."}
	slices.SortFunc(in, compareNames)
	want := []string{"example.test.", "a-b.example.test.", "a.example.test.", "x.a.example.test.", "b.example.test.", "_acme-challenge.c1.example.test.", "_acme-challenge.c10.example.test."}
	if !slices.Equal(in, want) {
		t.Errorf("order = %q; want %q", in, want)
	}
}

// TestListedRangeNeedsNoSecondRead: a page that listed the zone from a name
// on answers for later names in that range too, so a second batch of new
// names costs no read; a set another tool created there meanwhile is still
// found (its CREATE is rejected, the name read on its own).
func TestListedRangeNeedsNoSecondRead(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
	ctx := ctxTimeout(t)
	domains := certDomains(10)
	if _, err := e.fake.UpsertTXT("ZA", RecordName(domains[7]), 300, "foreign"); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCalls()
	p.gather = gatherAll(t, 3)
	each(t, domains[:3], func(d string) error { return p.Present(ctx, d, val(d, "apex")) })
	if got := e.fake.Calls(fakeroute53.OpListResourceRecordSets); got != 1 {
		t.Fatalf("ListResourceRecordSets calls = %d; want 1", got)
	}
	p.gather = gatherAll(t, 7)
	each(t, domains[3:], func(d string) error { return p.Present(ctx, d, val(d, "apex")) })
	if got := e.fake.Calls(fakeroute53.OpListResourceRecordSets); got != 1 {
		t.Errorf("ListResourceRecordSets calls after the second batch = %d; want still 1", got)
	}
	if got, want := sorted(e.fake.TXT("ZA", RecordName(domains[7]))), sorted([]string{"foreign", val(domains[7], "apex")}); !slices.Equal(got, want) {
		t.Errorf("TXT at the foreign name = %q; want %q", got, want)
	}
	// Created behind our back after the listing: corrected, not clobbered.
	if _, err := e.fake.UpsertTXT("ZA", RecordName("late.example.test"), 300, "foreign"); err != nil {
		t.Fatal(err)
	}
	p.gather = nil
	if err := p.Present(ctx, "late.example.test", "ours"); err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(e.fake.TXT("ZA", RecordName("late.example.test"))), []string{"foreign", "ours"}; !slices.Equal(got, want) {
		t.Errorf("TXT at a set created after the listing = %q; want %q", got, want)
	}
}
