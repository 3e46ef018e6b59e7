package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os/exec"
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
	if err := e.settle(ctx, three); err != nil {
		return err
	}
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

	// Renewals seen by every host (each polls ARI, so waiters get the
	// certificate when the holder releases the lease), then renewals that
	// h2 and h3 cannot see (their ACME port is blocked): they install it by
	// the sync loop alone.
	serial, leaf := conv.serial, conv.leaf
	var err2 error
	if serial, leaf, err2 = e.benchRenewals(ctx, three, n, "every host polls ARI", serial, leaf); err2 != nil {
		return err2
	}
	for _, h := range three[1:] {
		if err := blockACME(h); err != nil {
			return err
		}
	}
	if _, _, err2 = e.benchRenewals(ctx, three, n, "h2, h3 blind to ARI: sync only", serial, leaf); err2 != nil {
		return err2
	}
	return nil
}

// benchRenewals forces n renewals one after another and reports the time
// from publish to the last host serving each.
func (e *env) benchRenewals(ctx context.Context, hs []*host, n int, what, serial string, leaf *x509.Certificate) (string, *x509.Certificate, error) {
	step("bench: publish -> last host serving, %d forced renewals (%s)", n, what)
	var ds []time.Duration
	for i := range n {
		start := time.Now().Add(-time.Hour)
		if err := e.setRenewalInfo(ctx, leaf, start, start.Add(time.Minute)); err != nil {
			return "", nil, err
		}
		c, err := e.waitConverged(ctx, hs, 3*time.Minute, serial)
		if err != nil {
			return "", nil, err
		}
		d, ok := e.publishToLast(hs, c)
		if !ok {
			return "", nil, fmt.Errorf("renewal %d: no fleet.cert_published event in the logs", i+1)
		}
		logf("renewal %d: %s -> %s, publish -> last host serving %v", i+1, serial, c.serial, d.Round(time.Millisecond))
		ds = append(ds, d)
		serial, leaf = c.serial, c.leaf
	}
	slices.Sort(ds)
	fmt.Printf("RESULT publish->last host serving (%s), %d renewals at -fleet-sync-interval %v: min %v, median %v, max %v\n",
		what, len(ds), e.fc.syncInterval, ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	return serial, leaf, nil
}

// blockACME makes h's connections to the CA's ACME port fail (a routing
// rule in h's namespace); S3 and the driver's handshakes are untouched.
func blockACME(h *host) error {
	out, err := exec.Command("ip", "-n", h.ns, "rule", "add", "ipproto", "tcp", "dport", acmePort, "prohibit").CombinedOutput()
	if err != nil {
		return fmt.Errorf("block ACME for %s: %v: %s", h.name, err, out)
	}
	logf("%s: tcp to port %s prohibited", h.name, acmePort)
	return nil
}
