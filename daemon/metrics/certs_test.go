package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCertReady(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(100 * 24 * time.Hour) // deadline without ARI: day 95
	base := Cert{Name: "a", Serial: "1", NotBefore: nb, NotAfter: na, Managed: true}
	withARI := base
	withARI.ARIStart, withARI.ARIEnd = nb.Add(60*24*time.Hour), nb.Add(62*24*time.Hour)
	file := base
	file.Managed = false
	none := base
	none.Serial = ""
	day := func(d float64) time.Time { return nb.Add(time.Duration(d * 24 * float64(time.Hour))) }
	for _, tc := range []struct {
		name string
		c    Cert
		at   time.Time
		want bool
	}{
		{"fresh", base, day(1), true},
		{"before not-before", base, day(-1), false},
		{"at the 1/20 deadline", base, day(95), false},
		{"just before the deadline", base, day(94.9), true},
		{"expired", base, day(100), false},
		{"inside ARI window", withARI, day(61), true},
		{"past ARI window end", withARI, day(62), false},
		{"file pair has no renewal deadline", file, day(99), true},
		{"nothing served", none, day(1), false},
	} {
		if got := tc.c.Ready(tc.at); got != tc.want {
			t.Errorf("%s: Ready = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCertCollector(t *testing.T) {
	nb := time.Unix(1_000_000, 0)
	certs := []Cert{
		{Name: "site", Serial: "ab", Issuer: "Test CA", Profile: "tlsserver", Source: "store",
			NotBefore: nb, NotAfter: nb.Add(45 * 24 * time.Hour), Renewal: nb.Add(30 * 24 * time.Hour),
			NextAttempt: nb.Add(31 * 24 * time.Hour), LastSuccess: nb, LastFailure: nb.Add(time.Hour), Failures: 2, Managed: true},
		{Name: "pending", Managed: true, Failures: 1, LastFailure: nb},
		{Name: "file", Serial: "cd", Source: "file", NotBefore: nb, NotAfter: nb.Add(24 * time.Hour)},
	}
	c := NewCertCollector(func() []Cert { return certs }, func() time.Time { return nb.Add(time.Hour) })
	want := `
# HELP edgecert_certificate_consecutive_failures Failed issuance attempts since the last success.
# TYPE edgecert_certificate_consecutive_failures gauge
edgecert_certificate_consecutive_failures{name="pending"} 1
edgecert_certificate_consecutive_failures{name="site"} 2
# HELP edgecert_certificate_info The served certificate (value 1).
# TYPE edgecert_certificate_info gauge
edgecert_certificate_info{issuer="",name="file",profile="",serial="cd",source="file"} 1
edgecert_certificate_info{issuer="Test CA",name="site",profile="tlsserver",serial="ab",source="store"} 1
# HELP edgecert_certificate_not_after_timestamp_seconds Expiry of the served certificate (Unix seconds).
# TYPE edgecert_certificate_not_after_timestamp_seconds gauge
edgecert_certificate_not_after_timestamp_seconds{name="file"} 1.0864e+06
edgecert_certificate_not_after_timestamp_seconds{name="site"} 4.888e+06
# HELP edgecert_certificate_ready 1 if a certificate is served, valid, and not past its renewal deadline (ARI window end, or 1/20 of the lifetime left); else 0.
# TYPE edgecert_certificate_ready gauge
edgecert_certificate_ready{name="file"} 1
edgecert_certificate_ready{name="pending"} 0
edgecert_certificate_ready{name="site"} 1
# HELP edgecert_certificate_renewal_timestamp_seconds Chosen renewal time of the served certificate: in the ARI window, else when a third (half for lifetimes up to 10 days) of the lifetime remains.
# TYPE edgecert_certificate_renewal_timestamp_seconds gauge
edgecert_certificate_renewal_timestamp_seconds{name="site"} 3.592e+06
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"edgecert_certificate_consecutive_failures", "edgecert_certificate_info", "edgecert_certificate_not_after_timestamp_seconds",
		"edgecert_certificate_ready", "edgecert_certificate_renewal_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	// The unmanaged file pair has no renewal series; the pending one no
	// timestamps of a served certificate.
	if n := testutil.CollectAndCount(c, "edgecert_certificate_last_failure_timestamp_seconds"); n != 2 {
		t.Errorf("last_failure series = %d, want 2", n)
	}
	if n := testutil.CollectAndCount(c, "edgecert_certificate_not_before_timestamp_seconds"); n != 2 {
		t.Errorf("not_before series = %d, want 2", n)
	}
}
