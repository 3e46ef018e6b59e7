package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"

	"github.com/edgecert/edgecert/internal/devrig/authdns"
	"github.com/edgecert/edgecert/internal/devrig/authdns/authdnstest"
	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
)

// rig is the offline world a daemon test runs in: Pebble as the CA, the
// Route 53-compatible API reached by the unmodified SDK (through the
// client's options, route53Client, or a process's environment, env), and the
// zone's authoritative DNS server.
type rig struct {
	ca     *pebblerig.CA
	r53    *fakeroute53.Server
	r53URL string // the Route 53 fake's endpoint
	dns    *authdns.Server
	caFile string
}

const rigZoneID = "Z0TESTZONE"

func newRig(t testing.TB, opts pebblerig.Options) *rig {
	t.Helper()
	return newRigWith(t, opts, fakeroute53.Options{InsyncAfter: 50 * time.Millisecond})
}

// newRigWith is newRig with the Route 53 fake's options (its DNS is set
// here), e.g. Route 53's rate limit.
func newRigWith(t testing.TB, opts pebblerig.Options, r53opts fakeroute53.Options) *rig {
	t.Helper()
	dns := authdnstest.Start(t)
	r53opts.DNS = dns
	r53 := fakeroute53.New(r53opts)
	r53.AddZone(fakeroute53.Zone{ID: rigZoneID, Name: "example.test", NameServers: []string{"ns1.example.invalid"}})
	srv := httptest.NewServer(r53)
	t.Cleanup(srv.Close)
	t.Cleanup(r53.Close)

	opts.DNSAddr = dns.Addr()
	ca, err := pebblerig.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	caFile := filepath.Join(t.TempDir(), "acme-ca.pem")
	if err := os.WriteFile(caFile, ca.TLSRootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &rig{ca: ca, r53: r53, r53URL: srv.URL, dns: dns, caFile: caFile}
}

// The rig's Route 53 credentials and region.
const (
	rigKeyID  = "AKIDTEST"
	rigSecret = "SECRETTEST"
	rigRegion = "us-east-1"
)

// route53Client points a daemon's Route 53 client at the rig without the
// process environment, so that tests on rigs of their own run in parallel.
func (r *rig) route53Client() route53Options {
	return route53Options{func(o *route53.Options) {
		o.BaseEndpoint = aws.String(r.r53URL)
		o.Region = rigRegion
		o.Credentials = credentials.NewStaticCredentialsProvider(rigKeyID, rigSecret, "")
	}}
}

// env is the AWS environment that points the SDK's default chain at the
// rig, for a daemon process.
func (r *rig) env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_ROUTE_53":   r.r53URL,
		"AWS_ACCESS_KEY_ID":           rigKeyID,
		"AWS_SECRET_ACCESS_KEY":       rigSecret,
		"AWS_REGION":                  rigRegion,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             "/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
	}
}

// config returns a daemon configuration for the rig on ephemeral loopback
// ports with state in dir.
func (r *rig) config(t testing.TB, dir string, extra ...string) *Config {
	t.Helper()
	return r.parse(t, r.args(dir, append([]string{"-domains", "example.test,*.example.test"}, extra...)...))
}

// args are the flags of a daemon on the rig with state in dir, followed by
// extra; they name no certificate.
func (r *rig) args(dir string, extra ...string) []string {
	return append([]string{
		"-https-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-state-dir", dir,
		"-acme-directory", r.ca.DirectoryURL(), "-acme-ca-roots", r.caFile,
		"-accept-tos", "-email", "ops@example.test",
		"-dns01-nameservers", r.dns.Addr(), "-dns01-timeout", "20s",
		"-obtain-timeout", "60s", "-shutdown-timeout", "5s",
	}, extra...)
}

// parse parses daemon flags without the environment.
func (r *rig) parse(t testing.TB, args []string) *Config {
	t.Helper()
	cfg, err := parseConfig(args, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.route53Client = r.route53Client()
	return cfg
}

// daemonRun is one running daemon.
type daemonRun struct {
	addrs    map[string]string
	ready    chan struct{}
	reloaded chan struct{}
	done     chan error
	cancel   context.CancelFunc
	logs     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the daemon until the test ends and waits for READY.
func start(t testing.TB, cfg *Config) *daemonRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonRun{addrs: map[string]string{}, ready: make(chan struct{}), reloaded: make(chan struct{}, 8), done: make(chan error, 1), cancel: cancel, logs: &syncBuffer{}}
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hk := hooks{
		listening: func(name, addr string) { mu.Lock(); d.addrs[name] = addr; mu.Unlock() },
		ready:     func() { close(d.ready) },
		reloaded:  func() { d.reloaded <- struct{}{} },
	}
	go func() { d.done <- runWith(ctx, cfg, log, hk) }()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs.String())
		}
	})
	select {
	case <-d.ready:
	case err := <-d.done:
		d.done <- err
		t.Fatalf("daemon exited before READY: %v\n%s", err, d.logs.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("daemon not READY after 90s\n%s", d.logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	return d
}

// stop cancels the daemon and waits for run to return; it may be called
// more than once.
func (d *daemonRun) stop(t testing.TB) error {
	d.cancel()
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop within 30s")
		return nil
	}
}

// leaf makes a fresh TLS handshake for serverName and returns the verified
// leaf certificate.
func leaf(t testing.TB, addr, serverName string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake %s for %s: %v", addr, serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func get(t testing.TB, url string, client *http.Client) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// httpsClient trusts roots and sends every request to addr. Its idle
// connections are closed when the test ends, before the daemon stops, so
// that they do not hold the drain (HTTP/2's one-second GOAWAY grace).
func httpsClient(t testing.TB, addr string, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
