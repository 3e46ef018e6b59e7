package s3store

import (
	"context"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
	"github.com/edgecert/edgecert/certstore/s3store/s3test"
)

// BenchmarkQuietSync is one sync of a host that already serves the fleet's
// certificate: the steady state of a quiet fleet. It reports the S3
// requests per sync, counted by the server, and what that costs per host
// per hour at the default interval (1 min plus 5 % mean jitter).
func BenchmarkQuietSync(b *testing.B) {
	f := s3test.New(b)
	ca := certstoretest.NewCA(b)
	a := newBenchHost(b, f, "host-a")
	l, err := a.Lock(context.Background(), testName)
	if err != nil {
		b.Fatal(err)
	}
	chain, key := ca.Valid(b, testNames...)
	if _, err := a.PublishCert(context.Background(), l, testName, chain, key, benchMeta); err != nil {
		b.Fatal(err)
	}
	l.Release(context.Background())
	h := newBenchHost(b, f, "host-b")
	if err := h.Sync(context.Background()); err != nil { // installs
		b.Fatal(err)
	}
	before := f.Requests("", "")
	b.ResetTimer()
	for b.Loop() {
		if err := h.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perSync := float64(f.Requests("", "")-before) / float64(b.N)
	b.ReportMetric(perSync, "requests/sync")
	b.ReportMetric(perSync*float64(time.Hour)/(float64(DefaultSyncInterval)*1.05), "requests/host-hour")
}

// BenchmarkPublishToInstall is what a host does once it sees a new
// pointer: read the pointer and the version, validate, store crash-safe
// and hot-reload. The time from publish to the last host serving is this
// plus the sync interval's wait (at most interval × 1.1).
func BenchmarkPublishToInstall(b *testing.B) {
	f := s3test.New(b)
	ca := certstoretest.NewCA(b)
	a := newBenchHost(b, f, "host-a")
	h := newBenchHost(b, f, "host-b")
	ctx := context.Background()
	reqs := 0
	for b.Loop() {
		b.StopTimer()
		l, err := a.Lock(ctx, testName)
		if err != nil {
			b.Fatal(err)
		}
		chain, key := ca.Valid(b, testNames...)
		if _, err := a.PublishCert(ctx, l, testName, chain, key, benchMeta); err != nil {
			b.Fatal(err)
		}
		l.Release(ctx)
		before := f.Requests("", "")
		b.StartTimer()
		if err := h.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		reqs += f.Requests("", "") - before
		if e, ok := h.local.Current(testName); !ok || e.Meta.Generation != l.Generation() {
			b.Fatalf("not installed: %v", e)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(reqs)/float64(b.N), "requests/install")
}

// BenchmarkLeaseCycle is the fencing cost of one order: take the lease
// (with the pointer re-read), publish, release.
func BenchmarkLeaseCycle(b *testing.B) {
	f := s3test.New(b)
	ca := certstoretest.NewCA(b)
	a := newBenchHost(b, f, "host-a")
	ctx := context.Background()
	chain, key := ca.Valid(b, testNames...)
	reqs := 0
	for b.Loop() {
		before := f.Requests("", "")
		l, err := a.Lock(ctx, testName)
		if err != nil {
			b.Fatal(err)
		}
		// The same certificate each time: the pointer still moves forward
		// by generation.
		if err := a.share(ctx, l, testName, "bench", time.Now().Add(time.Hour), chain, key, benchMetaGen(l.Generation())); err != nil {
			b.Fatal(err)
		}
		l.Release(ctx)
		reqs += f.Requests("", "") - before
	}
	b.ReportMetric(float64(reqs)/float64(b.N), "requests/order")
}
