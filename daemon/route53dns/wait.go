package route53dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/miekg/dns"
)

// Wait returns once the value Present added for domain is published: it
// waits for the change to be INSYNC (skipped when Present made no change),
// then for every authoritative name server to answer the value (UDP, TCP on
// truncation). Both are shared: one GetChange poll per change serves every
// value the batch carried, one DNS poll per name serves every value waited
// for there. Both polls start at about 250 ms and back off to 5 s. The whole
// wait is bounded by Options.PropagationTimeout and ctx; on timeout the
// error names what was missing and wraps context.DeadlineExceeded. A zone
// without a delegation set (private) and no Options.NameServers ends the
// wait at INSYNC.
func (p *Provider) Wait(ctx context.Context, domain, value string) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.PropagationTimeout)
	defer cancel()
	start := time.Now()
	domain = normDomain(domain)
	p.mu.Lock()
	pc, ok := p.pending[challenge{domain, value}]
	p.mu.Unlock()
	tgt := pc.target
	if !ok {
		var err error
		if tgt, err = p.knownTarget(ctx, domain); err != nil {
			return err
		}
	}
	if pc.changeID != "" {
		if err := p.waitInsync(ctx, pc.changeID, pc.at); err != nil {
			return err
		}
		p.log.Info("dns.insync", "name", tgt.name, "change", pc.changeID, "elapsed", time.Since(start))
	}
	insync := time.Now()
	servers, err := p.nameServers(ctx, tgt.zoneID)
	if err != nil {
		return err
	}
	if len(servers) == 0 {
		p.log.Info("dns.propagation_skipped", "name", tgt.name, "zone", tgt.zoneID, "reason", "zone has no delegation set")
		return nil
	}
	if err := p.waitServed(ctx, servers, tgt.name, value); err != nil {
		return err
	}
	p.obs.authoritative(time.Since(insync))
	p.log.Info("dns.propagated", "name", tgt.name, "elapsed", time.Since(start),
		"since_insync", time.Since(insync), "servers", len(servers))
	return nil
}

// changeWatch is the one GetChange poll of a change. Its fields are guarded
// by Provider.mu.
type changeWatch struct {
	done    chan struct{} // closed when INSYNC or err is set
	err     error
	status  types.ChangeStatus
	waiters int
	cancel  context.CancelFunc // stops the poll
}

// maxInsyncKept bounds how many INSYNC change IDs are remembered.
const maxInsyncKept = 4096

// waitInsync returns once change id is INSYNC, sharing one poll with every
// other waiter of id. accepted is when Route 53 accepted the change.
func (p *Provider) waitInsync(ctx context.Context, id string, accepted time.Time) error {
	p.mu.Lock()
	if p.insync[id] {
		p.mu.Unlock()
		return nil
	}
	w := p.changes[id]
	if w == nil {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w = &changeWatch{done: make(chan struct{}), status: types.ChangeStatusPending, cancel: cancel}
		p.changes[id] = w
		go p.pollChange(pctx, id, w, accepted)
	}
	w.waiters++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.waiters--
		if w.waiters == 0 {
			w.cancel()
			if p.changes[id] == w {
				delete(p.changes, id)
			}
		}
	}()
	select {
	case <-w.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return w.err
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		return fmt.Errorf("route53: change %s not INSYNC after %v (last status %s): %w",
			id, time.Since(accepted).Round(time.Millisecond), w.status, ctx.Err())
	}
}

// pollChange polls GetChange for id until it is INSYNC, fails, or ctx (the
// last waiter left) ends.
func (p *Provider) pollChange(ctx context.Context, id string, w *changeWatch, accepted time.Time) {
	end := func(err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.err = err
		close(w.done)
		if p.changes[id] == w {
			delete(p.changes, id)
		}
		if err == nil {
			p.insync[id] = true
			p.insyncQ = append(p.insyncQ, id)
			if len(p.insyncQ) > maxInsyncKept {
				delete(p.insync, p.insyncQ[0])
				p.insyncQ = p.insyncQ[1:]
			}
		}
	}
	for n := 1; ; n++ {
		var out *route53.GetChangeOutput
		err := p.call(ctx, "GetChange", "change/"+id, func(ctx context.Context) error {
			var err error
			out, err = p.client.GetChange(ctx, &route53.GetChangeInput{Id: aws.String(id)}, noSDKRetry)
			return err
		})
		if ctx.Err() != nil {
			return // no waiter left
		}
		if err != nil {
			end(err)
			return
		}
		if out.ChangeInfo != nil {
			p.mu.Lock()
			w.status = out.ChangeInfo.Status
			p.mu.Unlock()
			if out.ChangeInfo.Status == types.ChangeStatusInsync {
				p.obs.insync(time.Since(accepted))
				end(nil)
				return
			}
		}
		if sleep(ctx, p.poll.delay(n, p.rnd())) != nil {
			return
		}
	}
}

// serveWatch is the one DNS poll of a name at a set of servers. Its fields
// are guarded by Provider.mu.
type serveWatch struct {
	servers []string
	waiters map[*serveWaiter]bool
	kick    chan struct{} // buffered 1: a waiter joined, poll now
	cancel  context.CancelFunc
}

// serveWaiter is one value waited for; its fields are guarded by
// Provider.mu.
type serveWaiter struct {
	value   string
	missing map[string]bool  // servers that have not served value yet
	lastErr map[string]error // per server, the last query error
	done    chan struct{}    // closed when missing is empty
}

// waitServed waits until every server has answered value at name, sharing
// the poll with every other value waited for at name. A server that has
// served the value is not asked for it again.
func (p *Provider) waitServed(ctx context.Context, servers []string, name, value string) error {
	key := name + " " + strings.Join(servers, ",")
	sw := &serveWaiter{value: value, missing: map[string]bool{}, lastErr: map[string]error{}, done: make(chan struct{})}
	for _, s := range servers {
		sw.missing[s] = true
	}
	p.mu.Lock()
	w := p.watches[key]
	if w == nil {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w = &serveWatch{servers: servers, waiters: map[*serveWaiter]bool{}, kick: make(chan struct{}, 1), cancel: cancel}
		p.watches[key] = w
		go p.pollServed(pctx, key, name, w)
	}
	w.waiters[sw] = true
	p.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	select {
	case <-sw.done:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-sw.done: // served just now
		return nil
	default:
	}
	delete(w.waiters, sw)
	if len(w.waiters) == 0 {
		p.dropWatchLocked(key, w)
	}
	var missing, why []string
	for s := range sw.missing {
		missing = append(missing, s)
	}
	slices.Sort(missing)
	for _, s := range missing {
		if e := sw.lastErr[s]; e != nil {
			why = append(why, fmt.Sprintf("%s: %v", s, e))
		} else {
			why = append(why, s+": value not served yet")
		}
	}
	return fmt.Errorf("route53: %s not served by %d of %d name servers (%s): %w",
		name, len(missing), len(servers), strings.Join(why, "; "), ctx.Err())
}

// pollServed asks the servers some waiter still misses for name's TXT
// values, round after round, until no waiter is left.
func (p *Provider) pollServed(ctx context.Context, key, name string, w *serveWatch) {
	for n := 1; ; n++ {
		got := p.askRound(ctx, name, p.stillMissing(w))
		if ctx.Err() != nil {
			return
		}
		if p.settleRound(key, w, got) {
			return
		}
		t := time.NewTimer(p.poll.delay(n, p.rnd()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.kick:
			t.Stop()
			n = 0 // a new value: poll fast again
		case <-t.C:
		}
	}
}

// servedAnswer is one server's answer in a round of pollServed.
type servedAnswer struct {
	vals []string
	err  error
}

// stillMissing returns the servers that some waiter of w has not seen its
// value at yet.
func (p *Provider) stillMissing(w *serveWatch) map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ask := map[string]bool{}
	for sw := range w.waiters {
		for s := range sw.missing {
			ask[s] = true
		}
	}
	return ask
}

// askRound asks every server in ask for name's TXT values in parallel and
// returns their answers once all have answered (or failed).
func (p *Provider) askRound(ctx context.Context, name string, ask map[string]bool) map[string]servedAnswer {
	var mu sync.Mutex // guards got during the round
	got := map[string]servedAnswer{}
	var wg sync.WaitGroup
	for s := range ask {
		wg.Go(func() {
			vals, err := p.served(ctx, s, name)
			mu.Lock()
			defer mu.Unlock()
			got[s] = servedAnswer{vals, err}
		})
	}
	wg.Wait()
	return got
}

// settleRound applies a round's answers to w's waiters: a server that served
// a waiter's value is no longer missing for it, and a waiter missing none is
// released. It reports whether no waiter is left, in which case the watch is
// dropped.
func (p *Provider) settleRound(key string, w *serveWatch, got map[string]servedAnswer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for sw := range w.waiters {
		for s := range sw.missing {
			a := got[s]
			if a.err == nil && slices.Contains(a.vals, sw.value) {
				delete(sw.missing, s)
				continue
			}
			sw.lastErr[s] = a.err
		}
		if len(sw.missing) == 0 {
			close(sw.done)
			delete(w.waiters, sw)
		}
	}
	if len(w.waiters) > 0 {
		return false
	}
	p.dropWatchLocked(key, w)
	return true
}

// dropWatchLocked stops w's poll and forgets it under key (unless a newer
// watch took its place). p.mu must be held.
func (p *Provider) dropWatchLocked(key string, w *serveWatch) {
	w.cancel()
	if p.watches[key] == w {
		delete(p.watches, key)
	}
}

// served returns the TXT values server ("host:port") answers at name. The
// host is resolved with net.DefaultResolver; the first of its addresses
// that answers decides.
func (p *Provider) served(ctx context.Context, server, name string) ([]string, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return nil, err
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		vals, err := p.queryTXT(ctx, net.JoinHostPort(a, port), name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return vals, nil
	}
	return nil, errors.Join(errs...)
}

// queryTXT asks addr for the TXT values at name over UDP, retrying over TCP
// if the answer is truncated. NXDOMAIN and NODATA give no values.
func (p *Provider) queryTXT(ctx context.Context, addr, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: "udp", Timeout: p.dnsQuery}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, addr)
	}
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s answered %s", addr, dns.RcodeToString[r.Rcode])
	}
	var vals []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			vals = append(vals, unescapeTXT(strings.Join(t.Txt, "")))
		}
	}
	return vals, nil
}

// unescapeTXT undoes miekg/dns's presentation escapes (\" \\ \DDD decimal).
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
				b.WriteByte((s[i+1]-'0')*100 + (s[i+2]-'0')*10 + (s[i+3] - '0'))
				i += 3
				continue
			}
			i++
			c = s[i]
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
