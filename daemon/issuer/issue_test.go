package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/poll"
)

var apexWild = []string{"example.test", "*.example.test"}

// TestIssueApexAndWildcard: one certificate for apex and wildcard, chain
// verifying against the CA's issuing root, metadata stored, records cleaned
// up, events logged; a second Manager on the same store reuses the account
// without a newAccount request.
func TestIssueApexAndWildcard(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebblerig.Options{})
	ctx := testCtx(t)
	start := time.Now()
	m := e.manager(t, apexWild, nil)
	if err := m.Obtain(ctx); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	t.Logf("cold start to first certificate: %v", time.Since(start))

	c := current(t, e.store, "example.test")
	verifyChain(t, c, e.ca.IssuerRoots(), "example.test", "www.example.test")
	if got, want := c.Cert.Leaf.DNSNames, apexWild; !sameNames(got, want) {
		t.Errorf("SANs = %q, want %q", got, want)
	}
	if c.Meta.Profile != "short" || c.Meta.Issuer != e.ca.DirectoryURL() || c.Meta.Source != "acme" || !slices.Equal(c.Meta.Names, apexWild) || c.Meta.ObtainedAt.IsZero() {
		t.Errorf("Meta = %+v, want profile short, issuer %s, source acme, names %q", c.Meta, e.ca.DirectoryURL(), apexWild)
	}
	if life := c.Cert.Leaf.NotAfter.Sub(c.Cert.Leaf.NotBefore); life > 10*time.Minute || life < 9*time.Minute {
		t.Errorf("lifetime %v, want the short profile's 10m", life)
	}
	if names := e.dns.Names(); len(names) != 0 {
		t.Errorf("authdns still serves %q after success, want nothing", names)
	}
	if p, cl := e.solver.counts(); p != 2 || cl != 2 {
		t.Errorf("solver presented %d, cleaned %d; want 2 and 2", p, cl)
	}
	orders := e.ca.NewOrders()
	if len(orders) != 1 || !sameNames(orders[0].Identifiers, apexWild) || orders[0].Profile != "short" || orders[0].Replaces != "" {
		t.Errorf("NewOrders = %+v, want one order for both names, profile short, no replaces", orders)
	}
	for _, ev := range []struct {
		msg   string
		attrs map[string]string
		n     int
	}{
		{"acme.account", map[string]string{"status": "registered"}, 1},
		{"cert.order_started", map[string]string{"name": "example.test", "reason": "missing"}, 1},
		{"dns.challenge_present", map[string]string{"domain": "example.test"}, 1},
		{"dns.challenge_present", map[string]string{"domain": "*.example.test"}, 1},
		{"acme.challenge_validated", map[string]string{"domain": "example.test"}, 1},
		{"acme.challenge_validated", map[string]string{"domain": "*.example.test"}, 1},
		{"cert.renewed", map[string]string{"name": "example.test", "serial": c.Serial(), "reason": "missing"}, 1},
		{"cert.issued", map[string]string{"serial": c.Serial(), "profile": "short"}, 1},
		{"cert.stored", map[string]string{"serial": c.Serial(), "version": c.Version}, 1},
		{"cert.renewal_scheduled", map[string]string{"serial": c.Serial(), "reason": ReasonLifetime}, 1},
	} {
		if got := len(e.logs.Find(ev.msg, ev.attrs)); got != ev.n {
			t.Errorf("%d %s events with %v, want %d", got, ev.msg, ev.attrs, ev.n)
		}
	}
	st := m.Status()
	if len(st) != 1 || st[0].Serial != c.Serial() || st[0].NextRenewal.IsZero() || st[0].Reason != ReasonLifetime || st[0].Failures != 0 || st[0].LastSuccess.IsZero() {
		t.Errorf("Status = %+v, want serial %s, a next renewal, reason lifetime, no failures", st, c.Serial())
	}

	// Second manager, same store, another certificate: account reused.
	m2 := e.manager(t, []string{"other.test"}, nil)
	if err := m2.Obtain(ctx); err != nil {
		t.Fatalf("second Obtain: %v", err)
	}
	current(t, e.store, "other.test")
	if got := e.ca.NewAccounts(); got != 1 {
		t.Errorf("CA saw %d newAccount requests, want 1 (account reused)", got)
	}
	if got := len(e.logs.Find("acme.account", map[string]string{"status": "reused"})); got != 1 {
		t.Errorf("%d acme.account status=reused events, want 1", got)
	}
}

// TestRestartNoCAContact: two certificates are obtained concurrently with
// one account; a second Manager on the same store obtains nothing and does
// not contact the CA at all, even while the CA is down.
func TestRestartNoCAContact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebblerig.Options{})
	ctx := testCtx(t)
	two := func(c *Config) { c.Certs = append(c.Certs, CertSpec{Domains: []string{"other.test"}}) }
	if err := e.manager(t, apexWild, two).Obtain(ctx); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	c := current(t, e.store, "example.test")
	current(t, e.store, "other.test")
	if got := e.ca.NewAccounts(); got != 1 {
		t.Errorf("concurrent orders sent %d newAccount requests, want 1", got)
	}
	e.ca.SetDown(true)
	before := e.ca.Requests()
	m2 := e.manager(t, apexWild, two)
	if err := m2.Obtain(ctx); err != nil {
		t.Fatalf("Obtain after restart: %v", err)
	}
	if got := e.ca.Requests(); got != before {
		t.Errorf("CA requests %d -> %d, want no CA contact", before, got)
	}
	if got := current(t, e.store, "example.test"); got.Version != c.Version {
		t.Errorf("version %s after restart, want unchanged %s", got.Version, c.Version)
	}
	if st := m2.Status(); len(st) != 2 || st[0].Serial != c.Serial() || st[0].NextRenewal.IsZero() || st[1].Name != "other.test" || st[1].NextRenewal.IsZero() {
		t.Errorf("Status = %+v, want both certificates with a planned renewal, example.test serial %s", st, c.Serial())
	}
}

// TestRenewalARIReplaces: an ARI window in the past (forced through the
// management API) renews at once with "replaces" and keeps the profile.
func TestRenewalARIReplaces(t *testing.T) {
	t.Parallel()
	e, ctx := issued(t, pebblerig.Options{})
	old := current(t, e.store, "example.test")
	oldID, err := CertID(old.Cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := e.ca.SetRenewalInfo(ctx, leafPEM(old), past, past.Add(time.Hour)); err != nil {
		t.Fatalf("SetRenewalInfo: %v", err)
	}

	m := e.manager(t, apexWild, nil) // a restart: fresh scheduling state
	stop := runManager(t, m)
	poll.Until(t, 30*time.Second, "the ARI renewal", func() bool {
		c, _ := e.store.Current("example.test")
		return c.Serial() != old.Serial()
	})
	stop()

	c := current(t, e.store, "example.test")
	if c.Meta.Replaces != oldID || c.Meta.Profile != "short" {
		t.Errorf("new Meta replaces %q profile %q, want %q and short", c.Meta.Replaces, c.Meta.Profile, oldID)
	}
	if life := c.Cert.Leaf.NotAfter.Sub(c.Cert.Leaf.NotBefore); life > 10*time.Minute || life < 9*time.Minute {
		t.Errorf("renewed lifetime %v, want the short profile's 10m", life)
	}
	orders := e.ca.NewOrders()
	var renewal *pebblerig.NewOrder
	for i := range orders {
		if orders[i].Replaces != "" {
			renewal = &orders[i]
		}
	}
	if renewal == nil || renewal.Replaces != oldID || renewal.Status != http.StatusCreated || renewal.Profile != "short" {
		t.Fatalf("NewOrders = %+v, want an accepted order replacing %s with profile short", orders, oldID)
	}
	verifyChain(t, c, e.ca.IssuerRoots(), "example.test", "a.example.test")
	if len(e.logs.Find("ari.checked", map[string]string{"serial": old.Serial()})) == 0 {
		t.Error("no ari.checked event for the old certificate")
	}
	if len(e.logs.Find("cert.order_started", map[string]string{"reason": "ari", "replaces": oldID})) != 1 {
		t.Error("want one cert.order_started reason=ari with replaces")
	}
	if names := e.dns.Names(); len(names) != 0 {
		t.Errorf("authdns still serves %q, want nothing", names)
	}
}

// TestRenewalNoARILifetime: on a CA without ARI the lifetime rule renews a
// 10-minute certificate once half of it has passed (Now hook shifted 7
// minutes), without replaces and without ARI requests, keeping the profile.
func TestRenewalNoARILifetime(t *testing.T) {
	t.Parallel()
	e, _ := issued(t, pebblerig.Options{NoARI: true, Profiles: map[string]time.Duration{"short": 10 * time.Minute}})
	old := current(t, e.store, "example.test")

	var shift atomic.Int64
	shift.Store(int64(7 * time.Minute))
	m := e.manager(t, apexWild, func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }
	})
	stop := runManager(t, m)
	poll.Until(t, 30*time.Second, "the lifetime renewal", func() bool {
		c, _ := e.store.Current("example.test")
		return c.Serial() != old.Serial()
	})
	stop()

	c := current(t, e.store, "example.test")
	orders := e.ca.NewOrders()
	last := orders[len(orders)-1]
	if last.Replaces != "" || last.Profile != "short" || c.Meta.Profile != "short" || c.Meta.Replaces != "" {
		t.Errorf("renewal order %+v, Meta %+v: want profile short and no replaces", last, c.Meta)
	}
	if got := e.ca.StatusCount(http.StatusNotFound); got != 0 {
		t.Errorf("%d 404 answers: the manager asked the ARI-less CA for renewalInfo", got)
	}
	if len(e.logs.Find("cert.order_started", map[string]string{"reason": "renewal"})) != 1 {
		t.Error("want one cert.order_started reason=renewal")
	}
	if len(e.logs.Find("cert.renewal_scheduled", map[string]string{"serial": old.Serial(), "reason": ReasonLifetime})) == 0 {
		t.Error("no cert.renewal_scheduled reason=lifetime for the old certificate")
	}
	if life := c.Cert.Leaf.NotAfter.Sub(c.Cert.Leaf.NotBefore); life > 10*time.Minute || life < 9*time.Minute {
		t.Errorf("renewed lifetime %v, want 10m", life)
	}
}

// TestReobtainOnConfigChange: a stored certificate for other domains or
// another profile is replaced by Obtain.
func TestReobtainOnConfigChange(t *testing.T) {
	t.Parallel()
	e, ctx := issued(t, pebblerig.Options{})
	for _, tc := range []struct {
		reason  string
		domains []string
		profile string
	}{
		{"profile_changed", apexWild, "default"},
		{"domains_changed", []string{"example.test", "*.example.test", "api.example.test"}, "default"},
	} {
		old := current(t, e.store, "example.test")
		m := e.manager(t, tc.domains, func(c *Config) { c.Profile = tc.profile })
		if err := m.Obtain(ctx); err != nil {
			t.Fatalf("%s: Obtain: %v", tc.reason, err)
		}
		c := current(t, e.store, "example.test")
		if c.Serial() == old.Serial() || c.Meta.Profile != tc.profile || !sameNames(c.Meta.Names, tc.domains) || !sameNames(c.Cert.Leaf.DNSNames, tc.domains) {
			t.Errorf("%s: got serial %s (old %s), Meta %+v, want a new certificate for %q profile %s", tc.reason, c.Serial(), old.Serial(), c.Meta, tc.domains, tc.profile)
		}
		if len(e.logs.Find("cert.order_started", map[string]string{"reason": tc.reason})) != 1 {
			t.Errorf("want one cert.order_started reason=%s", tc.reason)
		}
	}
	if life := time.Until(current(t, e.store, "example.test").Cert.Leaf.NotAfter); life < 80*24*time.Hour {
		t.Errorf("remaining lifetime %v, want the default profile's 90 days", life)
	}
}

// TestAccountChecks: EAB and terms of service errors are clear and sent no
// newAccount; with EAB configured registration succeeds.
func TestAccountChecks(t *testing.T) {
	t.Parallel()
	hmac := base64.RawURLEncoding.EncodeToString([]byte("an-eab-hmac-key-of-32-bytes-long"))
	e := newEnv(t, pebblerig.Options{RequireEAB: true, EABKeys: map[string]string{"kid-7": hmac}})
	ctx := testCtx(t)

	err := e.manager(t, apexWild, nil).Obtain(ctx)
	if !errors.Is(err, ErrEABRequired) || !strings.Contains(err.Error(), "EABKID") {
		t.Errorf("Obtain without EAB: got %v, want ErrEABRequired naming EABKID", err)
	}
	err = e.manager(t, apexWild, func(c *Config) {
		c.EABKID, c.EABHMAC = "kid-7", hmac
		c.AcceptTOS = false
	}).Obtain(ctx)
	if !errors.Is(err, ErrTOSNotAccepted) || !strings.Contains(err.Error(), "AcceptTOS") {
		t.Errorf("Obtain without AcceptTOS: got %v, want ErrTOSNotAccepted naming AcceptTOS", err)
	}
	err = e.manager(t, apexWild, func(c *Config) {
		c.EABKID, c.EABHMAC = "kid-7", hmac
		c.Profile = "nope"
	}).Obtain(ctx)
	if err == nil || !strings.Contains(err.Error(), `Config.Profile "nope"`) || !strings.Contains(err.Error(), "short") {
		t.Errorf("Obtain with an unknown profile: got %v, want an error naming Config.Profile and the offered ones", err)
	}
	if got := e.ca.NewAccounts(); got != 0 {
		t.Errorf("CA saw %d newAccount requests before a valid configuration, want 0", got)
	}
	if err := e.manager(t, apexWild, func(c *Config) { c.EABKID, c.EABHMAC = "kid-7", hmac }).Obtain(ctx); err != nil {
		t.Fatalf("Obtain with EAB: %v", err)
	}
	current(t, e.store, "example.test")
	if got := e.ca.NewAccounts(); got != 1 {
		t.Errorf("CA saw %d newAccount requests, want 1", got)
	}
	for _, r := range e.logs.Find("", nil) {
		for _, v := range r.Attrs {
			if strings.Contains(v, hmac) {
				t.Errorf("event %s logs the EAB HMAC", r.Msg)
			}
		}
	}
}

// TestNonceRejection: with half of all nonces rejected, issuance and a
// renewal with replaces (the package's own JWS request) still succeed.
func TestNonceRejection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebblerig.Options{NonceReject: 50})
	ctx := testCtx(t)
	m := e.manager(t, apexWild, nil)
	if err := m.Obtain(ctx); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	old := current(t, e.store, "example.test")
	if err := m.attempt(ctx, m.certs[0], reasonARI, old); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	c := current(t, e.store, "example.test")
	oldID, _ := CertID(old.Cert.Leaf)
	if c.Serial() == old.Serial() || c.Meta.Replaces != oldID {
		t.Errorf("renewal: serial %s (old %s), replaces %q, want a new certificate replacing %s", c.Serial(), old.Serial(), c.Meta.Replaces, oldID)
	}
	if got := e.ca.StatusCount(http.StatusBadRequest); got == 0 {
		t.Error("the CA rejected no nonce; the test proves nothing")
	}
}

// TestCADown: a failed Obtain leaves the stored certificate alone, backs
// off exponentially, records the failure, and Run does not retry early.
func TestCADown(t *testing.T) {
	t.Parallel()
	e, ctx := issued(t, pebblerig.Options{})
	old := current(t, e.store, "example.test")
	e.ca.SetDown(true)
	now := time.Now().Truncate(time.Second)
	// The manager's clock stands still at now for the two attempts, then
	// moves with the synctest bubble's clock while Run waits.
	var moving atomic.Pointer[func() time.Time]
	// No keep-alive: a connection left idle inside the bubble would keep it
	// from ever idling, so an early attempt would hang the test instead of
	// failing it.
	// The bubble's clock starts in 2000: verify the CA's certificate at now.
	tr := e.ca.HTTPClient().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	tr.TLSClientConfig.Time = func() time.Time { return now }
	m := e.manager(t, append(slices.Clone(apexWild), "api.example.test"), func(c *Config) {
		c.HTTPClient = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		c.Now = func() time.Time {
			if f := moving.Load(); f != nil {
				return (*f)()
			}
			return now
		}
	})
	m.rnd = fixed(0.5)
	for attempt := 1; attempt <= 2; attempt++ {
		err := m.Obtain(ctx)
		if err == nil {
			t.Fatalf("attempt %d: Obtain with the CA down: got nil error", attempt)
		}
		// Each layer adds its context once: no "issuer: example.test: issuer: …".
		if msg := err.Error(); strings.Count(msg, "issuer:") != 1 || !strings.HasPrefix(msg, "issuer: example.test: ") {
			t.Errorf("attempt %d: Obtain error %q; want the prefix \"issuer: example.test: \" once", attempt, msg)
		}
		if c := current(t, e.store, "example.test"); c.Version != old.Version {
			t.Fatalf("attempt %d: stored version %s, want the old %s untouched", attempt, c.Version, old.Version)
		}
		st := m.Status()[0]
		want := now.Add(Backoff(attempt, 0, fixed(0.5)))
		if st.Failures != attempt || !st.NextRenewal.Equal(want) || st.Reason != reasonDomainsChanged || !strings.Contains(st.LastError, "503") || st.Serial != old.Serial() {
			t.Errorf("attempt %d: Status = %+v, want %d failures, next %v, reason domains_changed, a 503 error", attempt, st, attempt, want)
		}
		if len(e.logs.Find("cert.renewal_failed", map[string]string{"attempt": strconv.Itoa(attempt), "next_try": want.UTC().Format(time.RFC3339)})) != 1 {
			t.Errorf("attempt %d: want one cert.renewal_failed event with next_try %v", attempt, want)
		}
	}
	// Run honours the backoff: no CA request until the second backoff has
	// passed (checked to the nanosecond on the bubble's clock). An early
	// attempt would reach the CA and be counted.
	before := e.ca.Requests()
	backoff := Backoff(2, 0, fixed(0.5))
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		clock := func() time.Time { return now.Add(time.Since(start)) }
		moving.Store(&clock)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			m.Run(ctx)
			close(done)
		}()
		time.Sleep(backoff - time.Nanosecond)
		synctest.Wait()
		if got := e.ca.Requests(); got != before {
			t.Errorf("Run sent %d requests during the %v backoff, want none", got-before, backoff)
		}
		if n := len(e.logs.Find("cert.renewal_failed", nil)); n != 2 {
			t.Errorf("%d cert.renewal_failed events after Run waited out the backoff, want the 2 before it", n)
		}
		cancel()
		<-done
	})
}

// TestSolverErrors: a Present error with RetryAfter schedules the next try
// after it, and every presented value is cleaned up; cancellation during
// Wait cleans up too.
func TestSolverErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebblerig.Options{})
	ctx := testCtx(t)
	now := time.Now().Truncate(time.Second)
	e.solver.presentErr, e.solver.failAt = &retryErr{time.Hour}, 2
	m := e.manager(t, apexWild, func(c *Config) { c.Now = func() time.Time { return now } })
	m.rnd = fixed(0)
	err := m.Obtain(ctx)
	if !isErr[*retryErr](err) {
		t.Fatalf("Obtain: got %v, want the solver's error", err)
	}
	if st := m.Status()[0]; !st.NextRenewal.Equal(now.Add(time.Hour)) || st.Failures != 1 {
		t.Errorf("Status = %+v, want next try %v (the solver's RetryAfter)", st, now.Add(time.Hour))
	}
	if p, cl := e.solver.counts(); p != 2 || cl != 2 || len(e.dns.Names()) != 0 {
		t.Errorf("presented %d, cleaned %d, authdns %q; want 2, 2 and nothing left", p, cl, e.dns.Names())
	}

	// Cancellation while waiting for propagation.
	e.solver.mu.Lock()
	e.solver.presentErr = nil
	waiting := make(chan struct{})
	var once sync.Once
	e.solver.waitHook = func(ctx context.Context) error {
		once.Do(func() { close(waiting) })
		<-ctx.Done()
		return ctx.Err()
	}
	e.solver.mu.Unlock()
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		<-waiting
		cancel()
	}()
	if err := e.manager(t, apexWild, nil).Obtain(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Obtain cancelled during Wait: got %v, want context.Canceled", err)
	}
	if p, cl := e.solver.counts(); p != 4 || cl != 4 || len(e.dns.Names()) != 0 {
		t.Errorf("after cancel: presented %d, cleaned %d, authdns %q; want 4, 4 and nothing left", p, cl, e.dns.Names())
	}
	if _, ok := e.store.Current("example.test"); ok {
		t.Error("a certificate was stored although every attempt failed")
	}
}

// TestAuthzReuse: valid authorizations the CA reuses are skipped (no TXT
// record written), and the order still completes.
func TestAuthzReuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebblerig.Options{AuthzReuse: 100})
	ctx := testCtx(t)
	m := e.manager(t, apexWild, nil)
	if err := m.Obtain(ctx); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	old := current(t, e.store, "example.test")
	if err := m.attempt(ctx, m.certs[0], reasonRenewal, old); err != nil {
		t.Fatalf("second order: %v", err)
	}
	if c := current(t, e.store, "example.test"); c.Serial() == old.Serial() {
		t.Error("second order stored no new certificate")
	}
	if p, _ := e.solver.counts(); p != 2 {
		t.Errorf("solver presented %d values over two orders, want 2 (reused authorizations skipped)", p)
	}
}

// TestAccountGone: a stored account URL the CA does not know (e.g. the CA
// lost its state) is dropped and the account looked up again by key.
func TestAccountGone(t *testing.T) {
	t.Parallel()
	e, ctx := issued(t, pebblerig.Options{})
	b, err := e.store.Get(ctx, cacheAccountInfo)
	if err != nil {
		t.Fatal(err)
	}
	var info accountInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	realURL := info.Account
	info.Account = strings.TrimSuffix(e.ca.DirectoryURL(), "/dir") + "/my-account/424242"
	b, _ = json.Marshal(info)
	if err := e.store.Put(ctx, cacheAccountInfo, b); err != nil {
		t.Fatal(err)
	}
	if err := e.manager(t, []string{"other.test"}, func(c *Config) { c.KeyType = KeyECDSAP384 }).Obtain(ctx); err != nil {
		t.Fatalf("Obtain with a stale account URL: %v", err)
	}
	if pub, ok := current(t, e.store, "other.test").Cert.Leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		t.Errorf("leaf key %T, want ECDSA P-384 (Config.KeyType)", current(t, e.store, "other.test").Cert.Leaf.PublicKey)
	}
	if len(e.logs.Find("acme.account_gone", nil)) != 1 {
		t.Error("want one acme.account_gone event")
	}
	b, _ = e.store.Get(ctx, cacheAccountInfo)
	if err := json.Unmarshal(b, &info); err != nil || info.Account != realURL {
		t.Errorf("stored account %q (%v), want the real %q again", info.Account, err, realURL)
	}
}

// TestRealStore runs issuance against *certstore.Store on disk, then a
// restart (a new Store on the same directory, a new Manager) with the CA
// down: the certificate is served without any CA contact.
func TestRealStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebblerig.Options{})
	ctx := testCtx(t)
	dir := t.TempDir()
	s1, err := certstore.Open(ctx, dir, certstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.store = s1
	if err := e.manager(t, apexWild, func(c *Config) { c.KeyType = KeyRSA2048 }).Obtain(ctx); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	c := current(t, s1, "example.test")
	verifyChain(t, c, e.ca.IssuerRoots(), "example.test", "x.example.test")
	if pub, ok := c.Cert.Leaf.PublicKey.(*rsa.PublicKey); !ok || pub.N.BitLen() != 2048 {
		t.Errorf("leaf key %T, want RSA 2048 (Config.KeyType)", c.Cert.Leaf.PublicKey)
	}
	if c.Source != certstore.SourceStore || c.Meta.Source != "acme" || c.Meta.Profile != "short" {
		t.Errorf("entry source %q meta %+v, want store / acme / short", c.Source, c.Meta)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := certstore.Open(ctx, dir, certstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	e.store = s2
	e.ca.SetDown(true)
	before := e.ca.Requests()
	m := e.manager(t, apexWild, nil)
	if err := m.Obtain(ctx); err != nil {
		t.Fatalf("Obtain after restart: %v", err)
	}
	if got := e.ca.Requests(); got != before {
		t.Errorf("restart contacted the CA (%d requests)", got-before)
	}
	if got := current(t, s2, "example.test"); got.Serial() != c.Serial() {
		t.Errorf("serial after restart %s, want %s", got.Serial(), c.Serial())
	}
	if _, err := s2.Get(ctx, cacheAccountKey); err != nil {
		t.Errorf("account key not in the store: %v", err)
	}
}

// TestReplacesRefused: when the CA refuses "replaces" (here: the replaced
// certificate belongs to another account), the order is sent again without
// it and succeeds.
func TestReplacesRefused(t *testing.T) {
	t.Parallel()
	e, ctx := issued(t, pebblerig.Options{})
	foreign := current(t, e.store, "example.test") // issued to the first account
	foreignID, _ := CertID(foreign.Cert.Leaf)

	e.store = newMemStore() // another host: another account
	m := e.manager(t, apexWild, nil)
	if _, err := m.issue(ctx, m.certs[0], reasonARI, foreign, fence{}); err != nil {
		t.Fatalf("issue replacing a foreign certificate: %v", err)
	}
	c := current(t, e.store, "example.test")
	if c.Meta.Replaces != "" {
		t.Errorf("Meta.Replaces = %q, want empty after the refusal", c.Meta.Replaces)
	}
	orders := e.ca.NewOrders()
	if n := len(orders); n != 3 || orders[1].Replaces != foreignID || orders[1].Status == http.StatusCreated || orders[2].Replaces != "" || orders[2].Status != http.StatusCreated {
		t.Errorf("NewOrders = %+v, want a refused order with replaces %s, then an accepted one without", orders, foreignID)
	}
	if len(e.logs.Find("acme.replaces_refused", map[string]string{"replaces": foreignID})) != 1 {
		t.Error("want one acme.replaces_refused event")
	}
}

// TestValidationFailure: the records vanish before the CA looks (a solver
// that claimed propagation wrongly), so the authorization turns invalid; the
// attempt fails fast with the CA's reason, stores nothing and cleans up.
func TestValidationFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebblerig.Options{})
	ctx := testCtx(t)
	e.solver.waitHook = func(context.Context) error {
		e.dns.SetTXT("_acme-challenge.example.test", 60)
		return nil
	}
	m := e.manager(t, apexWild, nil)
	start := time.Now()
	err := m.Obtain(ctx)
	var ae *acme.AuthorizationError
	if !errors.As(err, &ae) || len(ae.Errors) == 0 {
		t.Fatalf("Obtain: %v; want an *acme.AuthorizationError carrying the CA's reason", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("failure took %v; want it noticed quickly", d)
	}
	if _, ok := e.store.Current("example.test"); ok {
		t.Error("a certificate was stored after a failed validation")
	}
	if p, cl := e.solver.counts(); p == 0 || p != cl {
		t.Errorf("presented %d, cleaned %d; want every presented value cleaned", p, cl)
	}
	if st := m.Status()[0]; st.Failures != 1 || st.NextRenewal.IsZero() {
		t.Errorf("Status = %+v; want one failure and a retry scheduled", st)
	}
}
