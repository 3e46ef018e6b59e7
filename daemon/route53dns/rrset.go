package route53dns

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// readSet returns the record set of type rtype at exactly tgt.name, or nil.
// ListResourceRecordSets returns sets from the start point on, so the first
// one is checked for an exact match.
func (p *Provider) readSet(ctx context.Context, tgt target, rtype types.RRType) (*types.ResourceRecordSet, error) {
	out, err := p.listSets(ctx, tgt.zoneID, tgt.name, rtype, 1)
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
	if err := simpleSet(rs); err != nil {
		return nil, err
	}
	return &rs, nil
}

// listPage is the most sets one ListResourceRecordSets request returns.
const listPage = 300

func (p *Provider) listSets(ctx context.Context, zoneID, start string, rtype types.RRType, n int32) (*route53.ListResourceRecordSetsOutput, error) {
	var out *route53.ListResourceRecordSetsOutput
	err := p.call(ctx, "ListResourceRecordSets", "hostedzone/"+zoneID, func(ctx context.Context) error {
		var err error
		out, err = p.client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
			HostedZoneId:    aws.String(zoneID),
			StartRecordName: aws.String(start),
			StartRecordType: rtype,
			MaxItems:        aws.Int32(n),
		}, noSDKRetry)
		return err
	})
	return out, err
}

func simpleSet(rs types.ResourceRecordSet) error {
	if rs.SetIdentifier != nil || rs.AliasTarget != nil {
		return fmt.Errorf("route53: %s %s at %s uses a routing policy or alias; only simple record sets are supported",
			rs.Type, aws.ToString(rs.SetIdentifier), canonical(aws.ToString(rs.Name)))
	}
	return nil
}

// readSets reads the TXT sets at names (canonical, one zone) and records
// their state. One page, started at the first name not yet known, answers
// for every name up to where the page ends, so names close together in the
// zone cost one request for all of them. A name wrongly taken as absent
// (Route 53's order differing from compareNames) only costs a rejected
// batch, after which the name is read on its own.
func (p *Provider) readSets(ctx context.Context, zoneID string, names []string) error {
	todo := slices.Clone(names)
	slices.SortFunc(todo, compareNames)
	todo = slices.Compact(todo)
	for len(todo) > 0 {
		n := int32(listPage)
		if len(todo) == 1 {
			n = 1
		}
		out, err := p.listSets(ctx, zoneID, todo[0], types.RRTypeTxt, n)
		if err != nil {
			return err
		}
		found := map[string]*types.ResourceRecordSet{}
		for _, rs := range out.ResourceRecordSets {
			if rs.Type != types.RRTypeTxt {
				continue
			}
			name := canonical(aws.ToString(rs.Name))
			if err := simpleSet(rs); err != nil {
				if _, ok := slices.BinarySearchFunc(todo, name, compareNames); ok {
					return err
				}
				continue
			}
			found[name] = &rs
		}
		sp := span{from: todo[0], at: p.now()}
		if out.IsTruncated && out.NextRecordName != nil {
			sp.to = canonical(aws.ToString(out.NextRecordName))
		}
		p.mu.Lock()
		// Every TXT set of the page is known now, and so is the absence of
		// any other in the span: later batches need no read for names in it.
		for name, rs := range found {
			p.sets[setKey{zoneID, name}] = knownSet{rs: rs, at: sp.at}
		}
		p.spans[zoneID] = append(freshSpans(p.spans[zoneID], sp.at, p.cacheTTL), sp)
		rest := todo[:0]
		for i, name := range todo {
			// The start name is always answered: its TXT set, if any, is
			// the first of the page.
			if i > 0 && !sp.covers(name) {
				rest = append(rest, name)
				continue
			}
			p.sets[setKey{zoneID, name}] = knownSet{rs: found[name], at: sp.at}
		}
		p.mu.Unlock()
		todo = rest
	}
	return nil
}

// span is a range of names a ListResourceRecordSets page listed: from
// (inclusive) up to to (exclusive; "" is the end of the zone), in Route 53's
// order. A TXT set in it that the page did not list did not exist.
type span struct {
	from, to string
	at       time.Time
}

func (s span) covers(name string) bool {
	return compareNames(name, s.from) >= 0 && (s.to == "" || compareNames(name, s.to) < 0)
}

// freshSpans drops the spans older than ttl (in place).
func freshSpans(spans []span, now time.Time, ttl time.Duration) []span {
	return slices.DeleteFunc(spans, func(s span) bool { return now.Sub(s.at) >= ttl })
}

// compareNames orders canonical names the way Route 53 lists them: the
// labels reversed, then compared as text ("test.example.www.").
func compareNames(a, b string) int {
	return strings.Compare(reversed(a), reversed(b))
}

func reversed(name string) string {
	l := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(l)
	return strings.Join(l, ".") + "."
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
