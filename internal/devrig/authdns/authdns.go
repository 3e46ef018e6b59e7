// Package authdns is a small authoritative DNS server over an in-memory record
// set. It stands in for a hosted zone's name servers in tests and in the
// offline demo: the Route 53 fake publishes its record sets here, Pebble's
// validator and edgecert's propagation check query it.
//
// It serves UDP and TCP on the same port (Pebble's validator uses TCP only,
// the propagation check may use either). Every answer has the AA bit set.
// A name with no records at all is NXDOMAIN; a name with records of other
// types is NOERROR with an empty answer. A CNAME at the queried name is
// returned together with the target's records of the queried type when the
// target is served here too.
package authdns

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Server is an authoritative DNS server. Its methods are safe for concurrent
// use.
type Server struct {
	udp, tcp *dns.Server
	addr     string
	queries  atomic.Int64

	mu      sync.RWMutex       // guards records
	records map[rrKey][]dns.RR // by lower-case FQDN and type
}

type rrKey struct {
	name  string
	rtype uint16
}

// Start listens on addr ("127.0.0.1:0" picks a free port) for both UDP and
// TCP and serves until Close.
func Start(addr string) (*Server, error) {
	s := &Server{records: make(map[rrKey][]dns.RR)}
	var lastErr error
	// With port 0 the TCP port is chosen first and UDP must get the same
	// number; retry a few times if it is taken for UDP.
	for range 10 {
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("authdns: listen tcp: %w", err)
		}
		pc, err := net.ListenPacket("udp", tl.Addr().String())
		if err != nil {
			tl.Close()
			lastErr = err
			continue
		}
		s.addr = tl.Addr().String()
		s.tcp = &dns.Server{Listener: tl, Handler: s}
		s.udp = &dns.Server{PacketConn: pc, Handler: s}
		started := make(chan error, 2)
		s.tcp.NotifyStartedFunc = func() { started <- nil }
		s.udp.NotifyStartedFunc = func() { started <- nil }
		go func() {
			if err := s.tcp.ActivateAndServe(); err != nil {
				started <- err
			}
		}()
		go func() {
			if err := s.udp.ActivateAndServe(); err != nil {
				started <- err
			}
		}()
		for range 2 {
			if err := <-started; err != nil {
				s.Close()
				return nil, fmt.Errorf("authdns: serve: %w", err)
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("authdns: listen udp: %w", lastErr)
}

// Addr is the host:port the server answers on, for both UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Queries reports how many queries the server has answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Close stops both listeners.
func (s *Server) Close() error {
	return errors.Join(s.tcp.Shutdown(), s.udp.Shutdown())
}

// SetTXT replaces the TXT record set at name with values; no values removes
// it. Each value is one TXT record (one string).
func (s *Server) SetTXT(name string, ttl uint32, values ...string) {
	name = Canonical(name)
	rrs := make([]dns.RR, 0, len(values))
	for _, v := range values {
		rrs = append(rrs, &dns.TXT{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
			Txt: []string{v},
		})
	}
	s.set(rrKey{name, dns.TypeTXT}, rrs)
}

// SetCNAME points name at target; an empty target removes the CNAME.
func (s *Server) SetCNAME(name string, ttl uint32, target string) {
	name = Canonical(name)
	var rrs []dns.RR
	if target != "" {
		rrs = []dns.RR{&dns.CNAME{
			Hdr:    dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
			Target: Canonical(target),
		}}
	}
	s.set(rrKey{name, dns.TypeCNAME}, rrs)
}

// TXT returns the TXT values served at name, in order.
func (s *Server) TXT(name string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, rr := range s.records[rrKey{Canonical(name), dns.TypeTXT}] {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out
}

// Names returns every name that has records, for leak checks in tests.
func (s *Server) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]bool{}
	var out []string
	for k := range s.records {
		if !seen[k.name] {
			seen[k.name] = true
			out = append(out, k.name)
		}
	}
	return out
}

func (s *Server) set(k rrKey, rrs []dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rrs) == 0 {
		delete(s.records, k)
		return
	}
	s.records[k] = rrs
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		s.answer(m, Canonical(q.Name), q.Qtype)
	} else {
		m.Rcode = dns.RcodeFormatError
	}
	_ = w.WriteMsg(m) // the client has gone away; nothing to do
}

func (s *Server) answer(m *dns.Msg, name string, qtype uint16) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rrs, ok := s.records[rrKey{name, qtype}]; ok {
		m.Answer = append(m.Answer, rrs...)
		return
	}
	if c, ok := s.records[rrKey{name, dns.TypeCNAME}]; ok {
		m.Answer = append(m.Answer, c...)
		m.Answer = append(m.Answer, s.records[rrKey{c[0].(*dns.CNAME).Target, qtype}]...)
		return
	}
	for k := range s.records {
		if k.name == name {
			return // NOERROR, no data
		}
	}
	m.Rcode = dns.RcodeNameError
}

// Canonical returns name in lower case with a trailing dot.
func Canonical(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}
