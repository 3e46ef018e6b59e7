package route53dns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
)

func TestPolicyJSON(t *testing.T) {
	zones := []PolicyZone{
		{ZoneID: "/hostedzone/ZA", RecordNames: []string{RecordName("example.test"), RecordName("*.example.test"), "_acme-challenge.WWW.Example.test."}},
		{ZoneID: "", RecordNames: []string{"_acme-challenge.other.test"}},
		{ZoneID: "ZA", RecordNames: []string{"_acme-challenge.api.example.test"}}, // merged into the first
	}
	out, err := Policy{FindZones: true, Zones: zones}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Policy{FindZones: true, Zones: zones}.JSON()
	if err != nil || !bytes.Equal(out, again) {
		t.Errorf("PolicyJSON is not deterministic")
	}
	golden, err := os.ReadFile("testdata/policy.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, golden) {
		t.Errorf("policy differs from testdata/policy.golden.json:\n%s", out)
	}

	var doc struct {
		Version   string
		Statement []struct {
			Sid       string
			Effect    string
			Action    []string
			Resource  []string
			Condition map[string]map[string][]string
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2012-10-17" {
		t.Errorf("Version = %q", doc.Version)
	}
	byAction := map[string][]string{} // action -> resources
	for _, s := range doc.Statement {
		if s.Effect != "Allow" {
			t.Errorf("%s Effect = %q; want Allow", s.Sid, s.Effect)
		}
		for _, a := range s.Action {
			byAction[a] = append(byAction[a], s.Resource...)
		}
	}
	zoneARNs := []string{"arn:aws:route53:::hostedzone/*", "arn:aws:route53:::hostedzone/ZA"}
	for action, want := range map[string][]string{
		"route53:ListHostedZonesByName":    {"*"},
		"route53:GetHostedZone":            zoneARNs,
		"route53:ListResourceRecordSets":   zoneARNs,
		"route53:ChangeResourceRecordSets": zoneARNs,
		"route53:GetChange":                {"arn:aws:route53:::change/*"},
	} {
		got := slices.Clone(byAction[action])
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s resources = %q; want %q", action, got, want)
		}
	}
	if len(byAction) != 5 {
		t.Errorf("actions = %v; want exactly 5", byAction)
	}

	wantNames := map[string][]string{
		"arn:aws:route53:::hostedzone/ZA": {"_acme-challenge.api.example.test", "_acme-challenge.example.test", "_acme-challenge.www.example.test"},
		"arn:aws:route53:::hostedzone/*":  {"_acme-challenge.other.test"},
	}
	changes := 0
	for _, s := range doc.Statement {
		if !slices.Contains(s.Action, "route53:ChangeResourceRecordSets") {
			if s.Condition != nil {
				t.Errorf("%s has conditions %v; want none", s.Sid, s.Condition)
			}
			continue
		}
		changes++
		if len(s.Action) != 1 || len(s.Resource) != 1 {
			t.Fatalf("%s: actions %q resources %q; want one each", s.Sid, s.Action, s.Resource)
		}
		cond := s.Condition["ForAllValues:StringEquals"]
		if len(s.Condition) != 1 || len(cond) != 3 {
			t.Errorf("%s conditions = %v; want ForAllValues:StringEquals with 3 keys", s.Sid, s.Condition)
		}
		if got, want := cond["route53:ChangeResourceRecordSetsNormalizedRecordNames"], wantNames[s.Resource[0]]; !slices.Equal(got, want) {
			t.Errorf("%s names = %q; want %q", s.Resource[0], got, want)
		}
		if got := cond["route53:ChangeResourceRecordSetsRecordTypes"]; !slices.Equal(got, []string{"TXT"}) {
			t.Errorf("record types = %q; want [TXT]", got)
		}
		if got := cond["route53:ChangeResourceRecordSetsActions"]; !slices.Equal(got, []string{"CREATE", "DELETE"}) {
			t.Errorf("actions condition = %q; want [CREATE DELETE]", got)
		}
	}
	if changes != 2 {
		t.Errorf("ChangeResourceRecordSets statements = %d; want one per zone ARN (2)", changes)
	}
}

func TestPolicyJSONRejectsBadInput(t *testing.T) {
	for _, pol := range []Policy{
		{},
		{Zones: []PolicyZone{{ZoneID: "ZA"}}},
		{Zones: []PolicyZone{{ZoneID: "ZA", RecordNames: []string{"."}}}},
		{Partition: "aws-mars", Zones: []PolicyZone{{ZoneID: "ZA", RecordNames: []string{"_acme-challenge.a.test"}}}},
	} {
		if _, err := pol.JSON(); err == nil {
			t.Errorf("%+v.JSON() succeeded; want an error", pol)
		}
	}
	if got := normalizeRecordName("_acme-challenge.*.Ex ample.test."); got != `_acme-challenge.\052.ex\040ample.test` {
		t.Errorf("normalizeRecordName = %q", got)
	}
}

// statementsFor returns, per action, the resources and (for
// ChangeResourceRecordSets, per zone ARN) the record names a policy allows.
func statementsFor(t *testing.T, doc []byte) (resources map[string][]string, names map[string][]string) {
	t.Helper()
	var p struct {
		Statement []struct {
			Action    []string
			Resource  []string
			Condition map[string]map[string][]string
		}
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		t.Fatalf("policy is not JSON: %v\n%s", err, doc)
	}
	resources, names = map[string][]string{}, map[string][]string{}
	for _, s := range p.Statement {
		for _, a := range s.Action {
			resources[a] = sorted(append(resources[a], s.Resource...))
			if a == "route53:ChangeResourceRecordSets" {
				names[s.Resource[0]] = s.Condition["ForAllValues:StringEquals"][condNames]
			}
		}
	}
	return resources, names
}

func TestPolicyForOffline(t *testing.T) {
	domains := []string{"example.test", "*.example.test", "API.example.test."}
	t.Run("pinned zone, other partition", func(t *testing.T) {
		pol, err := PolicyFor(domains, Options{ZoneID: "/hostedzone/Z1"}, "aws-cn")
		if err != nil {
			t.Fatal(err)
		}
		doc, err := pol.JSON()
		if err != nil {
			t.Fatal(err)
		}
		res, names := statementsFor(t, doc)
		if _, ok := res["route53:ListHostedZonesByName"]; ok {
			t.Errorf("grants ListHostedZonesByName with the zone pinned:\n%s", doc)
		}
		zone := "arn:aws-cn:route53:::hostedzone/Z1"
		if got := res["route53:ChangeResourceRecordSets"]; !slices.Equal(got, []string{zone}) {
			t.Errorf("ChangeResourceRecordSets on %q; want [%s]", got, zone)
		}
		if got := res["route53:GetChange"]; !slices.Equal(got, []string{"arn:aws-cn:route53:::change/*"}) {
			t.Errorf("GetChange on %q", got)
		}
		if got, want := names[zone], []string{"_acme-challenge.api.example.test", "_acme-challenge.example.test"}; !slices.Equal(got, want) {
			t.Errorf("record names %q; want %q", got, want)
		}
		if bytes.Contains(doc, []byte("arn:aws:")) {
			t.Errorf("aws-cn policy has an arn:aws: ARN:\n%s", doc)
		}
	})
	t.Run("zone unknown", func(t *testing.T) {
		pol, err := PolicyFor(domains, Options{}, "")
		if err != nil {
			t.Fatal(err)
		}
		doc, err := pol.JSON()
		if err != nil {
			t.Fatal(err)
		}
		res, names := statementsFor(t, doc)
		if got := res["route53:ListHostedZonesByName"]; !slices.Equal(got, []string{"*"}) {
			t.Errorf("ListHostedZonesByName on %q; want [*] (zone discovery)", got)
		}
		if got := names["arn:aws:route53:::hostedzone/*"]; len(got) != 2 {
			t.Errorf("hostedzone/* names = %q; want the two challenge names", got)
		}
	})
	t.Run("follow CNAME needs a lookup", func(t *testing.T) {
		if _, err := PolicyFor(domains, Options{FollowCNAME: true, ZoneID: "Z1"}, "aws"); err == nil {
			t.Error("PolicyFor with FollowCNAME succeeded offline; want an error")
		}
	})
}

func TestPartitionOf(t *testing.T) {
	for region, want := range map[string]string{
		"": "aws", "us-east-1": "aws", "eu-central-1": "aws",
		"cn-north-1": "aws-cn", "cn-northwest-1": "aws-cn",
		"us-gov-west-1": "aws-us-gov", "us-gov-east-1": "aws-us-gov",
	} {
		if got := PartitionOf(region); got != want {
			t.Errorf("PartitionOf(%q) = %q; want %q", region, got, want)
		}
	}
}

// TestPolicyForFollowCNAMEGrantsWhereRecordsAreWritten generates the policy
// with lookups for names whose challenge records are CNAMEs into a
// delegation zone, then runs a provider whose every request is evaluated
// against that policy (fakeroute53.Enforcer): the whole DNS-01 cycle must
// pass without one AccessDenied. The policy for the names' own zone (what a
// name-based policy grants) must be refused at the write, which shows the
// enforcer bites.
func TestPolicyForFollowCNAMEGrantsWhereRecordsAreWritten(t *testing.T) {
	e := newEnv(t, envOpts{zones: []fakeroute53.Zone{{ID: "ZDEL", Name: "acme-delegate.test"}}})
	createCNAME(t, e, "ZA", "_acme-challenge.www.example.test.", "www-example.acme-delegate.test.")
	domains := []string{"www.example.test", "*.www.example.test", "api.example.test"} // api: no CNAME
	ctx := ctxTimeout(t)

	lookup := e.provider(t, Options{FollowCNAME: true})
	pol, err := lookup.PolicyFor(ctx, domains, "aws")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := pol.JSON()
	if err != nil {
		t.Fatal(err)
	}
	res, names := statementsFor(t, doc)
	if got, want := names["arn:aws:route53:::hostedzone/ZDEL"], []string{"www-example.acme-delegate.test"}; !slices.Equal(got, want) {
		t.Errorf("names in the delegation zone = %q; want %q\n%s", got, want, doc)
	}
	if got, want := names["arn:aws:route53:::hostedzone/ZA"], []string{"_acme-challenge.api.example.test"}; !slices.Equal(got, want) {
		t.Errorf("names in the names' zone = %q; want %q (the CNAME itself is never written)", got, want)
	}
	if got := res["route53:ListHostedZonesByName"]; !slices.Equal(got, []string{"*"}) {
		t.Errorf("ListHostedZonesByName on %q; want [*]: the target's zone is found by name", got)
	}

	// runCycle does what the issuer does for every name, against the fake
	// behind policy doc, and returns the first error and what was denied.
	runCycle := func(doc []byte, opts Options) ([]string, error) {
		enf, err := e.fake.WithPolicy(doc, "aws")
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(enf)
		defer hs.Close()
		p := e.provider(t, opts)
		p.client = newClient(hs.URL)
		for i, d := range domains {
			value := fmt.Sprintf("value-%d", i)
			if err := p.Present(ctx, d, value); err != nil {
				return enf.Denied(), err
			}
			if err := p.Wait(ctx, d, value); err != nil {
				return enf.Denied(), err
			}
			if err := p.CleanUp(ctx, d, value); err != nil {
				return enf.Denied(), err
			}
		}
		return enf.Denied(), nil
	}
	opts := Options{FollowCNAME: true, NameServers: []string{e.dns.Addr()}}
	if denied, err := runCycle(doc, opts); err != nil || len(denied) > 0 {
		t.Fatalf("DNS-01 cycle under the generated policy: %v; denied %q\n%s", err, denied, doc)
	}
	if got := e.fake.TXT("ZDEL", "www-example.acme-delegate.test."); got != nil {
		t.Errorf("TXT left at the target: %q", got)
	}

	// What iam-policy printed before it knew about CNAMEs: the names in
	// their own zone, plus zone discovery.
	nameBased, err := PolicyFor(domains, Options{ZoneID: "ZA"}, "aws")
	if err != nil {
		t.Fatal(err)
	}
	nameBased.FindZones = true
	wrong, err := nameBased.JSON()
	if err != nil {
		t.Fatal(err)
	}
	denied, err := runCycle(wrong, opts)
	if !errors.Is(err, ErrAccessDenied) || len(denied) == 0 || !strings.HasSuffix(denied[0], "arn:aws:route53:::hostedzone/ZDEL") {
		t.Errorf("cycle under the names' own zone policy: %v, denied %q; want AccessDenied on ZDEL", err, denied)
	}
}
