package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// bench measures, on a fresh fleet of three hosts: S3 requests per host in a
// quiet window, scaled to an hour at this interval and at the default 1m;
// then the time from a renewal's publish to the last host serving it, over
// n forced renewals.
func (e *env) bench(ctx context.Context, n int, quiet time.Duration) error {
	three := e.hosts[:3]
	e.fc.prefix = "fleet-bench"
	step("bench: 3 hosts, sync interval %v, lease TTL %v", e.fc.syncInterval, e.fc.leaseTTL)
	for _, h := range three {
		if err := h.start(e.fc, true); err != nil {
			return err
		}
	}
	conv, err := e.waitConverged(ctx, three, 3*time.Minute, "")
	if err != nil {
		return err
	}
	step("bench: quiet fleet, S3 requests per host over %v", quiet)
	before, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	if err := e.quietFleet(ctx, three, quiet, false); err != nil {
		return err
	}
	after, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	for _, h := range three {
		d := after.s3From(h.ip) - before.s3From(h.ip)
		perInterval := float64(d) / (float64(quiet) / float64(e.fc.syncInterval))
		fmt.Printf("RESULT quiet %s: %d requests in %v = %.0f/h at -fleet-sync-interval %v; %.2f per interval = %.0f/h at the default 1m\n",
			h.name, d, quiet, float64(d)*float64(time.Hour)/float64(quiet), e.fc.syncInterval, perInterval, perInterval*60)
	}

	step("bench: publish -> last host serving, %d forced renewals", n)
	var ds []time.Duration
	serial, leaf := conv.serial, conv.leaf
	for i := range n {
		start := time.Now().Add(-time.Hour)
		if err := e.setRenewalInfo(ctx, leaf, start, start.Add(time.Minute)); err != nil {
			return err
		}
		c, err := e.waitConverged(ctx, three, 3*time.Minute, serial)
		if err != nil {
			return err
		}
		d, ok := e.publishToLast(three, c)
		if !ok {
			return fmt.Errorf("renewal %d: no fleet.cert_published event in the logs", i+1)
		}
		logf("renewal %d: %s -> %s, publish -> last host serving %v", i+1, serial, c.serial, d.Round(time.Millisecond))
		ds = append(ds, d)
		serial, leaf = c.serial, c.leaf
	}
	slices.Sort(ds)
	fmt.Printf("RESULT publish->last host serving over %d renewals at -fleet-sync-interval %v: min %v, median %v, max %v\n",
		len(ds), e.fc.syncInterval, ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	return nil
}
