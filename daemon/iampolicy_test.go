package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
)

// awsEnv points the SDK at url with test credentials and no metadata service.
func awsEnv(t *testing.T, url, region string) {
	t.Helper()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_ROUTE_53":   url,
		"AWS_ACCESS_KEY_ID":           "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":       "SECRETTEST",
		"AWS_REGION":                  region,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             "/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
	} {
		t.Setenv(k, v)
	}
}

// TestIAMPolicyOfflineByDefault: without -lookup, iam-policy makes no AWS
// call (the Route 53 endpoint counts requests), scopes the writes by record
// name, and takes the ARN partition from the region or -partition.
func TestIAMPolicyOfflineByDefault(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	awsEnv(t, srv.URL, "us-east-1")
	iamPolicy := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		var out, errb strings.Builder
		code := Main(append([]string{"iam-policy", "-domains", "example.org,*.example.org"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errOut := iamPolicy(t)
	if code != 0 || requests.Load() != 0 {
		t.Fatalf("exit %d, %d Route 53 requests; want 0 and none\n%s", code, requests.Load(), errOut)
	}
	checkPolicy(t, out, "arn:aws:route53:::hostedzone/*", "_acme-challenge.example.org")
	if !strings.Contains(out, `"route53:ListHostedZonesByName"`) || !strings.Contains(errOut, "-route53-zone-id") {
		t.Errorf("without a zone: want zone discovery granted and a hint on stderr; got\n%s\nstderr: %s", out, errOut)
	}

	t.Setenv("AWS_REGION", "cn-northwest-1")
	code, out, errOut = iamPolicy(t, "-route53-zone-id", "Z9")
	if code != 0 || requests.Load() != 0 {
		t.Fatalf("exit %d, %d requests: %s", code, requests.Load(), errOut)
	}
	checkPolicy(t, out, "arn:aws-cn:route53:::hostedzone/Z9", "_acme-challenge.example.org")
	if strings.Contains(out, "arn:aws:") || !strings.Contains(out, "arn:aws-cn:route53:::change/*") {
		t.Errorf("region cn-northwest-1: want only arn:aws-cn: ARNs:\n%s", out)
	}
	code, out, _ = iamPolicy(t, "-route53-zone-id", "Z9", "-partition", "aws-us-gov")
	if code != 0 || !strings.Contains(out, "arn:aws-us-gov:route53:::hostedzone/Z9") {
		t.Errorf("-partition aws-us-gov: exit %d\n%s", code, out)
	}

	code, _, errOut = iamPolicy(t, "-dns01-follow-cname")
	if code == 0 || !strings.Contains(errOut, "-lookup") || requests.Load() != 0 {
		t.Errorf("-dns01-follow-cname without -lookup: exit %d, %d requests, stderr %q; want a failure naming -lookup and no call", code, requests.Load(), errOut)
	}

	code, _, _ = iamPolicy(t, "-lookup")
	if code == 0 || requests.Load() == 0 {
		t.Errorf("-lookup against a refusing endpoint: exit %d after %d requests; want a failure after asking", code, requests.Load())
	}
}

// TestIAMPolicyFollowCNAMEIsWhatTheDaemonUses prints the policy with
// `iam-policy -lookup -dns01-follow-cname` for a name whose challenge record
// is a CNAME into a delegation zone, then runs the daemon with exactly that
// policy enforced on every Route 53 request: it must obtain its certificate
// with no request denied, writing only at the CNAME target.
func TestIAMPolicyFollowCNAMEIsWhatTheDaemonUses(t *testing.T) {
	t.Parallel()
	r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	const delegateZone, target = "ZDELEGATE", "example-test.acme-delegate.test."
	r.r53.AddZone(fakeroute53.Zone{ID: delegateZone, Name: "acme-delegate.test", NameServers: []string{"ns1.example.invalid"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := newRoute53(ctx, r.route53Client()...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(rigZoneID),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{{
			Action: types.ChangeActionCreate,
			ResourceRecordSet: &types.ResourceRecordSet{
				Name: aws.String("_acme-challenge.example.test."), Type: types.RRTypeCname, TTL: aws.Int64(60),
				ResourceRecords: []types.ResourceRecord{{Value: aws.String(target)}},
			},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}

	// edgecert iam-policy -lookup -dns01-follow-cname -domains …, on the
	// rig's Route 53 (Main would need it in the process environment).
	var pf policyFlags
	cfg, err := parseCommand("edgecert iam-policy", []string{"-lookup", "-dns01-follow-cname", "-domains", "example.test,*.example.test"},
		func(string) (string, bool) { return "", false }, io.Discard, pf.define)
	if err != nil {
		t.Fatal(err)
	}
	cfg.route53Client = r.route53Client()
	var out strings.Builder
	if err := printIAMPolicy(ctx, cfg, pf, &out, io.Discard); err != nil {
		t.Fatalf("iam-policy: %v", err)
	}
	checkPolicy(t, out.String(), "arn:aws:route53:::hostedzone/"+delegateZone, strings.TrimSuffix(target, "."))
	if strings.Contains(out.String(), "_acme-challenge.example.test") {
		t.Errorf("policy grants writes at the CNAME itself:\n%s", out.String())
	}

	enf, err := r.r53.WithPolicy([]byte(out.String()), "aws")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(enf)
	defer srv.Close()
	r.r53URL = srv.URL // the daemon's Route 53 requests go through the policy
	d := start(t, r.config(t, t.TempDir(), "-dns01-follow-cname"))
	leaf(t, d.addrs["https"], "www.example.test", r.ca.IssuerRoots())
	if denied := enf.Denied(); len(denied) > 0 {
		t.Errorf("requests denied under the printed policy: %q\n%s", denied, out.String())
	}
	if !strings.Contains(d.logs.String(), "dns.cname_followed") {
		t.Errorf("daemon did not follow the CNAME:\n%s", d.logs.String())
	}
}
