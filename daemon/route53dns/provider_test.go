package route53dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/poll"
)

const (
	apexValue     = "apex-token-0123456789abcdefghijklmnopqrstuvw"
	wildcardValue = "wild-token-0123456789abcdefghijklmnopqrstuvw"
	challengeName = "_acme-challenge.example.test."
)

func TestApexAndWildcardShareOneName(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{insync: 20 * time.Millisecond})
	rec := &recorder{}
	// No NameServers override: the zone's delegation set names the authdns.
	p := e.provider(t, Options{ZoneID: "/hostedzone/ZA", Logger: slog.New(rec)})
	ctx := ctxTimeout(t)

	if err := p.Present(ctx, "Example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if err := p.Present(ctx, "*.example.test", wildcardValue); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{apexValue, wildcardValue} {
		if err := p.Wait(ctx, "example.test", v); err != nil {
			t.Fatalf("Wait(%.4s): %v", v, err)
		}
	}
	want := sorted([]string{apexValue, wildcardValue})
	if got := sorted(e.fake.TXT("ZA", challengeName)); !slices.Equal(got, want) {
		t.Errorf("API TXT = %q; want %q", got, want)
	}
	if got := sorted(e.dns.TXT(challengeName)); !slices.Equal(got, want) {
		t.Errorf("served TXT = %q; want %q", got, want)
	}

	if err := p.CleanUp(ctx, "*.example.test", wildcardValue); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.TXT("ZA", challengeName); !slices.Equal(got, []string{apexValue}) {
		t.Errorf("after one CleanUp API TXT = %q; want only the apex value", got)
	}
	poll.Until(t, 10*time.Second, "name server to drop the wildcard value", func() bool {
		return slices.Equal(e.dns.TXT(challengeName), []string{apexValue})
	})
	if err := p.CleanUp(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.TXT("ZA", challengeName); got != nil {
		t.Errorf("after both CleanUps API TXT = %q; want no set", got)
	}
	poll.Until(t, 10*time.Second, "name server to drop the set", func() bool { return len(e.dns.Names()) == 0 })

	for _, l := range rec.lines() {
		if strings.Contains(l, apexValue) || strings.Contains(l, wildcardValue) {
			t.Errorf("log line leaks a challenge value: %s", l)
		}
	}
	for _, ev := range []string{"dns.txt_present", "dns.insync", "dns.propagated", "dns.txt_cleanup"} {
		if _, ok := rec.attr(ev, "name"); !ok {
			t.Errorf("no %s event with a name", ev)
		}
	}
	if _, ok := rec.attr("dns.txt_present", "change"); !ok {
		t.Error("dns.txt_present has no change id")
	}
}

func TestNeverClobbersAndIsIdempotent(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
	ctx := ctxTimeout(t)
	// Another tool's value, with another TTL, is at the name already.
	if _, err := e.fake.UpsertTXT("ZA", challengeName, 300, "foreign"); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCalls()
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatalf("second Present of the same value: %v", err)
	}
	if got, want := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets), 1; got != want {
		t.Errorf("ChangeResourceRecordSets calls = %d; want %d (second Present is a no-op)", got, want)
	}
	if err := p.Wait(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(e.fake.TXT("ZA", challengeName)), sorted([]string{"foreign", apexValue}); !slices.Equal(got, want) {
		t.Errorf("TXT = %q; want %q", got, want)
	}
	for range 2 {
		if err := p.CleanUp(ctx, "example.test", apexValue); err != nil {
			t.Fatalf("CleanUp: %v", err)
		}
	}
	if err := p.CleanUp(ctx, "example.test", "never-presented"); err != nil {
		t.Fatalf("CleanUp of an absent value: %v", err)
	}
	if got := e.fake.TXT("ZA", challengeName); !slices.Equal(got, []string{"foreign"}) {
		t.Errorf("TXT after CleanUp = %q; want the foreign value kept", got)
	}
	if got, want := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets), 2; got != want {
		t.Errorf("ChangeResourceRecordSets calls = %d; want %d", got, want)
	}
}

// TestConcurrentHostsNeverLoseValues runs several Providers ("hosts"), each
// presenting an apex and a wildcard value for the same name concurrently.
func TestConcurrentHostsNeverLoseValues(t *testing.T) {
	e := newEnv(t, envOpts{insync: 5 * time.Millisecond})
	ctx := ctxTimeout(t)
	const hosts = 4
	type job struct {
		p     *Provider
		value string
	}
	var jobs []job
	var values []string
	for h := range hosts {
		p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
		for _, kind := range []string{"apex", "wild"} {
			v := fmt.Sprintf("host%d-%s-token", h, kind)
			jobs = append(jobs, job{p, v})
			values = append(values, v)
		}
	}
	run := func(sel func(i int) bool, fn func(j job) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(jobs))
		for i, j := range jobs {
			if sel(i) {
				wg.Go(func() {
					if err := fn(j); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	all := func(int) bool { return true }

	run(all, func(j job) error { return j.p.Present(ctx, "example.test", j.value) })
	if got := sorted(e.fake.TXT("ZA", challengeName)); !slices.Equal(got, sorted(values)) {
		t.Fatalf("after concurrent Presents TXT = %q; want all %d values %q", got, len(values), sorted(values))
	}
	run(all, func(j job) error { return j.p.Wait(ctx, "example.test", j.value) })
	if got := sorted(e.dns.TXT(challengeName)); !slices.Equal(got, sorted(values)) {
		t.Errorf("served after Wait = %q; want all values", got)
	}

	even := func(i int) bool { return i%2 == 0 }
	run(even, func(j job) error { return j.p.CleanUp(context.Background(), "example.test", j.value) })
	var odd []string
	for i, v := range values {
		if !even(i) {
			odd = append(odd, v)
		}
	}
	if got := sorted(e.fake.TXT("ZA", challengeName)); !slices.Equal(got, sorted(odd)) {
		t.Fatalf("after cleaning up half TXT = %q; want the other half %q", got, sorted(odd))
	}
	run(func(i int) bool { return !even(i) }, func(j job) error {
		return j.p.CleanUp(context.Background(), "example.test", j.value)
	})
	if got := e.fake.TXT("ZA", challengeName); got != nil {
		t.Errorf("final TXT = %q; want no set", got)
	}
	poll.Until(t, 10*time.Second, "name server to be empty", func() bool { return len(e.dns.Names()) == 0 })
	// 16 successful changes; anything above that was a detected conflict.
	t.Logf("ChangeResourceRecordSets calls: %d for %d successful changes", e.fake.Calls(fakeroute53.OpChangeResourceRecordSets), 2*len(jobs))
}

// TestWriterBetweenReadAndWrite makes another writer change the set after the
// provider read it: the stale DELETE is rejected, and the retry keeps the
// other writer's value.
func TestWriterBetweenReadAndWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	var intruded atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && intruded.CompareAndSwap(false, true) {
			if _, err := e.fake.UpsertTXT("ZA", challengeName, 10, "other-host-token"); err != nil {
				t.Error(err)
			}
		}
		e.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p, err := New(newClient(hs.URL), Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	p.cas.base = time.Millisecond
	if err := p.Present(ctxTimeout(t), "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(e.fake.TXT("ZA", challengeName)), sorted([]string{"other-host-token", apexValue}); !slices.Equal(got, want) {
		t.Errorf("TXT = %q; want both writers' values %q", got, want)
	}
	if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != 2 {
		t.Errorf("ChangeResourceRecordSets calls = %d; want 2 (one rejected, one after re-reading)", got)
	}
	if got := e.fake.Calls(fakeroute53.OpListResourceRecordSets); got != 2 {
		t.Errorf("ListResourceRecordSets calls = %d; want 2", got)
	}
}

func TestNoLeftoversAfterFailure(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
	ctx := ctxTimeout(t)
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	// The second value fails: Route 53 throttles every change until it gives up.
	e.fake.ResetCalls()
	e.fake.Fail(fakeroute53.OpChangeResourceRecordSets, fakeroute53.Fault{Code: "Throttling"})
	err := p.Present(ctx, "*.example.test", wildcardValue)
	if err == nil || !strings.Contains(err.Error(), "giving up after 8 attempts") {
		t.Fatalf("Present under endless throttling: %v; want giving up after 8 attempts", err)
	}
	if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != p.api.attempts {
		t.Errorf("ChangeResourceRecordSets calls = %d; want %d", got, p.api.attempts)
	}
	e.fake.ClearFaults()
	// The caller cleans up everything it tried to present.
	for _, v := range []string{apexValue, wildcardValue} {
		if err := p.CleanUp(context.Background(), "example.test", v); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.fake.TXT("ZA", challengeName); got != nil {
		t.Errorf("TXT = %q; want no set", got)
	}
	poll.Until(t, 10*time.Second, "name server to be empty", func() bool { return len(e.dns.Names()) == 0 })
}

// TestLostResponseIsRetriedIdempotently drops the connection after Route 53
// applied a change: the retry finds the value there and does not write again.
func TestLostResponseIsRetriedIdempotently(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	var dropped atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && dropped.CompareAndSwap(false, true) {
			e.fake.ServeHTTP(httptest.NewRecorder(), r) // applied, answer lost
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		e.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p, err := New(newClient(hs.URL), Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	p.api.base, p.cas.base = time.Millisecond, time.Millisecond
	ctx := ctxTimeout(t)
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatalf("Present with a lost response: %v", err)
	}
	if !dropped.Load() {
		t.Fatal("the response was never dropped")
	}
	if got := e.fake.TXT("ZA", challengeName); !slices.Equal(got, []string{apexValue}) {
		t.Errorf("TXT = %q; want exactly one copy of the value", got)
	}
	// Retried change (rejected: the set changed, by us) and re-read.
	if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != 2 {
		t.Errorf("ChangeResourceRecordSets calls = %d; want 2", got)
	}
	if err := p.Wait(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if err := p.CleanUp(context.Background(), "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.TXT("ZA", challengeName); got != nil {
		t.Errorf("TXT after CleanUp = %q; want none", got)
	}
}

func TestCancelledWaitThenCleanUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{insync: time.Millisecond})
	p := e.provider(t, Options{ZoneID: "ZA"})
	e.fake.SetNeverInsync(true)
	ctx, cancel := context.WithCancel(t.Context())
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := p.Wait(ctx, "example.test", apexValue)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v; want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Wait took %v to notice the cancellation", d)
	}
	if err := p.CleanUp(context.Background(), "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.TXT("ZA", challengeName); got != nil {
		t.Errorf("TXT after CleanUp = %q; want none", got)
	}
	e.fake.SetNeverInsync(false)
	poll.Until(t, 10*time.Second, "name server to be empty", func() bool { return len(e.dns.Names()) == 0 })
}

func TestNewValidatesAndDefaults(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New(nil client) succeeded")
	}
	if _, err := New(newClient("http://127.0.0.1:1"), Options{TTL: -1}); err == nil {
		t.Error("New with a negative TTL succeeded")
	}
	p, err := New(newClient("http://127.0.0.1:1"), Options{ZoneID: "/hostedzone/Z9"})
	if err != nil {
		t.Fatal(err)
	}
	if p.opts.TTL != 10 || p.opts.PropagationTimeout != 2*time.Minute || p.opts.ZoneID != "Z9" {
		t.Errorf("defaults: TTL=%d timeout=%v zone=%q; want 10, 2m, Z9", p.opts.TTL, p.opts.PropagationTimeout, p.opts.ZoneID)
	}
	for _, tt := range []struct{ in, want string }{
		{"Example.TEST.", "_acme-challenge.example.test"},
		{"*.example.test", "_acme-challenge.example.test"},
	} {
		if got := RecordName(tt.in); got != tt.want {
			t.Errorf("RecordName(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	if got := p.withPort("ns-1.awsdns-01.org."); got != "ns-1.awsdns-01.org:53" {
		t.Errorf("withPort = %q; want ns-1.awsdns-01.org:53", got)
	}
	if got := p.withPort(net.JoinHostPort("::1", "5353")); got != "[::1]:5353" {
		t.Errorf("withPort kept port = %q; want [::1]:5353", got)
	}
}

func TestQuoting(t *testing.T) {
	for _, v := range []string{"", apexValue, `q"uo\te`, strings.Repeat("x", 300)} {
		q := quoteTXT(v)
		if !strings.HasPrefix(q, `"`) {
			t.Errorf("quoteTXT(%.10q) = %.10s; want quoted", v, q)
		}
		if got, err := unquoteTXT(q); err != nil || got != v {
			t.Errorf("unquoteTXT(quoteTXT(%.10q)) = %.10q, %v", v, got, err)
		}
	}
	if got, _ := unquoteTXT(`"a" "b\065"`); got != "ab5" {
		t.Errorf("unquoteTXT multi-string = %q; want ab5", got)
	}
	if got := unescapeTXT(`a\"b\\c\053`); got != `a"b\c5` {
		t.Errorf("unescapeTXT = %q; want a\"b\\c5", got)
	}
}
