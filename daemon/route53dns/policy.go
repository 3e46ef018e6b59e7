package route53dns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Policy describes the least-privilege IAM policy of a Provider: the calls
// it makes and the record sets it writes. PolicyFor (offline) and
// Provider.PolicyFor (with lookups) build it; JSON renders it.
type Policy struct {
	// Partition is the ARN partition of the hosted zone and change ARNs:
	// "aws" (also for ""), "aws-cn" or "aws-us-gov"; PartitionOf maps a
	// region to it.
	Partition string
	// FindZones grants ListHostedZonesByName, which has no resource scope
	// ("*"). The Provider needs it whenever it finds a zone by name: without
	// Options.ZoneID, and to find the zone of a CNAME target.
	FindZones bool
	// Zones are the hosted zones the Provider touches.
	Zones []PolicyZone
}

// PolicyZone is one hosted zone in a Policy. ZoneID "" means "any zone"
// (hostedzone/*): the zone is not known, the record names still restrict
// the writes. RecordNames are the exact TXT record names written in the
// zone (RecordName(identifier), or a CNAME target with FollowCNAME); a zone
// with none is only read: the zone holding _acme-challenge.<name> when that
// is a CNAME followed elsewhere.
type PolicyZone struct {
	ZoneID      string
	RecordNames []string
}

// PolicyFor returns the policy for domains without any API call: each
// _acme-challenge name in opts.ZoneID, or in hostedzone/* when that is
// empty. With opts.FollowCNAME the records are written wherever the CNAMEs
// point, which only the API can tell: it returns an error then, and
// Provider.PolicyFor does the lookup.
func PolicyFor(domains []string, opts Options, partition string) (Policy, error) {
	if opts.FollowCNAME {
		return Policy{}, errors.New("route53: policy: the records are written at the CNAME targets, which only a lookup finds")
	}
	z := PolicyZone{ZoneID: trimID(strings.TrimSpace(opts.ZoneID), "hostedzone")}
	for _, d := range domains {
		z.RecordNames = appendNew(z.RecordNames, canonical(RecordName(d)))
	}
	return Policy{Partition: partition, FindZones: z.ZoneID == "", Zones: []PolicyZone{z}}, nil
}

// PolicyFor returns the policy for domains as p will use it, asking the API
// exactly what Present asks before writing: the zone of each
// _acme-challenge name (unless Options.ZoneID pins it) and, with
// Options.FollowCNAME, the CNAME chain and the zone of its target. The
// targets found are remembered as Present would remember them.
func (p *Provider) PolicyFor(ctx context.Context, domains []string, partition string) (Policy, error) {
	pol := Policy{Partition: partition, FindZones: p.opts.ZoneID == ""}
	records := map[string][]string{} // zone ID -> names written there
	var zones []string               // zone IDs in first-seen order
	add := func(zoneID, name string) {
		if _, ok := records[zoneID]; !ok {
			zones = append(zones, zoneID)
			records[zoneID] = nil
		}
		if name != "" {
			records[zoneID] = appendNew(records[zoneID], name)
		}
	}
	for _, d := range domains {
		d = normDomain(d)
		tgt, err := p.resolveTarget(ctx, d)
		if err != nil {
			return Policy{}, fmt.Errorf("route53: policy for %s: %w", d, err)
		}
		if tgt.name != canonical(RecordName(d)) {
			// Followed a CNAME: its own zone is read, the target's written,
			// and the target's zone was found by name.
			src, err := p.ZoneID(ctx, d)
			if err != nil {
				return Policy{}, fmt.Errorf("route53: policy for %s: %w", d, err)
			}
			add(src, "")
			pol.FindZones = true
		}
		add(tgt.zoneID, tgt.name)
	}
	for _, id := range zones {
		pol.Zones = append(pol.Zones, PolicyZone{ZoneID: id, RecordNames: records[id]})
	}
	return pol, nil
}

// PartitionOf returns the ARN partition of an AWS region: "aws-cn" for
// cn-*, "aws-us-gov" for us-gov-*, "aws" for every other region and for "".
func PartitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
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

// JSON returns the policy as an indented IAM policy document:
// ListHostedZonesByName on "*" if FindZones; GetHostedZone (the name servers
// of the propagation check) and ListResourceRecordSets (read-merge-write) on
// each zone written; ListResourceRecordSets alone on zones only read;
// ChangeResourceRecordSets on each written zone only for its record names,
// type TXT and the actions CREATE and DELETE (the provider never UPSERTs);
// GetChange on change/*. Record names are normalised as IAM compares them:
// lower case, no trailing dot, other characters than a-z 0-9 - _ . as \ooo
// octal escapes. The output is deterministic for the same input.
func (pol Policy) JSON() ([]byte, error) {
	arnPrefix, err := route53ARN(pol.Partition)
	if err != nil {
		return nil, err
	}
	written, read, err := pol.zoneARNs(arnPrefix)
	if err != nil {
		return nil, err
	}
	doc := policyDoc{Version: "2012-10-17", Statement: pol.statements(arnPrefix, written, read)}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("route53: policy: %w", err)
	}
	return append(out, '\n'), nil
}

// zoneARNs groups the zones by ARN: written maps each zone written to its
// normalised record names, read holds the zones only read. At least one
// zone must be written.
func (pol Policy) zoneARNs(arnPrefix string) (written map[string]map[string]bool, read map[string]bool, err error) {
	if len(pol.Zones) == 0 {
		return nil, nil, errors.New("route53: policy needs at least one zone")
	}
	written = map[string]map[string]bool{}
	read = map[string]bool{}
	for _, z := range pol.Zones {
		id := trimID(strings.TrimSpace(z.ZoneID), "hostedzone")
		if id == "" {
			id = "*"
		}
		arn := arnPrefix + "hostedzone/" + id
		if len(z.RecordNames) == 0 {
			read[arn] = true
			continue
		}
		if written[arn] == nil {
			written[arn] = map[string]bool{}
		}
		for _, n := range z.RecordNames {
			nn := normalizeRecordName(n)
			if nn == "" {
				return nil, nil, fmt.Errorf("route53: empty record name for zone %s", id)
			}
			written[arn][nn] = true
		}
	}
	if len(written) == 0 {
		return nil, nil, errors.New("route53: policy has no record names to write")
	}
	for arn := range written {
		delete(read, arn)
	}
	return written, read, nil
}

// statements are the policy's statements, in JSON's documented order.
func (pol Policy) statements(arnPrefix string, written map[string]map[string]bool, read map[string]bool) []policyStatement {
	arns := sortedKeys(written)
	var st []policyStatement
	if pol.FindZones {
		st = append(st, policyStatement{Sid: "EdgecertFindZones", Effect: "Allow",
			Action: []string{"route53:ListHostedZonesByName"}, Resource: []string{"*"}})
	}
	st = append(st, policyStatement{Sid: "EdgecertReadZones", Effect: "Allow",
		Action: []string{"route53:GetHostedZone", "route53:ListResourceRecordSets"}, Resource: arns})
	if len(read) > 0 {
		st = append(st, policyStatement{Sid: "EdgecertReadCNAMEs", Effect: "Allow",
			Action: []string{"route53:ListResourceRecordSets"}, Resource: sortedKeys(read)})
	}
	for i, arn := range arns {
		st = append(st, policyStatement{
			Sid:      fmt.Sprintf("EdgecertChallengeRecords%d", i+1),
			Effect:   "Allow",
			Action:   []string{"route53:ChangeResourceRecordSets"},
			Resource: []string{arn},
			Condition: map[string]map[string][]string{"ForAllValues:StringEquals": {
				condNames:   sortedKeys(written[arn]),
				condTypes:   {"TXT"},
				condActions: {"CREATE", "DELETE"},
			}},
		})
	}
	return append(st, policyStatement{Sid: "EdgecertWatchChanges", Effect: "Allow",
		Action: []string{"route53:GetChange"}, Resource: []string{arnPrefix + "change/*"}})
}

// route53ARN returns "arn:<partition>:route53:::" for a known partition.
func route53ARN(partition string) (string, error) {
	switch partition {
	case "":
		partition = "aws"
	case "aws", "aws-cn", "aws-us-gov":
	default:
		return "", fmt.Errorf("route53: unknown partition %q (want aws, aws-cn or aws-us-gov)", partition)
	}
	return "arn:" + partition + ":route53:::", nil
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

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
