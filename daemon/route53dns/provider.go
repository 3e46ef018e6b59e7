// Package route53dns solves ACME DNS-01 challenges with TXT records in Amazon
// Route 53, through aws-sdk-go-v2.
//
// # Cost
//
// Route 53 answers at most five requests per second per AWS account, shared
// by every host, tool and the console, so the provider spends as few as it
// can and stays under a configurable share of that limit:
//
//   - Writes are coalesced per hosted zone: values presented or cleaned up
//     within Options.BatchWindow of each other (and those that arrive while
//     a batch is being sent) go out as one ChangeResourceRecordSets batch of
//     up to 1,000 changes. A renewal wave of many certificates costs a few
//     batches, not a few calls per certificate.
//   - Reads are batched too: one ListResourceRecordSets page (up to 300
//     sets) answers for every name of a batch that it spans, and the state
//     of a set this provider wrote is remembered (for a few minutes), so a
//     cleanup usually needs no read at all.
//   - One GetChange poll serves every waiter of that change (a whole batch);
//     one authoritative-DNS poll serves every value waited for at a name.
//   - Hosted zones are listed once (and again only when a name is in none
//     of them) instead of once per label of every name.
//   - Every request first takes a token from a client-side bucket
//     (Options.MaxRPS, default 2.5/s: half the account limit), and a
//     Throttling answer backs off exponentially with jitter.
//
// # Never clobbering
//
// Every write replaces exactly what was read (or last written): DELETE of
// the old set plus CREATE of the merged one, per record set, in one atomic
// batch. Route 53 rejects the whole batch if any set changed meanwhile; the
// provider then re-reads only the sets the rejection names and resends,
// leaving every other set's change as it was, so several values on one name
// (apex plus wildcard, several hosts ordering the same name, other tools)
// coexist and cleanup removes only its own value.
//
// # Nothing left behind
//
// Before a value is written it is recorded in a journal (Options.Journal, a
// 0600 JSON file replaced atomically); it is forgotten once the value is
// gone from Route 53. A cleanup that fails is retried by Run with backoff,
// without limit, as long as the value is recorded; at start-up Run removes
// every value a previous run (killed, crashed, powered off) left behind.
// Values that other hosts or tools wrote are never in this journal and
// never touched.
//
// # Propagation
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
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Options configure a Provider. The zero value discovers public zones and
// uses the defaults below.
type Options struct {
	// ZoneID pins the hosted zone of the challenge records ("Z123" or
	// "/hostedzone/Z123"); "" discovers it from the account's zone list
	// (deepest zone whose name contains the record name).
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
	// MaxRPS is the most Route 53 requests per second the Provider sends
	// (a token bucket holding max(1, MaxRPS) tokens); 0 means DefaultMaxRPS.
	// Keep it below the account's limit of 5 shared by everything else.
	MaxRPS float64
	// BatchWindow is how long a write waits for others in the same zone to
	// join its change batch; 0 means DefaultBatchWindow.
	BatchWindow time.Duration
	// Journal is the file recording every value written and not yet cleaned
	// up (in the daemon: <state-dir>/route53-journal.json); "" keeps the
	// record in memory only, which survives no restart.
	Journal string
	// Observer receives API call outcomes and propagation times (metrics);
	// its nil fields are skipped.
	Observer Observer
	// Logger receives the dns.* events; nil discards them. Values are never
	// logged.
	Logger *slog.Logger
}

// Defaults for Options.
const (
	DefaultMaxRPS      = 2.5
	DefaultBatchWindow = 200 * time.Millisecond
)

// Provider presents and removes DNS-01 TXT values. Its methods are safe for
// concurrent use, also for the same name; several Providers (several hosts)
// may work on the same names at once.
type Provider struct {
	client  *route53.Client
	opts    Options
	log     *slog.Logger
	obs     Observer
	limit   *rate.Limiter // client-side share of the account limit
	journal *journal
	sf      singleflight.Group // zone list and delegation-set look-ups
	rnd     func() float64     // uniform [0,1) for jitter
	now     func() time.Time

	// Timing knobs; New sets production values, tests shorten them.
	api        backoff                 // retry of one API call on throttling and transient errors
	cas        backoff                 // retry of a batch after InvalidChangeBatch
	poll       backoff                 // GetChange and DNS polling (attempts unused)
	cleanup    backoff                 // Run's retry of failed cleanups (attempts unused)
	dnsQuery   time.Duration           // timeout of one DNS query
	nsPort     string                  // port for delegation-set names without one
	sweepEvery time.Duration           // how often Run looks for values to clean up
	staleAfter time.Duration           // a value still in use after this is cleaned up anyway
	cacheTTL   time.Duration           // how long a set's known state is trusted
	gather     func(queued func() int) // replaces the BatchWindow sleep in tests
	zonesTTL   time.Duration           // how long the zone list is trusted

	mu       sync.Mutex              // guards every field below
	zones    map[string]string       // record name (canonical) -> zone ID, discovery cache
	zoneList *zoneList               // the account's zones, once listed
	servers  map[string][]string     // zone ID -> "host:port" of its name servers
	pending  map[challenge]pending   // Present's change, for Wait
	targets  map[string]target       // domain (canonical) -> where its TXT lives
	batchers map[string]*batcher     // zone ID -> its write queue
	sets     map[setKey]knownSet     // last known state of TXT sets
	spans    map[string][]span       // zone ID -> name ranges recently listed
	changes  map[string]*changeWatch // change ID -> its GetChange poll
	insync   map[string]bool         // change IDs known INSYNC
	insyncQ  []string                // insync keys, oldest first (bounded)
	watches  map[string]*serveWatch  // name + servers -> its DNS poll
}

// challenge identifies one Present call's value.
type challenge struct{ domain, value string }

// pending is what Wait needs from Present.
type pending struct {
	changeID string // "" if Present found the value already there
	target   target
	at       time.Time // when the change was accepted
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
// for the calls this package makes. It reads Options.Journal; a journal
// that cannot be parsed is moved aside, and New returns the Provider
// together with an error saying so (the caller should log it and go on).
func New(client *route53.Client, opts Options) (*Provider, error) {
	if client == nil {
		return nil, errors.New("route53: nil client")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	j, jerr := openJournal(opts.Journal)
	if j == nil {
		return nil, jerr
	}
	p := &Provider{
		client:     client,
		opts:       opts,
		log:        log,
		obs:        opts.Observer,
		limit:      rate.NewLimiter(rate.Limit(opts.MaxRPS), max(1, int(opts.MaxRPS))),
		journal:    j,
		rnd:        rand.Float64,
		now:        time.Now,
		api:        backoff{attempts: 8, base: 250 * time.Millisecond, max: 20 * time.Second},
		cas:        backoff{attempts: 10, base: 50 * time.Millisecond, max: 2 * time.Second},
		poll:       backoff{base: 250 * time.Millisecond, max: 5 * time.Second},
		cleanup:    backoff{base: 5 * time.Second, max: 10 * time.Minute},
		dnsQuery:   2 * time.Second,
		nsPort:     "53",
		sweepEvery: 5 * time.Second,
		staleAfter: time.Hour,
		cacheTTL:   5 * time.Minute,
		zonesTTL:   15 * time.Minute,
		zones:      make(map[string]string),
		servers:    make(map[string][]string),
		pending:    make(map[challenge]pending),
		targets:    make(map[string]target),
		batchers:   make(map[string]*batcher),
		sets:       make(map[setKey]knownSet),
		spans:      make(map[string][]span),
		changes:    make(map[string]*changeWatch),
		insync:     make(map[string]bool),
		watches:    make(map[string]*serveWatch),
	}
	return p, jerr
}

// withDefaults checks o and fills its zero fields with the defaults; the
// returned copy owns its NameServers slice.
func (o Options) withDefaults() (Options, error) {
	if o.TTL < 0 || o.PropagationTimeout < 0 || o.MaxRPS < 0 || o.BatchWindow < 0 {
		return o, errors.New("route53: negative TTL, PropagationTimeout, MaxRPS or BatchWindow")
	}
	if o.TTL == 0 {
		o.TTL = defaultTTL
	}
	if o.PropagationTimeout == 0 {
		o.PropagationTimeout = defaultPropagationTimeout
	}
	if o.MaxRPS == 0 {
		o.MaxRPS = DefaultMaxRPS
	}
	if o.BatchWindow == 0 {
		o.BatchWindow = DefaultBatchWindow
	}
	o.ZoneID = trimID(o.ZoneID, "hostedzone")
	o.NameServers = append([]string(nil), o.NameServers...)
	return o, nil
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
// without "*.") and returns once Route 53 has accepted the change, which
// it shares with the other writes to the zone due at the same time. The
// value is recorded in the journal before it is sent. Values already present
// are left as they are (no change is made). Callers should call CleanUp
// after every Present, also one that failed or was cancelled: the change may
// have been applied before the error.
func (p *Provider) Present(ctx context.Context, domain, value string) error {
	domain = normDomain(domain)
	tgt, err := p.resolveTarget(ctx, domain)
	if err != nil {
		return err
	}
	p.journal.track(tgt.zoneID, tgt.name, value, p.now())
	id, err := p.submit(ctx, tgt, value, true)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.pending[challenge{domain, value}] = pending{changeID: id, target: tgt, at: time.Now()}
	p.mu.Unlock()
	p.log.Info("dns.txt_present", "name", tgt.name, "zone", tgt.zoneID, "change", id)
	return nil
}

// CleanUp removes value from the TXT set at _acme-challenge.<domain>, keeping
// every other value; the set is deleted with its last value. A value that is
// not there is not an error. It does not wait for INSYNC. Removals due at
// the same time share one change batch. If the removal fails or ctx ends
// first, the error says so and the value stays in the journal: Run keeps
// trying to remove it, with backoff, until it is gone. Pass a fresh context:
// CleanUp should run even when the order's context is done.
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
	id, err := p.submit(ctx, tgt, value, false)
	p.journal.untrack(tgt.zoneID, tgt.name, value)
	if err != nil {
		p.journal.failed(entryKey{tgt.zoneID, tgt.name, value}, p.now(), p.cleanupDelay)
		return fmt.Errorf("route53: cleanup of %s (retried in the background): %w", tgt.name, err)
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
	p.mu.Lock()
	tgt, ok := p.targets[domain]
	p.mu.Unlock()
	if ok {
		return tgt, nil
	}
	name := canonical(RecordName(domain))
	zoneID := p.opts.ZoneID
	var err error
	if zoneID == "" {
		if zoneID, err = p.findZone(ctx, name); err != nil {
			return target{}, err
		}
	}
	tgt = target{name: name, zoneID: zoneID}
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

// Run removes, until ctx is done, every journaled value no order uses any
// more: at once the values an earlier run left behind, then every
// Options-independent sweep interval (5 s) the values whose cleanup failed,
// each after its backoff (5 s doubling to 10 minutes, with jitter), without
// giving up. Values recorded longer than an hour ago are removed even if
// CleanUp was never called for them. It returns nil when ctx is done.
func (p *Provider) Run(ctx context.Context) error {
	if n := p.journal.len(); n > 0 {
		p.log.Info("dns.journal_loaded", "values", n, "journal", p.opts.Journal)
	}
	t := time.NewTicker(p.sweepEvery)
	defer t.Stop()
	for {
		p.sweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sweep removes the journal's due values, all submitted at once so that
// they share change batches, and waits for the results.
func (p *Provider) sweep(ctx context.Context) {
	var wg sync.WaitGroup
	for _, e := range p.journal.due(p.now(), p.staleAfter) {
		wg.Go(func() {
			tgt := target{name: e.Name, zoneID: e.Zone}
			id, err := p.submit(ctx, tgt, e.Value, false)
			if err != nil {
				if ctx.Err() == nil {
					p.journal.failed(e.key(), p.now(), p.cleanupDelay)
					p.log.Warn("dns.cleanup_retry_failed", "name", e.Name, "zone", e.Zone,
						"attempt", e.failures+1, "recorded", e.Time.UTC().Format(time.RFC3339), "error", err)
				}
				return
			}
			p.log.Info("dns.orphan_removed", "name", e.Name, "zone", e.Zone, "change", id,
				"recorded", e.Time.UTC().Format(time.RFC3339))
		})
	}
	wg.Wait()
}

// cleanupDelay is the wait before retrying a cleanup that failed n times.
func (p *Provider) cleanupDelay(n int) time.Duration { return p.cleanup.delay(n, p.rnd()) }

// Journaled returns the number of values recorded in the journal: written
// (or about to be) and not yet known to be removed.
func (p *Provider) Journaled() int { return p.journal.len() }

// errCASExhausted is wrapped by write errors after Options-independent
// compare-and-swap attempts ran out.
var errCASExhausted = errors.New("record set kept changing or the change is invalid")

// isInvalidChangeBatch reports whether err is Route 53 rejecting a batch.
func isInvalidChangeBatch(err error) (*types.InvalidChangeBatch, bool) {
	var icb *types.InvalidChangeBatch
	ok := errors.As(err, &icb)
	return icb, ok
}
