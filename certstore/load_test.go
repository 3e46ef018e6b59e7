package certstore

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

// serialTracker records when each leaf serial was first seen by a client.
type serialTracker struct {
	mu      sync.Mutex // guards seen and waiters
	seen    map[string]time.Time
	waiters map[string]chan struct{}
}

func (st *serialTracker) see(serial string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.seen[serial]; ok {
		return
	}
	st.seen[serial] = time.Now()
	if ch, ok := st.waiters[serial]; ok {
		close(ch)
		delete(st.waiters, serial)
	}
}

// wait blocks until serial has been seen or timeout passes and returns when
// it was first seen.
func (st *serialTracker) wait(serial string, timeout time.Duration) (time.Time, bool) {
	st.mu.Lock()
	if at, ok := st.seen[serial]; ok {
		st.mu.Unlock()
		return at, true
	}
	ch := make(chan struct{})
	st.waiters[serial] = ch
	st.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(timeout):
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	at, ok := st.seen[serial]
	return at, ok
}

// TestHotReloadUnderLoad rotates the certificate of a live TLS server 100
// times, a third each through PutCert, through another process writing the
// store directory, and through the operator file pair (written non-atomically,
// so the pair is briefly inconsistent), while clients keep doing fresh
// handshakes. No handshake or request may fail, every rotation must be
// handed to a new handshake within a second of the write starting, and each
// must then complete a client request.
func TestHotReloadUnderLoad(t *testing.T) {
	const (
		rotations = 100
		clients   = 4
		deadline  = time.Second
		host      = "www.example.test"
	)
	ca := certstoretest.NewCA(t)
	s, rec, dir := openStore(t, Options{Debounce: 20 * time.Millisecond})
	// Each rotation expires a minute after the previous one, so whichever
	// source it came through, it is the one with the latest NotAfter.
	notBefore, base := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	issue := func(i int) (chain, key []byte) {
		return ca.Issue(t, []string{host}, notBefore, base.Add(time.Duration(i)*time.Minute))
	}
	chain, key := issue(0)
	mustPut(t, s, "site", chain, key, Meta{Names: []string{host}})
	op := t.TempDir()
	certFile, keyFile := filepath.Join(op, "cert.pem"), filepath.Join(op, "key.pem")
	chain, key = issue(0)
	must(t, os.WriteFile(certFile, chain, 0o600))
	must(t, os.WriteFile(keyFile, key, 0o600))
	must(t, s.AddFilePair("operator", certFile, keyFile))

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		if err := s.Watch(ctx); err != nil {
			t.Errorf("Watch() = %v", err)
		}
	})

	// served records when a handshake first got each serial from the store
	// (server side, so the time does not include the rest of a handshake
	// slowed down by -race on a busy machine); seen records when a client
	// first completed a request over it.
	served := &serialTracker{seen: map[string]time.Time{}, waiters: map[string]chan struct{}{}}
	tracker := &serialTracker{seen: map[string]time.Time{}, waiters: map[string]chan struct{}{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := s.GetCertificate(hello)
			if err == nil {
				served.see(c.Leaf.SerialNumber.Text(16))
			}
			return c, err
		},
		MinVersion: tls.VersionTLS12,
	}
	srv.StartTLS()
	defer srv.Close()

	var requests, failures atomic.Int64
	var firstErr atomic.Pointer[error]
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, &err)
	}
	request := func() {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool, ServerName: host},
			DisableKeepAlives: true,
		}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			fail(err)
			return
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || string(body) != "ok" {
			fail(fmt.Errorf("response %d %q, %v", resp.StatusCode, body, err))
			return
		}
		requests.Add(1)
		tracker.see(resp.TLS.PeerCertificates[0].SerialNumber.Text(16))
	}
	var clientsWG sync.WaitGroup
	stopClients := make(chan struct{})
	for range clients {
		clientsWG.Go(func() {
			for {
				select {
				case <-stopClients:
					return
				default:
				}
				request()
			}
		})
	}

	var maxLatency, total time.Duration
	var late int
	for i := 1; i <= rotations; i++ {
		chain, key := issue(i)
		serial := certstoretest.Serial(t, chain)
		start := time.Now()
		var via string
		switch i % 3 {
		case 0:
			via = "PutCert"
			mustPut(t, s, "site", chain, key, Meta{Names: []string{host}})
		case 1:
			via = "another process"
			writeExternal(t, dir, "site", chain, key, metaJSON(t, Meta{Names: []string{host}, Source: "acme"}))
		case 2:
			via = "operator file pair"
			// Certificate first, key second, as cp(1) would: in between the
			// pair does not match. Every other time, force a reload right in
			// that window so the inconsistent state is certainly observed.
			must(t, os.WriteFile(certFile, chain, 0o600))
			if i%2 == 0 {
				must(t, s.Reload(t.Context()))
			}
			must(t, os.WriteFile(keyFile, key, 0o600))
		}
		at, ok := served.wait(serial, deadline)
		if !ok {
			late++
			t.Errorf("rotation %d via %s: serial %s not served to a new handshake within %v", i, via, serial, deadline)
		}
		// The client side must complete a request over it too; under
		// -race on a loaded machine that may take longer than the deadline.
		if _, ok := tracker.wait(serial, 30*time.Second); !ok {
			t.Fatalf("rotation %d via %s: serial %s never reached a client", i, via, serial)
		}
		if !ok {
			continue
		}
		lat := max(at.Sub(start), 0)
		total += lat
		maxLatency = max(maxLatency, lat)
	}
	close(stopClients)
	clientsWG.Wait()

	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d requests failed; first: %v", n, n+requests.Load(), *firstErr.Load())
	}
	if got := requests.Load(); got < rotations {
		t.Errorf("only %d requests completed; want at least %d", got, rotations)
	}
	if n := len(rec.Find("cert.rejected", map[string]string{"name": "operator", "source": "file"})); n == 0 {
		t.Errorf("no inconsistent operator pair was ever rejected; the mid-copy window was not exercised")
	}
	if late < rotations {
		t.Logf("%d rotations, %d requests (each a new handshake), rotation-to-served latency: mean %v, max %v, late %d",
			rotations, requests.Load(), total/time.Duration(rotations-late), maxLatency, late)
	}
}
