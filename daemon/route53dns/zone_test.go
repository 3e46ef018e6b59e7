package route53dns

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
)

func TestZoneDiscovery(t *testing.T) {
	zones := []fakeroute53.Zone{
		{ID: "ZSUB", Name: "sub.example.test"},
		{ID: "ZPRIV", Name: "sub.example.test", Private: true},
		{ID: "ZOTHER", Name: "other.test"},
		{ID: "ZDUP1", Name: "dup.test"},
		{ID: "ZDUP2", Name: "dup.test"},
	}
	tests := []struct {
		name      string
		opts      Options
		domain    string
		wantZone  string // "" = error
		wantErr   string
		wantLists int // ListHostedZonesByName calls: the zone list is read once
	}{
		{"deepest public zone", Options{}, "a.sub.example.test", "ZSUB", "", 1},
		{"parent zone", Options{}, "www.example.test", "ZA", "", 1},
		{"private zone", Options{PrivateZone: true}, "a.sub.example.test", "ZPRIV", "", 1},
		{"no private parent", Options{PrivateZone: true}, "www.example.test", "", "no private zone contains", 1},
		{"zone ID override skips discovery", Options{ZoneID: "ZA"}, "a.sub.example.test", "ZA", "", 0},
		{"two public zones with one name", Options{}, "dup.test", "", "2 public hosted zones named dup.test.", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{zones: zones})
			p := e.provider(t, tt.opts)
			ctx := ctxTimeout(t)
			err := p.Present(ctx, tt.domain, apexValue)
			if got := e.fake.Calls(fakeroute53.OpListHostedZonesByName); got != tt.wantLists {
				t.Errorf("ListHostedZonesByName calls = %d; want %d", got, tt.wantLists)
			}
			if tt.wantZone == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Present = %v; want error containing %q", err, tt.wantErr)
				}
				if strings.Contains(tt.wantErr, "no private") && !errors.Is(err, ErrNoZone) {
					t.Errorf("err = %v; want ErrNoZone", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id, err := p.ZoneID(ctx, "*."+tt.domain); err != nil || id != tt.wantZone {
				t.Errorf("ZoneID = %q, %v; want %s", id, err, tt.wantZone)
			}
			name := RecordName(tt.domain)
			if got := e.fake.TXT(tt.wantZone, name); !slices.Equal(got, []string{apexValue}) {
				t.Errorf("TXT in %s = %q; want the value there", tt.wantZone, got)
			}
			// The answer is cached per name: more values, no more lookups.
			if err := p.Present(ctx, "*."+tt.domain, wildcardValue); err != nil {
				t.Fatal(err)
			}
			if err := p.CleanUp(context.Background(), tt.domain, apexValue); err != nil {
				t.Fatal(err)
			}
			if got := e.fake.Calls(fakeroute53.OpListHostedZonesByName); got != tt.wantLists {
				t.Errorf("ListHostedZonesByName calls after cached use = %d; want still %d", got, tt.wantLists)
			}
		})
	}
}

func createCNAME(t *testing.T, e *env, zoneID, name, target string) {
	t.Helper()
	_, err := e.client.ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{{
			Action: types.ChangeActionCreate,
			ResourceRecordSet: &types.ResourceRecordSet{
				Name: aws.String(name), Type: types.RRTypeCname, TTL: aws.Int64(60),
				ResourceRecords: []types.ResourceRecord{{Value: aws.String(target)}},
			},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFollowCNAME(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{zones: []fakeroute53.Zone{{ID: "ZDEL", Name: "acme-delegate.test"}}})
	// The delegate zone is served by the same authdns server.
	const alias, target = "_acme-challenge.www.example.test.", "www-example.acme-delegate.test."
	createCNAME(t, e, "ZA", alias, target)
	e.fake.ResetCalls()
	ctx := ctxTimeout(t)

	t.Run("off: the CNAME blocks the write", func(t *testing.T) {
		p := e.provider(t, Options{NameServers: []string{e.dns.Addr()}})
		err := p.Present(ctx, "www.example.test", apexValue)
		if err == nil || !strings.Contains(err.Error(), "conflicting RRSet of type") {
			t.Fatalf("Present = %v; want the CNAME conflict", err)
		}
		if got := e.fake.Calls(fakeroute53.OpChangeResourceRecordSets); got != p.cas.attempts {
			t.Errorf("ChangeResourceRecordSets calls = %d; want %d (bounded)", got, p.cas.attempts)
		}
	})

	t.Run("on: written at the target", func(t *testing.T) {
		p := e.provider(t, Options{FollowCNAME: true, NameServers: []string{e.dns.Addr()}})
		if err := p.Present(ctx, "www.example.test", apexValue); err != nil {
			t.Fatal(err)
		}
		if got := e.fake.TXT("ZDEL", target); !slices.Equal(got, []string{apexValue}) {
			t.Errorf("TXT at target = %q; want the value", got)
		}
		if got := e.fake.TXT("ZA", alias); got != nil {
			t.Errorf("TXT at the alias = %q; want none", got)
		}
		if err := p.Wait(ctx, "www.example.test", apexValue); err != nil {
			t.Fatal(err)
		}
		// What the CA sees: the alias resolves through the CNAME to the value.
		if got := e.dns.TXT(target); !slices.Equal(got, []string{apexValue}) {
			t.Errorf("served at target = %q; want the value", got)
		}
		if err := p.CleanUp(context.Background(), "www.example.test", apexValue); err != nil {
			t.Fatal(err)
		}
		if got := e.fake.TXT("ZDEL", target); got != nil {
			t.Errorf("TXT at target after CleanUp = %q; want none", got)
		}
	})

	t.Run("loop is an error", func(t *testing.T) {
		createCNAME(t, e, "ZDEL", "loop.acme-delegate.test", "_acme-challenge.loop.acme-delegate.test")
		createCNAME(t, e, "ZDEL", "_acme-challenge.loop.acme-delegate.test", "loop.acme-delegate.test")
		p := e.provider(t, Options{FollowCNAME: true})
		err := p.Present(ctx, "loop.acme-delegate.test", apexValue)
		if err == nil || !strings.Contains(err.Error(), "loop") {
			t.Fatalf("Present = %v; want a loop error", err)
		}
	})
}
