package s3store

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/certstore/s3store/s3test"
	"github.com/edgecert/edgecert/internal/logtest"
)

const testName = "example.test"

// host is one fleet member: a local store on disk and its S3 store.
type host struct {
	*Store
	local *certstore.Store
	logs  *logtest.Recorder
}

// newHost returns a host named instance on f; mod adjusts the options.
func newHost(t *testing.T, f *s3test.Server, instance string, mod func(*Options)) *host {
	t.Helper()
	local, err := certstore.Open(t.Context(), t.TempDir(), certstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	logs := logtest.New()
	opts := Options{
		Client: f.Client(), Bucket: s3test.Bucket, Prefix: "edge/", Local: local, Instance: instance,
		Names: []string{testName}, LeaseTTL: time.Minute, RenewEvery: time.Hour, PollEvery: 2 * time.Millisecond,
		Logger: slog.New(logs),
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs.Dump(t)
		}
	})
	return &host{Store: s, local: local, logs: logs}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustLock(t *testing.T, h *host) *certstore.Lease {
	t.Helper()
	l, err := h.Lock(testCtx(t), testName)
	if err != nil {
		t.Fatalf("%s: Lock: %v", h.instance, err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return l
}

// waitDone waits for ctx to end (an event, not a timing assumption; the
// bound only keeps a broken test from hanging).
func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not happen within 20s", what)
	}
}

var benchMeta = certstore.Meta{Names: []string{testName, "*.example.test"}, Source: "acme"}

func benchMetaGen(gen uint64) certstore.Meta {
	m := benchMeta
	m.Generation = gen
	return m
}

// newBenchHost is newHost for benchmarks (no log recording).
func newBenchHost(b *testing.B, f *s3test.Server, instance string) *host {
	b.Helper()
	local, err := certstore.Open(context.Background(), b.TempDir(), certstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { local.Close() })
	s, err := New(Options{Client: f.Client(), Bucket: s3test.Bucket, Prefix: "edge/", Local: local, Instance: instance,
		Names: []string{testName}, LeaseTTL: time.Minute, RenewEvery: time.Hour, PollEvery: 2 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	return &host{Store: s, local: local}
}
