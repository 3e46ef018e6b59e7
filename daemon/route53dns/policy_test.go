package route53dns

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"
)

func TestPolicyJSON(t *testing.T) {
	zones := []PolicyZone{
		{ZoneID: "/hostedzone/ZA", RecordNames: []string{RecordName("example.test"), RecordName("*.example.test"), "_acme-challenge.WWW.Example.test."}},
		{ZoneID: "", RecordNames: []string{"_acme-challenge.other.test"}},
		{ZoneID: "ZA", RecordNames: []string{"_acme-challenge.api.example.test"}}, // merged into the first
	}
	out, err := PolicyJSON(zones)
	if err != nil {
		t.Fatal(err)
	}
	again, err := PolicyJSON(zones)
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
	for _, zones := range [][]PolicyZone{nil, {{ZoneID: "ZA"}}, {{ZoneID: "ZA", RecordNames: []string{"."}}}} {
		if _, err := PolicyJSON(zones); err == nil {
			t.Errorf("PolicyJSON(%+v) succeeded; want an error", zones)
		}
	}
	if got := normalizeRecordName("_acme-challenge.*.Ex ample.test."); got != `_acme-challenge.\052.ex\040ample.test` {
		t.Errorf("normalizeRecordName = %q", got)
	}
}
