package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgecert/edgecert/certstore"
)

// Scheduling constants.
const (
	// minReissue is the least time between a successful issuance of a
	// certificate and the next attempt for it: a CA whose ARI keeps saying
	// "now" cannot make the manager loop.
	minReissue = time.Minute
	// maxSleep bounds how long a renewal loop sleeps before looking at the
	// store again (another process may have written a certificate).
	maxSleep = time.Hour
)

// Obtain reasons (cert.order_started).
const (
	reasonMissing        = "missing"
	reasonExpired        = "expired"
	reasonDomainsChanged = "domains_changed"
	reasonProfileChanged = "profile_changed"
	reasonRenewal        = "renewal"
	reasonARI            = "ari"
)

// Manager obtains and renews the configured certificates. Its methods are
// safe for concurrent use; attempts for one certificate never overlap.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	hc    *http.Client
	now   func() time.Time
	rnd   func() float64 // uniform [0,1) for jitter; replaced by tests
	eab   []byte         // decoded EAB HMAC key, nil without EAB
	certs []*certState   // one per Config.Certs entry, fixed at New

	// acctSem serialises account set-up (a channel, so waiting honours
	// ctx); the set-up itself does I/O without holding mu.
	acctSem chan struct{}
	// orderSem holds one token per order in flight (capacity
	// Config.MaxConcurrentOrders); attempts wait for one, honouring ctx.
	orderSem chan struct{}

	steps stepClock // when each loop's current step started (Stalled)

	mu   sync.Mutex // guards dir, sess and the mutable fields of every certState
	dir  *directory // the CA's directory once fetched
	sess *session   // the account session once set up
}

// certState is the scheduling state of one certificate. spec and sem are
// immutable; every other field is guarded by Manager.mu.
type certState struct {
	spec CertSpec
	sem  chan struct{} // held during an issuance attempt (capacity 1)

	failures    int       // consecutive failed attempts
	lastErr     string    // error of the last failed attempt
	lastReason  string    // reason of the last attempt
	lastSuccess time.Time // when the last issuance succeeded
	lastFailure time.Time // when the last attempt failed
	revoked     string    // serial Revoke revoked: re-obtained until replaced
	nextTry     time.Time // no attempt before this (backoff, minReissue)

	ari         *ariState // ARI window of the served certificate, if known
	ariLoaded   bool      // persisted ARI state was read
	ariFailures int       // consecutive failed ARI polls
	ariRetry    time.Time // no ARI poll before this after a failure

	planKey string    // serial and window the plan was computed for
	planAt  time.Time // planned renewal time
	planWhy string    // RenewalTime reason
}

// CertStatus is the state of one certificate, for status pages and metrics.
type CertStatus struct {
	Name    string
	Domains []string
	// Serial (hex) and NotAfter of the certificate being served; empty if
	// none.
	Serial   string
	NotAfter time.Time
	// NextRenewal is when the next issuance attempt is due (zero while
	// unknown, e.g. before Obtain or Run); Reason says why: a RenewalTime
	// reason, or an obtain reason (missing, expired, domains_changed,
	// profile_changed) when a retry after failure is scheduled.
	NextRenewal time.Time
	Reason      string
	// Planned is the chosen renewal time of the served certificate (zero
	// until planned); unlike NextRenewal, failures do not move it.
	Planned time.Time
	// ARIStart and ARIEnd are the CA's suggested window; zero if unknown.
	ARIStart, ARIEnd time.Time
	LastSuccess      time.Time
	LastFailure      time.Time
	LastError        string
	Failures         int // consecutive failed attempts
}

// New validates cfg (errors are *FieldError naming the field) and returns a
// Manager. It does no I/O.
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.Store == nil:
		return nil, fieldErr("Store", "is required")
	case cfg.Solver == nil:
		return nil, fieldErr("Solver", "is required")
	}
	eab, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:      cfg,
		log:      cfg.Logger,
		hc:       cfg.HTTPClient,
		now:      cfg.Now,
		rnd:      rand.Float64,
		eab:      eab,
		acctSem:  make(chan struct{}, 1),
		orderSem: make(chan struct{}, cfg.MaxConcurrentOrders),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.hc == nil {
		m.hc = &http.Client{Timeout: time.Minute}
	}
	if m.now == nil {
		m.now = time.Now
	}
	for _, spec := range cfg.Certs {
		m.certs = append(m.certs, &certState{spec: spec, sem: make(chan struct{}, 1)})
	}
	return m, nil
}

// Obtain obtains now, concurrently, every certificate without a usable
// stored one: missing, expired, or ordered for other domains or another
// profile. Certificates with a usable stored one are left alone without any
// CA contact (not even the directory). It makes one attempt per
// certificate, ignoring the backoff schedule but updating it, and returns
// the joined errors of the failed ones; stored certificates are never
// touched by a failure.
func (m *Manager) Obtain(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(m.certs))
	for i, cs := range m.certs {
		now := m.now()
		cur, reason := m.needsObtain(cs, now)
		if reason == "" {
			m.plan(ctx, cs, cur, now)
			continue
		}
		wg.Go(func() { errs[i] = m.attempt(ctx, cs, reason, cur) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Run keeps every certificate renewed until ctx is done, then returns nil
// once all its goroutines have ended. Each certificate's loop polls ARI
// when due, renews at the planned time, retries failures with Backoff, and
// re-obtains a certificate that went missing or no longer matches the
// configuration.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, cs := range m.certs {
		wg.Go(func() { m.loop(ctx, cs) })
	}
	wg.Wait()
	return nil
}

// Status returns the state of every configured certificate, in
// configuration order.
func (m *Manager) Status() []CertStatus {
	out := make([]CertStatus, 0, len(m.certs))
	for _, cs := range m.certs {
		st := CertStatus{Name: cs.spec.Name, Domains: slices.Clone(cs.spec.Domains)}
		if e, ok := m.cfg.Store.Current(cs.spec.Name); ok {
			st.Serial = e.Serial()
			st.NotAfter = e.NotAfter()
		}
		m.mu.Lock()
		switch {
		case cs.failures > 0:
			st.NextRenewal, st.Reason = cs.nextTry, cs.lastReason
		case cs.planKey != "":
			st.NextRenewal, st.Reason = maxTime(cs.planAt, cs.nextTry), cs.planWhy
		}
		if cs.planKey != "" {
			st.Planned = cs.planAt
		}
		if cs.ari != nil && cs.ari.Serial == st.Serial {
			st.ARIStart, st.ARIEnd = cs.ari.Window.Start, cs.ari.Window.End
		}
		st.LastSuccess, st.LastFailure, st.LastError, st.Failures = cs.lastSuccess, cs.lastFailure, cs.lastErr, cs.failures
		m.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// loop is one certificate's renewal loop.
func (m *Manager) loop(ctx context.Context, cs *certState) {
	for ctx.Err() == nil {
		m.steps.begin(cs.spec.Name, time.Now())
		d := m.step(ctx, cs)
		m.steps.end(cs.spec.Name)
		if d <= 0 {
			continue
		}
		t := time.NewTimer(min(d, maxSleep))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// step does at most one piece of network work for cs (an ARI poll or an
// issuance attempt) and returns how long to wait before the next step; 0
// means step again now. Attempts always move nextTry forward, so steps
// cannot spin.
func (m *Manager) step(ctx context.Context, cs *certState) time.Duration {
	now := m.now()
	cur, reason := m.needsObtain(cs, now)
	if reason == "" {
		if m.ariDue(ctx, cs, cur, now) {
			m.pollARI(ctx, cs, cur)
			return 0
		}
		at, why := m.plan(ctx, cs, cur, now)
		if now.Before(at) {
			return m.untilWake(cs, at, now)
		}
		reason = reasonRenewal
		if why == ReasonARI {
			reason = reasonARI
		}
	}
	m.mu.Lock()
	next := cs.nextTry
	m.mu.Unlock()
	if now.Before(next) {
		return next.Sub(now)
	}
	if err := m.attempt(ctx, cs, reason, cur); err != nil {
		// attempt recorded and logged the failure; wait out the backoff it
		// set (nothing, if ctx ended: loop then stops).
		m.mu.Lock()
		next = cs.nextTry
		m.mu.Unlock()
		return next.Sub(m.now())
	}
	return 0
}

// untilWake is the time until the plan is due or ARI is next polled.
func (m *Manager) untilWake(cs *certState, at, now time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	wake := at
	if cs.ari != nil && cs.ari.NextPoll.Before(wake) {
		wake = cs.ari.NextPoll
	}
	if cs.ariRetry.After(now) && cs.ariRetry.Before(wake) {
		wake = cs.ariRetry
	}
	return max(wake.Sub(now), time.Second)
}

// needsObtain returns the served entry for cs and, if it cannot stay, why
// a new certificate is needed ("" if it can).
func (m *Manager) needsObtain(cs *certState, now time.Time) (*certstore.Entry, string) {
	e, ok := m.cfg.Store.Current(cs.spec.Name)
	switch {
	case !ok || e.Cert == nil || e.Cert.Leaf == nil:
		return nil, reasonMissing
	case !now.Before(e.Cert.Leaf.NotAfter):
		return e, reasonExpired
	case !sameNames(entryNames(e), cs.spec.Domains):
		return e, reasonDomainsChanged
	case e.Meta.Profile != m.cfg.Profile:
		return e, reasonProfileChanged
	case m.isRevoked(cs, e):
		return e, reasonRevoked
	}
	return e, ""
}

// entryNames is what e was ordered for: Meta.Names, or the leaf's DNS names
// for entries stored without them.
func entryNames(e *certstore.Entry) []string {
	if len(e.Meta.Names) > 0 {
		return e.Meta.Names
	}
	return e.Cert.Leaf.DNSNames
}

// sameNames is the store's one rule for "the same set of names".
var sameNames = certstore.SameNames

// plan returns the renewal time of the served certificate, computing it
// (and logging cert.renewal_scheduled) when the certificate or its ARI
// window changed. The first call loads persisted ARI state.
func (m *Manager) plan(ctx context.Context, cs *certState, cur *certstore.Entry, now time.Time) (time.Time, string) {
	m.loadARIOnce(ctx, cs)
	leaf := cur.Cert.Leaf
	serial := serialHex(leaf)
	m.mu.Lock()
	var win *Window
	if cs.ari != nil && cs.ari.Serial == serial {
		w := cs.ari.Window
		win = &w
	}
	key := serial
	if win != nil {
		key += "|" + win.Start.String() + "|" + win.End.String()
	}
	if cs.planKey == key {
		at, why := cs.planAt, cs.planWhy
		m.mu.Unlock()
		return at, why
	}
	at, why := RenewalTime(leaf.NotBefore, leaf.NotAfter, win, now, m.rnd)
	// A new plan for the same certificate (its ARI window arrived or moved)
	// revises the previous decision: the line says which time it replaces.
	var revises time.Time
	if strings.HasPrefix(cs.planKey, serial) {
		revises = maxTime(cs.planAt, cs.nextTry)
	}
	cs.planKey, cs.planAt, cs.planWhy = key, at, why
	runs := maxTime(at, cs.nextTry) // when the loop will really attempt it
	m.mu.Unlock()

	attrs := []any{"name", cs.spec.Name, "serial", serial,
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "at", runs.UTC().Format(time.RFC3339), "reason", why}
	if !revises.IsZero() {
		attrs = append(attrs, "revises", revises.UTC().Format(time.RFC3339))
	}
	if runs.After(at) { // held back by minReissue after an issuance: say so
		attrs = append(attrs, "planned", at.UTC().Format(time.RFC3339), "held_by", "min_reissue", "min_reissue", minReissue)
	}
	if win != nil {
		attrs = append(attrs, "ari_start", win.Start.UTC().Format(time.RFC3339), "ari_end", win.End.UTC().Format(time.RFC3339))
	}
	m.log.Info("cert.renewal_scheduled", attrs...)
	return at, why
}

func (m *Manager) loadARIOnce(ctx context.Context, cs *certState) {
	m.mu.Lock()
	loaded := cs.ariLoaded
	cs.ariLoaded = true
	m.mu.Unlock()
	if loaded {
		return
	}
	if st, ok := m.loadARI(ctx, cs.spec.Name); ok {
		m.mu.Lock()
		if cs.ari == nil {
			cs.ari = st
		}
		m.mu.Unlock()
	}
}

// ariDue reports whether cur's ARI window should be polled now: the CA
// offers ARI (or that is not known yet), and there is no current answer
// for this certificate.
func (m *Manager) ariDue(ctx context.Context, cs *certState, cur *certstore.Entry, now time.Time) bool {
	m.loadARIOnce(ctx, cs)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dir != nil && m.dir.RenewalInfo == "" {
		return false
	}
	if now.Before(cs.ariRetry) {
		return false
	}
	return cs.ari == nil || cs.ari.Serial != serialHex(cur.Cert.Leaf) || !now.Before(cs.ari.NextPoll)
}

// pollARI fetches cur's ARI window and records it (or the failure).
func (m *Manager) pollARI(ctx context.Context, cs *certState, cur *certstore.Entry) {
	name, leaf := cs.spec.Name, cur.Cert.Leaf
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dir, err := m.directory(pctx)
	var win Window
	var every time.Duration
	if err == nil {
		if dir.RenewalInfo == "" {
			return // no ARI at this CA; ariDue now says so
		}
		win, every, err = m.fetchARI(pctx, dir.RenewalInfo, leaf)
	}
	now := m.now()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		cs.ariFailures++
		cs.ariRetry = now.Add(Backoff(cs.ariFailures, retryAfterOf(err), m.rnd))
		next := cs.ariRetry
		m.mu.Unlock()
		m.log.Warn("ari.check_failed", "name", name, "serial", serialHex(leaf), "error", err,
			"next_poll", next.UTC().Format(time.RFC3339))
		return
	}
	st := ariState{Serial: serialHex(leaf), Window: win, NextPoll: now.Add(every)}
	m.mu.Lock()
	cs.ariFailures, cs.ariRetry = 0, time.Time{}
	cs.ari = &st
	m.mu.Unlock()
	m.log.Info("ari.checked", "name", name, "serial", st.Serial,
		"ari_start", win.Start.UTC().Format(time.RFC3339), "ari_end", win.End.UTC().Format(time.RFC3339),
		"retry_after", every, "next_poll", st.NextPoll.UTC().Format(time.RFC3339))
	m.saveARI(ctx, name, st)
}

// attempt makes one bounded issuance attempt for cs and updates its
// schedule: success resets the failure count, failure backs off.
func (m *Manager) attempt(ctx context.Context, cs *certState, reason string, cur *certstore.Entry) error {
	select {
	case cs.sem <- struct{}{}:
	case <-ctx.Done():
		return errForCert(cs.spec.Name, ctx.Err())
	}
	defer func() { <-cs.sem }()
	select {
	case m.orderSem <- struct{}{}:
	case <-ctx.Done():
		return errForCert(cs.spec.Name, fmt.Errorf("waiting for an order slot: %w", ctx.Err()))
	}
	defer func() { <-m.orderSem }()
	// Re-read under the attempt lock: a concurrent attempt may have just
	// replaced the certificate.
	if e, ok := m.cfg.Store.Current(cs.spec.Name); ok && (cur == nil || e.Version != cur.Version) {
		if _, why := m.needsObtain(cs, m.now()); why == "" {
			return nil
		}
	}

	started := time.Now()
	e, err := m.fenced(ctx, cs, reason, cur)
	now := m.now()
	m.mu.Lock()
	cs.lastReason = reason
	if err == nil {
		cs.failures, cs.lastErr = 0, ""
		cs.lastSuccess = now
		cs.nextTry = now.Add(minReissue)
		cs.ari = nil // the window was for the previous certificate
		m.mu.Unlock()
		m.cfg.Metrics.Order(orderResult(nil))
		at, _ := m.plan(ctx, cs, e, now)
		m.mu.Lock()
		next := maxTime(at, cs.nextTry)
		m.mu.Unlock()
		// The line to grep for: one per completed rotation.
		m.log.Info("cert.renewed", "name", cs.spec.Name, "serial", e.Serial(),
			"not_after", e.NotAfter().UTC().Format(time.RFC3339), "next_renewal", next.UTC().Format(time.RFC3339),
			"took", time.Since(started), "reason", reason)
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		// Shutdown, not a failure of the CA or DNS: keep the schedule.
		m.mu.Unlock()
		m.log.Info("cert.attempt_cancelled", "name", cs.spec.Name, "reason", reason, "error", err)
		return errForCert(cs.spec.Name, err)
	}
	cs.failures++
	cs.lastErr = err.Error()
	cs.lastFailure = now
	cs.nextTry = now.Add(Backoff(cs.failures, retryAfterOf(err), m.rnd))
	attemptNo, next := cs.failures, cs.nextTry
	m.mu.Unlock()
	m.cfg.Metrics.Order(orderResult(err))
	m.log.Error("cert.renewal_failed", "name", cs.spec.Name, "reason", reason, "error", err,
		"attempt", attemptNo, "next_try", next.UTC().Format(time.RFC3339))
	return errForCert(cs.spec.Name, err)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
