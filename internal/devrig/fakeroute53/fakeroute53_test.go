package fakeroute53

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"
	"github.com/miekg/dns"

	"github.com/edgecert/edgecert/internal/devrig/authdns"
	"github.com/edgecert/edgecert/internal/devrig/authdns/authdnstest"
)

// rig is a fake behind a real HTTP listener plus an SDK client without
// retries.
type rig struct {
	fake   *Server
	client *route53.Client
	url    string
}

func newRig(t *testing.T, opts Options, zones ...Zone) *rig {
	t.Helper()
	f := New(opts)
	for _, z := range zones {
		f.AddZone(z)
	}
	hs := httptest.NewServer(f)
	t.Cleanup(func() {
		hs.Close()
		f.Close()
	})
	return &rig{fake: f, url: hs.URL, client: newClient(hs.URL, aws.NopRetryer{})}
}

func newClient(url string, r aws.Retryer, opts ...func(*route53.Options)) *route53.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
		Retryer:     func() aws.Retryer { return r },
	}
	return route53.NewFromConfig(cfg, append([]func(*route53.Options){func(o *route53.Options) { o.BaseEndpoint = aws.String(url) }}, opts...)...)
}

func txtSet(name string, ttl int64, quoted ...string) *types.ResourceRecordSet {
	rs := &types.ResourceRecordSet{Name: aws.String(name), Type: types.RRTypeTxt, TTL: aws.Int64(ttl)}
	for _, v := range quoted {
		rs.ResourceRecords = append(rs.ResourceRecords, types.ResourceRecord{Value: aws.String(v)})
	}
	return rs
}

func chg(a types.ChangeAction, rs *types.ResourceRecordSet) types.Change {
	return types.Change{Action: a, ResourceRecordSet: rs}
}

func (r *rig) change(ctx context.Context, zoneID string, changes ...types.Change) (*route53.ChangeResourceRecordSetsOutput, error) {
	return r.client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch:  &types.ChangeBatch{Changes: changes},
	})
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

var zoneA = Zone{ID: "/hostedzone/ZA", Name: "example.test", NameServers: []string{"ns1.example.test", "ns2.example.test"}}

func TestListHostedZonesByNameFromStartPoint(t *testing.T) {
	r := newRig(t, Options{},
		zoneA,
		Zone{ID: "ZSUB", Name: "sub.example.test."},
		Zone{ID: "ZPRIV", Name: "sub.example.test", Private: true},
		Zone{ID: "ZOTHER", Name: "other.test"},
	)
	ctx := t.Context()
	out, err := r.client.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{DNSName: aws.String("sub.example.test")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, z := range out.HostedZones {
		got = append(got, aws.ToString(z.Id)+" "+aws.ToString(z.Name))
	}
	// example.test sorts before the start point; other.test after it.
	want := []string{"/hostedzone/ZPRIV sub.example.test.", "/hostedzone/ZSUB sub.example.test.", "/hostedzone/ZOTHER other.test."}
	if !slices.Equal(got, want) {
		t.Errorf("zones = %q; want %q", got, want)
	}
	if !out.HostedZones[0].Config.PrivateZone || out.HostedZones[1].Config.PrivateZone {
		t.Errorf("private flags = %v, %v; want true, false", out.HostedZones[0].Config.PrivateZone, out.HostedZones[1].Config.PrivateZone)
	}

	page, err := r.client.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{DNSName: aws.String("sub.example.test"), MaxItems: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if !page.IsTruncated || aws.ToString(page.NextDNSName) != "sub.example.test." || aws.ToString(page.NextHostedZoneId) != "ZSUB" {
		t.Errorf("page 1: truncated=%v next=%q/%q; want true sub.example.test./ZSUB", page.IsTruncated, aws.ToString(page.NextDNSName), aws.ToString(page.NextHostedZoneId))
	}
	page2, err := r.client.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{DNSName: page.NextDNSName, HostedZoneId: page.NextHostedZoneId, MaxItems: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page2.HostedZones) != 1 || aws.ToString(page2.HostedZones[0].Id) != "/hostedzone/ZSUB" {
		t.Errorf("page 2 = %+v; want ZSUB", page2.HostedZones)
	}
	if got := r.fake.Calls(OpListHostedZonesByName); got != 3 {
		t.Errorf("Calls = %d; want 3", got)
	}
}

func TestGetHostedZoneDelegationSet(t *testing.T) {
	r := newRig(t, Options{}, zoneA, Zone{ID: "ZP", Name: "example.test", Private: true})
	out, err := r.client.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String("/hostedzone/ZA")})
	if err != nil {
		t.Fatal(err)
	}
	if out.DelegationSet == nil || !slices.Equal(out.DelegationSet.NameServers, zoneA.NameServers) {
		t.Errorf("delegation set = %+v; want %q", out.DelegationSet, zoneA.NameServers)
	}
	priv, err := r.client.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String("ZP")})
	if err != nil {
		t.Fatal(err)
	}
	if priv.DelegationSet != nil || len(priv.VPCs) != 1 {
		t.Errorf("private zone: delegation=%+v vpcs=%d; want none, 1", priv.DelegationSet, len(priv.VPCs))
	}
	_, err = r.client.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String("ZNOPE")})
	var nsz *types.NoSuchHostedZone
	if !errors.As(err, &nsz) {
		t.Errorf("unknown zone err = %v; want *types.NoSuchHostedZone", err)
	}
}

func TestChangeBatchSemantics(t *testing.T) {
	const name = "_acme-challenge.example.test."
	tests := []struct {
		name    string
		seed    []string // unquoted values at name, TTL 10, before the batch
		changes []types.Change
		wantErr string   // substring of an InvalidChangeBatch/InvalidInput message; "" = success
		want    []string // values at name afterwards
	}{
		{
			name:    "create new",
			changes: []types.Change{chg(types.ChangeActionCreate, txtSet(name, 10, `"a"`))},
			want:    []string{"a"},
		},
		{
			name:    "create existing fails",
			seed:    []string{"a"},
			changes: []types.Change{chg(types.ChangeActionCreate, txtSet(name, 10, `"b"`))},
			wantErr: "but it already exists",
			want:    []string{"a"},
		},
		{
			name:    "delete with other TTL fails",
			seed:    []string{"a"},
			changes: []types.Change{chg(types.ChangeActionDelete, txtSet(name, 300, `"a"`))},
			wantErr: "do not match the current values",
			want:    []string{"a"},
		},
		{
			name:    "delete with subset of values fails",
			seed:    []string{"a", "b"},
			changes: []types.Change{chg(types.ChangeActionDelete, txtSet(name, 10, `"a"`))},
			wantErr: "do not match the current values",
			want:    []string{"a", "b"},
		},
		{
			name:    "delete missing fails",
			changes: []types.Change{chg(types.ChangeActionDelete, txtSet(name, 10, `"a"`))},
			wantErr: "but it was not found",
		},
		{
			name:    "delete exact in any order",
			seed:    []string{"a", "b"},
			changes: []types.Change{chg(types.ChangeActionDelete, txtSet(name, 10, `"b"`, `"a"`))},
		},
		{
			name: "delete then create is a compare-and-swap",
			seed: []string{"a"},
			changes: []types.Change{
				chg(types.ChangeActionDelete, txtSet(name, 10, `"a"`)),
				chg(types.ChangeActionCreate, txtSet(name, 10, `"a"`, `"b"`)),
			},
			want: []string{"a", "b"},
		},
		{
			name: "stale compare-and-swap fails",
			seed: []string{"a", "x"},
			changes: []types.Change{
				chg(types.ChangeActionDelete, txtSet(name, 10, `"a"`)),
				chg(types.ChangeActionCreate, txtSet(name, 10, `"a"`, `"b"`)),
			},
			wantErr: "do not match the current values",
			want:    []string{"a", "x"},
		},
		{
			name: "create twice in one batch fails",
			changes: []types.Change{
				chg(types.ChangeActionCreate, txtSet(name, 10, `"a"`)),
				chg(types.ChangeActionCreate, txtSet(name, 10, `"b"`)),
			},
			wantErr: "invalid set of changes",
		},
		{
			name:    "upsert replaces",
			seed:    []string{"a", "b"},
			changes: []types.Change{chg(types.ChangeActionUpsert, txtSet(name, 60, `"c"`))},
			want:    []string{"c"},
		},
		{
			name: "batch is atomic",
			changes: []types.Change{
				chg(types.ChangeActionCreate, txtSet(name, 10, `"a"`)),
				chg(types.ChangeActionDelete, txtSet("_acme-challenge.www.example.test.", 10, `"zz"`)),
			},
			wantErr: "but it was not found",
		},
		{
			name:    "unquoted TXT value is rejected",
			changes: []types.Change{chg(types.ChangeActionCreate, txtSet(name, 10, `a`))},
			wantErr: "enclosed in quotation marks",
		},
		{
			name:    "name outside the zone is rejected",
			changes: []types.Change{chg(types.ChangeActionCreate, txtSet("_acme-challenge.other.test.", 10, `"a"`))},
			wantErr: "not permitted in zone",
		},
		{
			name: "CNAME next to TXT is rejected",
			seed: []string{"a"},
			changes: []types.Change{chg(types.ChangeActionCreate, &types.ResourceRecordSet{
				Name: aws.String(name), Type: types.RRTypeCname, TTL: aws.Int64(10),
				ResourceRecords: []types.ResourceRecord{{Value: aws.String("x.example.test")}},
			})},
			wantErr: "conflicting RRSet of type TXT",
			want:    []string{"a"},
		},
		{
			name:    "names are case-insensitive",
			seed:    []string{"a"},
			changes: []types.Change{chg(types.ChangeActionDelete, txtSet(strings.ToUpper(name), 10, `"a"`))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Options{}, zoneA)
			if len(tt.seed) > 0 {
				if _, err := r.fake.UpsertTXT("ZA", name, 10, tt.seed...); err != nil {
					t.Fatal(err)
				}
			}
			_, err := r.change(t.Context(), "ZA", tt.changes...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("change: %v; want success", err)
			case tt.wantErr != "":
				var icb *types.InvalidChangeBatch
				var ii *types.InvalidInput
				switch {
				case errors.As(err, &icb):
					if msgs := strings.Join(icb.Messages, "|"); !strings.Contains(msgs, tt.wantErr) {
						t.Errorf("messages = %q; want one containing %q", msgs, tt.wantErr)
					}
				case errors.As(err, &ii):
					if !strings.Contains(ii.ErrorMessage(), tt.wantErr) {
						t.Errorf("message = %q; want %q", ii.ErrorMessage(), tt.wantErr)
					}
				default:
					t.Fatalf("err = %v; want InvalidChangeBatch containing %q", err, tt.wantErr)
				}
			}
			got := r.fake.TXT("ZA", name)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("TXT after = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestListResourceRecordSetsFromStartPoint(t *testing.T) {
	r := newRig(t, Options{}, zoneA)
	for _, n := range []string{"_acme-challenge.a.example.test", "_acme-challenge.b.example.test", "_acme-challenge.c.example.test"} {
		if _, err := r.fake.UpsertTXT("ZA", n, 10, n); err != nil {
			t.Fatal(err)
		}
	}
	// Start at a name that has no set: Route 53 returns the sets after it.
	out, err := r.client.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{
		HostedZoneId:    aws.String("ZA"),
		StartRecordName: aws.String("_acme-challenge.aa.example.test"),
		StartRecordType: types.RRTypeTxt,
		MaxItems:        aws.Int32(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.ResourceRecordSets) != 1 || aws.ToString(out.ResourceRecordSets[0].Name) != "_acme-challenge.b.example.test." {
		t.Fatalf("sets = %+v; want the next one, _acme-challenge.b.example.test.", out.ResourceRecordSets)
	}
	if v := aws.ToString(out.ResourceRecordSets[0].ResourceRecords[0].Value); v != `"_acme-challenge.b.example.test"` {
		t.Errorf("value = %s; want it quoted", v)
	}
	if !out.IsTruncated || aws.ToString(out.NextRecordName) != "_acme-challenge.c.example.test." || out.NextRecordType != types.RRTypeTxt {
		t.Errorf("truncated=%v next=%s %s; want true _acme-challenge.c.example.test. TXT", out.IsTruncated, aws.ToString(out.NextRecordName), out.NextRecordType)
	}
	all, err := r.client.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String("ZA")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rs := range all.ResourceRecordSets {
		got = append(got, aws.ToString(rs.Name)+" "+string(rs.Type))
	}
	want := []string{"example.test. NS", "example.test. SOA", "_acme-challenge.a.example.test. TXT",
		"_acme-challenge.b.example.test. TXT", "_acme-challenge.c.example.test. TXT"}
	if !slices.Equal(got, want) {
		t.Errorf("all sets = %q; want %q", got, want)
	}

	// Several values come back as separate records, quoted, in order.
	if _, err := r.fake.UpsertTXT("ZA", "_acme-challenge.a.example.test", 10, "v1", "v2"); err != nil {
		t.Fatal(err)
	}
	multi, err := r.client.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{
		HostedZoneId: aws.String("ZA"), StartRecordName: aws.String("_acme-challenge.a.example.test"), StartRecordType: types.RRTypeTxt, MaxItems: aws.Int32(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, rr := range multi.ResourceRecordSets[0].ResourceRecords {
		vals = append(vals, aws.ToString(rr.Value))
	}
	if !slices.Equal(vals, []string{`"v1"`, `"v2"`}) {
		t.Errorf("records = %q; want [\"v1\" \"v2\"]", vals)
	}
}

func queryTXT(t *testing.T, addr, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	resp, _, err := (&dns.Client{Net: "udp", Timeout: 5 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s at %s: %v", name, addr, err)
	}
	var out []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	slices.Sort(out)
	return out
}

// bubbleRig is a fake reached by an SDK client without retries through an
// in-memory transport (no socket), for tests inside a synctest bubble: the
// fake's INSYNC and mirror timers then run on the bubble's clock, so "not
// yet at d-1ns, done at d" is checked exactly and instantly. It must be
// made inside the bubble; the DNS servers it publishes to are made outside
// (their UDP listeners would keep the bubble from ever idling).
func bubbleRig(t *testing.T, opts Options, zones ...Zone) *rig {
	t.Helper()
	f := New(opts)
	for _, z := range zones {
		f.AddZone(z)
	}
	t.Cleanup(f.Close)
	c := newClient("http://fakeroute53.invalid", aws.NopRetryer{}, func(o *route53.Options) { o.HTTPClient = handlerDoer{f} })
	return &rig{fake: f, client: c}
}

// handlerDoer serves SDK requests by calling an http.Handler directly.
type handlerDoer struct{ h http.Handler }

func (d handlerDoer) Do(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	d.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (r *rig) status(t *testing.T, id string) types.ChangeStatus {
	t.Helper()
	out, err := r.client.GetChange(t.Context(), &route53.GetChangeInput{Id: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return out.ChangeInfo.Status
}

// served is what dns serves at name, sorted.
func served(dns *authdns.Server, name string) []string {
	return sorted(dns.TXT(name))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestPublishesOnlyAtInsync(t *testing.T) {
	primary, mirror := authdnstest.Start(t), authdnstest.Start(t)
	const (
		insync = 200 * time.Millisecond
		lag    = 300 * time.Millisecond
		name   = "_acme-challenge.example.test"
	)
	synctest.Test(t, func(t *testing.T) {
		r := bubbleRig(t, Options{DNS: primary, Mirrors: []Mirror{{DNS: mirror, Lag: lag}}, InsyncAfter: insync}, zoneA)
		submitted := time.Now()
		out, err := r.change(t.Context(), "ZA", chg(types.ChangeActionCreate, txtSet(name, 10, `"tok-a"`, `"tok b"`)))
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.ChangeInfo.Id)
		if out.ChangeInfo.Status != types.ChangeStatusPending || !strings.HasPrefix(id, "/change/") {
			t.Errorf("change info = %s %s; want PENDING /change/...", id, out.ChangeInfo.Status)
		}
		// The API holds the set at once; the name servers do not serve it
		// until the change is INSYNC, the mirror not until its lag after.
		if got := r.fake.TXT("ZA", name); len(got) != 2 {
			t.Errorf("API TXT = %q; want 2 values", got)
		}
		time.Sleep(insync - time.Nanosecond)
		synctest.Wait()
		if st := r.status(t, id); st != types.ChangeStatusPending {
			t.Errorf("status %v before InsyncAfter = %s; want PENDING", insync-time.Nanosecond, st)
		}
		if got := served(primary, name); len(got) != 0 {
			t.Errorf("served while PENDING: %q", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if st := r.status(t, id); st != types.ChangeStatusInsync {
			t.Errorf("status at InsyncAfter = %s; want INSYNC", st)
		}
		if at, ok := r.fake.InsyncTime(id); !ok || !at.Equal(submitted.Add(insync)) {
			t.Errorf("InsyncTime = %v, %v; want %v", at, ok, submitted.Add(insync))
		}
		want := []string{"tok b", "tok-a"}
		if got := served(primary, name); !slices.Equal(got, want) {
			t.Errorf("primary serves %q at INSYNC; want %q", got, want)
		}
		time.Sleep(lag - time.Nanosecond)
		synctest.Wait()
		if got := served(mirror, name); len(got) != 0 {
			t.Errorf("mirror serves %q before its lag", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := served(mirror, name); !slices.Equal(got, want) {
			t.Errorf("mirror serves %q %v after INSYNC; want %q", got, lag, want)
		}
	})
	// The DNS wire answers what the server holds.
	if got := queryTXT(t, primary.Addr(), name); !slices.Equal(got, []string{"tok b", "tok-a"}) {
		t.Errorf("primary answers %q over UDP", got)
	}
}

func TestNeverInsyncHoldsPublication(t *testing.T) {
	primary := authdnstest.Start(t)
	const name = "_acme-challenge.example.test"
	synctest.Test(t, func(t *testing.T) {
		r := bubbleRig(t, Options{DNS: primary, InsyncAfter: 10 * time.Millisecond}, zoneA)
		r.fake.SetNeverInsync(true)
		first, err := r.change(t.Context(), "ZA", chg(types.ChangeActionCreate, txtSet(name, 10, `"one"`)))
		if err != nil {
			t.Fatal(err)
		}
		second, err := r.change(t.Context(), "ZA",
			chg(types.ChangeActionDelete, txtSet(name, 10, `"one"`)),
			chg(types.ChangeActionCreate, txtSet(name, 10, `"one"`, `"two"`)))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour) // far past InsyncAfter: nothing may happen
		synctest.Wait()
		for _, c := range []*route53.ChangeResourceRecordSetsOutput{first, second} {
			if st := r.status(t, aws.ToString(c.ChangeInfo.Id)); st != types.ChangeStatusPending {
				t.Errorf("%s = %s while never-insync; want PENDING", aws.ToString(c.ChangeInfo.Id), st)
			}
		}
		if got := primary.Names(); len(got) != 0 {
			t.Errorf("published while never-insync: %q", got)
		}
		if n := r.fake.Pending(); n != 2 {
			t.Errorf("Pending() = %d while never-insync; want 2", n)
		}
		r.fake.SetNeverInsync(false) // releases both at once, in order
		for _, c := range []*route53.ChangeResourceRecordSetsOutput{first, second} {
			if st := r.status(t, aws.ToString(c.ChangeInfo.Id)); st != types.ChangeStatusInsync {
				t.Errorf("%s = %s after release; want INSYNC", aws.ToString(c.ChangeInfo.Id), st)
			}
		}
		if got := served(primary, name); !slices.Equal(got, []string{"one", "two"}) {
			t.Errorf("served %q after release; want the later change's [one two]", got)
		}
		if n := r.fake.Pending(); n != 0 {
			t.Errorf("Pending() = %d after release; want 0", n)
		}
	})
}

func TestFaults(t *testing.T) {
	r := newRig(t, Options{}, zoneA)
	ctx := t.Context()
	list := func(c *route53.Client) error {
		_, err := c.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String("ZA")})
		return err
	}

	t.Run("throttling absorbed by the SDK retryer", func(t *testing.T) {
		r.fake.ResetCalls()
		r.fake.Fail(OpListResourceRecordSets, Fault{Code: "Throttling", Times: 2})
		fast := retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})
		if err := list(newClient(r.url, fast)); err != nil {
			t.Fatalf("err = %v; want success after 2 throttles", err)
		}
		if got := r.fake.Calls(OpListResourceRecordSets); got != 3 {
			t.Errorf("calls = %d; want 3", got)
		}
	})

	tests := []struct {
		code       string
		wantStatus int
		check      func(error) bool
	}{
		{"Throttling", 400, func(err error) bool { return apiCode(err) == "Throttling" }},
		{"PriorRequestNotComplete", 400, func(err error) bool { return apiCode(err) == "PriorRequestNotComplete" }},
		{"AccessDenied", 403, func(err error) bool {
			return apiCode(err) == "AccessDenied" && strings.Contains(err.Error(), "route53:ListResourceRecordSets on resource: arn:aws:route53:::hostedzone/ZA")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			r.fake.ResetCalls()
			r.fake.Fail(OpListResourceRecordSets, Fault{Code: tt.code, Times: 1})
			err := list(r.client)
			if err == nil || !tt.check(err) {
				t.Fatalf("err = %v; want %s", err, tt.code)
			}
			var re interface{ HTTPStatusCode() int }
			if !errors.As(err, &re) || re.HTTPStatusCode() != tt.wantStatus {
				t.Errorf("status = %v; want %d", err, tt.wantStatus)
			}
			if err := list(r.client); err != nil {
				t.Errorf("second call: %v; want the fault used up", err)
			}
			if got := r.fake.Calls(OpListResourceRecordSets); got != 2 {
				t.Errorf("calls = %d; want 2", got)
			}
		})
	}

	t.Run("always until cleared, per operation", func(t *testing.T) {
		r.fake.Fail(OpChangeResourceRecordSets, Fault{Code: "AccessDenied"})
		for range 3 {
			if _, err := r.change(ctx, "ZA", chg(types.ChangeActionCreate, txtSet("x.example.test", 10, `"v"`))); apiCode(err) != "AccessDenied" {
				t.Fatalf("err = %v; want AccessDenied", err)
			}
		}
		if err := list(r.client); err != nil {
			t.Errorf("other operation failed: %v", err)
		}
		r.fake.ClearFaults()
		if _, err := r.change(ctx, "ZA", chg(types.ChangeActionCreate, txtSet("x.example.test", 10, `"v"`))); err != nil {
			t.Errorf("after ClearFaults: %v", err)
		}
	})
}

func TestUnsignedAndUnknownRequests(t *testing.T) {
	r := newRig(t, Options{}, zoneA)
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/2013-04-01/hostedzone/ZA", http.StatusForbidden},
		{http.MethodDelete, "/2013-04-01/hostedzone/ZA", http.StatusNotFound},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tt.method, r.url+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s = %d; want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
}

// TestLoadDefaultConfigFromEnv proves the daemon can reach the fake with its
// ordinary config loading and nothing but environment variables.
func TestLoadDefaultConfigFromEnv(t *testing.T) {
	r := newRig(t, Options{}, zoneA)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_ROUTE_53":   r.url,
		"AWS_ACCESS_KEY_ID":           "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":       "SECRETTEST",
		"AWS_REGION":                  "us-east-1",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             "/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
		"AWS_PROFILE":                 "",
	} {
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out, err := route53.NewFromConfig(cfg).ListHostedZonesByName(t.Context(), &route53.ListHostedZonesByNameInput{DNSName: aws.String("example.test")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.HostedZones) != 1 || aws.ToString(out.HostedZones[0].Id) != "/hostedzone/ZA" {
		t.Errorf("zones = %+v; want ZA", out.HostedZones)
	}
	if got := r.fake.Calls(OpListHostedZonesByName); got != 1 {
		t.Errorf("calls = %d; want 1", got)
	}
}

func TestQuoting(t *testing.T) {
	for _, v := range []string{"", "plain", `with "quotes" and \ backslash`, strings.Repeat("x", 600)} {
		q := quoteTXT(v)
		got, err := unquoteTXT(q)
		if err != nil || got != v {
			t.Errorf("unquote(quote(%.20q)) = %.20q, %v; want the input", v, got, err)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{`"a" "b"`, "ab"},
		{`"\065\066"`, "56"},
		{`"x\"y"`, `x"y`},
	} {
		if got, err := unquoteTXT(tt.in); err != nil || got != tt.want {
			t.Errorf("unquote(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`a`, `"open`, ``, `"` + strings.Repeat("x", 256) + `"`} {
		if _, err := unquoteTXT(bad); err == nil {
			t.Errorf("unquote(%.20s) succeeded; want an error", bad)
		}
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestAccountRateLimit(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := newRig(t, Options{RateLimit: AccountRateLimit, Now: clk.Now}, zoneA)
	other := newClient(r.url, aws.NopRetryer{}) // a second tool on the same account
	ctx := t.Context()
	get := func(c *route53.Client) error {
		_, err := c.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String("ZA")})
		return err
	}
	// expect runs n requests alternating between the two clients and
	// returns how many were throttled; any other error fails the test.
	expect := func(n int) int {
		t.Helper()
		throttled := 0
		for i := range n {
			c := r.client
			if i%2 == 1 {
				c = other
			}
			err := get(c)
			if err == nil {
				continue
			}
			var re *awshttp.ResponseError
			if apiCode(err) != "Throttling" || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
				t.Fatalf("request %d: %v; want nil or 400 Throttling", i, err)
			}
			throttled++
		}
		return throttled
	}
	steps := []struct {
		advance       time.Duration
		requests      int
		wantThrottled int
	}{
		{0, 5, 0},                      // a full bucket: 5 at once pass
		{0, 3, 3},                      // then nothing more in the same instant
		{200 * time.Millisecond, 2, 1}, // one token per 200 ms
		{100 * time.Millisecond, 1, 1}, // half a token is not a token
		{100 * time.Millisecond, 1, 0}, // now it is
		{10 * time.Second, 7, 2},       // idle time refills only up to 5
		{time.Second, 5, 0},            // one second later: 5 again
	}
	wantTotal := 0
	for i, st := range steps {
		clk.Add(st.advance)
		if got := expect(st.requests); got != st.wantThrottled {
			t.Errorf("step %d (+%v, %d requests): %d throttled; want %d", i, st.advance, st.requests, got, st.wantThrottled)
		}
		wantTotal += st.wantThrottled
	}
	if got := r.fake.Throttled(OpGetHostedZone); got != wantTotal {
		t.Errorf("Throttled(GetHostedZone) = %d; want %d", got, wantTotal)
	}
	if got := r.fake.Throttled(""); got != wantTotal {
		t.Errorf("Throttled(\"\") = %d; want %d", got, wantTotal)
	}
	if got, want := r.fake.Calls(OpGetHostedZone), 5+3+2+1+1+7+5; got != want {
		t.Errorf("Calls = %d; want %d (throttled requests count)", got, want)
	}
}

func TestNoRateLimitByDefault(t *testing.T) {
	r := newRig(t, Options{}, zoneA)
	for i := range 50 {
		if _, err := r.client.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String("ZA")}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := r.fake.Throttled(""); n != 0 {
		t.Errorf("Throttled = %d without RateLimit", n)
	}
}

// The SDK's standard retryer must classify the fake's answer as a throttle,
// as it does AWS's.
func TestThrottlingIsAThrottleToTheSDK(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := newRig(t, Options{RateLimit: 1, Now: clk.Now}, zoneA)
	if _, err := r.client.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String("ZA")}); err != nil {
		t.Fatal(err)
	}
	_, err := r.client.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String("ZA")})
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
		t.Errorf("error %v is not a throttle to the SDK", err)
	}
}

func TestBatchSizeLimits(t *testing.T) {
	r := newRig(t, Options{}, zoneA)
	set := func(name string, values int, size int) *types.ResourceRecordSet {
		var q []string
		for i := range values {
			q = append(q, `"`+strings.Repeat("x", size-8)+fmt.Sprintf("%05d", i)+`"`)
		}
		return txtSet(name, 10, q...)
	}
	tests := []struct {
		name    string
		changes []types.Change
		wantErr string
	}{
		{"1000 changes pass", func() (c []types.Change) {
			for i := range 1000 {
				c = append(c, chg(types.ChangeActionCreate, set(fmt.Sprintf("a%d.example.test", i), 1, 20)))
			}
			return c
		}(), ""},
		{"1001 changes", func() (c []types.Change) {
			for i := range 1001 {
				c = append(c, chg(types.ChangeActionCreate, set(fmt.Sprintf("b%d.example.test", i), 1, 20)))
			}
			return c
		}(), "Number of changes limit of 1000 exceeded"},
		{"1001 records", []types.Change{chg(types.ChangeActionCreate, set("c.example.test", 1001, 20))}, "Number of records limit of 1000 exceeded"},
		{"32001 characters", []types.Change{chg(types.ChangeActionCreate, set("d.example.test", 400, 82))}, "characters in record values limit of 32000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.change(t.Context(), "ZA", tt.changes...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var icb *types.InvalidChangeBatch
			if !errors.As(err, &icb) || !strings.Contains(strings.Join(icb.Messages, " "), tt.wantErr) {
				t.Errorf("err = %v; want InvalidChangeBatch %q", err, tt.wantErr)
			}
		})
	}
	if got := r.fake.TXT("ZA", "c.example.test"); got != nil {
		t.Error("a rejected batch was applied")
	}
}
