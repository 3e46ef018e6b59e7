package authdns

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func query(t *testing.T, net, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", net, name, err)
	}
	return r
}

func txtValues(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, t.Txt...)
		}
	}
	return out
}

func TestServeTXTOverUDPAndTCP(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTXT("_acme-challenge.Example.test", 10, "a", "b")
	for _, n := range []string{"udp", "tcp"} {
		r := query(t, n, s.Addr(), "_acme-challenge.example.test", dns.TypeTXT)
		if !r.Authoritative || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("%s: aa=%v rcode=%d; want aa, NOERROR", n, r.Authoritative, r.Rcode)
		}
		if got := txtValues(r); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("%s: TXT = %q; want [a b]", n, got)
		}
	}
	if got := query(t, "udp", s.Addr(), "missing.example.test", dns.TypeTXT).Rcode; got != dns.RcodeNameError {
		t.Errorf("missing name rcode = %d; want NXDOMAIN", got)
	}
	if got := query(t, "udp", s.Addr(), "_acme-challenge.example.test", dns.TypeA); got.Rcode != dns.RcodeSuccess || len(got.Answer) != 0 {
		t.Errorf("other type: rcode=%d answers=%d; want NOERROR, none", got.Rcode, len(got.Answer))
	}
	s.SetTXT("_acme-challenge.example.test", 10)
	if got := s.Names(); len(got) != 0 {
		t.Errorf("Names after removal = %q; want none", got)
	}
	if s.Queries() != 4 {
		t.Errorf("Queries = %d; want 4", s.Queries())
	}
}

func TestCNAMEFollowsIntoServedTarget(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetCNAME("_acme-challenge.a.test", 10, "a.challenges.test")
	s.SetTXT("a.challenges.test", 10, "tok")
	r := query(t, "tcp", s.Addr(), "_acme-challenge.a.test", dns.TypeTXT)
	if len(r.Answer) != 2 {
		t.Fatalf("answers = %v; want CNAME + TXT", r.Answer)
	}
	if _, ok := r.Answer[0].(*dns.CNAME); !ok {
		t.Errorf("first answer %T; want *dns.CNAME", r.Answer[0])
	}
	if got := txtValues(r); !slices.Equal(got, []string{"tok"}) {
		t.Errorf("TXT via CNAME = %q; want [tok]", got)
	}
}
