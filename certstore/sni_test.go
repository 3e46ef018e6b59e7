package certstore

import (
	"cmp"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

// TestGetCertificate is the table of the selection rule: exact SAN beats
// wildcard whatever their ages; among exact matches, then among wildcards,
// the newest (latest NotBefore, then latest NotAfter, then first name) wins.
func TestGetCertificate(t *testing.T) {
	ca := certstoretest.NewCA(t)
	now := time.Now().Truncate(time.Second)
	day := 24 * time.Hour
	certs := []struct {
		name      string
		notBefore time.Duration // before now; 0 means an hour
		notAfter  time.Duration
		sans      []string
	}{
		{"apex", 0, 30 * day, []string{"example.com", "www.example.com"}},
		{"wild", 0, 20 * day, []string{"*.example.com"}},
		{"wildonly", 0, 20 * day, []string{"*.wild.test"}},
		// The exact SAN wins although the wildcard is newer on both counts.
		{"exactolder", 2 * day, 10 * day, []string{"a.later.test"}},
		{"wildnewer", time.Minute, 40 * day, []string{"later.test", "*.later.test"}},
		// Issue 11's case: -domains 'demo.test,*.demo.test' -domains api.demo.test.
		{"demo.test", time.Minute, 90 * day, []string{"demo.test", "*.demo.test"}},
		{"api.demo.test", time.Hour, 60 * day, []string{"api.demo.test"}},
		// Among exact matches: latest NotAfter when issued together...
		{"dupold", 0, 10 * day, []string{"dup.test"}},
		{"dupnew", 0, 50 * day, []string{"dup.test"}},
		{"dupmid", 0, 30 * day, []string{"dup.test"}},
		// ...but issued last beats expiring last (a renewal onto a shorter
		// profile replaces the longer-lived certificate).
		{"long90d", 30 * day, 60 * day, []string{"renewed.test"}},
		{"short6d", time.Minute, 6 * day, []string{"renewed.test"}},
		// The same among wildcards.
		{"wild90d", 30 * day, 60 * day, []string{"*.wr.test"}},
		{"wild6d", time.Minute, 6 * day, []string{"*.wr.test"}},
		// A full tie goes to the first name.
		{"tie-b", 0, 30 * day, []string{"tie.test"}},
		{"tie-a", 0, 30 * day, []string{"tie.test"}},
		{"fallback", 0, 30 * day, []string{"default.test"}},
	}
	withDefault, _, _ := openStore(t, Options{Default: "fallback"})
	noDefault, _, _ := openStore(t, Options{})
	for _, c := range certs {
		nb := cmp.Or(c.notBefore, time.Hour)
		chain, key := ca.Issue(t, c.sans, now.Add(-nb), now.Add(c.notAfter))
		mustPut(t, withDefault, c.name, chain, key, Meta{Names: c.sans})
		mustPut(t, noDefault, c.name, chain, key, Meta{Names: c.sans})
	}

	tests := []struct {
		sni       string
		want      string // certificate name with a default configured
		noDefault string // certificate name without one; "" = error
	}{
		{"example.com", "apex", "apex"},
		{"www.example.com", "apex", "apex"},
		{"WWW.Example.COM", "apex", "apex"},
		{"www.example.com.", "apex", "apex"},
		{"a.example.com", "wild", "wild"},
		{"A.EXAMPLE.COM.", "wild", "wild"},
		{"a.b.example.com", "fallback", ""},
		{"x.wild.test", "wildonly", "wildonly"},
		{"wild.test", "fallback", ""},
		{"a.b.wild.test", "fallback", ""},
		{".wild.test", "fallback", ""},
		{"a.later.test", "exactolder", "exactolder"}, // exact beats a newer wildcard
		{"A.Later.Test.", "exactolder", "exactolder"},
		{"b.later.test", "wildnewer", "wildnewer"},
		{"later.test", "wildnewer", "wildnewer"},
		{"api.demo.test", "api.demo.test", "api.demo.test"},
		{"www.demo.test", "demo.test", "demo.test"},
		{"demo.test", "demo.test", "demo.test"},
		{"dup.test", "dupnew", "dupnew"},
		{"renewed.test", "short6d", "short6d"},
		{"x.wr.test", "wild6d", "wild6d"},
		{"tie.test", "tie-a", "tie-a"},
		{"default.test", "fallback", "fallback"},
		{"unknown.test", "fallback", ""},
		{"", "fallback", ""},
		{"com", "fallback", ""},
	}
	for _, tt := range tests {
		t.Run(tt.sni, func(t *testing.T) {
			for _, c := range []struct {
				s    *Store
				want string
			}{{withDefault, tt.want}, {noDefault, tt.noDefault}} {
				got, err := c.s.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.sni})
				if c.want == "" {
					if err == nil || !errors.Is(err, ErrNoCertificate) {
						t.Errorf("GetCertificate(%q) without default = %v, %v; want ErrNoCertificate", tt.sni, got, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("GetCertificate(%q) = %v; want %s", tt.sni, err, c.want)
				}
				want, ok := c.s.Current(c.want)
				if !ok {
					t.Fatalf("Current(%q) missing", c.want)
				}
				if got != want.Cert {
					t.Errorf("GetCertificate(%q) served serial %s (%v); want %s (serial %s)",
						tt.sni, got.Leaf.SerialNumber.Text(16), got.Leaf.DNSNames, c.want, want.Serial())
				}
			}
		})
	}

	t.Run("nil hello", func(t *testing.T) {
		if _, err := noDefault.GetCertificate(nil); !errors.Is(err, ErrNoCertificate) {
			t.Errorf("GetCertificate(nil) without default = %v; want ErrNoCertificate", err)
		}
		got, err := withDefault.GetCertificate(nil)
		if want, _ := withDefault.Current("fallback"); err != nil || got != want.Cert {
			t.Errorf("GetCertificate(nil) with default = %v, %v; want the default entry", got, err)
		}
	})
	t.Run("default name absent", func(t *testing.T) {
		s, _, _ := openStore(t, Options{Default: "missing"})
		chain, key := ca.Valid(t, "example.com")
		mustPut(t, s, "apex", chain, key, Meta{})
		if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.test"}); !errors.Is(err, ErrNoCertificate) {
			t.Errorf("GetCertificate(other.test) with absent default = %v; want ErrNoCertificate", err)
		}
	})
	t.Run("entries sorted", func(t *testing.T) {
		es := withDefault.Entries()
		if len(es) != len(certs) {
			t.Fatalf("Entries() has %d entries; want %d", len(es), len(certs))
		}
		for i := 1; i < len(es); i++ {
			if es[i-1].Name >= es[i].Name {
				t.Errorf("Entries() not sorted: %q before %q", es[i-1].Name, es[i].Name)
			}
		}
	})
}

func TestGetCertificateEmptyStore(t *testing.T) {
	s, _, _ := openStore(t, Options{Default: "anything"})
	for _, sni := range []string{"", "example.com"} {
		if c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: sni}); c != nil || !errors.Is(err, ErrNoCertificate) {
			t.Errorf("GetCertificate(%q) on empty store = %v, %v; want nil, ErrNoCertificate", sni, c, err)
		}
	}
}
