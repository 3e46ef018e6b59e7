package route53dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

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

// zoneList is the account's hosted zones as last listed.
type zoneList struct {
	zones []zoneInfo
	at    time.Time
}

type zoneInfo struct {
	id, name string // name canonical
	private  bool
}

// findZone returns the ID of the deepest hosted zone (public, or private with
// Options.PrivateZone) whose name is name or one of its parents, from the
// account's zone list (listed once and shared by every name; listed again
// when a name is in no zone and the list is older than a minute). Answers
// are cached per name. Two zones of the same kind with the same name are an
// error: which one is delegated cannot be told from the API.
func (p *Provider) findZone(ctx context.Context, name string) (string, error) {
	name = canonical(name)
	p.mu.Lock()
	id, ok := p.zones[name]
	p.mu.Unlock()
	if ok {
		return id, nil
	}
	zl, err := p.listZones(ctx, 0)
	if err != nil {
		return "", err
	}
	id, err = p.pickZone(zl, name)
	if errors.Is(err, ErrNoZone) && p.now().Sub(zl.at) > time.Minute {
		if zl, err = p.listZones(ctx, time.Minute); err != nil {
			return "", err
		}
		id, err = p.pickZone(zl, name)
	}
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.zones[name] = id
	p.mu.Unlock()
	return id, nil
}

// pickZone chooses name's zone from zl.
func (p *Provider) pickZone(zl *zoneList, name string) (string, error) {
	best := ""
	var ids []string
	for _, z := range zl.zones {
		if z.private != p.opts.PrivateZone || (name != z.name && !strings.HasSuffix(name, "."+z.name)) {
			continue
		}
		switch {
		case len(z.name) > len(best):
			best, ids = z.name, []string{z.id}
		case z.name == best:
			ids = append(ids, z.id)
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("%w: no %s zone contains %s", ErrNoZone, p.kind(), name)
	case 1:
		p.log.Info("dns.zone_found", "name", name, "zone", ids[0], "zone_name", best, "private", p.opts.PrivateZone)
		return ids[0], nil
	}
	return "", fmt.Errorf("route53: %d %s hosted zones named %s (%s); set the zone ID explicitly",
		len(ids), p.kind(), best, strings.Join(ids, ", "))
}

func (p *Provider) kind() string {
	if p.opts.PrivateZone {
		return "private"
	}
	return "public"
}

// listZones returns the account's zones, listing them (once for all
// concurrent callers) when there is no list yet, it is older than the zone
// TTL, or older than maxAge (if not 0).
func (p *Provider) listZones(ctx context.Context, maxAge time.Duration) (*zoneList, error) {
	fresh := func() *zoneList {
		p.mu.Lock()
		defer p.mu.Unlock()
		zl := p.zoneList
		age := p.zonesTTL
		if maxAge > 0 {
			age = min(age, maxAge)
		}
		if zl == nil || p.now().Sub(zl.at) >= age {
			return nil
		}
		return zl
	}
	if zl := fresh(); zl != nil {
		return zl, nil
	}
	v, err, _ := p.sf.Do("zones", func() (any, error) {
		if zl := fresh(); zl != nil {
			return zl, nil
		}
		zl := &zoneList{at: p.now()}
		in := &route53.ListHostedZonesByNameInput{MaxItems: aws.Int32(100)}
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
				zl.zones = append(zl.zones, zoneInfo{
					id:      trimID(aws.ToString(z.Id), "hostedzone"),
					name:    canonical(aws.ToString(z.Name)),
					private: z.Config != nil && z.Config.PrivateZone,
				})
			}
			if !out.IsTruncated || out.NextDNSName == nil {
				break
			}
			in.DNSName, in.HostedZoneId = out.NextDNSName, out.NextHostedZoneId
		}
		p.mu.Lock()
		p.zoneList = zl
		p.mu.Unlock()
		return zl, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*zoneList), nil
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
	v, err, _ := p.sf.Do("ns/"+zoneID, func() (any, error) {
		var out *route53.GetHostedZoneOutput
		err := p.call(ctx, "GetHostedZone", "hostedzone/"+zoneID, func(ctx context.Context) error {
			var err error
			out, err = p.client.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(zoneID)}, noSDKRetry)
			return err
		})
		if err != nil {
			return nil, err
		}
		ns := []string{}
		if out.DelegationSet != nil {
			for _, h := range out.DelegationSet.NameServers {
				ns = append(ns, p.withPort(h))
			}
		}
		p.mu.Lock()
		p.servers[zoneID] = ns
		p.mu.Unlock()
		return ns, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]string), nil
}

// withPort adds the default DNS port to a host that has none.
func (p *Provider) withPort(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	return net.JoinHostPort(strings.TrimSuffix(h, "."), p.nsPort)
}
