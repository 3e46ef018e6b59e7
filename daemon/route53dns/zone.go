package route53dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// ErrNoZone is matched by errors from zone discovery when no hosted zone of
// the wanted kind (public or private) contains the name.
var ErrNoZone = errors.New("route53: no hosted zone found")

// ZoneID returns the ID (without "/hostedzone/") of the hosted zone that
// holds _acme-challenge.<domain>: Options.ZoneID if set, else the discovered
// zone (cached). CNAMEs are not followed. Errors match ErrNoZone when no zone
// contains the name, ErrAccessDenied when discovery is not allowed.
func (p *Provider) ZoneID(ctx context.Context, domain string) (string, error) {
	if p.opts.ZoneID != "" {
		return p.opts.ZoneID, nil
	}
	return p.findZone(ctx, canonical(RecordName(domain)))
}

// findZone returns the ID of the deepest hosted zone (public, or private with
// Options.PrivateZone) whose name is name or one of its parents. It asks
// ListHostedZonesByName once per label, deepest first, and caches the answer
// per name. Two zones of the same kind with the same name are an error:
// which one is delegated cannot be told from the API.
func (p *Provider) findZone(ctx context.Context, name string) (string, error) {
	name = canonical(name)
	p.mu.Lock()
	id, ok := p.zones[name]
	p.mu.Unlock()
	if ok {
		return id, nil
	}
	for cand := name; cand != "."; cand = parent(cand) {
		ids, err := p.zonesNamed(ctx, cand)
		if err != nil {
			return "", err
		}
		switch len(ids) {
		case 0:
			continue
		case 1:
			p.mu.Lock()
			p.zones[name] = ids[0]
			p.mu.Unlock()
			p.log.Info("dns.zone_found", "name", name, "zone", ids[0], "zone_name", cand, "private", p.opts.PrivateZone)
			return ids[0], nil
		default:
			return "", fmt.Errorf("route53: %d %s hosted zones named %s (%s); set the zone ID explicitly",
				len(ids), p.kind(), cand, strings.Join(ids, ", "))
		}
	}
	return "", fmt.Errorf("%w: no %s zone contains %s", ErrNoZone, p.kind(), name)
}

func (p *Provider) kind() string {
	if p.opts.PrivateZone {
		return "private"
	}
	return "public"
}

// parent returns the canonical parent of a canonical name ("." for a TLD).
func parent(name string) string {
	_, rest, ok := strings.Cut(name, ".")
	if !ok || rest == "" {
		return "."
	}
	return rest
}

// zonesNamed lists the IDs of the zones of the wanted kind named exactly
// name, following pagination while the listing still has that name.
func (p *Provider) zonesNamed(ctx context.Context, name string) ([]string, error) {
	in := &route53.ListHostedZonesByNameInput{DNSName: aws.String(strings.TrimSuffix(name, "."))}
	var ids []string
	for {
		var out *route53.ListHostedZonesByNameOutput
		err := p.call(ctx, "ListHostedZonesByName", "*", func(ctx context.Context) error {
			var err error
			out, err = p.client.ListHostedZonesByName(ctx, in, noSDKRetry)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, z := range out.HostedZones {
			if canonical(aws.ToString(z.Name)) != name {
				return ids, nil // sorted: nothing after this matches
			}
			private := z.Config != nil && z.Config.PrivateZone
			if private == p.opts.PrivateZone {
				ids = append(ids, trimID(aws.ToString(z.Id), "hostedzone"))
			}
		}
		if !out.IsTruncated || out.NextDNSName == nil {
			return ids, nil
		}
		in.DNSName, in.HostedZoneId = out.NextDNSName, out.NextHostedZoneId
	}
}

// readCNAME returns the canonical target of a CNAME at tgt.name in its zone,
// or "" if there is none.
func (p *Provider) readCNAME(ctx context.Context, tgt target) (string, error) {
	rs, err := p.readSet(ctx, tgt, types.RRTypeCname)
	if err != nil || rs == nil || len(rs.ResourceRecords) == 0 {
		return "", err
	}
	return canonical(aws.ToString(rs.ResourceRecords[0].Value)), nil
}

// nameServers returns the "host:port" list the propagation check asks for
// zoneID: Options.NameServers, or the zone's delegation set (cached). An
// empty list means the zone has no delegation set (a private zone).
func (p *Provider) nameServers(ctx context.Context, zoneID string) ([]string, error) {
	if p.opts.NameServers != nil {
		return p.opts.NameServers, nil
	}
	p.mu.Lock()
	ns, ok := p.servers[zoneID]
	p.mu.Unlock()
	if ok {
		return ns, nil
	}
	var out *route53.GetHostedZoneOutput
	err := p.call(ctx, "GetHostedZone", "hostedzone/"+zoneID, func(ctx context.Context) error {
		var err error
		out, err = p.client.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(zoneID)}, noSDKRetry)
		return err
	})
	if err != nil {
		return nil, err
	}
	ns = []string{}
	if out.DelegationSet != nil {
		for _, h := range out.DelegationSet.NameServers {
			ns = append(ns, p.withPort(h))
		}
	}
	p.mu.Lock()
	p.servers[zoneID] = ns
	p.mu.Unlock()
	return ns, nil
}

// withPort adds the default DNS port to a host that has none.
func (p *Provider) withPort(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	return net.JoinHostPort(strings.TrimSuffix(h, "."), p.nsPort)
}
