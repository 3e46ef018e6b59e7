package issuer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgecert/edgecert/certstore"
)

// Duplicate guard: a CA allows few certificates per exact set of names
// (Let's Encrypt: 5 per 7 days, no override). A non-ARI order that would
// be the duplicateLimit+1-th within duplicateWindow is refused unless the
// certificate is in emergency, leaving headroom for an operator.
const (
	duplicateWindow = 7 * 24 * time.Hour
	duplicateLimit  = 3
)

// emergencyFraction: a certificate with less than this fraction of its
// lifetime left (or expired) is in emergency: it may be ordered without
// the lease when the shared store is unreachable, and the duplicate guard
// does not apply. A missing certificate is not in emergency: a fleet may
// have one that this host cannot read yet.
const emergencyFraction = 20

var (
	// errDuplicateGuard refuses an order (see duplicateLimit).
	errDuplicateGuard = errors.New("duplicate guard: refusing a non-ARI order")
	// errPeerRenewing means the CA answered alreadyReplaced under a shared
	// lease: another host is renewing this certificate.
	errPeerRenewing = errors.New("the CA says the certificate is already being replaced (a peer is renewing)")
)

// fence is how one order is protected: the lease it runs under (nil in an
// unfenced emergency order) and whether the certificate is in emergency.
type fence struct {
	lease     *certstore.Lease
	emergency bool
}

// shared reports whether a peer may hold this certificate's lease next.
func (f fence) shared() bool { return f.lease != nil && f.lease.Info().Shared }

// inEmergency reports whether cur is expired or has less than
// 1/emergencyFraction of its lifetime left at now.
func inEmergency(cur *certstore.Entry, now time.Time) bool {
	if cur == nil || cur.Cert == nil || cur.Cert.Leaf == nil {
		return false
	}
	leaf := cur.Cert.Leaf
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Sub(now) < life/emergencyFraction
}

// recentDuplicates counts the non-ARI certificates for exactly names in
// hist issued within duplicateWindow before now.
func recentDuplicates(hist []certstore.Issuance, names []string, now time.Time) int {
	n := 0
	for _, h := range hist {
		if !h.ARI && now.Sub(h.IssuedAt) < duplicateWindow && certstore.SameNames(h.Names, names) {
			n++
		}
	}
	return n
}

// guard refuses a non-ARI order for cs under f when the store's issuance
// history already holds duplicateLimit recent certificates for its names.
func (m *Manager) guard(cs *certState, f fence) error {
	if f.lease == nil || f.emergency {
		return nil
	}
	n := recentDuplicates(f.lease.Info().History, cs.spec.Domains, m.now())
	if n < duplicateLimit {
		return nil
	}
	m.log.Error("fleet.duplicate_guard", "name", cs.spec.Name, "recent", n, "window", duplicateWindow.String(),
		"generation", f.lease.Generation(), "instance", f.lease.Info().Holder)
	return fmt.Errorf("%w: %d certificates for these names in %v", errDuplicateGuard, n, duplicateWindow)
}

// fenced makes one issuance attempt for cs under its lease: it waits for
// the lease (bounded by OrderTimeout), skips the order when the store
// installed a peer's certificate meanwhile, and runs the order under the
// lease's context, so losing the lease cancels it. When the shared store
// is unreachable, only a certificate in emergency is ordered (unfenced,
// logged fleet.emergency_order); the store shares it once it can.
func (m *Manager) fenced(ctx context.Context, cs *certState, reason string, cur *certstore.Entry) (*certstore.Entry, error) {
	name := cs.spec.Name
	f := fence{emergency: inEmergency(cur, m.now())}
	lctx, cancel := context.WithTimeout(ctx, m.cfg.OrderTimeout)
	lease, err := m.cfg.Store.Lock(lctx, name)
	if errors.Is(err, certstore.ErrSuperseded) {
		// A peer published while we waited, and it is served now.
		if e, ok := m.cfg.Store.Current(name); ok && (cur == nil || e.Serial() != cur.Serial()) {
			if _, why := m.needsObtain(cs, m.now()); why == "" {
				cancel()
				m.log.Info("cert.order_skipped", "name", name, "serial", e.Serial(), "generation", e.Meta.Generation,
					"why", "a peer published a certificate")
				return e, nil
			}
		}
		lease, err = m.cfg.Store.Lock(lctx, name) // it does not fit: order after all
	}
	cancel()
	switch {
	case err == nil:
		f.lease = lease
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			defer cancel()
			if err := lease.Release(rctx); err != nil {
				m.log.Warn("fleet.lease_release_failed", "name", name, "generation", lease.Generation(), "error", err)
			}
		}()
	case f.emergency && errors.Is(err, certstore.ErrUnavailable):
		m.log.Error("fleet.emergency_order", "name", name, "serial", cur.Serial(),
			"not_after", cur.NotAfter().UTC().Format(time.RFC3339), "error", err)
	default:
		return nil, fmt.Errorf("lease: %w", err)
	}
	if f.lease != nil {
		// Lock re-read the shared copy: a peer may have renewed meanwhile.
		if e, ok := m.cfg.Store.Current(name); ok && (cur == nil || e.Serial() != cur.Serial()) {
			if _, why := m.needsObtain(cs, m.now()); why == "" {
				m.log.Info("cert.order_skipped", "name", name, "serial", e.Serial(), "generation", e.Meta.Generation,
					"instance", lease.Info().Holder, "why", "a peer published a certificate")
				return e, nil
			}
		}
	}

	octx, cancelOrder := context.WithCancelCause(ctx)
	defer cancelOrder(nil)
	if f.lease != nil {
		stop := context.AfterFunc(f.lease.Context(), func() { cancelOrder(f.lease.Err()) })
		defer stop()
	}
	tctx, cancelT := context.WithTimeout(octx, m.cfg.OrderTimeout)
	defer cancelT()
	e, err := m.issue(tctx, cs, reason, cur, f)
	if err != nil && f.lease != nil && errors.Is(f.lease.Err(), certstore.ErrLeaseLost) {
		return nil, fmt.Errorf("order abandoned: %w", f.lease.Err())
	}
	return e, err
}
