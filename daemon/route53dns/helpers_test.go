package route53dns

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"golang.org/x/time/rate"

	"github.com/edgecert/edgecert/internal/devrig/authdns"
	"github.com/edgecert/edgecert/internal/devrig/authdns/authdnstest"
	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
)

// env is a fake Route 53 on a real listener, publishing to one authoritative
// server (plus mirrors), with zone ZA "example.test" delegated to it.
type env struct {
	fake   *fakeroute53.Server
	url    string
	dns    *authdns.Server
	client *route53.Client
}

type envOpts struct {
	insync  time.Duration
	mirrors []fakeroute53.Mirror
	zones   []fakeroute53.Zone // in addition to ZA
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	d := authdnstest.Start(t)
	f := fakeroute53.New(fakeroute53.Options{DNS: d, Mirrors: o.mirrors, InsyncAfter: o.insync})
	f.AddZone(fakeroute53.Zone{ID: "ZA", Name: "example.test", NameServers: []string{d.Addr()}})
	for _, z := range o.zones {
		f.AddZone(z)
	}
	hs := httptest.NewServer(f)
	t.Cleanup(func() {
		hs.Close()
		f.Close()
	})
	return &env{fake: f, url: hs.URL, dns: d, client: newClient(hs.URL)}
}

// newClient is an SDK client as the daemon builds it, with its default
// retryer (which the provider bypasses).
func newClient(url string) *route53.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
	}
	return route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(url) })
}

// provider returns a Provider with test-speed backoffs, no client-side
// rate limit and a 5 ms batch window unless opts sets them.
func (e *env) provider(t *testing.T, opts Options) *Provider {
	t.Helper()
	limited := opts.MaxRPS != 0
	if opts.BatchWindow == 0 {
		opts.BatchWindow = 5 * time.Millisecond
	}
	p, err := New(newClient(e.url), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.api = backoff{attempts: 8, base: time.Millisecond, max: 4 * time.Millisecond}
	p.cleanup = backoff{base: 5 * time.Millisecond, max: 50 * time.Millisecond}
	p.sweepEvery = 10 * time.Millisecond
	if !limited {
		p.limit.SetLimit(rate.Inf)
	}
	p.cas = backoff{attempts: 10, base: 2 * time.Millisecond, max: 50 * time.Millisecond}
	p.poll = backoff{base: 10 * time.Millisecond, max: 50 * time.Millisecond}
	return p
}

// calls returns the fake's call counters in a fixed order.
func (e *env) calls() map[string]int {
	out := map[string]int{}
	for _, op := range []string{fakeroute53.OpListHostedZonesByName, fakeroute53.OpGetHostedZone,
		fakeroute53.OpListResourceRecordSets, fakeroute53.OpChangeResourceRecordSets, fakeroute53.OpGetChange} {
		out[op] = e.fake.Calls(op)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// ctxTimeout is a generous per-test context for a loaded machine.
func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder is a slog.Handler keeping every record, for event assertions.
type recorder struct {
	mu   sync.Mutex // guards recs
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// lines renders every record as "msg k=v ...".
func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		var b strings.Builder
		b.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// attr returns the value of key in the last record with message msg.
func (r *recorder) attr(msg, key string) (slog.Value, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.recs) - 1; i >= 0; i-- {
		if r.recs[i].Message != msg {
			continue
		}
		var v slog.Value
		found := false
		r.recs[i].Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v, found = a.Value, true
				return false
			}
			return true
		})
		return v, found
	}
	return slog.Value{}, false
}
