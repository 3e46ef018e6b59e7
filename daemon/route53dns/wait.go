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

// Wait returns once the value Present added for domain is published: it polls
// GetChange until the change is INSYNC (skipped when Present made no change),
// then asks every authoritative name server directly (UDP, TCP on truncation)
// until all of them serve the value. Both polls start at about 250 ms and back
// off to 5 s. The whole wait is bounded by Options.PropagationTimeout and ctx;
// on timeout the error names what was missing and wraps
// context.DeadlineExceeded. A zone without a delegation set (private) and no
// Options.NameServers ends the wait at INSYNC.
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
		if err := p.waitInsync(ctx, pc.changeID); err != nil {
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
	p.log.Info("dns.propagated", "name", tgt.name, "elapsed", time.Since(start),
		"since_insync", time.Since(insync), "servers", len(servers))
	return nil
}

// waitInsync polls GetChange until id is INSYNC.
func (p *Provider) waitInsync(ctx context.Context, id string) error {
	status := types.ChangeStatusPending
	for n := 1; ; n++ {
		var out *route53.GetChangeOutput
		err := p.call(ctx, "GetChange", "change/"+id, func(ctx context.Context) error {
			var err error
			out, err = p.client.GetChange(ctx, &route53.GetChangeInput{Id: aws.String(id)}, noSDKRetry)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("route53: change %s not INSYNC (last status %s): %w", id, status, ctx.Err())
			}
			return err
		}
		if out.ChangeInfo != nil {
			status = out.ChangeInfo.Status
		}
		if status == types.ChangeStatusInsync {
			return nil
		}
		if err := sleep(ctx, p.poll.delay(n)); err != nil {
			return fmt.Errorf("route53: change %s not INSYNC (last status %s): %w", id, status, err)
		}
	}
}

// waitServed polls every server until each has answered with value at name.
// A server that has served it is not asked again.
func (p *Provider) waitServed(ctx context.Context, servers []string, name, value string) error {
	missing := slices.Clone(servers)
	lastErr := make(map[string]error)
	for n := 1; ; n++ {
		var mu sync.Mutex // guards next and lastErr during the round
		var next []string
		var wg sync.WaitGroup
		for _, s := range missing {
			wg.Go(func() {
				ok, err := p.serves(ctx, s, name, value)
				mu.Lock()
				defer mu.Unlock()
				if !ok {
					next = append(next, s)
					lastErr[s] = err
				}
			})
		}
		wg.Wait()
		missing = next
		if len(missing) == 0 {
			return nil
		}
		if err := sleep(ctx, p.poll.delay(n)); err != nil {
			slices.Sort(missing)
			var why []string
			for _, s := range missing {
				if e := lastErr[s]; e != nil {
					why = append(why, fmt.Sprintf("%s: %v", s, e))
				} else {
					why = append(why, s+": value not served yet")
				}
			}
			return fmt.Errorf("route53: %s not served by %d of %d name servers (%s): %w",
				name, len(missing), len(servers), strings.Join(why, "; "), err)
		}
	}
}

// serves reports whether server ("host:port") answers value at name. The
// host is resolved with net.DefaultResolver; the first of its addresses that
// answers decides.
func (p *Provider) serves(ctx context.Context, server, name, value string) (bool, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return false, err
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return false, err
	}
	var errs []error
	for _, a := range addrs {
		vals, err := p.queryTXT(ctx, net.JoinHostPort(a, port), name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return slices.Contains(vals, value), nil
	}
	return false, errors.Join(errs...)
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
