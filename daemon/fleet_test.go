package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edgecert/edgecert/certstore/s3store/s3test"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
)

// fleetDaemon is one daemon of an in-process fleet.
type fleetDaemon struct {
	name  string
	mu    sync.Mutex // guards addrs
	addrs map[string]string
	ready chan struct{}
	done  chan error
	logs  *syncBuffer
}

func (d *fleetDaemon) addr(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addrs[name]
}

// startFleet starts one daemon per name at once, all sharing f, and waits
// until every one is READY.
func startFleetDaemons(t *testing.T, r *rig, f *s3test.Server, names ...string) []*fleetDaemon {
	t.Helper()
	var ds []*fleetDaemon
	for _, name := range names {
		cfg := r.config(t, t.TempDir(), "-fleet-store", "s3://"+s3test.Bucket+"/edge", "-fleet-s3-path-style",
			"-instance-id", name, "-fleet-lease-ttl", "10s", "-fleet-sync-interval", "1s")
		cfg.Fleet.s3Client = []func(*s3.Options){func(o *s3.Options) {
			o.BaseEndpoint = aws.String(f.URL)
			o.Region = rigRegion
			o.Credentials = credentials.NewStaticCredentialsProvider(rigKeyID, rigSecret, "")
		}}
		d := &fleetDaemon{name: name, addrs: map[string]string{}, ready: make(chan struct{}), done: make(chan error, 1), logs: &syncBuffer{}}
		ctx, cancel := context.WithCancel(context.Background())
		log := slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		hk := hooks{
			listening: func(n, a string) { d.mu.Lock(); d.addrs[n] = a; d.mu.Unlock() },
			ready:     func() { close(d.ready) },
		}
		go func() { d.done <- runWith(ctx, cfg, log, hk) }()
		t.Cleanup(func() {
			cancel()
			<-d.done
			if t.Failed() {
				t.Logf("%s log:\n%s", d.name, d.logs.String())
			}
		})
		ds = append(ds, d)
	}
	for _, d := range ds {
		select {
		case <-d.ready:
		case err := <-d.done:
			t.Fatalf("%s exited before READY: %v", d.name, err)
		case <-time.After(90 * time.Second):
			t.Fatalf("%s not READY after 90s", d.name)
		}
	}
	return ds
}

// TestFleetOneOrder: three daemons started together on one S3 bucket make
// exactly one ACME order and serve the same certificate; a host started
// later serves it with no CA and no Route 53 request.
func TestFleetOneOrder(t *testing.T) {
	t.Parallel()
	r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	f := s3test.New(t)
	ds := startFleetDaemons(t, r, f, "host-a", "host-b", "host-c")
	if n := r.ca.CreatedOrders(); n != 1 {
		t.Fatalf("%d ACME orders for a fleet of 3, want exactly 1", n)
	}
	roots := r.ca.IssuerRoots()
	want := leaf(t, ds[0].addr("https"), "example.test", roots).SerialNumber
	for _, d := range ds[1:] {
		if got := leaf(t, d.addr("https"), "www.example.test", roots).SerialNumber; got.Cmp(want) != 0 {
			t.Errorf("%s serves %x, host-a %x", d.name, got, want)
		}
	}
	published := 0
	for _, d := range ds {
		published += strings.Count(d.logs.String(), "msg=fleet.cert_published")
	}
	if published != 1 {
		t.Errorf("%d fleet.cert_published events, want 1", published)
	}

	caRequests, r53Calls := r.ca.Requests(), r.r53.TotalCalls()
	late := startFleetDaemons(t, r, f, "host-d")[0]
	if got := leaf(t, late.addr("https"), "example.test", roots).SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("the late host serves %x, want %x", got, want)
	}
	if d := r.ca.Requests() - caRequests; d != 0 {
		t.Errorf("the late host made %d CA requests, want 0", d)
	}
	if d := r.r53.TotalCalls() - r53Calls; d != 0 {
		t.Errorf("the late host made %d Route 53 calls, want 0", d)
	}
	if !strings.Contains(late.logs.String(), "msg=fleet.cert_installed") {
		t.Error("the late host did not log fleet.cert_installed")
	}
	code, body := get(t, "http://"+late.addr("admin")+"/status", &http.Client{Timeout: 5 * time.Second})
	body = strings.Join(strings.Fields(body), "")
	if code != 200 || !strings.Contains(body, `"shared_generation":1`) || !strings.Contains(body, `"serving_generation":1`) {
		t.Errorf("/status = %d %s; want shared and serving generation 1", code, body)
	}
	code, body = get(t, "http://"+late.addr("admin")+"/metrics", &http.Client{Timeout: 5 * time.Second})
	if code != 200 || !strings.Contains(body, `edgecert_fleet_serving_generation{cert="example.test"} 1`) {
		t.Errorf("/metrics lacks the serving generation: %d", code)
	}
}

// TestFleetPolicies: iam-policy adds the S3 (and KMS) statements for
// -fleet-store, and bucket-policy prints the bucket's deny rules.
func TestFleetPolicies(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	args := []string{"-domains", "example.test", "-route53-zone-id", "Z1", "-fleet-store", "s3://certs/edge", "-fleet-sse-kms-key-id", "arn:aws:kms:eu-west-1:111122223333:key/k1", "-partition", "aws"}
	var out, errb strings.Builder
	if code := Main(append([]string{"iam-policy"}, args...), &out, &errb); code != exitOK {
		t.Fatalf("iam-policy: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{`"route53:ChangeResourceRecordSets"`, `"arn:aws:s3:::certs/edge/*"`, `"s3:ListBucket"`, `"arn:aws:kms:eu-west-1:111122223333:key/k1"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("iam-policy lacks %s:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := Main(append([]string{"bucket-policy"}, args...), &out, &errb); code != exitOK {
		t.Fatalf("bucket-policy: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{`"arn:aws:s3:::certs/edge/leases/*"`, `"s3:if-none-match": "true"`, `"aws:SecureTransport": "false"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bucket-policy lacks %s:\n%s", want, out.String())
		}
	}
	errb.Reset()
	if code := Main([]string{"bucket-policy", "-domains", "example.test"}, &out, &errb); code == exitOK || !strings.Contains(errb.String(), "-fleet-store") {
		t.Errorf("bucket-policy without -fleet-store: exit %d, %q", code, errb.String())
	}
}

func TestWriteFleetStatus(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	views := []certView{
		{Name: "example.test", Fleet: &fleetView{SharedGeneration: 4, ServingGeneration: 3, LeaseHolder: "i-0abc", LeaseSince: now.Add(-90 * time.Second), LastEvent: "waiting", LastEventAt: now.Add(-time.Minute)}},
		{Name: "other.test"},
	}
	var b strings.Builder
	writeFleetStatus(&b, views, now)
	out := b.String()
	for _, want := range []string{"SHARED GEN", "example.test", "3 (differs from the fleet)", "i-0abc (1m30s ago)", "waiting (1m0s ago)"} {
		if !strings.Contains(out, want) {
			t.Errorf("fleet status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "other.test") {
		t.Errorf("a certificate outside the fleet is listed:\n%s", out)
	}
	b.Reset()
	writeFleetStatus(&b, views[1:], now)
	if b.Len() != 0 {
		t.Errorf("fleet table printed without fleet mode: %q", b.String())
	}
}
