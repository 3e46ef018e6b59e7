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
	tests := []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{1, 0, 125 * time.Millisecond}, // [d/2, d) with d = base
		{1, 0.5, 187500 * time.Microsecond},
		{1, 0.999999, 249999875 * time.Nanosecond},
		{2, 0, 250 * time.Millisecond},
		{3, 0, 500 * time.Millisecond},
		{3, 0.5, 750 * time.Millisecond},
		{6, 0, 2500 * time.Millisecond}, // capped at max
		{6, 0.5, 3750 * time.Millisecond},
		{30, 0, 2500 * time.Millisecond},
		{1000, 0.999999, 4999997500 * time.Nanosecond},
	}
	for _, tt := range tests {
		if got := b.delay(tt.n, tt.u); got != tt.want {
			t.Errorf("delay(%d, %v) = %v; want %v", tt.n, tt.u, got, tt.want)
		}
	}
	// Jitter: different draws spread the retries of many clients.
	if b.delay(4, 0.1) == b.delay(4, 0.9) {
		t.Error("delay does not depend on the draw")
	}
	tiny := backoff{base: time.Nanosecond, max: time.Nanosecond}
	if got := tiny.delay(5, 0.7); got != time.Nanosecond {
		t.Errorf("1ns backoff delay = %v", got)
	}
}
