// Package route53dns solves ACME DNS-01 challenges with TXT records in Amazon
// Route 53, through aws-sdk-go-v2.
//
// It never clobbers: every write reads the record set and replaces exactly
// what it read in one change batch (DELETE of the old set plus CREATE of the
// merged one). Route 53 rejects the batch if anyone changed the set meanwhile,
// and the write is retried on a fresh read. Several values on one name (apex
// plus wildcard, several hosts ordering the same name) therefore coexist, and
// cleanup removes only its own value.
//
// Wait polls GetChange until the change is INSYNC and then asks every
// authoritative name server of the zone directly until all of them serve the
// value, so the CA is told to validate only once validation can succeed.
//
// API calls go through this package's own bounded retry (exponential backoff
// with jitter on Throttling, PriorRequestNotComplete, 5xx and connection
// errors) instead of the SDK retryer, so the number of calls is predictable.
// An AccessDenied answer stops at once with an *AccessDeniedError.
package route53dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/route53"
)

// Options configure a Provider. The zero value discovers public zones and
// uses the defaults below.
type Options struct {
	// ZoneID pins the hosted zone of the challenge records ("Z123" or
	// "/hostedzone/Z123"); "" discovers it by walking the record name's labels
	// with ListHostedZonesByName, exact name match, deepest zone first.
	ZoneID string
	// PrivateZone makes discovery pick private zones instead of public ones.
	PrivateZone bool
	// TTL is the TTL of the challenge TXT set; 0 means 10 seconds.
	TTL int64
	// NameServers ("host:port") overrides the servers the propagation check
	// asks; nil or empty means the zone's delegation set from GetHostedZone
	// (cached per zone), resolved with net.DefaultResolver, port 53 unless a
	// name carries a port.
	NameServers []string
	// PropagationTimeout bounds each Wait as a whole; 0 means 2 minutes.
	PropagationTimeout time.Duration
	// FollowCNAME makes the provider follow a CNAME at
	// _acme-challenge.<domain> (looked up through the API in the zone that
	// holds the name) and write the TXT value at its target, in the target's
	// hosted zone. Off by default: a CNAME there then makes writes fail.
	FollowCNAME bool
	// Logger receives the dns.* events; nil discards them. Values are never
	// logged.
	Logger *slog.Logger
}

// Provider presents and removes DNS-01 TXT values. Its methods are safe for
// concurrent use, also for the same name; several Providers (several hosts)
// may work on the same names at once.
type Provider struct {
	client *route53.Client
	opts   Options
	log    *slog.Logger

	// Timing knobs; New sets production values, tests shorten them.
	api      backoff       // retry of one API call on throttling and transient errors
	cas      backoff       // retry of read-merge-write after InvalidChangeBatch
	poll     backoff       // GetChange and DNS polling (attempts unused)
	dnsQuery time.Duration // timeout of one DNS query
	nsPort   string        // port for delegation-set names without one

	mu      sync.Mutex            // guards zones, servers, pending, targets
	zones   map[string]string     // record name (canonical) -> zone ID, discovery cache
	servers map[string][]string   // zone ID -> "host:port" of its name servers
	pending map[challenge]pending // Present's change, for Wait
	targets map[string]target     // domain (canonical) -> where its TXT lives
}

// challenge identifies one Present call's value.
type challenge struct{ domain, value string }

// pending is what Wait needs from Present.
type pending struct {
	changeID string // "" if Present found the value already there
	target   target
}

// target is where a domain's challenge TXT set is written.
type target struct {
	name   string // canonical record name
	zoneID string
}

const (
	defaultTTL                = 10
	defaultPropagationTimeout = 2 * time.Minute
	maxCNAMEHops              = 8
)

// New returns a Provider using client. The client's own retryer is bypassed
// for the calls this package makes.
func New(client *route53.Client, opts Options) (*Provider, error) {
	if client == nil {
		return nil, errors.New("route53: nil client")
	}
	if opts.TTL < 0 || opts.PropagationTimeout < 0 {
		return nil, errors.New("route53: negative TTL or PropagationTimeout")
	}
	if opts.TTL == 0 {
		opts.TTL = defaultTTL
	}
	if opts.PropagationTimeout == 0 {
		opts.PropagationTimeout = defaultPropagationTimeout
	}
	opts.ZoneID = trimID(opts.ZoneID, "hostedzone")
	opts.NameServers = append([]string(nil), opts.NameServers...)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{
		client:   client,
		opts:     opts,
		log:      log,
		api:      backoff{attempts: 8, base: 250 * time.Millisecond, max: 20 * time.Second},
		cas:      backoff{attempts: 10, base: 50 * time.Millisecond, max: 2 * time.Second},
		poll:     backoff{base: 250 * time.Millisecond, max: 5 * time.Second},
		dnsQuery: 2 * time.Second,
		nsPort:   "53",
		zones:    make(map[string]string),
		servers:  make(map[string][]string),
		pending:  make(map[challenge]pending),
		targets:  make(map[string]target),
	}, nil
}

// RecordName returns the challenge record name for an ACME identifier:
// "_acme-challenge." + domain, lower case, without a "*." prefix or a
// trailing dot.
func RecordName(domain string) string {
	return "_acme-challenge." + normDomain(domain)
}

func normDomain(domain string) string {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	return strings.TrimPrefix(d, "*.")
}

// canonical returns name in lower case with one trailing dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// trimID strips "/kind/" or "kind/" from a Route 53 ID.
func trimID(id, kind string) string {
	id = strings.TrimPrefix(id, "/")
	return strings.TrimPrefix(id, kind+"/")
}

// Present adds value to the TXT set at _acme-challenge.<domain> (domain
// without "*.") and returns once Route 53 has accepted the change. Values
// already present are left as they are (no change is made). Callers should
// call CleanUp after every Present, also one that failed or was cancelled: the
// change may have been applied before the error.
func (p *Provider) Present(ctx context.Context, domain, value string) error {
	domain = normDomain(domain)
	tgt, err := p.resolveTarget(ctx, domain)
	if err != nil {
		return err
	}
	id, err := p.modify(ctx, tgt, value, true)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.pending[challenge{domain, value}] = pending{changeID: id, target: tgt}
	p.mu.Unlock()
	p.log.Info("dns.txt_present", "name", tgt.name, "zone", tgt.zoneID, "change", id)
	return nil
}

// CleanUp removes value from the TXT set at _acme-challenge.<domain>, keeping
// every other value; the set is deleted with its last value. A value that is
// not there is not an error. It does not wait for INSYNC. Pass a fresh
// context: CleanUp should run even when the order's context is done.
func (p *Provider) CleanUp(ctx context.Context, domain, value string) error {
	domain = normDomain(domain)
	key := challenge{domain, value}
	p.mu.Lock()
	pc, ok := p.pending[key]
	p.mu.Unlock()
	tgt := pc.target
	if !ok {
		var err error
		if tgt, err = p.knownTarget(ctx, domain); err != nil {
			return err
		}
	}
	id, err := p.modify(ctx, tgt, value, false)
	if err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.pending, key)
	p.mu.Unlock()
	p.log.Info("dns.txt_cleanup", "name", tgt.name, "zone", tgt.zoneID, "change", id)
	return nil
}

// knownTarget returns the target Present resolved for domain, or resolves it.
func (p *Provider) knownTarget(ctx context.Context, domain string) (target, error) {
	p.mu.Lock()
	tgt, ok := p.targets[domain]
	p.mu.Unlock()
	if ok {
		return tgt, nil
	}
	return p.resolveTarget(ctx, domain)
}

// resolveTarget finds the zone of _acme-challenge.<domain> and, with
// FollowCNAME, follows CNAMEs from there. The result is remembered for Wait
// and CleanUp.
func (p *Provider) resolveTarget(ctx context.Context, domain string) (target, error) {
	name := canonical(RecordName(domain))
	zoneID := p.opts.ZoneID
	var err error
	if zoneID == "" {
		if zoneID, err = p.findZone(ctx, name); err != nil {
			return target{}, err
		}
	}
	tgt := target{name: name, zoneID: zoneID}
	if p.opts.FollowCNAME {
		seen := map[string]bool{name: true}
		for hop := 0; ; hop++ {
			next, err := p.readCNAME(ctx, tgt)
			if err != nil {
				return target{}, err
			}
			if next == "" {
				break
			}
			if hop == maxCNAMEHops || seen[next] {
				return target{}, fmt.Errorf("route53: CNAME chain from %s is a loop or longer than %d", name, maxCNAMEHops)
			}
			seen[next] = true
			zid, err := p.findZone(ctx, next)
			if err != nil {
				return target{}, fmt.Errorf("route53: CNAME target of %s: %w", name, err)
			}
			p.log.Info("dns.cname_followed", "name", tgt.name, "target", next, "zone", zid)
			tgt = target{name: next, zoneID: zid}
		}
	}
	p.mu.Lock()
	p.targets[domain] = tgt
	p.mu.Unlock()
	return tgt, nil
}
