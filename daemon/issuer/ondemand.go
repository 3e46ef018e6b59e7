package issuer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/metrics"
)

// Obtain reasons of operator requests (cert.order_started).
const (
	reasonManual  = "manual"  // Renew
	reasonRevoked = "revoked" // Revoke's replacement, or its retry
)

// ErrUnknownCert means a name given to Renew or Revoke is not a configured
// certificate.
var ErrUnknownCert = errors.New("issuer: no such certificate")

// NotDueError is Renew's answer for a certificate that is not due and was
// not forced: nothing was done. At is the planned renewal time.
type NotDueError struct {
	Name string
	At   time.Time
}

func (e *NotDueError) Error() string {
	return fmt.Sprintf("issuer: %s is not due for renewal until %s (force to renew anyway)", e.Name, e.At.UTC().Format(time.RFC3339))
}

// Renew makes one issuance attempt for the certificate called name now,
// ignoring any backoff, and returns the entry served afterwards. Without
// force, a certificate that is served, valid and not yet at its planned
// renewal time is left alone: *NotDueError. A failure is recorded as any
// renewal failure is (backoff, cert.renewal_failed) and returned; the
// current certificate keeps serving.
func (m *Manager) Renew(ctx context.Context, name string, force bool) (*certstore.Entry, error) {
	cs, err := m.certNamed(name)
	if err != nil {
		return nil, err
	}
	now := m.now()
	cur, reason := m.needsObtain(cs, now)
	if reason == "" {
		if at, _ := m.plan(ctx, cs, cur, now); now.Before(at) && !force {
			return nil, &NotDueError{Name: name, At: at}
		}
		reason = reasonManual
	}
	if err := m.attempt(ctx, cs, reason, cur); err != nil {
		return nil, err
	}
	return m.served(name)
}

// Revoke revokes the certificate served for name at the CA with the given
// RFC 5280 reason, logs
// cert.revoked, and orders a replacement with a new key at once. If the
// replacement fails, the revoked certificate keeps serving (clients that
// check revocation reject it) and the renewal loop retries with backoff
// until a replacement is stored. It returns the new entry.
func (m *Manager) Revoke(ctx context.Context, name string, reason acme.CRLReasonCode) (*certstore.Entry, error) {
	cs, err := m.certNamed(name)
	if err != nil {
		return nil, err
	}
	cur, ok := m.cfg.Store.Current(name)
	if !ok || cur.Cert == nil || len(cur.Cert.Certificate) == 0 {
		return nil, fmt.Errorf("issuer: revoke %s: no certificate is served", name)
	}
	serial := cur.Serial()
	s, err := m.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("issuer: revoke %s: %w", name, err)
	}
	// keyCompromise is signed with the certificate's own key (Let's
	// Encrypt requires it: it proves the key is in other hands); other
	// reasons with the account key, which ordered the certificate.
	var key crypto.Signer
	if reason == acme.CRLReasonKeyCompromise {
		key, _ = cur.Cert.PrivateKey.(crypto.Signer)
	}
	if err := s.client.RevokeCert(metrics.WithACMEAction(ctx, metrics.ActionRevoke), key, cur.Cert.Certificate[0], reason); err != nil {
		return nil, fmt.Errorf("issuer: revoke %s (serial %s): %w", name, serial, err)
	}
	m.mu.Lock()
	cs.revoked = serial
	m.mu.Unlock()
	m.log.Warn("cert.revoked", "name", name, "serial", serial, "reason", int(reason))
	if err := m.attempt(ctx, cs, reasonRevoked, cur); err != nil {
		return nil, err
	}
	return m.served(name)
}

func (m *Manager) certNamed(name string) (*certState, error) {
	for _, cs := range m.certs {
		if cs.spec.Name == name {
			return cs, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownCert, name)
}

func (m *Manager) served(name string) (*certstore.Entry, error) {
	e, ok := m.cfg.Store.Current(name)
	if !ok {
		return nil, fmt.Errorf("issuer: %s: stored but not served", name)
	}
	return e, nil
}

// isRevoked reports whether e is the certificate Revoke revoked for cs.
func (m *Manager) isRevoked(cs *certState, e *certstore.Entry) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cs.revoked != "" && cs.revoked == e.Serial()
}
