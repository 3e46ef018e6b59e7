package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/poll"
)

// TestDaemonEndToEnd runs the real daemon against the offline rig: it
// obtains apex + wildcard by DNS-01 through the Route 53 API, serves them
// with the whoami routes, answers the admin endpoints, reloads on SIGHUP,
// drains on shutdown, and after a restart serves the stored certificate
// without contacting the CA.
func TestDaemonEndToEnd(t *testing.T) {
	r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	dir := t.TempDir()
	d := start(t, r.config(t, dir, "-name", "edge-test"))
	roots := r.ca.IssuerRoots()

	apex := leaf(t, d.addrs["https"], "example.test", roots)
	wild := leaf(t, d.addrs["https"], "www.example.test", roots)
	if apex.SerialNumber.Cmp(wild.SerialNumber) != 0 {
		t.Errorf("apex and wildcard served different certificates: %x vs %x", apex.SerialNumber, wild.SerialNumber)
	}
	if got := strings.Join(apex.DNSNames, ","); !contains(got, "example.test", "*.example.test") {
		t.Errorf("DNSNames = %s; want example.test and *.example.test", got)
	}

	c := httpsClient(t, d.addrs["https"], roots)
	if code, body := get(t, "https://example.test/bench", c); code != 200 || body != "1" {
		t.Errorf("/bench = %d %q; want 200 \"1\"", code, body)
	}
	if code, body := get(t, "https://www.example.test/", c); code != 200 || !contains(body, "Name: edge-test\n", "Hostname: ", "GET / HTTP/1.1\r\n", "Host: www.example.test\r\n") {
		t.Errorf("/ = %d %q; want the whoami text", code, body)
	}
	if code, body := get(t, "https://example.test/data?size=10", c); code != 200 || body != "|ABCDEFGH|" {
		t.Errorf("/data?size=10 = %d %q", code, body)
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := noFollow.Get("http://" + d.addrs["http-redirect"] + "/api?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "https://127.0.0.1:") || !strings.HasSuffix(resp.Header.Get("Location"), "/api?x=1") {
		t.Errorf("redirect = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	admin := "http://" + d.addrs["admin"]
	if code, _ := get(t, admin+"/readyz", http.DefaultClient); code != 200 {
		t.Errorf("/readyz = %d; want 200 with a certificate served", code)
	}
	_, status := get(t, admin+"/status", http.DefaultClient)
	var st struct {
		Certificates []certView `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(status), &st); err != nil || len(st.Certificates) != 1 {
		t.Fatalf("/status = %s (%v); want one certificate", status, err)
	}
	cv := st.Certificates[0]
	if cv.Name != "example.test" || cv.Serial != apex.SerialNumber.Text(16) || cv.NextRenewal.IsZero() || !cv.NextRenewal.Before(apex.NotAfter) || cv.Source == "" {
		t.Errorf("/status certificate = %+v; want example.test, serial %x, a renewal before expiry", cv, apex.SerialNumber)
	}
	_, metrics := get(t, admin+"/metrics", http.DefaultClient)
	if !contains(metrics, `edgecert_certificate_not_after_timestamp_seconds{name="example.test"}`, `edgecert_certificate_next_renewal_timestamp_seconds{name="example.test"}`) {
		t.Errorf("/metrics lacks the certificate gauges:\n%.2000s", metrics)
	}

	key := filepath.Join(dir, "certs", "example.test", "current", "key.pem")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %s: %v, mode %v; want 0600", key, err, fi.Mode())
	}
	// Cleanup went through the API before issuance returned; the name
	// servers serve it once the change is INSYNC (InsyncAfter later).
	if v := r.r53.TXT(rigZoneID, "_acme-challenge.example.test"); len(v) != 0 {
		t.Errorf("challenge record left behind in the Route 53 API: %q", v)
	}
	poll.Until(t, 10*time.Second, "every Route 53 change INSYNC", func() bool { return r.r53.Pending() == 0 })
	for _, n := range r.dns.Names() {
		if strings.Contains(n, "_acme-challenge") {
			t.Errorf("challenge record %s left behind", n)
		}
	}

	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case <-d.reloaded:
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s of SIGHUP")
	}
	if got := leaf(t, d.addrs["https"], "example.test", roots); got.SerialNumber.Cmp(apex.SerialNumber) != 0 {
		t.Errorf("after reload serving %x; want %x", got.SerialNumber, apex.SerialNumber)
	}

	if err := d.stop(t); err != nil {
		t.Fatalf("run returned %v; want nil after a clean shutdown", err)
	}
	logs := d.logs.String()
	for _, ev := range []string{"msg=daemon.starting", "msg=server.listening", "msg=cert.order_started", "msg=dns.propagated", "msg=cert.issued", "msg=cert.loaded", "msg=daemon.ready", "msg=config.reloaded", "msg=server.stopping", "msg=server.stopped"} {
		if !strings.Contains(logs, ev) {
			t.Errorf("log lacks %s", ev)
		}
	}

	// Restart with the CA down: the stored certificate is served at once.
	r.ca.SetDown(true)
	before := r.ca.Requests()
	d2 := start(t, r.config(t, dir))
	if got := leaf(t, d2.addrs["https"], "www.example.test", roots); got.SerialNumber.Cmp(apex.SerialNumber) != 0 {
		t.Errorf("after restart serving %x; want the stored %x", got.SerialNumber, apex.SerialNumber)
	}
	if n := r.ca.Requests() - before; n != 0 {
		t.Errorf("restart made %d requests to the CA; want none", n)
	}
}

// TestDaemonOperatorCertificate serves an operator-supplied pair with no
// ACME at all; a client whose SNI matches nothing gets the default
// certificate, and replacing the files on disk is served without a restart.
func TestDaemonOperatorCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := certstoretest.NewCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair := func(names ...string) {
		chain, key := ca.Valid(t, names...)
		// Key first, then chain, each by rename: the store must never
		// serve the mismatched middle state.
		for _, f := range []struct {
			path string
			data []byte
		}{{keyFile, key}, {certFile, chain}} {
			tmp := f.path + ".tmp"
			if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, f.path); err != nil {
				t.Fatal(err)
			}
		}
	}
	writePair("a.example.com")
	cfg, err := parseConfig([]string{"-https-addr", "127.0.0.1:0", "-http-addr", "", "-admin-addr", "",
		"-state-dir", filepath.Join(dir, "state"), "-cert-file", certFile, "-key-file", keyFile},
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg)
	if got := leaf(t, d.addrs["https"], "a.example.com", ca.Pool); got.DNSNames[0] != "a.example.com" {
		t.Errorf("served %v; want a.example.com", got.DNSNames)
	}
	conn, err := tls.Dial("tcp", d.addrs["https"], &tls.Config{ServerName: "unknown.example.org", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("unknown SNI: %v; want the default certificate", err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].DNSNames[0]; got != "a.example.com" {
		t.Errorf("unknown SNI got %s; want the default a.example.com", got)
	}
	conn.Close()
	if _, ok := d.addrs["http-redirect"]; ok {
		t.Error("redirect listener bound although -http-addr is empty")
	}

	writePair("b.example.com")
	poll.Until(t, 10*time.Second, "the replaced operator pair to be served", func() bool {
		c, err := tls.Dial("tcp", d.addrs["https"], &tls.Config{ServerName: "b.example.com", RootCAs: ca.Pool})
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// TestMainExitCodes checks the command line's contract: version, bad
// configuration exits 78 (EX_CONFIG) naming the flag, unknown commands exit 2.
func TestMainExitCodes(t *testing.T) {
	var out, errb strings.Builder
	if code := Main([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "edgecert ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	errb.Reset()
	t.Setenv("EDGECERT_DOMAINS", "example.com")
	if code := Main([]string{"run", "-key-type", "ed25519"}, &out, &errb); code != exitBadConfig || !strings.Contains(errb.String(), "-key-type") || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("bad flag: exit %d, stderr %q; want %d and one line naming -key-type", code, errb.String(), exitBadConfig)
	}
	errb.Reset()
	if code := Main([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d; want 2", code)
	}
}

// TestServesStoredWhileObtainingAnother: with one certificate stored and a
// second one added whose order cannot finish (Route 53 never reports
// INSYNC), the stored one is served at once, before READY, while the order
// is in flight; READY follows when the bound passes.
func TestServesStoredWhileObtainingAnother(t *testing.T) {
	t.Parallel()
	r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	dir := t.TempDir()
	first := start(t, r.config(t, dir))
	want := leaf(t, first.addrs["https"], "example.test", r.ca.IssuerRoots())
	first.stop(t)

	r.r53.SetNeverInsync(true)
	cfg := r.config(t, dir, "-domains", "other.example.test", "-obtain-timeout", "4s", "-dns01-timeout", "30s")
	httpsAddr := make(chan string, 1)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- runWith(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), hooks{
			listening: func(name, addr string) {
				if name == "https" {
					httpsAddr <- addr
				}
			},
			ready: func() { close(ready) },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	addr := <-httpsAddr
	got := leaf(t, addr, "www.example.test", r.ca.IssuerRoots())
	select {
	case <-ready:
		t.Fatal("READY before the second order's bound passed; the check below proves nothing")
	default:
	}
	if got.SerialNumber.Cmp(want.SerialNumber) != 0 {
		t.Errorf("serving %x during the order; want the stored %x", got.SerialNumber, want.SerialNumber)
	}
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("no READY after the obtain bound")
	}
	if !strings.Contains(logs.String(), "msg=cert.obtain_incomplete") {
		t.Errorf("log lacks cert.obtain_incomplete:\n%s", logs.String())
	}
}

// TestClientCAVerifiedAndReloaded: with -client-ca-file, a client
// certificate is required and verified against that file, and SIGHUP makes
// a replaced file apply to the next handshake.
func TestClientCAVerifiedAndReloaded(t *testing.T) {
	dir := t.TempDir()
	server, caA, caB := certstoretest.NewCA(t), certstoretest.NewCA(t), certstoretest.NewCA(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	chain, key := server.Valid(t, "a.example.com")
	certFile, keyFile := write("cert.pem", chain), write("key.pem", key)
	caFile := write("client-ca.pem", caA.CertPEM)
	cfg, err := parseConfig([]string{"-https-addr", "127.0.0.1:0", "-http-addr", "", "-admin-addr", "",
		"-state-dir", filepath.Join(dir, "state"), "-cert-file", certFile, "-key-file", keyFile, "-client-ca-file", caFile},
		func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg)
	clientCert := func(ca *certstoretest.CA) []tls.Certificate {
		c, k := ca.Valid(t, "client.example.com")
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{pair}
	}
	// accepted makes a request (TLS 1.3 reports a rejected client
	// certificate only on the first read) and reports whether it worked.
	accepted := func(certs []tls.Certificate) bool {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			ServerName: "a.example.com", RootCAs: server.Pool, Certificates: certs}}}
		resp, err := c.Get("https://" + d.addrs["https"] + "/bench")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	if accepted(nil) {
		t.Error("request without a client certificate accepted; want it refused")
	}
	if !accepted(clientCert(caA)) {
		t.Error("client certificate from the configured CA refused")
	}
	if accepted(clientCert(caB)) {
		t.Error("client certificate from another CA accepted before reload")
	}

	write("client-ca.pem", caB.CertPEM)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case <-d.reloaded:
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s of SIGHUP")
	}
	if !accepted(clientCert(caB)) {
		t.Error("client certificate from the new CA refused after reload")
	}
	if accepted(clientCert(caA)) {
		t.Error("client certificate from the old CA accepted after reload")
	}
}

// TestSIGHUPDuringFirstOrder: a SIGHUP while the first order is in flight
// (here it cannot finish: Route 53 never reports INSYNC) reloads the store
// and keeps the daemon obtaining — Go's default action would end the
// process, test binary included — and READY is not sent early.
func TestSIGHUPDuringFirstOrder(t *testing.T) {
	r := newRig(t, pebblerig.Options{})
	r.r53.SetNeverInsync(true)
	cfg := r.config(t, t.TempDir(), "-obtain-timeout", "2m", "-dns01-timeout", "2m")
	listening := make(chan struct{}, 4)
	reloaded := make(chan struct{}, 1)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- runWith(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), hooks{
			listening: func(string, string) { listening <- struct{}{} },
			reloaded:  func() { reloaded <- struct{}{} },
			ready:     func() { close(ready) },
		})
	}()
	<-listening // serving: the order is being made
	poll.Until(t, 20*time.Second, "the first order to start", func() bool { return strings.Contains(logs.String(), "msg=cert.order_started") })
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded:
	case <-time.After(20 * time.Second):
		t.Fatal("no reload after SIGHUP during the first order")
	}
	select {
	case <-ready:
		t.Error("READY during the first order after SIGHUP; want it only once the order ends or its bound passes")
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if !strings.Contains(logs.String(), "msg=config.reloaded") {
		t.Errorf("log lacks config.reloaded:\n%s", logs.String())
	}
}

// TestPermanentACMEErrorsExit78: errors no retry can fix end the start
// with a configuration error naming the flag (Main exits 78 on it) instead
// of READY with nothing served; the unknown-profile case too.
func TestPermanentACMEErrorsExit78(t *testing.T) {
	t.Parallel()
	r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	for _, tc := range []struct {
		extra []string
		flag  string
	}{
		{[]string{"-accept-tos=false"}, "-accept-tos: the CA requires agreeing to its terms of service"},
		{[]string{"-acme-profile", "nope"}, `-acme-profile: "nope" is not offered by the CA`},
	} {
		cfg := r.config(t, t.TempDir(), tc.extra...)
		ready := make(chan struct{})
		err := runWith(t.Context(), cfg, slog.New(slog.DiscardHandler), hooks{ready: func() { close(ready) }})
		var ce *configError
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.flag) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "Config.") {
			t.Errorf("%q: run = %v; want one line starting %q", tc.extra, err, tc.flag)
		}
		select {
		case <-ready:
			t.Errorf("%q: READY sent; want the start to fail", tc.extra)
		default:
		}
	}
}

// TestMainLoopWatchdogFollowsProgress: the watchdog is pinged on every
// tick while the store watcher and the renewal loops make progress, and
// withheld (so systemd restarts the daemon) while one is stuck.
func TestMainLoopWatchdogFollowsProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		live := newLiveness()
		stuck := &fakeStalled{}
		live.issuer = stuck
		tick := make(chan time.Time)
		n := &fakeNotifier{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		logs := &syncBuffer{}
		go func() {
			done <- mainLoop(ctx, nil, nil, tick, n, live, slog.New(slog.NewTextHandler(logs, nil)), func() {})
		}()
		beat := func() int {
			tick <- time.Now()
			synctest.Wait()
			return int(n.pings.Load())
		}
		live.watcherAlive()
		if got := beat(); got != 1 {
			t.Fatalf("pings = %d with everything live; want 1", got)
		}
		e := errors.New("issuer: a.test: renewal loop stuck")
		stuck.err.Store(&e)
		if got := beat(); got != 1 {
			t.Errorf("pings = %d with a stuck renewal loop; want the ping withheld", got)
		}
		stuck.err.Store(nil)
		if got := beat(); got != 2 {
			t.Errorf("pings = %d once the loop moved on; want pings again", got)
		}
		time.Sleep(watcherBound + time.Second) // the watcher reloads no more
		if got := beat(); got != 2 {
			t.Errorf("pings = %d with a store watcher silent past %s; want the ping withheld", got, watcherBound)
		}
		live.watcherAlive()
		if got := beat(); got != 3 {
			t.Errorf("pings = %d once the watcher reloaded; want pings again", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if c := strings.Count(logs.String(), "msg=systemd.watchdog_withheld"); c != 2 {
			t.Errorf("%d watchdog_withheld lines; want one per stall:\n%s", c, logs.String())
		}
	})
}

type fakeStalled struct{ err atomic.Pointer[error] }

func (f *fakeStalled) Stalled(time.Time) error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

type fakeNotifier struct{ pings, reloads atomic.Int64 }

func (f *fakeNotifier) watchdog()  { f.pings.Add(1) }
func (f *fakeNotifier) reloading() { f.reloads.Add(1) }
