package route53dns

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
)

func TestRetriesOnThrottlingWithExactCallCounts(t *testing.T) {
	tests := []struct {
		name   string
		op     string
		code   string
		times  int
		wantOp int // calls of op for one Present
	}{
		{"throttling storm on change", fakeroute53.OpChangeResourceRecordSets, "Throttling", 5, 6},
		{"prior request not complete", fakeroute53.OpChangeResourceRecordSets, "PriorRequestNotComplete", 3, 4},
		{"throttling on read", fakeroute53.OpListResourceRecordSets, "Throttling", 2, 3},
		{"service unavailable", fakeroute53.OpChangeResourceRecordSets, "ServiceUnavailable", 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			p := e.provider(t, Options{ZoneID: "ZA", NameServers: []string{e.dns.Addr()}})
			e.fake.Fail(tt.op, fakeroute53.Fault{Code: tt.code, Times: tt.times})
			ctx := ctxTimeout(t)
			if err := p.Present(ctx, "example.test", apexValue); err != nil {
				t.Fatalf("Present after %d x %s: %v", tt.times, tt.code, err)
			}
			want := map[string]int{
				fakeroute53.OpListHostedZonesByName:    0,
				fakeroute53.OpGetHostedZone:            0,
				fakeroute53.OpListResourceRecordSets:   1,
				fakeroute53.OpChangeResourceRecordSets: 1,
				fakeroute53.OpGetChange:                0,
			}
			want[tt.op] = tt.wantOp
			got := e.calls()
			for op, n := range want {
				if got[op] != n {
					t.Errorf("%s calls = %d; want %d", op, got[op], n)
				}
			}
			if err := p.Wait(ctx, "example.test", apexValue); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAccessDeniedStopsAtOnce(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		op         string
		wait       bool // fail in Wait instead of Present
		wantAction string
		wantRes    string
	}{
		{"change", Options{ZoneID: "ZA"}, fakeroute53.OpChangeResourceRecordSets, false,
			"route53:ChangeResourceRecordSets", "hostedzone/ZA"},
		{"read", Options{ZoneID: "ZA"}, fakeroute53.OpListResourceRecordSets, false,
			"route53:ListResourceRecordSets", "hostedzone/ZA"},
		{"discovery", Options{}, fakeroute53.OpListHostedZonesByName, false,
			"route53:ListHostedZonesByName", "*"},
		{"get change", Options{ZoneID: "ZA"}, fakeroute53.OpGetChange, true,
			"route53:GetChange", "change/C"},
		{"get hosted zone", Options{ZoneID: "ZA"}, fakeroute53.OpGetHostedZone, true,
			"route53:GetHostedZone", "hostedzone/ZA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			p := e.provider(t, tt.opts)
			ctx := ctxTimeout(t)
			e.fake.Fail(tt.op, fakeroute53.Fault{Code: "AccessDenied"})
			start := time.Now()
			err := p.Present(ctx, "example.test", apexValue)
			if tt.wait {
				if err != nil {
					t.Fatal(err)
				}
				err = p.Wait(ctx, "example.test", apexValue)
			}
			if !errors.Is(err, ErrAccessDenied) {
				t.Fatalf("err = %v; want ErrAccessDenied", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v; want an immediate failure", d)
			}
			if got := e.fake.Calls(tt.op); got != 1 {
				t.Errorf("%s calls = %d; want exactly 1", tt.op, got)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "route53: access denied for "+tt.wantAction+" on "+tt.wantRes) {
				t.Errorf("message = %q; want it to name %s on %s", msg, tt.wantAction, tt.wantRes)
			}
			var ra interface{ RetryAfter() time.Duration }
			if !errors.As(err, &ra) || ra.RetryAfter() < time.Hour {
				t.Errorf("RetryAfter missing or < 1h in %v", err)
			}
			var ade *AccessDeniedError
			if !errors.As(err, &ade) || ade.Action != tt.wantAction {
				t.Errorf("AccessDeniedError.Action = %+v; want %s", ade, tt.wantAction)
			}
		})
	}
}

func TestBackoffDelays(t *testing.T) {
	b := backoff{base: 250 * time.Millisecond, max: 5 * time.Second}
	for n, want := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 3: time.Second, 6: 5 * time.Second, 30: 5 * time.Second} {
		for range 20 {
			if got := b.delay(n); got < want/2 || got >= want {
				t.Fatalf("delay(%d) = %v; want in [%v, %v)", n, got, want/2, want)
			}
		}
	}
}
