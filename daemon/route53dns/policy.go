package route53dns

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// PolicyZone is one hosted zone in a least-privilege policy. ZoneID "" means
// "any zone" (hostedzone/*), for when the zone is discovered at run time.
// RecordNames are the exact TXT record names written in the zone, usually
// RecordName(identifier) for each ACME identifier (apex and wildcard share
// one), or a CNAME target with FollowCNAME.
type PolicyZone struct {
	ZoneID      string
	RecordNames []string
}

// IAM condition keys of ChangeResourceRecordSets (Route 53 developer guide,
// "Using IAM policy conditions for fine-grained access control").
const (
	condNames   = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
	condTypes   = "route53:ChangeResourceRecordSetsRecordTypes"
	condActions = "route53:ChangeResourceRecordSetsActions"
)

type policyDoc struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// PolicyJSON returns an indented IAM policy granting exactly what a Provider
// needs for zones: ListHostedZonesByName on "*" (it has no resource scope);
// GetHostedZone and ListResourceRecordSets on each zone;
// ChangeResourceRecordSets on each zone only for its record names, type TXT
// and the actions CREATE and DELETE (the provider never UPSERTs); GetChange on
// change/*. Record names are normalised as IAM compares them: lower case, no
// trailing dot, other characters than a-z 0-9 - _ . as \ooo octal escapes.
// The output is deterministic for the same input.
func PolicyJSON(zones []PolicyZone) ([]byte, error) {
	if len(zones) == 0 {
		return nil, errors.New("route53: policy needs at least one zone")
	}
	names := map[string]map[string]bool{} // zone ARN -> normalised names
	for _, z := range zones {
		id := trimID(strings.TrimSpace(z.ZoneID), "hostedzone")
		if id == "" {
			id = "*"
		}
		arn := "arn:aws:route53:::hostedzone/" + id
		if len(z.RecordNames) == 0 {
			return nil, fmt.Errorf("route53: policy zone %s has no record names", id)
		}
		if names[arn] == nil {
			names[arn] = map[string]bool{}
		}
		for _, n := range z.RecordNames {
			nn := normalizeRecordName(n)
			if nn == "" {
				return nil, fmt.Errorf("route53: empty record name for zone %s", id)
			}
			names[arn][nn] = true
		}
	}
	arns := make([]string, 0, len(names))
	for a := range names {
		arns = append(arns, a)
	}
	slices.Sort(arns)

	doc := policyDoc{Version: "2012-10-17"}
	doc.Statement = append(doc.Statement,
		policyStatement{Sid: "EdgecertFindZones", Effect: "Allow",
			Action: []string{"route53:ListHostedZonesByName"}, Resource: []string{"*"}},
		policyStatement{Sid: "EdgecertReadZones", Effect: "Allow",
			Action: []string{"route53:GetHostedZone", "route53:ListResourceRecordSets"}, Resource: arns},
	)
	for i, arn := range arns {
		list := make([]string, 0, len(names[arn]))
		for n := range names[arn] {
			list = append(list, n)
		}
		slices.Sort(list)
		doc.Statement = append(doc.Statement, policyStatement{
			Sid:      fmt.Sprintf("EdgecertChallengeRecords%d", i+1),
			Effect:   "Allow",
			Action:   []string{"route53:ChangeResourceRecordSets"},
			Resource: []string{arn},
			Condition: map[string]map[string][]string{"ForAllValues:StringEquals": {
				condNames:   list,
				condTypes:   {"TXT"},
				condActions: {"CREATE", "DELETE"},
			}},
		})
	}
	doc.Statement = append(doc.Statement, policyStatement{Sid: "EdgecertWatchChanges", Effect: "Allow",
		Action: []string{"route53:GetChange"}, Resource: []string{"arn:aws:route53:::change/*"}})
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("route53: policy: %w", err)
	}
	return append(out, '\n'), nil
}

// normalizeRecordName renders name the way the
// ChangeResourceRecordSetsNormalizedRecordNames condition key compares it.
func normalizeRecordName(name string) string {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\%03o`, c)
		}
	}
	return b.String()
}
