package issuer

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/edgecert/edgecert/daemon/metrics"
)

// Solver publishes DNS-01 TXT records (daemon/route53dns implements it).
// Errors may implement RetryAfter() time.Duration; the issuer then waits at
// least that long before the next attempt. Implementations must be safe for
// concurrent use: Wait is called concurrently for all values of an order.
type Solver interface {
	// Present adds value to the TXT record _acme-challenge.<domain>; domain
	// never starts with "*.". Apex and wildcard share one name, so two
	// values may be present at once.
	Present(ctx context.Context, domain, value string) error
	// Wait returns when the value is visible to the CA (for Route 53:
	// INSYNC and answered by the authoritative servers).
	Wait(ctx context.Context, domain, value string) error
	// CleanUp removes only value. It is called with a fresh context for
	// every value Present was called with, also after failures.
	CleanUp(ctx context.Context, domain, value string) error
}

// CertSpec is one certificate to keep: Name is the store name and, by
// convention, the first domain ("" means Domains[0]). Domains may contain
// wildcards ("*.example.com") and are ordered in one certificate.
type CertSpec struct {
	Name    string
	Domains []string
}

// Key types for Config.KeyType.
const (
	KeyECDSAP256 = "ecdsa-p256"
	KeyECDSAP384 = "ecdsa-p384"
	KeyRSA2048   = "rsa2048"
	KeyRSA3072   = "rsa3072"
	KeyRSA4096   = "rsa4096"
)

var keyTypes = []string{KeyECDSAP256, KeyECDSAP384, KeyRSA2048, KeyRSA3072, KeyRSA4096}

// DefaultOrderTimeout bounds one order attempt when Config.OrderTimeout is 0.
const DefaultOrderTimeout = 10 * time.Minute

// Config configures a Manager. New validates it.
type Config struct {
	// DirectoryURL is the ACME directory (required, http or https).
	DirectoryURL string
	// HTTPClient talks to the CA; nil means a client with a 1-minute timeout.
	HTTPClient *http.Client
	// Email is the account contact (optional), without "mailto:".
	Email string
	// AcceptTOS agrees to the CA's terms of service; required when the CA
	// has terms (the directory's meta.termsOfService).
	AcceptTOS bool
	// Profile is the ACME profile to order (draft-ietf-acme-profiles); ""
	// orders none (the CA's default). It is kept on renewals; a change
	// re-obtains the certificate.
	Profile string
	// EABKID and EABHMAC are the external account binding: key ID and the
	// base64url HMAC key (padding optional). Both or neither.
	EABKID, EABHMAC string
	// KeyType of certificate keys: ecdsa-p256 (default, ""), ecdsa-p384,
	// rsa2048, rsa3072, rsa4096. A new key is generated for every
	// certificate. The account key is always ECDSA P-256.
	KeyType string
	// Certs are the certificates to keep (at least one; names unique).
	Certs []CertSpec
	// Store persists certificates and account state (required).
	Store Store
	// Solver answers DNS-01 (required).
	Solver Solver
	// Logger receives the events listed in the package documentation; nil
	// discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now. Only scheduling
	// decisions use it (tests shift it to reach renewal times).
	Now func() time.Time
	// OrderTimeout bounds one issuance attempt; 0 means 10 minutes.
	OrderTimeout time.Duration
	// Metrics receives order results; nil records nothing. ACME requests
	// are counted by Metrics.Transport in HTTPClient, from the actions this
	// package tags each call's context with.
	Metrics *metrics.Recorder
}

// validate checks c, fills defaults and returns the decoded EAB key.
func (c *Config) validate() ([]byte, error) {
	u, err := url.Parse(c.DirectoryURL)
	switch {
	case c.DirectoryURL == "":
		return nil, errors.New("issuer: Config.DirectoryURL is required")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, fmt.Errorf("issuer: Config.DirectoryURL %q is not an http(s) URL", c.DirectoryURL)
	case c.Store == nil:
		return nil, errors.New("issuer: Config.Store is required")
	case c.Solver == nil:
		return nil, errors.New("issuer: Config.Solver is required")
	case len(c.Certs) == 0:
		return nil, errors.New("issuer: Config.Certs is empty")
	case c.OrderTimeout < 0:
		return nil, fmt.Errorf("issuer: Config.OrderTimeout %v is negative", c.OrderTimeout)
	case strings.ContainsAny(c.Email, " \t\r\n,") || strings.HasPrefix(c.Email, "mailto:"):
		return nil, fmt.Errorf("issuer: Config.Email %q is not a plain address", c.Email)
	case c.Email != "" && !strings.Contains(c.Email, "@"):
		return nil, fmt.Errorf("issuer: Config.Email %q is not an address", c.Email)
	case strings.ContainsAny(c.Profile, " \t\r\n\""):
		return nil, fmt.Errorf("issuer: Config.Profile %q is not a profile name", c.Profile)
	}
	if c.KeyType == "" {
		c.KeyType = KeyECDSAP256
	}
	if !slices.Contains(keyTypes, c.KeyType) {
		return nil, fmt.Errorf("issuer: Config.KeyType %q is not one of %s", c.KeyType, strings.Join(keyTypes, ", "))
	}
	if c.OrderTimeout == 0 {
		c.OrderTimeout = DefaultOrderTimeout
	}
	var eab []byte
	switch {
	case c.EABKID == "" && c.EABHMAC == "":
	case c.EABKID == "" || c.EABHMAC == "":
		return nil, errors.New("issuer: Config.EABKID and Config.EABHMAC must be set together")
	default:
		eab, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(c.EABHMAC, "="))
		if err != nil || len(eab) == 0 {
			// The key itself is never part of an error message.
			return nil, errors.New("issuer: Config.EABHMAC is not base64url")
		}
	}
	specs := make([]CertSpec, len(c.Certs)) // never modify the caller's slices
	for i, cs := range c.Certs {
		specs[i] = CertSpec{Name: cs.Name, Domains: slices.Clone(cs.Domains)}
	}
	c.Certs = specs
	names := map[string]bool{}
	for i := range c.Certs {
		cs := &c.Certs[i]
		if len(cs.Domains) == 0 {
			return nil, fmt.Errorf("issuer: Config.Certs[%d] has no domains", i)
		}
		seen := map[string]bool{}
		for j, d := range cs.Domains {
			d = strings.ToLower(strings.TrimSuffix(d, "."))
			if err := checkDomain(d); err != nil {
				return nil, fmt.Errorf("issuer: Config.Certs[%d].Domains[%d]: %w", i, j, err)
			}
			if seen[d] {
				return nil, fmt.Errorf("issuer: Config.Certs[%d]: domain %q twice", i, d)
			}
			seen[d] = true
			cs.Domains[j] = d
		}
		if cs.Name == "" {
			cs.Name = cs.Domains[0]
		}
		if names[cs.Name] {
			return nil, fmt.Errorf("issuer: Config.Certs: name %q twice", cs.Name)
		}
		names[cs.Name] = true
	}
	return eab, nil
}

// checkDomain accepts lower-case DNS names of at least two labels, with an
// optional leading "*." label.
func checkDomain(d string) error {
	name := strings.TrimPrefix(d, "*.")
	if len(name) == 0 || len(d) > 253 {
		return fmt.Errorf("%q is not a domain name", d)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("%q needs at least two labels", d)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q has an invalid label %q", d, l)
		}
		for _, r := range l {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return fmt.Errorf("%q has an invalid character %q", d, r)
			}
		}
	}
	return nil
}
