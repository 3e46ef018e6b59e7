package route53dns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/edgecert/edgecert/internal/devrig/authdns/authdnstest"
	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/poll"
)

func TestWaitBoundedWhenInsyncIsLate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		insync time.Duration
		never  bool
	}{
		{"INSYNC after the timeout", 10 * time.Second, false},
		{"INSYNC never arrives", time.Millisecond, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{insync: tt.insync})
			e.fake.SetNeverInsync(tt.never)
			p := e.provider(t, Options{ZoneID: "ZA", PropagationTimeout: 300 * time.Millisecond})
			ctx := ctxTimeout(t)
			if err := p.Present(ctx, "example.test", apexValue); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := p.Wait(ctx, "example.test", apexValue)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not INSYNC") {
				t.Fatalf("Wait = %v; want a not-INSYNC deadline error", err)
			}
			if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
				t.Errorf("Wait returned after %v; want about the 300ms PropagationTimeout", d)
			}
			if got := e.dns.TXT(challengeName); len(got) != 0 {
				t.Errorf("name server serves %q before INSYNC", got)
			}
			if got := e.fake.Calls(fakeroute53.OpGetHostedZone); got != 0 {
				t.Errorf("GetHostedZone calls = %d; want 0 (never got past INSYNC)", got)
			}
			if err := p.CleanUp(context.Background(), "example.test", apexValue); err != nil {
				t.Fatal(err)
			}
			if got := e.fake.TXT("ZA", challengeName); got != nil {
				t.Errorf("TXT after CleanUp = %q; want none", got)
			}
		})
	}
}

// TestWaitForEveryNameServer uses two authoritative servers, the second one
// lagging behind INSYNC.
func TestWaitForEveryNameServer(t *testing.T) {
	t.Parallel()
	mirror := authdnstest.Start(t)
	const lag = 400 * time.Millisecond
	e := newEnv(t, envOpts{insync: 50 * time.Millisecond, mirrors: []fakeroute53.Mirror{{DNS: mirror, Lag: lag}}})
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr(), mirror.Addr()}})
	ctx := ctxTimeout(t)
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	id := p.pending[challenge{"example.test", apexValue}].changeID
	if err := p.Wait(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	insyncAt, ok := e.fake.InsyncTime(id)
	if !ok {
		t.Fatal("Wait returned before the change was INSYNC")
	}
	if d := done.Sub(insyncAt); d < lag {
		t.Errorf("Wait returned %v after INSYNC; want >= the mirror's %v lag", d, lag)
	}
	for _, s := range []interface{ TXT(string) []string }{e.dns, mirror} {
		if got := s.TXT(challengeName); !slices.Equal(got, []string{apexValue}) {
			t.Errorf("a name server serves %q when Wait returns; want the value", got)
		}
	}
}

func TestWaitNamesTheServerThatNeverServes(t *testing.T) {
	t.Parallel()
	mirror := authdnstest.Start(t)
	e := newEnv(t, envOpts{mirrors: []fakeroute53.Mirror{{DNS: mirror, Lag: time.Hour}}})
	p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr(), mirror.Addr()}, PropagationTimeout: 500 * time.Millisecond})
	ctx := ctxTimeout(t)
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	err := p.Wait(ctx, "example.test", apexValue)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), mirror.Addr()) ||
		strings.Contains(err.Error(), e.dns.Addr()) || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("Wait = %v; want a deadline error naming only %s", err, mirror.Addr())
	}
}

func TestWaitPrivateZoneEndsAtInsync(t *testing.T) {
	e := newEnv(t, envOpts{insync: 20 * time.Millisecond, zones: []fakeroute53.Zone{{ID: "ZP", Name: "example.test", Private: true}}})
	rec := &recorder{}
	p := e.provider(t, Options{PrivateZone: true, Logger: slog.New(rec)})
	ctx := ctxTimeout(t)
	if err := p.Present(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx, "example.test", apexValue); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.TXT("ZP", challengeName); !slices.Equal(got, []string{apexValue}) {
		t.Errorf("private zone TXT = %q; want the value", got)
	}
	if _, ok := rec.attr("dns.propagation_skipped", "zone"); !ok {
		t.Error("no dns.propagation_skipped event for a zone without a delegation set")
	}
	if _, ok := rec.attr("dns.insync", "elapsed"); !ok {
		t.Error("Wait skipped INSYNC")
	}
}

// startTruncatingDNS serves, on one port, a UDP answer with TC set and no
// records and the full answer over TCP.
func startTruncatingDNS(t *testing.T, name, value string) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncated = true
		} else {
			m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 10}, Txt: []string{value}}}
		}
		_ = w.WriteMsg(m)
	})
	for range 10 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", tl.Addr().String())
		if err != nil {
			tl.Close()
			continue
		}
		tcp := &dns.Server{Listener: tl, Handler: handler}
		udp := &dns.Server{PacketConn: pc, Handler: handler}
		go tcp.ActivateAndServe()
		go udp.ActivateAndServe()
		t.Cleanup(func() {
			tcp.Shutdown()
			udp.Shutdown()
		})
		return tl.Addr().String()
	}
	t.Fatal("no port free for both UDP and TCP")
	return ""
}

func TestQueryFallsBackToTCPOnTruncation(t *testing.T) {
	addr := startTruncatingDNS(t, challengeName, apexValue)
	p, err := New(newClient("http://127.0.0.1:1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t)
	var vals []string
	poll.Until(t, 10*time.Second, "truncating server to answer", func() bool {
		vals, err = p.queryTXT(ctx, addr, challengeName)
		return err == nil
	})
	if !slices.Equal(vals, []string{apexValue}) {
		t.Errorf("values = %q; want the TCP answer", vals)
	}
	vals, err = p.served(ctx, addr, challengeName)
	if !slices.Contains(vals, apexValue) || err != nil {
		t.Errorf("served = %q, %v; want the value", vals, err)
	}
}

// BenchmarkPropagation measures, with production poll timings, the time from
// the fake's INSYNC to Wait returning (ms/median-insync-to-ready) and from
// INSYNC observed to "propagated", the authoritative check alone
// (us/median-check, the dns.propagated since_insync attribute). Each
// iteration is one Present, Wait and CleanUp. Target: INSYNC to ready under
// 300 ms locally.
func BenchmarkPropagation(b *testing.B) {
	e := newEnv(b, envOpts{insync: 100 * time.Millisecond})
	rec := &recorder{}
	p, err := New(newClient(e.url), Options{ZoneID: "ZA", Logger: slog.New(rec)}) // delegation set, real polling
	if err != nil {
		b.Fatal(err)
	}
	ctx := ctxTimeout(b)
	var endToEnd, checkOnly []time.Duration
	for i := 0; b.Loop(); i++ {
		v := apexValue + strconv.Itoa(i)
		if err := p.Present(ctx, "example.test", v); err != nil {
			b.Fatal(err)
		}
		id := p.pending[challenge{"example.test", v}].changeID
		if err := p.Wait(ctx, "example.test", v); err != nil {
			b.Fatal(err)
		}
		done := time.Now()
		at, ok := e.fake.InsyncTime(id)
		if !ok {
			b.Fatal("Wait returned before INSYNC")
		}
		endToEnd = append(endToEnd, done.Sub(at))
		si, ok := rec.attr("dns.propagated", "since_insync")
		if !ok {
			b.Fatal("no dns.propagated event")
		}
		checkOnly = append(checkOnly, si.Duration())
		if err := p.CleanUp(context.Background(), "example.test", v); err != nil {
			b.Fatal(err)
		}
	}
	median := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	b.ReportMetric(float64(median(endToEnd).Microseconds())/1000, "ms/median-insync-to-ready")
	b.ReportMetric(float64(median(checkOnly).Microseconds()), "us/median-check")
}
