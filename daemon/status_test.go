package daemon

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
)

func TestWriteStatusFlagsWhatNeedsAttention(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		v         certView
		state     string
		attention bool
	}{
		{certView{Name: "ok.example", Serial: "ab", NotBefore: now.Add(-30 * 24 * time.Hour), NotAfter: now.Add(60 * 24 * time.Hour), NextRenewal: now.Add(30 * 24 * time.Hour), Reason: "ari"}, "ok", false},
		{certView{Name: "short.example", Serial: "ab", NotBefore: now.Add(-3 * 24 * time.Hour), NotAfter: now.Add(3 * 24 * time.Hour)}, "ok", false},
		{certView{Name: "soon.example", Serial: "ab", NotBefore: now.Add(-86 * 24 * time.Hour), NotAfter: now.Add(4 * 24 * time.Hour)}, "EXPIRES SOON", true},
		{certView{Name: "gone.example", Serial: "ab", NotAfter: now.Add(-time.Second)}, "EXPIRED", true},
		{certView{Name: "none.example"}, "NO CERTIFICATE", true},
		{certView{Name: "fail.example", Serial: "ab", NotAfter: now.Add(60 * 24 * time.Hour), Failures: 3, LastError: "route53: access denied"}, "RENEWAL FAILING: route53: access denied", true},
	}
	for _, tt := range tests {
		var b strings.Builder
		got := writeStatus(&b, "v1", []certView{tt.v}, now)
		line := strings.Split(b.String(), "\n")[2]
		if got != tt.attention || !strings.HasPrefix(line, tt.v.Name) || !strings.HasSuffix(strings.TrimSpace(line), tt.state) {
			t.Errorf("writeStatus(%s) = %v, line %q; want attention %v and state %q", tt.v.Name, got, line, tt.attention, tt.state)
		}
	}
}

// TestStatusAndIAMPolicyAgainstTheRig runs `edgecert status` against a live
// daemon and `edgecert iam-policy` with zone discovery through the Route 53
// API.
func TestStatusAndIAMPolicyAgainstTheRig(t *testing.T) {
	t.Parallel()
	r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	cfg := r.config(t, t.TempDir())
	d := start(t, cfg)

	var out strings.Builder
	attention, err := printStatus(context.Background(), []string{"-admin-addr", d.addrs["admin"]}, &out, io.Discard)
	if err != nil || attention || !contains(out.String(), "example.test", "in ", "ok\n") {
		t.Errorf("status = %v, %v:\n%s\nwant one healthy certificate", attention, err, out.String())
	}
	if _, err := printStatus(context.Background(), []string{"-admin-addr", "127.0.0.1:1"}, io.Discard, io.Discard); err == nil {
		t.Error("status with no daemon: nil error; want one")
	}

	out.Reset()
	if err := printIAMPolicy(context.Background(), cfg, policyFlags{lookup: true}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	checkPolicy(t, out.String(), "arn:aws:route53:::hostedzone/"+rigZoneID, "_acme-challenge.example.test")
}

func TestIAMPolicyWithPinnedZone(t *testing.T) {
	var out, errb strings.Builder
	code := Main([]string{"iam-policy", "-domains", "a.example.org,*.a.example.org", "-domains", "b.example.org", "-route53-zone-id", "Z123"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	checkPolicy(t, out.String(), "arn:aws:route53:::hostedzone/Z123", "_acme-challenge.a.example.org", "_acme-challenge.b.example.org")
	if strings.Contains(out.String(), "ListHostedZonesByName") {
		t.Errorf("policy with -route53-zone-id grants ListHostedZonesByName:\n%s", out.String())
	}
	if strings.Count(out.String(), "_acme-challenge.a.example.org\"") != 1 {
		t.Errorf("apex and wildcard must share one record name:\n%s", out.String())
	}
}

// checkPolicy parses an IAM policy and checks that the zone resource and
// every record name appear, and that ChangeResourceRecordSets is limited by
// record names and type.
func checkPolicy(t *testing.T, policy, zoneARN string, records ...string) {
	t.Helper()
	var p struct {
		Statement []struct {
			Action    any
			Resource  any
			Condition map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(policy), &p); err != nil {
		t.Fatalf("policy is not JSON: %v\n%s", err, policy)
	}
	found := false
	for _, s := range p.Statement {
		a, _ := json.Marshal(s.Action)
		res, _ := json.Marshal(s.Resource)
		if !strings.Contains(string(a), "route53:ChangeResourceRecordSets") {
			continue
		}
		found = true
		cond, _ := json.Marshal(s.Condition)
		if !strings.Contains(string(res), zoneARN) || !contains(string(cond), append(records, "TXT", "ChangeResourceRecordSetsNormalizedRecordNames")...) {
			t.Errorf("ChangeResourceRecordSets statement: resource %s condition %s; want %s, %v, TXT", res, cond, zoneARN, records)
		}
	}
	if !found || !contains(policy, "route53:GetChange", "route53:ListResourceRecordSets", "route53:GetHostedZone") {
		t.Errorf("policy lacks actions:\n%s", policy)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1439*time.Hour + 59*time.Minute + 43*time.Second: "59d 23h",
		5*time.Hour + 3*time.Minute + 59*time.Second:     "5h 3m",
		4*time.Minute + 10*time.Second:                   "4m 10s",
		12*time.Second + 900*time.Millisecond:            "12s",
		24 * time.Hour:                                   "1d 0h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q; want %q", d, got, want)
		}
	}
	if got := relTime(-(50 * time.Hour)); got != "2d 2h ago" {
		t.Errorf("relTime(-50h) = %q; want 2d 2h ago", got)
	}
}

// TestWriteStatusShowsRejectedPair: operator files that failed validation
// are shown with the reason, and need attention, also while the previous
// pair keeps serving.
func TestWriteStatusShowsRejectedPair(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	v := certView{Name: "operator", Source: "file", Serial: "ab", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(1439*time.Hour + 59*time.Minute), Rejected: "key does not match the certificate"}
	var b strings.Builder
	if !writeStatus(&b, "v1", []certView{v}, now) {
		t.Error("a rejected pair does not need attention; want it to")
	}
	out := b.String()
	if !strings.Contains(out, "FILES REJECTED: key does not match the certificate (serving the previous pair)") || !strings.Contains(out, "(in 59d 23h)") {
		t.Errorf("status:\n%s\nwant the rejection and the expiry in days and hours", out)
	}
}
