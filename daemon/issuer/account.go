package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/edgecert/edgecert/daemon/metrics"
)

// Store keys of the opaque blobs this package keeps.
const (
	cacheAccountKey  = "acme_account+key"  // PEM account private key
	cacheAccountInfo = "acme_account+info" // JSON accountInfo
	cacheARIPrefix   = "acme_ari+"         // + certificate name: JSON ariState
)

const userAgent = "edgecert-issuer"

// directory is the part of the raw ACME directory this package reads itself
// (x/crypto's Directory has no renewalInfo).
type directory struct {
	NewNonce    string `json:"newNonce"`
	NewOrder    string `json:"newOrder"`
	RenewalInfo string `json:"renewalInfo"`
	Meta        struct {
		TermsOfService          string            `json:"termsOfService"`
		ExternalAccountRequired bool              `json:"externalAccountRequired"`
		Profiles                map[string]string `json:"profiles"`
	} `json:"meta"`
}

// accountInfo is stored under cacheAccountInfo: the account URL of the
// stored key at one directory.
type accountInfo struct {
	Directory  string `json:"directory"`
	Account    string `json:"account"`
	Thumbprint string `json:"key_thumbprint"`
}

// session is an ACME client bound to the registered account. It is
// immutable once built and shared by all orders.
type session struct {
	client *acme.Client
	key    crypto.Signer
	kid    string
	dir    *directory
}

// directory returns the CA's directory, fetching it once per Manager.
func (m *Manager) directory(ctx context.Context) (*directory, error) {
	m.mu.Lock()
	d := m.dir
	m.mu.Unlock()
	if d != nil {
		return d, nil
	}
	var nd directory
	if _, err := m.getJSON(ctx, m.cfg.DirectoryURL, &nd); err != nil {
		return nil, fmt.Errorf("issuer: directory: %w", err)
	}
	if nd.NewOrder == "" || nd.NewNonce == "" {
		return nil, errors.New("issuer: directory: no newOrder or newNonce (not an RFC 8555 CA)")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dir == nil {
		m.dir = &nd
	}
	return m.dir, nil
}

// session returns the account session, setting it up on first use:
// directory checks, account key, registration or reuse.
func (m *Manager) session(ctx context.Context) (*session, error) {
	m.mu.Lock()
	s := m.sess
	m.mu.Unlock()
	if s != nil {
		return s, nil
	}
	select {
	case m.acctSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("issuer: account: %w", ctx.Err())
	}
	defer func() { <-m.acctSem }()
	m.mu.Lock()
	s = m.sess
	m.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := m.newSession(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.sess = s
	m.mu.Unlock()
	return s, nil
}

// dropSession forgets s and the stored account URL, so the next order
// registers again (the CA no longer knows the account).
func (m *Manager) dropSession(ctx context.Context, s *session) {
	m.mu.Lock()
	if m.sess == s {
		m.sess = nil
	}
	m.mu.Unlock()
	if err := m.cfg.Store.Delete(ctx, cacheAccountInfo); err != nil {
		m.log.Warn("acme.account_forget_failed", "error", err)
	}
}

// newSession builds the account session: check the directory against the
// Config, load or create the account key, then reuse the stored account
// URL for that key and directory or register (and remember) the account.
func (m *Manager) newSession(ctx context.Context) (*session, error) {
	dir, err := m.directory(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.checkDirectory(dir); err != nil {
		return nil, err
	}
	key, err := m.accountKey(ctx)
	if err != nil {
		return nil, err
	}
	thumb, err := acme.JWKThumbprint(key.Public())
	if err != nil {
		return nil, fmt.Errorf("issuer: account key: %w", err)
	}
	cl := &acme.Client{
		Key:          key,
		HTTPClient:   m.hc,
		DirectoryURL: m.cfg.DirectoryURL,
		UserAgent:    userAgent,
		RetryBackoff: retryBackoff,
	}
	if info, ok := m.loadAccountInfo(ctx); ok && info.Directory == m.cfg.DirectoryURL && info.Thumbprint == thumb && info.Account != "" {
		cl.KID = acme.KeyID(info.Account)
		m.log.Info("acme.account", "status", "reused", "account", info.Account)
		return &session{client: cl, key: key, kid: info.Account, dir: dir}, nil
	}
	kid, err := m.register(ctx, cl)
	if err != nil {
		return nil, err
	}
	m.saveAccountInfo(ctx, kid, thumb)
	return &session{client: cl, key: key, kid: kid, dir: dir}, nil
}

// checkDirectory refuses a CA whose directory asks for what the Config does
// not give: an EAB key, agreement to its terms, or the Config.Profile. The
// errors are *FieldError naming the Config field.
func (m *Manager) checkDirectory(dir *directory) error {
	if dir.Meta.ExternalAccountRequired && m.eab == nil {
		return &FieldError{Field: "EABKID", Msg: strings.TrimPrefix(ErrEABRequired.Error(), "issuer: "), Err: ErrEABRequired}
	}
	if dir.Meta.TermsOfService != "" && !m.cfg.AcceptTOS {
		return &FieldError{Field: "AcceptTOS", Msg: "the CA requires agreeing to its terms of service (" + dir.Meta.TermsOfService + "): set Config.AcceptTOS", Err: ErrTOSNotAccepted}
	}
	if p := m.cfg.Profile; p != "" {
		if _, ok := dir.Meta.Profiles[p]; !ok {
			offered := make([]string, 0, len(dir.Meta.Profiles))
			for name := range dir.Meta.Profiles {
				offered = append(offered, name)
			}
			slices.Sort(offered)
			return fieldErr("Profile", "Config.Profile %q is not offered by the CA (offered: %s)", p, strings.Join(offered, ", "))
		}
	}
	return nil
}

// register registers the account of cl's key (with the Config's contact
// and EAB), or finds it already registered, and returns its URL; cl.KID is
// set to it.
func (m *Manager) register(ctx context.Context, cl *acme.Client) (string, error) {
	acct := &acme.Account{}
	if m.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + m.cfg.Email}
	}
	if m.eab != nil {
		acct.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: m.cfg.EABKID, Key: m.eab}
	}
	status := "registered"
	_, err := cl.Register(metrics.WithACMEAction(ctx, metrics.ActionNewAccount), acct, func(string) bool { return m.cfg.AcceptTOS })
	if errors.Is(err, acme.ErrAccountAlreadyExists) {
		status, err = "reused", nil
	}
	if err != nil {
		return "", m.registrationError(err)
	}
	kid := string(cl.KID)
	if kid == "" {
		return "", errors.New("issuer: register account: the CA returned no account URL")
	}
	m.log.Info("acme.account", "status", status, "account", kid)
	return kid, nil
}

// saveAccountInfo stores the account URL kid of the key with thumbprint
// thumb at this directory. A failure is logged, not returned: the next
// start registers again and gets the same account.
func (m *Manager) saveAccountInfo(ctx context.Context, kid, thumb string) {
	info, err := json.Marshal(accountInfo{Directory: m.cfg.DirectoryURL, Account: kid, Thumbprint: thumb})
	if err == nil {
		err = m.cfg.Store.Put(ctx, cacheAccountInfo, info)
	}
	if err != nil {
		m.log.Warn("acme.account_save_failed", "error", err)
	}
}

func (m *Manager) loadAccountInfo(ctx context.Context) (accountInfo, bool) {
	var info accountInfo
	b, err := m.cfg.Store.Get(ctx, cacheAccountInfo)
	if err != nil {
		if !errors.Is(err, autocert.ErrCacheMiss) {
			m.log.Warn("acme.account_info_unreadable", "error", err)
		}
		return info, false
	}
	if err := json.Unmarshal(b, &info); err != nil {
		m.log.Warn("acme.account_info_unreadable", "error", err)
		return info, false
	}
	return info, true
}

// accountKey loads the account key from the store, or creates and stores
// an ECDSA P-256 key. An unreadable stored key is an error, not replaced:
// replacing it would silently create a new account.
func (m *Manager) accountKey(ctx context.Context) (crypto.Signer, error) {
	b, err := m.cfg.Store.Get(ctx, cacheAccountKey)
	switch {
	case err == nil:
		return parseStoredAccountKey(b)
	case !errors.Is(err, autocert.ErrCacheMiss):
		return nil, fmt.Errorf("issuer: load account key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issuer: account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("issuer: account key: %w", err)
	}
	// Create-if-absent: hosts sharing a store race here, and all of them
	// must end up with the one stored key (one account for the fleet).
	stored, err := m.cfg.Store.CreateBlob(ctx, cacheAccountKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		return nil, fmt.Errorf("issuer: store account key: %w", err)
	}
	return parseStoredAccountKey(stored)
}

// parseStoredAccountKey parses the account key as stored under
// cacheAccountKey.
func parseStoredAccountKey(b []byte) (crypto.Signer, error) {
	k, err := parsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("issuer: stored account key %q is unreadable (remove it to register a new account): %w", cacheAccountKey, err)
	}
	return k, nil
}

// parsePrivateKey reads one PEM private key (SEC 1, PKCS#8 or PKCS#1) that
// can sign JWS (ECDSA P-256/P-384 or RSA).
func parsePrivateKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM type %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
		}
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
}
