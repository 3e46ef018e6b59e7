package issuer

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
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
// concurrent use: Present, Wait and CleanUp are each called concurrently for
// all values of an order (apex and wildcard share a name), and for several
// orders at once.
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

// DefaultMaxConcurrentOrders bounds the orders in flight when
// Config.MaxConcurrentOrders is 0.
const DefaultMaxConcurrentOrders = 25

// Config configures a Manager. New validates it (see Validate); every
// problem is a *FieldError.
type Config struct {
	// DirectoryURL is the ACME directory (required, https).
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
	// OrderTimeout bounds one issuance attempt; 0 means 10 minutes. The
	// time an attempt waits for a MaxConcurrentOrders slot is not counted.
	OrderTimeout time.Duration
	// MaxConcurrentOrders is how many orders may be in flight at once; 0
	// means DefaultMaxConcurrentOrders (25). Further due certificates wait
	// for a slot, in no particular order. It keeps a fleet's first boot or
	// a renewal wave of hundreds of certificates from opening hundreds of
	// orders (pending authorizations) at the CA at once, while leaving
	// enough in flight that the solver's batches stay large. It is not a
	// rate limit: the CA's own (Let's Encrypt: 300 new orders per account
	// per 3 hours) are honoured through Retry-After and Backoff.
	MaxConcurrentOrders int
	// Metrics receives order results; nil records nothing. ACME requests
	// are counted by Metrics.Transport in HTTPClient, from the actions this
	// package tags each call's context with.
	Metrics *metrics.Recorder
	// MaxNames is the most names one certificate may have (the CA's or
	// profile's limit, which ACME does not advertise); 0 means
	// DefaultMaxNames (Let's Encrypt's 100).
	MaxNames int
}

// DefaultMaxNames is the most names one certificate may have when
// Config.MaxNames is 0: Let's Encrypt's limit.
const DefaultMaxNames = 100

// challengePrefix is prepended to every name for its DNS-01 record.
const challengePrefix = "_acme-challenge."

// FieldError is a problem with one Config field, found by Validate or New,
// or later by the CA (terms not accepted, EAB required, unknown profile,
// invalid contact): no retry can fix it, only a change of configuration.
// Field is the Go path of the field ("Email", "Certs[1].Domains[0]"); Msg
// says what is wrong and may name fields as "Config.Name" (callers that
// present fields under other names replace those). Err, if set, is the
// sentinel or CA error it stands for.
type FieldError struct {
	Field string
	Msg   string
	Err   error
}

func (e *FieldError) Error() string {
	if strings.Contains(e.Msg, "Config."+e.Field) { // the message names the field itself
		return "issuer: " + e.Msg
	}
	return "issuer: Config." + e.Field + ": " + e.Msg
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks every setting of c that needs no I/O (not Store, Solver
// or Logger, which New checks) and returns the first problem as a
// *FieldError. It does not modify c. New calls it; callers that map fields
// to their own names (flags) call it before building the rest.
func (c Config) Validate() error {
	_, err := c.prepare()
	return err
}

// prepare validates the settings of c, fills defaults, normalises the
// domains (into fresh slices: the caller's are never modified) and returns
// the decoded EAB key.
func (c *Config) prepare() ([]byte, error) {
	u, err := url.Parse(c.DirectoryURL)
	switch {
	case c.DirectoryURL == "":
		return nil, fieldErr("DirectoryURL", "is required")
	case err != nil || u.Scheme != "https" || u.Host == "":
		return nil, fieldErr("DirectoryURL", "%q is not an https URL", c.DirectoryURL)
	case len(c.Certs) == 0:
		return nil, fieldErr("Certs", "is empty")
	case c.OrderTimeout < 0:
		return nil, fieldErr("OrderTimeout", "%v is negative", c.OrderTimeout)
	case c.MaxNames < 0:
		return nil, fieldErr("MaxNames", "%d is negative", c.MaxNames)
	case c.MaxConcurrentOrders < 0:
		return nil, fieldErr("MaxConcurrentOrders", "%d is negative", c.MaxConcurrentOrders)
	case strings.ContainsAny(c.Email, " \t\r\n,") || strings.HasPrefix(c.Email, "mailto:"):
		return nil, fieldErr("Email", "%q is not a plain address", c.Email)
	case c.Email != "" && !strings.Contains(c.Email, "@"):
		return nil, fieldErr("Email", "%q is not an e-mail address", c.Email)
	case strings.ContainsAny(c.Profile, " \t\r\n\""):
		return nil, fieldErr("Profile", "%q is not a profile name", c.Profile)
	}
	if c.KeyType == "" {
		c.KeyType = KeyECDSAP256
	}
	if !slices.Contains(keyTypes, c.KeyType) {
		return nil, fieldErr("KeyType", "%q is not one of %s", c.KeyType, strings.Join(keyTypes, ", "))
	}
	if c.OrderTimeout == 0 {
		c.OrderTimeout = DefaultOrderTimeout
	}
	if c.MaxConcurrentOrders == 0 {
		c.MaxConcurrentOrders = DefaultMaxConcurrentOrders
	}
	if c.MaxNames == 0 {
		c.MaxNames = DefaultMaxNames
	}
	eab, err := c.eabKey()
	if err != nil {
		return nil, err
	}
	return eab, c.prepareCerts()
}

// eabKey checks the EAB pair and decodes the HMAC key (nil without EAB).
func (c *Config) eabKey() ([]byte, error) {
	switch {
	case c.EABKID == "" && c.EABHMAC == "":
		return nil, nil
	case c.EABKID == "":
		return nil, fieldErr("EABKID", "Config.EABKID and Config.EABHMAC must be set together")
	case c.EABHMAC == "":
		return nil, fieldErr("EABHMAC", "Config.EABKID and Config.EABHMAC must be set together")
	}
	eab, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(c.EABHMAC, "="))
	if err != nil || len(eab) == 0 {
		// The key itself is never part of an error message.
		return nil, fieldErr("EABHMAC", "is not base64url")
	}
	return eab, nil
}

// prepareCerts normalises and checks c.Certs: names unique, domains valid
// and unique per certificate, at most c.MaxNames of them.
func (c *Config) prepareCerts() error {
	specs := make([]CertSpec, len(c.Certs)) // never modify the caller's slices
	for i, cs := range c.Certs {
		specs[i] = CertSpec{Name: cs.Name, Domains: slices.Clone(cs.Domains)}
	}
	c.Certs = specs
	names := map[string]bool{}
	for i := range c.Certs {
		cs := &c.Certs[i]
		if len(cs.Domains) == 0 {
			return fieldErr(fmt.Sprintf("Certs[%d]", i), "has no domains")
		}
		if len(cs.Domains) > c.MaxNames {
			return fieldErr(fmt.Sprintf("Certs[%d]", i), "%d names in one certificate; the CA allows at most %d (Config.MaxNames)", len(cs.Domains), c.MaxNames)
		}
		seen := map[string]bool{}
		for j, d := range cs.Domains {
			d = strings.ToLower(strings.TrimSuffix(d, "."))
			if err := checkDomain(d); err != nil {
				return fieldErr(fmt.Sprintf("Certs[%d].Domains[%d]", i, j), "%v", err)
			}
			if seen[d] {
				return fieldErr(fmt.Sprintf("Certs[%d].Domains[%d]", i, j), "domain %q twice", d)
			}
			seen[d] = true
			cs.Domains[j] = d
		}
		if cs.Name == "" {
			cs.Name = cs.Domains[0]
		}
		if names[cs.Name] {
			return fieldErr(fmt.Sprintf("Certs[%d].Name", i), "name %q twice", cs.Name)
		}
		names[cs.Name] = true
	}
	return nil
}

// checkDomain accepts lower-case DNS names of at least two labels, with an
// optional leading "*." label, that DNS-01 can validate: not an IP address,
// and short enough that _acme-challenge.<name> is a valid name (253
// characters).
func checkDomain(d string) error {
	name := strings.TrimPrefix(d, "*.")
	if ip := net.ParseIP(strings.Trim(name, "[]")); ip != nil {
		return fmt.Errorf("%q is an IP address: DNS-01 validates only DNS names", d)
	}
	if len(name) == 0 || len(d) > 253 {
		return fmt.Errorf("%q is not a domain name", d)
	}
	if n := len(challengePrefix + name); n > 253 {
		return fmt.Errorf("%q is too long: its challenge name %s<name> would have %d characters, more than DNS allows (253)", d, challengePrefix, n)
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
