package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// syncBound is how long a published certificate may take to reach every
// host: the sync interval plus its jitter, taken as one more interval.
func (e *env) syncBound() time.Duration { return 2 * e.fc.syncInterval }

func (e *env) want(s string) bool { return len(e.only) == 0 || e.only[s] }

// scenarios runs the selected scenarios (-only) in order: on fleet A, s1
// (always: the others need its certificate), s3, quiet, s4 and s5 on one
// shared store; then s2 on a fresh fleet.
func (e *env) scenarios(ctx context.Context) error {
	h4 := e.hosts[3]
	three := []*host{e.hosts[0], e.hosts[1], e.hosts[2]}
	e.fc.prefix = "fleet-a"
	fleetSerial, fleetLeaf, err := e.scenarioFirstOrder(ctx, three)
	if err != nil {
		return err
	}
	if e.want("s3") {
		if err := e.scenarioLateJoiner(ctx, h4, fleetSerial); err != nil {
			return err
		}
	}
	running := e.runningOf(e.hosts)
	if e.want("quiet") {
		if err := e.scenarioQuiet(ctx, running); err != nil {
			return err
		}
	}
	if e.want("s4") {
		if err := e.scenarioS3Outage(ctx, running, fleetSerial); err != nil {
			return err
		}
	}
	if e.want("s5") {
		if err := e.scenarioARIRenewal(ctx, running, fleetSerial, fleetLeaf); err != nil {
			return err
		}
	}
	if e.want("s2") {
		if err := e.scenarioKilledHolder(ctx, three); err != nil {
			return err
		}
	}
	return nil
}

// scenarioFirstOrder is s1: three hosts started together make one order
// and serve its serial within the sync bound. It returns that certificate.
func (e *env) scenarioFirstOrder(ctx context.Context, three []*host) (string, *x509.Certificate, error) {
	step("s1: h1, h2, h3 started together -> one ACME order, one serial everywhere within %v", e.syncBound())
	before, err := e.rig.snapshot(ctx)
	if err != nil {
		return "", nil, err
	}
	for _, h := range three {
		if err := h.start(e.fc, true); err != nil {
			return "", nil, err
		}
	}
	conv, err := e.waitConverged(ctx, three, 3*time.Minute, "")
	if err != nil {
		return "", nil, err
	}
	after, err := e.rig.snapshot(ctx)
	if err != nil {
		return "", nil, err
	}
	logf("all serve serial %s; first host at +%v, last at +%v", conv.serial, conv.first.Round(time.Millisecond), conv.last.Round(time.Millisecond))
	e.check(after.orders()-before.orders() == 1, "s1: %d ACME new orders fleet-wide, want exactly 1 (%s)", after.orders()-before.orders(), describeOrders(before, after))
	e.check(conv.last-conv.first <= e.syncBound(), "s1: last host served %v after the first, want within the sync bound %v", conv.last-conv.first, e.syncBound())
	return conv.serial, conv.leaf, nil
}

// scenarioLateJoiner is s3: h4, started later with an empty store, serves
// the fleet's serial from S3 without contacting the CA or Route 53.
func (e *env) scenarioLateJoiner(ctx context.Context, h4 *host, fleetSerial string) error {
	step("s3: h4 started later with an empty store -> serves serial %s, no CA contact, no Route 53 change", fleetSerial)
	before, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := h4.start(e.fc, true); err != nil {
		return err
	}
	conv, err := e.waitConverged(ctx, []*host{h4}, time.Minute, "")
	if err != nil {
		return err
	}
	took := time.Since(t0)
	after, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	logf("h4 serves serial %s %v after start", conv.serial, took.Round(time.Millisecond))
	e.check(conv.serial == fleetSerial, "s3: h4 serves serial %s, want the fleet's %s", conv.serial, fleetSerial)
	ca := after.ca.ACME.RequestsByClient[h4.ip] - before.ca.ACME.RequestsByClient[h4.ip]
	e.check(ca == 0, "s3: h4 sent %d requests to the CA, want none", ca)
	e.check(after.orders() == before.orders(), "s3: %d new ACME orders, want none", after.orders()-before.orders())
	e.check(after.changes() == before.changes(), "s3: %d Route 53 changes, want none", after.changes()-before.changes())
	e.check(after.s3From(h4.ip) > 0, "s3: h4 sent no request to S3: where did it get the certificate?")
	e.check(took < 30*time.Second, "s3: h4 took %v to serve, want seconds", took)
	return nil
}

// scenarioQuiet is the quiet scenario: an idle fleet stays within its
// request budget and lists nothing.
func (e *env) scenarioQuiet(ctx context.Context, running []*host) error {
	window := 3 * e.fc.syncInterval
	step("quiet: %d hosts idle for %v -> no S3 listing, at most 2 requests per host per interval", len(running), window)
	if err := e.settle(ctx, running); err != nil {
		return err
	}
	if err := e.quietFleet(ctx, running, window, true); err != nil {
		return err
	}
	return nil
}

// scenarioS3Outage is s4: with S3 cut off every host keeps serving and
// nobody orders; when it returns they reach S3 again and converge.
func (e *env) scenarioS3Outage(ctx context.Context, running []*host, fleetSerial string) error {
	cut := 2 * e.fc.syncInterval
	step("s4: S3 cut off (link down in ft-s3) for %v -> all keep serving %s, nobody orders; then they converge", cut, fleetSerial)
	before, err := fetchCounters(ctx, rigIP)
	if err != nil {
		return err
	}
	if err := link("down"); err != nil {
		return err
	}
	restored := false
	defer func() {
		if !restored {
			_ = link("up")
		}
	}()
	e.checkServingFor(ctx, running, fleetSerial, cut)
	mid, err := fetchCounters(ctx, rigIP)
	if err != nil {
		return err
	}
	e.check(mid.ACME.NewOrders == before.ACME.NewOrders, "s4: %d ACME orders during the S3 outage, want none", mid.ACME.NewOrders-before.ACME.NewOrders)
	for _, h := range running {
		logf("%s logged %d fleet.store_error during the outage", h.name, len(h.events("fleet.store_error")))
	}
	if err := link("up"); err != nil {
		return err
	}
	restored = true
	// Back: every host talks to S3 again within the bound (backoff
	// included) and all serve the fleet's serial.
	if err := e.checkS3Reached(ctx, running); err != nil {
		return err
	}
	conv, err := e.waitConverged(ctx, running, time.Minute, "")
	if err != nil {
		return err
	}
	end, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	e.check(conv.serial == fleetSerial, "s4: after the outage the fleet serves %s, want %s", conv.serial, fleetSerial)
	e.check(end.orders() == before.ACME.NewOrders, "s4: %d ACME orders after S3 returned, want none", end.orders()-before.ACME.NewOrders)
	return nil
}

// checkServingFor checks every second for d that every host of running
// serves serial (s4, during the outage), and logs the tally.
func (e *env) checkServingFor(ctx context.Context, running []*host, serial string, d time.Duration) {
	deadline := time.Now().Add(d)
	var checks, misses int
	for time.Now().Before(deadline) {
		for _, h := range running {
			s, err := h.serving(ctx, e.roots, apex)
			checks++
			if err != nil || s.serial != serial {
				misses++
				e.check(false, "s4: during the outage %s serves %q (%v), want %s", h.name, s.serial, err, serial)
			}
		}
		time.Sleep(time.Second)
	}
	logf("outage over: %d handshakes, %d not serving %s", checks, misses, serial)
}

// checkS3Reached checks that every host of running sends S3 a request
// within a minute (s4, after the link came up).
func (e *env) checkS3Reached(ctx context.Context, running []*host) error {
	t0 := time.Now()
	up, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	err = waitFor(ctx, time.Minute, "every host to reach S3 again", func() (bool, error) {
		now, err := e.rig.snapshot(ctx)
		if err != nil {
			return false, nil
		}
		for _, h := range running {
			if now.s3From(h.ip) <= up.s3From(h.ip) {
				return false, nil
			}
		}
		return true, nil
	})
	e.check(err == nil, "s4: %v", err)
	logf("every host reached S3 again %v after the link came up", time.Since(t0).Round(time.Millisecond))
	return nil
}

// scenarioARIRenewal is s5: a renewal forced through the ARI window makes
// exactly one order, with replaces, and the fleet converges on it.
func (e *env) scenarioARIRenewal(ctx context.Context, running []*host, fleetSerial string, fleetLeaf *x509.Certificate) error {
	step("s5: renewal forced through the ARI window of %s -> exactly one order, with replaces", fleetSerial)
	before, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	certID := ariCertID(fleetLeaf)
	start := time.Now().Add(-time.Hour)
	if err := e.setRenewalInfo(ctx, fleetLeaf, start, start.Add(time.Minute)); err != nil {
		return err
	}
	logf("ARI window of %s set to %s..+1m (renew now)", certID, start.UTC().Format(time.RFC3339))
	conv, err := e.waitConverged(ctx, running, 3*time.Minute, fleetSerial)
	if err != nil {
		return err
	}
	// Let stragglers that saw the window late try to order, if they would.
	time.Sleep(e.fc.syncInterval)
	after, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	logf("all %d hosts serve the renewed serial %s (first +%v, last +%v)", len(running), conv.serial, conv.first.Round(time.Millisecond), conv.last.Round(time.Millisecond))
	n := after.orders() - before.orders()
	e.check(n == 1, "s5: %d ACME orders for the renewal, want exactly 1 (%s)", n, describeOrders(before, after))
	e.check(after.replaces()-before.replaces() == 1, "s5: %d orders with replaces, want 1", after.replaces()-before.replaces())
	if n >= 1 {
		o := after.ca.ACME.Orders[before.orders()]
		e.check(o.Replaces == certID, "s5: the renewal order replaces %q, want %q (the old certificate)", o.Replaces, certID)
	}
	e.check(conv.last-conv.first <= e.syncBound(), "s5: last host served the renewal %v after the first, want within %v", conv.last-conv.first, e.syncBound())
	if d, ok := e.publishToLast(running, conv); ok {
		logf("publish -> last host serving: %v", d.Round(time.Millisecond))
	}
	return nil
}

// scenarioKilledHolder is s2, on a fresh fleet (new prefix, empty stores).
func (e *env) scenarioKilledHolder(ctx context.Context, three []*host) error {
	step("s2: a fresh fleet; the lease holder SIGKILLed mid-order -> exactly one more order, all converge")
	e.stopAll()
	e.fc.prefix = "fleet-b"
	before, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	for _, h := range three {
		if err := h.start(e.fc, true); err != nil {
			return err
		}
	}
	holder, err := e.killHolderMidOrder(ctx, three, before)
	if err != nil {
		return err
	}
	var rest []*host
	for _, h := range three {
		if h != holder {
			rest = append(rest, h)
		}
	}
	conv, err := e.waitConverged(ctx, rest, e.fc.leaseTTL+2*time.Minute, "")
	if err != nil {
		return err
	}
	logf("%d survivors serve serial %s", len(rest), conv.serial)
	if err := holder.start(e.fc, false); err != nil {
		return err
	}
	conv2, err := e.waitConverged(ctx, three, time.Minute, "")
	if err != nil {
		return err
	}
	after, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	n := after.orders() - before.orders()
	e.check(n == 2, "s2: %d ACME orders (killed one included), want exactly 2 (%s)", n, describeOrders(before, after))
	e.check(conv2.serial == conv.serial, "s2: the restarted %s made the fleet serve %s, want %s", holder.name, conv2.serial, conv.serial)
	for _, h := range rest {
		if len(h.events("fleet.lease_acquired")) > 0 {
			logf("%s first fleet.lease_acquired: %s", h.name, firstAttrs(h.events("fleet.lease_acquired")))
		}
	}
	return nil
}

// killHolderMidOrder waits for a host of three to take the lease and send
// its newOrder (more orders than before), SIGKILLs it and returns it; it
// fails if the holder had already published.
func (e *env) killHolderMidOrder(ctx context.Context, three []*host, before snapshot) (*host, error) {
	var holder *host
	err := waitFor(ctx, time.Minute, "a host to log fleet.lease_acquired", func() (bool, error) {
		for _, h := range three {
			if len(h.events("fleet.lease_acquired")) > 0 {
				holder = h
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	err = waitFor(ctx, 30*time.Second, "the holder's newOrder", func() (bool, error) {
		now, err := fetchCounters(ctx, rigIP)
		return err == nil && now.ACME.NewOrders > before.orders(), nil
	})
	if err != nil {
		return nil, err
	}
	holder.p.kill()
	logf("%s held the lease and had sent its newOrder: SIGKILLed", holder.name)
	pub := holder.events("fleet.cert_published")
	if len(pub) > 0 {
		return nil, fmt.Errorf("s2: %s published before it was killed: the order was not in flight (make -insync-after longer)", holder.name)
	}
	return holder, nil
}

// convergence is the outcome of waitConverged.
type convergence struct {
	serial      string
	leaf        *x509.Certificate
	first, last time.Duration // since the wait began: first host, last host on serial
	at          map[*host]time.Time
}

// waitConverged polls every host of hs with TLS handshakes until all serve
// the same serial, other than not: within limit for every host to serve a
// certificate, then within twice the sync bound for them to agree.
func (e *env) waitConverged(ctx context.Context, hs []*host, limit time.Duration, not string) (convergence, error) {
	t0 := time.Now()
	c := convergence{at: map[*host]time.Time{}}
	cur := map[*host]served{}
	var allServing time.Time // since when every host serves something
	err := waitFor(ctx, limit, fmt.Sprintf("%d hosts to serve one serial", len(hs)), func() (bool, error) {
		for _, h := range hs {
			if !h.running() {
				return false, fmt.Errorf("%s exited: %v (log %s)", h.name, h.p.err, h.p.log)
			}
			s, err := h.serving(ctx, e.roots, apex)
			if err != nil || s.serial == not {
				delete(cur, h)
				delete(c.at, h)
				continue
			}
			if prev, ok := cur[h]; !ok || prev.serial != s.serial {
				c.at[h] = time.Now()
			}
			cur[h] = s
		}
		if len(cur) < len(hs) {
			allServing = time.Time{}
			return false, nil
		}
		if allServing.IsZero() {
			allServing = time.Now()
		}
		for _, s := range cur {
			if s.serial != cur[hs[0]].serial {
				if settle := 2 * e.syncBound(); time.Since(allServing) > settle {
					return false, fmt.Errorf("every host serves a certificate but they still differ after %v", settle)
				}
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var got []string
		for _, h := range hs {
			got = append(got, h.name+"="+cur[h].serial)
		}
		return c, fmt.Errorf("%w (serving: %s)", err, strings.Join(got, " "))
	}
	c.serial, c.leaf = cur[hs[0]].serial, cur[hs[0]].leaf
	c.first, c.last = span(c.at, t0)
	// The wildcard name is served by the same certificate.
	for _, h := range hs {
		s, err := h.serving(ctx, e.roots, wildName)
		e.check(err == nil && s.serial == c.serial, "%s serves %q for %s (%v), want %s", h.name, s.serial, wildName, err, c.serial)
	}
	return c, nil
}

// span returns the earliest and the latest time of at, since t0.
func span(at map[*host]time.Time, t0 time.Time) (first, last time.Duration) {
	var f, l time.Time
	for _, t := range at {
		if f.IsZero() || t.Before(f) {
			f = t
		}
		if t.After(l) {
			l = t
		}
	}
	return f.Sub(t0), l.Sub(t0)
}

// publishToLast is the time from the newest fleet.cert_published event to
// the last host seen serving conv's serial.
func (e *env) publishToLast(hs []*host, conv convergence) (time.Duration, bool) {
	var pub time.Time
	for _, h := range hs {
		for _, ev := range h.events("fleet.cert_published") {
			if ev.Time.After(pub) {
				pub = ev.Time
			}
		}
	}
	var last time.Time
	for _, t := range conv.at {
		if t.After(last) {
			last = t
		}
	}
	if pub.IsZero() || last.IsZero() {
		return 0, false
	}
	return last.Sub(pub), true
}

// quietFleet counts S3 requests of hs over window; with assert it checks
// the quiet-fleet cost. It returns after the window.
func (e *env) quietFleet(ctx context.Context, hs []*host, window time.Duration, assert bool) error {
	before, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return ctx.Err()
	}
	after, err := e.rig.snapshot(ctx)
	if err != nil {
		return err
	}
	intervals := float64(window) / float64(e.fc.syncInterval)
	for _, h := range hs {
		b, a := before.s3.S3.ByClient[h.ip], after.s3.S3.ByClient[h.ip]
		var parts []string
		var total int64
		for _, m := range sortedKeys(a) {
			if d := a[m] - b[m]; d > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", m, d))
				total += d
			}
		}
		perInterval := float64(total) / intervals
		logf("%s: %d S3 requests in %v (%s) = %.2f per %v sync interval", h.name, total, window, strings.Join(parts, ", "), perInterval, e.fc.syncInterval)
		if assert {
			e.check(a["LIST"]-b["LIST"] == 0, "quiet: %s listed the bucket %d times, want never", h.name, a["LIST"]-b["LIST"])
			e.check(perInterval <= 2, "quiet: %s sent %.2f S3 requests per sync interval, want at most 2", h.name, perInterval)
		}
	}
	if assert {
		e.check(after.orders() == before.orders(), "quiet: %d ACME orders in a quiet fleet", after.orders()-before.orders())
	}
	return nil
}

// settle waits until every host of hs is ready and none has logged a lease
// event for one sync interval: a host that serves a peer's certificate may
// still be finishing its own lease round, which is not a quiet fleet.
func (e *env) settle(ctx context.Context, hs []*host) error {
	t0 := time.Now()
	err := waitFor(ctx, time.Minute, "the fleet to settle (ready, no lease event for one sync interval)", func() (bool, error) {
		for _, h := range hs {
			if len(h.events("daemon.ready")) == 0 {
				return false, nil
			}
			evs := h.events("fleet.lease_acquired", "fleet.lease_waiting", "fleet.lease_released", "fleet.lease_lost")
			if len(evs) > 0 && time.Since(evs[len(evs)-1].Time) < e.fc.syncInterval {
				return false, nil
			}
		}
		return true, nil
	})
	if err == nil {
		logf("settled after %v", time.Since(t0).Round(time.Millisecond))
	}
	return err
}

func (e *env) runningOf(hs []*host) []*host {
	var out []*host
	for _, h := range hs {
		if h.running() {
			out = append(out, h)
		}
	}
	return out
}

// link sets ft-s3's only link up or down: S3 alone is cut off.
func link(state string) error {
	out, err := exec.Command("ip", "-n", "ft-s3", "link", "set", "ft-eth", state).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n ft-s3 link set ft-eth %s: %v: %s", state, err, out)
	}
	logf("ft-s3 link %s", state)
	return nil
}

// ariCertID is the ARI identifier of leaf (RFC 9773): AKI "." serial.
func ariCertID(leaf *x509.Certificate) string {
	return base64.RawURLEncoding.EncodeToString(leaf.AuthorityKeyId) + "." +
		base64.RawURLEncoding.EncodeToString(leaf.SerialNumber.Bytes())
}

// setRenewalInfo forces the CA's ARI answer for leaf through Pebble's
// management API.
func (e *env) setRenewalInfo(ctx context.Context, leaf *x509.Certificate, start, end time.Time) error {
	window, _ := json.Marshal(map[string]any{"suggestedWindow": map[string]time.Time{"start": start.UTC(), "end": end.UTC()}})
	body, _ := json.Marshal(map[string]string{
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
		"ariResponse": string(window),
	})
	caPEM, err := os.ReadFile(e.rig.caTLSPEM)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+rigIP+":14001/set-renewal-info/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "fleettest")
	req.Header.Set("Content-Type", "application/json")
	res, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("set-renewal-info: %w", err)
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("set-renewal-info: %s: %s", res.Status, msg)
	}
	return nil
}

// describeOrders lists the newOrder requests between two snapshots.
func describeOrders(before, after snapshot) string {
	var parts []string
	for _, o := range after.ca.ACME.Orders[min(before.orders(), len(after.ca.ACME.Orders)):] {
		s := fmt.Sprintf("%v status %d", o.Identifiers, o.Status)
		if o.Replaces != "" {
			s += " replaces " + o.Replaces
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no orders"
	}
	return "orders: " + strings.Join(parts, "; ")
}

func firstAttrs(evs []event) string {
	if len(evs) == 0 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(evs[0].Attrs) {
		if k != "time" && k != "level" {
			parts = append(parts, fmt.Sprintf("%s=%v", k, evs[0].Attrs[k]))
		}
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
