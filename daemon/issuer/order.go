package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/metrics"
)

// Bounds for work that must finish even when the order's context ended.
const (
	cleanupTimeout = 2 * time.Minute
	storeTimeout   = time.Minute
)

// errAccountGone marks an order that failed because the CA no longer knows
// the stored account (e.g. a test CA restarted).
var errAccountGone = errors.New("issuer: the CA does not know the account")

// issue runs one order for cs and stores the result. cur is the
// certificate being replaced (nil if none); reason is logged.
func (m *Manager) issue(ctx context.Context, cs *certState, reason string, cur *certstore.Entry, f fence) (*certstore.Entry, error) {
	s, err := m.session(ctx)
	if err != nil {
		return nil, err
	}
	e, err := m.issueWith(ctx, s, cs, reason, cur, f)
	if errors.Is(err, errAccountGone) {
		m.log.Warn("acme.account_gone", "name", cs.spec.Name, "error", err)
		m.dropSession(ctx, s)
		if s, err = m.session(ctx); err != nil {
			return nil, err
		}
		e, err = m.issueWith(ctx, s, cs, reason, cur, f)
	}
	return e, err
}

// issueWith runs the order phases with session s: choose what it replaces,
// create the order, authorize it, finalize it, store the certificate.
func (m *Manager) issueWith(ctx context.Context, s *session, cs *certState, reason string, cur *certstore.Entry, f fence) (*certstore.Entry, error) {
	spec := cs.spec
	replaces := m.replacesID(s, cur)
	if replaces == "" {
		if err := m.guard(cs, f); err != nil {
			return nil, err
		}
	}
	m.log.Info("cert.order_started", "name", spec.Name, "reason", reason,
		"domains", spec.Domains, "profile", m.cfg.Profile, "replaces", replaces)

	order, err := m.createOrder(ctx, s, cs, f, &replaces)
	if err != nil {
		return nil, err
	}
	if err := m.authorize(ctx, s, spec.Name, order); err != nil {
		return nil, err
	}
	iss, err := m.finalize(ctx, s, spec.Domains, order.URI)
	if err != nil {
		return nil, err
	}
	m.log.Info("cert.issued", "name", spec.Name, "serial", serialHex(iss.leaf),
		"not_after", iss.leaf.NotAfter.UTC().Format(time.RFC3339), "profile", iss.profile)
	return m.storeIssued(ctx, spec, f, iss, replaces)
}

// replacesID is the ARI CertID of cur for the "replaces" field, or "" when
// there is nothing to replace: no current certificate, a CA without ARI, an
// expired certificate, or one whose CertID cannot be computed.
func (m *Manager) replacesID(s *session, cur *certstore.Entry) string {
	if cur == nil || s.dir.RenewalInfo == "" || !m.now().Before(cur.Cert.Leaf.NotAfter) {
		return ""
	}
	id, err := CertID(cur.Cert.Leaf)
	if err != nil {
		return ""
	}
	return id
}

// issuedCert is a certificate the CA issued for a fresh key, checked by
// checkIssued.
type issuedCert struct {
	ders    [][]byte // the chain, leaf first
	key     crypto.Signer
	leaf    *x509.Certificate
	profile string // the order's profile as the CA reports it
}

// finalize waits for the authorized order at orderURL to be ready, then
// finalizes it with a CSR for a new key of Config.KeyType and checks the
// chain the CA returns.
func (m *Manager) finalize(ctx context.Context, s *session, domains []string, orderURL string) (*issuedCert, error) {
	order, err := s.client.WaitOrder(metrics.WithACMEAction(ctx, metrics.ActionOrder), orderURL)
	if err != nil {
		return nil, fmt.Errorf("issuer: wait for order: %w", err)
	}
	key, err := newCertKey(m.cfg.KeyType)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: domains}, key)
	if err != nil {
		return nil, fmt.Errorf("issuer: csr: %w", err)
	}
	ders, _, err := s.client.CreateCertFromOrder(metrics.WithACMEAction(ctx, metrics.ActionFinalize), order, csr, true)
	if err != nil {
		return nil, fmt.Errorf("issuer: finalize: %w", err)
	}
	leaf, err := checkIssued(ders, key, domains)
	if err != nil {
		return nil, err
	}
	return &issuedCert{ders: ders, key: key, leaf: leaf, profile: string(order.Profile)}, nil
}

// storeIssued publishes iss under spec.Name (under f's lease). The
// certificate exists now, so it is stored even if ctx ended meanwhile, with
// a fresh context bounded by storeTimeout.
func (m *Manager) storeIssued(ctx context.Context, spec CertSpec, f fence, iss *issuedCert, replaces string) (*certstore.Entry, error) {
	var chainPEM []byte
	for _, d := range iss.ders {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(iss.key)
	if err != nil {
		return nil, fmt.Errorf("issuer: encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	meta := certstore.Meta{
		Names:      spec.Domains,
		Profile:    m.cfg.Profile,
		Issuer:     m.cfg.DirectoryURL,
		Replaces:   replaces,
		ObtainedAt: m.now().UTC(),
		Source:     "acme",
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	e, err := m.cfg.Store.PublishCert(sctx, f.lease, spec.Name, chainPEM, keyPEM, meta)
	if err != nil {
		return nil, fmt.Errorf("issuer: store: %w", err)
	}
	m.log.Info("cert.stored", "name", spec.Name, "serial", serialHex(iss.leaf), "version", e.Version)
	return e, nil
}

// createOrder sends newOrder, with "replaces" when *replaces is set; if the
// CA refuses that order, it is retried without (subject to the duplicate
// guard), and *replaces is cleared. Under a shared lease, alreadyReplaced
// outside an emergency means a peer is renewing: errPeerRenewing.
func (m *Manager) createOrder(ctx context.Context, s *session, cs *certState, f fence, replaces *string) (*acme.Order, error) {
	spec := cs.spec
	ctx = metrics.WithACMEAction(ctx, metrics.ActionNewOrder)
	if *replaces != "" {
		o, err := s.newOrderReplaces(ctx, m.hc, spec.Domains, m.cfg.Profile, *replaces)
		var ae *acme.Error
		switch {
		case err == nil:
			return o, nil
		case isProblem(err, ":accountDoesNotExist"):
			return nil, fmt.Errorf("%w: %w", errAccountGone, err)
		case isProblem(err, ":alreadyReplaced") && f.shared() && !f.emergency:
			m.log.Info("fleet.peer_renewing", "name", spec.Name, "replaces", *replaces,
				"generation", f.lease.Generation(), "instance", f.lease.Info().Holder)
			return nil, fmt.Errorf("%w: %w", errPeerRenewing, err)
		case errors.As(err, &ae) && !isProblem(err, ":rateLimited"):
			m.log.Warn("acme.replaces_refused", "name", spec.Name, "replaces", *replaces, "error", err)
			*replaces = ""
			if err := m.guard(cs, f); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("issuer: new order: %w", err)
		}
	}
	var opts []acme.OrderOption
	if m.cfg.Profile != "" {
		opts = append(opts, acme.WithOrderIssuanceProfile(acme.ProfileName(m.cfg.Profile)))
	}
	o, err := s.client.AuthorizeOrder(ctx, acme.DomainIDs(spec.Domains...), opts...)
	if isProblem(err, ":accountDoesNotExist") {
		return nil, fmt.Errorf("%w: %w", errAccountGone, err)
	}
	if err != nil {
		return nil, fmt.Errorf("issuer: new order: %w", err)
	}
	return o, nil
}

// challenge is one pending DNS-01 challenge of an order.
type challenge struct {
	authzURL string
	chal     *acme.Challenge
	domain   string // without "*.": the name the TXT record is under
	ident    string // the identifier as ordered, "*.example.com" for a wildcard (logged)
	value    string
}

// authorize completes the order's pending authorizations by DNS-01: it
// presents every value, waits for all concurrently, accepts the challenges
// and waits for the CA to validate them. Valid authorizations are skipped.
// Every presented value is cleaned up before it returns, with a fresh
// bounded context.
//
// Every value is presented, waited for and cleaned up concurrently: the
// solver coalesces the writes of one order (and of concurrent orders) into
// shared change batches. Every Present may have written, even one that
// fails, so every value is cleaned up.
func (m *Manager) authorize(ctx context.Context, s *session, name string, order *acme.Order) error {
	todo, err := pendingChallenges(ctx, s.client, order.AuthzURLs)
	if err != nil || len(todo) == 0 {
		return err
	}
	defer m.cleanUpChallenges(ctx, name, todo)
	if err := m.presentChallenges(ctx, name, todo); err != nil {
		return err
	}
	if err := m.waitChallenges(ctx, todo); err != nil {
		return err
	}
	if err := acceptChallenges(ctx, s.client, todo); err != nil {
		return err
	}
	return m.waitValidated(ctx, s.client, name, todo)
}

// pendingChallenges fetches the authorizations at urls and returns the
// DNS-01 challenge of each pending one; valid ones are skipped, any other
// status is an error.
func pendingChallenges(ctx context.Context, cl *acme.Client, urls []string) ([]challenge, error) {
	var todo []challenge
	for _, u := range urls {
		z, err := cl.GetAuthorization(metrics.WithACMEAction(ctx, metrics.ActionAuthorization), u)
		if err != nil {
			return nil, fmt.Errorf("issuer: get authorization: %w", err)
		}
		switch z.Status {
		case acme.StatusValid:
			continue
		case acme.StatusPending:
		default:
			return nil, fmt.Errorf("issuer: authorization for %s is %s", z.Identifier.Value, z.Status)
		}
		c, err := dns01Challenge(cl, u, z)
		if err != nil {
			return nil, err
		}
		todo = append(todo, c)
	}
	return todo, nil
}

// dns01Challenge is the DNS-01 challenge of the pending authorization z at
// url, with the TXT value to present for it.
func dns01Challenge(cl *acme.Client, url string, z *acme.Authorization) (challenge, error) {
	var ch *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "dns-01" {
			ch = c
			break
		}
	}
	if ch == nil {
		return challenge{}, fmt.Errorf("issuer: the CA offers no dns-01 challenge for %s", z.Identifier.Value)
	}
	v, err := cl.DNS01ChallengeRecord(ch.Token)
	if err != nil {
		return challenge{}, fmt.Errorf("issuer: dns-01 record: %w", err)
	}
	return challenge{authzURL: url, chal: ch, domain: strings.TrimPrefix(z.Identifier.Value, "*."), ident: authzIdent(z), value: v}, nil
}

// presentChallenges publishes every value through the solver, concurrently.
func (m *Manager) presentChallenges(ctx context.Context, name string, todo []challenge) error {
	return forAll(todo, func(c challenge) error {
		if err := m.cfg.Solver.Present(ctx, c.domain, c.value); err != nil {
			return fmt.Errorf("issuer: dns-01 present %s: %w", c.domain, err)
		}
		m.log.Info("dns.challenge_present", "name", name, "domain", c.ident)
		return nil
	})
}

// waitChallenges waits, concurrently, until the solver sees every value
// served.
func (m *Manager) waitChallenges(ctx context.Context, todo []challenge) error {
	return forAll(todo, func(c challenge) error {
		if err := m.cfg.Solver.Wait(ctx, c.domain, c.value); err != nil {
			return fmt.Errorf("issuer: dns-01 wait %s: %w", c.domain, err)
		}
		return nil
	})
}

// acceptChallenges tells the CA, one challenge after the other, that every
// value is in place.
func acceptChallenges(ctx context.Context, cl *acme.Client, todo []challenge) error {
	for _, c := range todo {
		if _, err := cl.Accept(metrics.WithACMEAction(ctx, metrics.ActionChallenge), c.chal); err != nil {
			return fmt.Errorf("issuer: accept challenge for %s: %w", c.domain, err)
		}
	}
	return nil
}

// waitValidated waits, concurrently, for the CA to validate every
// authorization.
func (m *Manager) waitValidated(ctx context.Context, cl *acme.Client, name string, todo []challenge) error {
	return forAll(todo, func(c challenge) error {
		if err := waitAuthorization(ctx, cl, c.authzURL); err != nil {
			return fmt.Errorf("issuer: validation of %s: %w", c.domain, err)
		}
		m.log.Info("acme.challenge_validated", "name", name, "domain", c.ident)
		return nil
	})
}

// cleanUpChallenges removes every value, concurrently, with a fresh context
// bounded by cleanupTimeout (ctx may have ended); failures are logged.
func (m *Manager) cleanUpChallenges(ctx context.Context, name string, todo []challenge) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = forAll(todo, func(c challenge) error {
		if cerr := m.cfg.Solver.CleanUp(cctx, c.domain, c.value); cerr != nil {
			m.log.Warn("dns.cleanup_failed", "name", name, "domain", c.ident, "error", cerr)
		}
		return nil
	})
}

// forAll runs f for every item concurrently and joins the errors.
func forAll[T any](items []T, f func(T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { errs[i] = f(it) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// checkIssued parses the issued chain and checks that the leaf carries key
// and covers every domain.
func checkIssued(ders [][]byte, key crypto.Signer, domains []string) (*x509.Certificate, error) {
	if len(ders) == 0 {
		return nil, errors.New("issuer: the CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return nil, fmt.Errorf("issuer: issued certificate: %w", err)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("issuer: issued certificate does not carry our key")
	}
	for _, d := range domains {
		found := false
		for _, n := range leaf.DNSNames {
			if strings.EqualFold(n, d) {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("issuer: issued certificate does not cover %s (SANs %q)", d, leaf.DNSNames)
		}
	}
	return leaf, nil
}

// newCertKey generates a certificate key of a validated Config.KeyType.
func newCertKey(kt string) (crypto.Signer, error) {
	var k crypto.Signer
	var err error
	switch kt {
	case KeyECDSAP384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("issuer: generate %s key: %w", kt, err)
	}
	return k, nil
}

func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// Authorization polling: fast at first (a DNS-01 validation against records
// already confirmed on every authoritative server usually completes within
// milliseconds), then backing off. x/crypto's WaitAuthorization sleeps a
// fixed second when the CA sends no Retry-After, which made every order at
// least a second long.
const (
	authzPollFirst = 100 * time.Millisecond
	authzPollMax   = 3 * time.Second
)

// waitAuthorization polls the authorization at url until it is valid, is
// invalid (an *acme.AuthorizationError naming the challenges' errors), or ctx
// ends.
func waitAuthorization(ctx context.Context, c *acme.Client, url string) error {
	ctx = metrics.WithACMEAction(ctx, metrics.ActionAuthorization)
	d := authzPollFirst
	for {
		z, err := c.GetAuthorization(ctx, url)
		if err != nil {
			return err
		}
		switch z.Status {
		case acme.StatusValid:
			return nil
		case acme.StatusInvalid, acme.StatusDeactivated, acme.StatusRevoked, acme.StatusExpired:
			ae := &acme.AuthorizationError{URI: url, Identifier: z.Identifier.Value}
			for _, ch := range z.Challenges {
				if ch.Error != nil {
					ae.Errors = append(ae.Errors, ch.Error)
				}
			}
			return ae
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		d = min(2*d, authzPollMax)
	}
}

// authzIdent is the identifier an authorization is for as it was ordered:
// RFC 8555 reports a wildcard's as the base name with "wildcard": true.
func authzIdent(z *acme.Authorization) string {
	if z.Wildcard && !strings.HasPrefix(z.Identifier.Value, "*.") {
		return "*." + z.Identifier.Value
	}
	return z.Identifier.Value
}
