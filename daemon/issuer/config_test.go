package issuer

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type nopSolver struct{}

func (nopSolver) Present(context.Context, string, string) error { return nil }
func (nopSolver) Wait(context.Context, string, string) error    { return nil }
func (nopSolver) CleanUp(context.Context, string, string) error { return nil }

func TestNewValidation(t *testing.T) {
	valid := func() Config {
		return Config{
			DirectoryURL: "https://ca.test/dir",
			Certs:        []CertSpec{{Domains: []string{"Example.test.", "*.example.test"}}},
			Store:        newMemStore(),
			Solver:       nopSolver{},
		}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no directory", func(c *Config) { c.DirectoryURL = "" }, "Config.DirectoryURL"},
		{"bad directory", func(c *Config) { c.DirectoryURL = "ftp://x/dir" }, "Config.DirectoryURL"},
		{"no store", func(c *Config) { c.Store = nil }, "Config.Store"},
		{"no solver", func(c *Config) { c.Solver = nil }, "Config.Solver"},
		{"no certs", func(c *Config) { c.Certs = nil }, "Config.Certs"},
		{"no domains", func(c *Config) { c.Certs = []CertSpec{{Name: "x"}} }, "Config.Certs[0]"},
		{"bad domain", func(c *Config) { c.Certs[0].Domains = []string{"exa mple.test"} }, "Config.Certs[0].Domains[0]"},
		{"inner wildcard", func(c *Config) { c.Certs[0].Domains = []string{"a.*.example.test"} }, "Domains[0]"},
		{"single label", func(c *Config) { c.Certs[0].Domains = []string{"localhost"} }, "Domains[0]"},
		{"duplicate domain", func(c *Config) { c.Certs[0].Domains = []string{"a.test", "A.test"} }, "twice"},
		{"duplicate name", func(c *Config) {
			c.Certs = []CertSpec{{Domains: []string{"a.test"}}, {Domains: []string{"a.test", "b.test"}}}
		}, "name \"a.test\" twice"},
		{"key type", func(c *Config) { c.KeyType = "ed25519" }, "Config.KeyType"},
		{"eab half", func(c *Config) { c.EABKID = "k" }, "Config.EABKID and Config.EABHMAC"},
		{"eab not base64", func(c *Config) { c.EABKID, c.EABHMAC = "k", "s3cr3t!!" }, "Config.EABHMAC"},
		{"email", func(c *Config) { c.Email = "mailto:a@b.test" }, "Config.Email"},
		{"timeout", func(c *Config) { c.OrderTimeout = -1 }, "Config.OrderTimeout"},
		{"http directory", func(c *Config) { c.DirectoryURL = "http://ca.test/dir" }, "Config.DirectoryURL"},
		{"ip literal", func(c *Config) { c.Certs[0].Domains = []string{"a.test", "192.0.2.1"} }, "Config.Certs[0].Domains[1]: \"192.0.2.1\" is an IP address"},
		{"challenge name too long", func(c *Config) { c.Certs[0].Domains = []string{strings.Repeat("a.", 118) + "test"} }, "more than DNS allows (253)"},
		{"too many names", func(c *Config) { c.MaxNames = 1 }, "Config.Certs[0]: 2 names in one certificate; the CA allows at most 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.mod(&cfg)
			m, err := New(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got %v, want an error mentioning %q", err, tc.want)
			}
			if m != nil {
				t.Error("New returned a Manager with an error")
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Error("the error leaks the EAB HMAC")
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	domains := []string{"Example.test.", "*.example.test"}
	m, err := New(Config{
		DirectoryURL: "https://ca.test/dir",
		Certs:        []CertSpec{{Domains: domains}},
		Store:        newMemStore(),
		Solver:       nopSolver{},
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := m.certs[0].spec
	if spec.Name != "example.test" || spec.Domains[0] != "example.test" {
		t.Errorf("spec = %+v, want name and first domain normalised to example.test", spec)
	}
	if domains[0] != "Example.test." {
		t.Errorf("New modified the caller's slice: %q", domains)
	}
	if m.cfg.KeyType != KeyECDSAP256 || m.cfg.OrderTimeout != DefaultOrderTimeout || m.log == nil || m.hc == nil || m.now == nil {
		t.Errorf("defaults not applied: key %q timeout %v", m.cfg.KeyType, m.cfg.OrderTimeout)
	}
	if st := m.Status(); len(st) != 1 || st[0].Name != "example.test" || !st[0].NextRenewal.IsZero() || st[0].Serial != "" {
		t.Errorf("Status before anything = %+v, want the name only", st)
	}
}

// TestValidateFieldErrors checks that Validate reports the field path, so
// callers can name their own flag, and does not touch the caller's Config.
func TestValidateFieldErrors(t *testing.T) {
	domains := []string{"A.test", "b.test", "192.0.2.1"}
	c := Config{DirectoryURL: "https://ca.test/dir", Certs: []CertSpec{{Domains: domains}}}
	err := c.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Certs[0].Domains[2]" {
		t.Fatalf("Validate = %v; want a *FieldError for Certs[0].Domains[2]", err)
	}
	if domains[0] != "A.test" || c.KeyType != "" || c.MaxNames != 0 {
		t.Errorf("Validate modified the Config: %q, key %q, max %d", domains, c.KeyType, c.MaxNames)
	}
	c.Certs[0].Domains = domains[:2]
	if err := c.Validate(); err != nil {
		t.Errorf("Validate without Store and Solver = %v; want nil (New checks those)", err)
	}
}
