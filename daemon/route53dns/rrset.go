package route53dns

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// readSet returns the record set of type rtype at exactly tgt.name, or nil.
// ListResourceRecordSets returns sets from the start point on, so the first
// one is checked for an exact match.
func (p *Provider) readSet(ctx context.Context, tgt target, rtype types.RRType) (*types.ResourceRecordSet, error) {
	var out *route53.ListResourceRecordSetsOutput
	err := p.call(ctx, "ListResourceRecordSets", "hostedzone/"+tgt.zoneID, func(ctx context.Context) error {
		var err error
		out, err = p.client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
			HostedZoneId:    aws.String(tgt.zoneID),
			StartRecordName: aws.String(tgt.name),
			StartRecordType: rtype,
			MaxItems:        aws.Int32(1),
		}, noSDKRetry)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out.ResourceRecordSets) == 0 {
		return nil, nil
	}
	rs := out.ResourceRecordSets[0]
	if canonical(aws.ToString(rs.Name)) != tgt.name || rs.Type != rtype {
		return nil, nil
	}
	if rs.SetIdentifier != nil || rs.AliasTarget != nil {
		return nil, fmt.Errorf("route53: %s %s at %s uses a routing policy or alias; only simple record sets are supported",
			rtype, aws.ToString(rs.SetIdentifier), tgt.name)
	}
	return &rs, nil
}

// modify adds (add) or removes value in the TXT set at tgt without touching
// other values: read the set, then in one batch DELETE exactly what was read
// and CREATE the merged set. If the set changed meanwhile, Route 53 rejects
// the batch with InvalidChangeBatch and modify starts over, up to p.cas
// attempts. It returns the change ID, or "" when nothing had to change.
func (p *Provider) modify(ctx context.Context, tgt target, value string, add bool) (string, error) {
	var lastErr error
	for attempt := 1; attempt <= p.cas.attempts; attempt++ {
		if attempt > 1 {
			if err := sleep(ctx, p.cas.delay(attempt-1)); err != nil {
				return "", fmt.Errorf("route53: updating %s: %w (last error: %v)", tgt.name, err, lastErr)
			}
		}
		cur, err := p.readSet(ctx, tgt, types.RRTypeTxt)
		if err != nil {
			return "", err
		}
		changes, ok := p.plan(tgt.name, cur, value, add)
		if !ok {
			return "", nil
		}
		var out *route53.ChangeResourceRecordSetsOutput
		err = p.call(ctx, "ChangeResourceRecordSets", "hostedzone/"+tgt.zoneID, func(ctx context.Context) error {
			var err error
			out, err = p.client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
				HostedZoneId: aws.String(tgt.zoneID),
				ChangeBatch:  &types.ChangeBatch{Changes: changes, Comment: aws.String("edgecert dns-01")},
			}, noSDKRetry)
			return err
		})
		if err == nil {
			return trimID(aws.ToString(out.ChangeInfo.Id), "change"), nil
		}
		var icb *types.InvalidChangeBatch
		if !errors.As(err, &icb) {
			return "", err
		}
		lastErr = fmt.Errorf("%w: %s", err, strings.Join(icb.Messages, "; "))
		p.log.Info("dns.txt_conflict", "name", tgt.name, "zone", tgt.zoneID, "attempt", attempt)
	}
	return "", fmt.Errorf("route53: updating %s: record set kept changing or the change is invalid after %d attempts: %w",
		tgt.name, p.cas.attempts, lastErr)
}

// plan returns the changes that turn cur into cur with value added or
// removed; ok is false if no change is needed.
func (p *Provider) plan(name string, cur *types.ResourceRecordSet, value string, add bool) (changes []types.Change, ok bool) {
	var keep []types.ResourceRecord // raw records of other values, as read
	found := false
	if cur != nil {
		for _, rr := range cur.ResourceRecords {
			v, err := unquoteTXT(aws.ToString(rr.Value))
			if err == nil && v == value {
				found = true
				continue
			}
			keep = append(keep, rr)
		}
	}
	if found == add {
		return nil, false
	}
	if cur != nil {
		changes = append(changes, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: &types.ResourceRecordSet{
			Name:            cur.Name,
			Type:            types.RRTypeTxt,
			TTL:             cur.TTL,
			ResourceRecords: cur.ResourceRecords,
		}})
	}
	if add {
		keep = append(keep, types.ResourceRecord{Value: aws.String(quoteTXT(value))})
	}
	if len(keep) > 0 {
		changes = append(changes, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: &types.ResourceRecordSet{
			Name:            aws.String(name),
			Type:            types.RRTypeTxt,
			TTL:             aws.Int64(p.opts.TTL),
			ResourceRecords: keep,
		}})
	}
	return changes, true
}

// quoteTXT renders s as Route 53 wants a TXT value: one or more quoted
// character-strings of at most 255 bytes, with '"' and '\' escaped.
func quoteTXT(s string) string {
	var b strings.Builder
	for first := true; first || len(s) > 0; first = false {
		chunk := s[:min(len(s), 255)]
		s = s[len(chunk):]
		if !first {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for i := 0; i < len(chunk); i++ {
			if chunk[i] == '"' || chunk[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(chunk[i])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// unquoteTXT parses a TXT value as Route 53 returns it: quoted
// character-strings separated by spaces, with \" \\ and \ddd (octal)
// escapes, concatenated. A bare word is taken as is.
func unquoteTXT(v string) (string, error) {
	var b strings.Builder
	i := 0
	for {
		for i < len(v) && v[i] == ' ' {
			i++
		}
		if i == len(v) {
			return b.String(), nil
		}
		if v[i] != '"' {
			end := strings.IndexByte(v[i:], ' ')
			if end < 0 {
				end = len(v) - i
			}
			b.WriteString(v[i : i+end])
			i += end
			continue
		}
		i++
		closed := false
		for i < len(v) {
			c := v[i]
			i++
			if c == '"' {
				closed = true
				break
			}
			if c == '\\' && i < len(v) {
				if i+2 < len(v) && isOctal(v[i]) && isOctal(v[i+1]) && isOctal(v[i+2]) {
					b.WriteByte((v[i]-'0')<<6 | (v[i+1]-'0')<<3 | (v[i+2] - '0'))
					i += 3
					continue
				}
				c = v[i]
				i++
			}
			b.WriteByte(c)
		}
		if !closed {
			return "", fmt.Errorf("route53: unterminated TXT string %q", v)
		}
	}
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
