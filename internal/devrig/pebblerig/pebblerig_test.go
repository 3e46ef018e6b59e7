package pebblerig

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/internal/devrig/authdns"
	"github.com/edgecert/edgecert/internal/devrig/authdns/authdnstest"
)

func startRig(t *testing.T, opts Options) (*CA, *authdns.Server) {
	t.Helper()
	dns := authdnstest.Start(t)
	opts.DNSAddr = dns.Addr()
	c, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Close)
	return c, dns
}

func getJSON(t *testing.T, c *CA, url string, v any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "pebblerig-test")
	res, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	if v != nil && res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
	}
	return res.StatusCode
}

type directory struct {
	NewOrder    string `json:"newOrder"`
	RenewalInfo string `json:"renewalInfo"`
	Meta        struct {
		Profiles                map[string]string `json:"profiles"`
		ExternalAccountRequired bool              `json:"externalAccountRequired"`
	} `json:"meta"`
}

func TestDirectoryDefaults(t *testing.T) {
	c, _ := startRig(t, Options{})
	var dir directory
	if got := getJSON(t, c, c.DirectoryURL(), &dir); got != http.StatusOK {
		t.Fatalf("GET directory: status %d, want 200", got)
	}
	if !strings.HasPrefix(dir.NewOrder, "https://127.0.0.1:") {
		t.Errorf("newOrder = %q, want https://127.0.0.1:...", dir.NewOrder)
	}
	if dir.RenewalInfo == "" {
		t.Error("directory has no renewalInfo, want ARI advertised")
	}
	for _, p := range []string{"default", "shortlived"} {
		if _, ok := dir.Meta.Profiles[p]; !ok {
			t.Errorf("profiles = %v, want %q among them", dir.Meta.Profiles, p)
		}
	}
	if dir.Meta.ExternalAccountRequired {
		t.Error("externalAccountRequired = true, want false")
	}
	if got := c.Requests(); got != 1 {
		t.Errorf("Requests() = %d, want 1", got)
	}
	block, _ := pem.Decode(c.TLSRootPEM())
	if block == nil {
		t.Fatal("TLSRootPEM has no PEM block")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !root.IsCA {
		t.Errorf("TLSRootPEM: IsCA=%v err=%v, want a CA certificate", root != nil && root.IsCA, err)
	}
}

func TestNoARIAndEAB(t *testing.T) {
	c, _ := startRig(t, Options{
		NoARI:      true,
		RequireEAB: true,
		EABKeys:    map[string]string{"kid-1": base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))},
		Profiles:   map[string]time.Duration{"short": 5 * time.Minute},
	})
	var dir directory
	getJSON(t, c, c.DirectoryURL(), &dir)
	if dir.RenewalInfo != "" {
		t.Errorf("renewalInfo = %q, want none with NoARI", dir.RenewalInfo)
	}
	if !dir.Meta.ExternalAccountRequired {
		t.Error("externalAccountRequired = false, want true")
	}
	if _, ok := dir.Meta.Profiles["short"]; !ok || len(dir.Meta.Profiles) != 1 {
		t.Errorf("profiles = %v, want only short", dir.Meta.Profiles)
	}
	u := strings.Replace(c.DirectoryURL(), "/dir", pathARIPrefix+"/abc.def", 1)
	if got := getJSON(t, c, u, nil); got != http.StatusNotFound {
		t.Errorf("GET renewalInfo: status %d, want 404", got)
	}
}

func TestSetDown(t *testing.T) {
	c, _ := startRig(t, Options{})
	c.SetDown(true)
	if got := getJSON(t, c, c.DirectoryURL(), nil); got != http.StatusServiceUnavailable {
		t.Errorf("down: status %d, want 503", got)
	}
	c.SetDown(false)
	if got := getJSON(t, c, c.DirectoryURL(), nil); got != http.StatusOK {
		t.Errorf("up again: status %d, want 200", got)
	}
	if got := c.Requests(); got != 2 {
		t.Errorf("Requests() = %d, want 2 (refused requests count too)", got)
	}
	if got := c.StatusCount(http.StatusServiceUnavailable); got != 1 {
		t.Errorf("StatusCount(503) = %d, want 1", got)
	}
}

func TestFixedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, _ := startRig(t, Options{Addr: addr, TLSNames: []string{"ca.rig.test", "10.200.0.1"}})
	if want := "https://" + addr + "/dir"; c.DirectoryURL() != want {
		t.Errorf("DirectoryURL() = %q, want %q", c.DirectoryURL(), want)
	}
	if got := getJSON(t, c, c.DirectoryURL(), nil); got != http.StatusOK {
		t.Errorf("status %d, want 200", got)
	}
	res, err := c.HTTPClient().Get(c.DirectoryURL())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	leaf := res.TLS.PeerCertificates[0]
	for _, h := range []string{"ca.rig.test", "10.200.0.1", "127.0.0.1", "localhost"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("HTTPS certificate does not cover %s: %v", h, err)
		}
	}
}

func TestEnvironmentRestored(t *testing.T) {
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "7")
	os.Unsetenv("PEBBLE_VA_NOSLEEP") // t.Setenv above restores the rest
	startRig(t, Options{NonceReject: 0})
	if got := os.Getenv("PEBBLE_WFE_NONCEREJECT"); got != "7" {
		t.Errorf("PEBBLE_WFE_NONCEREJECT = %q after Start, want the previous 7", got)
	}
	if _, ok := os.LookupEnv("PEBBLE_VA_NOSLEEP"); ok {
		t.Error("PEBBLE_VA_NOSLEEP is set after Start, want it unset again")
	}
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no dns", Options{}, "DNSAddr"},
		{"nonce", Options{DNSAddr: "127.0.0.1:1", NonceReject: 100}, "NonceReject"},
		{"profile", Options{DNSAddr: "127.0.0.1:1", Profiles: map[string]time.Duration{"x": time.Millisecond}}, "profile"},
		{"eab key", Options{DNSAddr: "127.0.0.1:1", EABKeys: map[string]string{"k": "not base64!"}}, "EAB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Start(tc.opts)
			if err == nil {
				c.Close()
				t.Fatalf("Start: got nil error, want one mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: got %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// issue runs a full DNS-01 order for rig.test and *.rig.test under profile
// and returns the chain.
func issue(ctx context.Context, t *testing.T, c *CA, dns *authdns.Server, profile string) [][]byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &acme.Client{Key: key, DirectoryURL: c.DirectoryURL(), HTTPClient: c.HTTPClient(),
		RetryBackoff: func(int, *http.Request, *http.Response) time.Duration { return 10 * time.Millisecond }}
	if _, err := cl.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Fatalf("Register: %v", err)
	}
	domains := []string{"rig.test", "*.rig.test"}
	order, err := cl.AuthorizeOrder(ctx, acme.DomainIDs(domains...), acme.WithOrderIssuanceProfile(acme.ProfileName(profile)))
	if err != nil {
		t.Fatalf("AuthorizeOrder: %v", err)
	}
	var values []string
	for _, u := range order.AuthzURLs {
		z, err := cl.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range z.Challenges {
			if ch.Type != "dns-01" {
				continue
			}
			v, _ := cl.DNS01ChallengeRecord(ch.Token)
			values = append(values, v)
			dns.SetTXT("_acme-challenge.rig.test", 60, values...)
			if _, err := cl.Accept(ctx, ch); err != nil {
				t.Fatalf("Accept: %v", err)
			}
		}
	}
	for _, u := range order.AuthzURLs {
		if _, err := cl.WaitAuthorization(ctx, u); err != nil {
			t.Fatalf("WaitAuthorization: %v", err)
		}
	}
	order, err = cl.WaitOrder(ctx, order.URI)
	if err != nil {
		t.Fatalf("WaitOrder: %v", err)
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: domains}, certKey)
	der, _, err := cl.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		t.Fatalf("CreateCertFromOrder: %v", err)
	}
	return der
}

// TestIssueDNS01 runs a full DNS-01 order with x/crypto/acme: validation
// goes through authdns over TCP, the chain verifies against IssuerRoots, the
// newOrder is recorded and ARI answers can be forced.
func TestIssueDNS01(t *testing.T) {
	c, dns := startRig(t, Options{Profiles: map[string]time.Duration{"short": 10 * time.Minute}, NonceReject: 30})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	der := issue(ctx, t, c, dns, "short")
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, d := range der[1:] {
		ic, _ := x509.ParseCertificate(d)
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "x.rig.test", Roots: c.IssuerRoots(), Intermediates: inter}); err != nil {
		t.Errorf("verify against IssuerRoots: %v", err)
	}
	if roots := c.IssuerRootCerts(); len(roots) != 1 || !roots[0].IsCA {
		t.Errorf("IssuerRootCerts() = %d certificates, want one CA", len(roots))
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 9*time.Minute || got > 10*time.Minute {
		t.Errorf("lifetime = %v, want the short profile's 10m", got)
	}
	// With NonceReject some newOrder requests are refused (400) and retried.
	var created int
	orders := c.NewOrders()
	for _, o := range orders {
		if o.Profile != "short" || len(o.Identifiers) != 2 || (o.Status != http.StatusCreated && o.Status != http.StatusBadRequest) {
			t.Errorf("newOrder %+v, want 2 names, profile short, status 201 or 400", o)
		}
		if o.Status == http.StatusCreated {
			created++
		}
	}
	if created != 1 {
		t.Errorf("NewOrders() = %+v, want exactly one accepted (201)", orders)
	}
	if c.NewAccounts() < 1 {
		t.Errorf("NewAccounts() = %d, want at least 1", c.NewAccounts())
	}

	// Forced ARI window.
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der[0]})
	if err := c.SetRenewalInfo(ctx, leafPEM, start, start.Add(time.Hour)); err != nil {
		t.Fatalf("SetRenewalInfo: %v", err)
	}
	var dir directory
	getJSON(t, c, c.DirectoryURL(), &dir)
	certID := base64.RawURLEncoding.EncodeToString(leaf.AuthorityKeyId) + "." +
		base64.RawURLEncoding.EncodeToString(leaf.SerialNumber.Bytes())
	var ri struct {
		SuggestedWindow struct{ Start, End time.Time } `json:"suggestedWindow"`
	}
	if got := getJSON(t, c, dir.RenewalInfo+"/"+certID, &ri); got != http.StatusOK {
		t.Fatalf("GET renewalInfo: status %d", got)
	}
	if !ri.SuggestedWindow.Start.Equal(start) || !ri.SuggestedWindow.End.Equal(start.Add(time.Hour)) {
		t.Errorf("ARI window = %v..%v, want %v..%v", ri.SuggestedWindow.Start, ri.SuggestedWindow.End, start, start.Add(time.Hour))
	}
}

// ARIRetryAfter replaces Pebble's fixed 6 h Retry-After on ARI answers,
// forced ones included; without it Pebble's value stays.
func TestARIRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		retry time.Duration
		want  string
	}{{0, "21600"}, {7 * time.Second, "7"}} {
		t.Run(tc.want, func(t *testing.T) {
			c, dns := startRig(t, Options{Profiles: map[string]time.Duration{"short": 10 * time.Minute}, ARIRetryAfter: tc.retry})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			der := issue(ctx, t, c, dns, "short")
			leaf, err := x509.ParseCertificate(der[0])
			if err != nil {
				t.Fatal(err)
			}
			var dir directory
			getJSON(t, c, c.DirectoryURL(), &dir)
			url := dir.RenewalInfo + "/" + base64.RawURLEncoding.EncodeToString(leaf.AuthorityKeyId) + "." +
				base64.RawURLEncoding.EncodeToString(leaf.SerialNumber.Bytes())
			retryAfter := func() string {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header.Set("User-Agent", "pebblerig-test")
				res, err := c.HTTPClient().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("GET renewalInfo: %s", res.Status)
				}
				return res.Header.Get("Retry-After")
			}
			if got := retryAfter(); got != tc.want {
				t.Errorf("Retry-After = %q, want %q", got, tc.want)
			}
			start := time.Now().Add(-time.Hour)
			if err := c.SetRenewalInfo(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der[0]}), start, start.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if got := retryAfter(); got != tc.want {
				t.Errorf("forced window: Retry-After = %q, want %q", got, tc.want)
			}
		})
	}
}
