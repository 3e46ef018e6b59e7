package routes

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

const testIPLines = "IP: 127.0.0.1\nIP: ::1\nIP: fe80::1\n"

func TestWhoamiBody(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		method string
		target string
		body   string
		header map[string][]string
		host   string
		want   string
	}{
		{
			name:   "name, body and sorted headers",
			opts:   Options{Name: "edge-1"},
			method: http.MethodPost,
			target: "/some/path?q=1&r=%20",
			body:   "hello",
			header: map[string][]string{"User-Agent": {"compat/1.0"}, "X-B": {"b"}, "X-A": {"1", "2"}, "Accept": {"*/*"}},
			host:   "example.com",
			want: "Name: edge-1\nHostname: test-host\n" + testIPLines + "RemoteAddr: 192.0.2.7:51234\n" +
				"POST /some/path?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: compat/1.0\r\n" +
				"Content-Length: 5\r\nAccept: */*\r\nX-A: 1\r\nX-A: 2\r\nX-B: b\r\n\r\nhello",
		},
		{
			name:   "no name, no user agent",
			method: http.MethodGet,
			target: "/",
			host:   "whoami.test:8443",
			want: "Hostname: test-host\n" + testIPLines + "RemoteAddr: 192.0.2.7:51234\n" +
				"GET / HTTP/1.1\r\nHost: whoami.test:8443\r\nUser-Agent: Go-http-client/1.1\r\n\r\n",
		},
		{
			name:   "unmatched path, empty POST",
			method: http.MethodPost,
			target: "/nothing/here",
			host:   "h",
			header: map[string][]string{"User-Agent": {"curl/8.5.0"}},
			want: "Hostname: test-host\n" + testIPLines + "RemoteAddr: 192.0.2.7:51234\n" +
				"POST /nothing/here HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8.5.0\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name:   "no addresses",
			opts:   Options{Addrs: func() ([]string, error) { return nil, nil }, Hostname: "other"},
			method: http.MethodGet,
			target: "/",
			host:   "h",
			want: "Hostname: other\nRemoteAddr: 192.0.2.7:51234\n" +
				"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, tt.opts)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			r := httptest.NewRequest(tt.method, tt.target, body)
			r.Host = tt.host
			r.RemoteAddr = "192.0.2.7:51234"
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			if tt.method == http.MethodPost && tt.body == "" {
				r.Body = http.NoBody
			}
			rec := serve(h, r)
			if rec.Code != 200 || rec.Body.String() != tt.want {
				t.Errorf("body =\n%q\nwant\n%q", rec.Body.String(), tt.want)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/plain; charset=utf-8", got)
			}
		})
	}
}

// TestWhoamiLargeBody checks a request body larger than the response buffer
// is echoed whole and in order.
func TestWhoamiLargeBody(t *testing.T) {
	h := newTestHandler(t, Options{})
	payload := strings.Repeat("0123456789abcdef", 2000) // 32000 bytes
	r := httptest.NewRequest(http.MethodPut, "/upload", strings.NewReader(payload))
	r.Host = "h"
	rec := serve(h, r)
	want := "Hostname: test-host\n" + testIPLines + "RemoteAddr: 192.0.2.1:1234\n" +
		"PUT /upload HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 32000\r\n\r\n" + payload
	if got := rec.Body.String(); got != want {
		t.Errorf("body length %d, want %d (equal: %v)", len(got), len(want), got == want)
	}
}

// TestWhoamiUnrenderable: a request Request.Write refuses (a control byte
// in the URL) is a 400 with a one-line reason, never a 5xx.
func TestWhoamiUnrenderable(t *testing.T) {
	h := newTestHandler(t, Options{})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.URL.RawQuery = "a=\x01"
	rec := serve(h, r)
	body := rec.Body.String()
	if rec.Code != http.StatusBadRequest || strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
		t.Errorf("= %d %q, want 400 with one line", rec.Code, body)
	}
	if strings.Contains(body, "Hostname") {
		t.Errorf("400 body %q contains part of the / response", body)
	}
}

// TestWhoamiBodyReadError: once the request head has been sent a failing
// request body can only end the response early; it must not panic or
// turn into a 5xx.
func TestWhoamiBodyReadError(t *testing.T) {
	h := newTestHandler(t, Options{})
	r := httptest.NewRequest(http.MethodPost, "/", errReader{})
	r.ContentLength = 10
	rec := serve(h, r)
	want := "Hostname: test-host\n" + testIPLines + "RemoteAddr: 192.0.2.1:1234\n" +
		"POST / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 10\r\n\r\n"
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("= %d %q, want 200 %q", rec.Code, rec.Body.String(), want)
	}
}

func TestWhoamiEnv(t *testing.T) {
	t.Setenv("EDGECERT_ROUTES_TEST", "marker=value")
	base := "Hostname: test-host\n" + testIPLines + "RemoteAddr: 192.0.2.1:1234\n"
	dump := func(target string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"
	}
	envLines := strings.Join(printedEnviron(), "\n") + "\n"
	if !strings.Contains(envLines, "EDGECERT_ROUTES_TEST=marker=value\n") {
		t.Fatalf("test setup: marker not in os.Environ")
	}
	tests := []struct {
		allow   bool
		target  string
		wantEnv bool
	}{
		{false, "/?env=true", false},
		{false, "/?env=1", false},
		{false, "/", false},
		{true, "/?env=true", true},
		{true, "/?env=1", true},
		{true, "/?env=T", true},
		{true, "/other?env=TRUE", true},
		{true, "/?env=false", false},
		{true, "/?env=yes", false},
		{true, "/", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			h := newTestHandler(t, Options{AllowEnv: tt.allow})
			rec := get(h, tt.target)
			want := base + dump(tt.target)
			if tt.wantEnv {
				want += envLines
			}
			if got := rec.Body.String(); got != want {
				t.Errorf("AllowEnv=%v GET %s =\n%q\nwant\n%q", tt.allow, tt.target, got, want)
			}
		})
	}
}

func TestWhoamiWait(t *testing.T) {
	t.Parallel()
	// hasBody reports whether the handler answered.
	run := func(h *Handler, ctx context.Context, target string) (time.Duration, *httptest.ResponseRecorder) {
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		start := time.Now()
		rec := serve(h, r)
		return time.Since(start), rec
	}
	t.Run("honoured", func(t *testing.T) {
		t.Parallel()
		h := newTestHandler(t, Options{})
		took, rec := run(h, t.Context(), "/?wait=300ms")
		if took < 300*time.Millisecond || rec.Body.Len() == 0 {
			t.Errorf("wait=300ms took %v with %d body bytes, want >= 300ms and a body", took, rec.Body.Len())
		}
	})
	t.Run("unmatched path honoured", func(t *testing.T) {
		t.Parallel()
		h := newTestHandler(t, Options{})
		took, rec := run(h, t.Context(), "/x/y?wait=200ms")
		if took < 200*time.Millisecond || rec.Body.Len() == 0 {
			t.Errorf("wait=200ms took %v with %d body bytes, want >= 200ms and a body", took, rec.Body.Len())
		}
	})
	t.Run("capped", func(t *testing.T) {
		t.Parallel()
		h := newTestHandler(t, Options{WaitMax: 200 * time.Millisecond})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		took, rec := run(h, ctx, "/?wait=1h")
		if took < 200*time.Millisecond || rec.Body.Len() == 0 {
			t.Errorf("wait=1h with WaitMax 200ms took %v with %d body bytes, want >= 200ms and a body", took, rec.Body.Len())
		}
	})
	t.Run("ends with the request context", func(t *testing.T) {
		t.Parallel()
		h := newTestHandler(t, Options{WaitMax: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		took, rec := run(h, ctx, "/?wait=1h")
		if took > 20*time.Second || rec.Body.Len() != 0 {
			t.Errorf("cancelled wait took %v with %d body bytes, want it to end early without a body", took, rec.Body.Len())
		}
	})
	for _, target := range []string{"/?wait=abc", "/?wait=0", "/?wait=-5s", "/?wait=", "/api?wait=10m"} {
		t.Run("ignored "+target, func(t *testing.T) {
			t.Parallel()
			h := newTestHandler(t, Options{WaitMax: time.Hour})
			// A wait that is honoured would outlive this context and leave
			// the body empty.
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			_, rec := run(h, ctx, target)
			if rec.Code != 200 || rec.Body.Len() == 0 {
				t.Errorf("GET %s = %d with %d body bytes, want an immediate 200 with a body", target, rec.Code, rec.Body.Len())
			}
		})
	}
}

// TestWhoamiOverTLS serves / over real TLS with a client certificate, over
// HTTP/2 and HTTP/1.1, and checks the body byte for byte.
func TestWhoamiOverTLS(t *testing.T) {
	clientCert := newClientCert(t, pkix.Name{CommonName: "compat-client", Organization: []string{"edgecert test"}})

	h := newTestHandler(t, Options{Name: "tls"})
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	serverHost := strings.TrimPrefix(srv.URL, "https://")

	tests := []struct {
		name      string
		http2     bool
		cert      bool
		wantProto string
		wantCert  string
	}{
		{"h2 with cert", true, true, "HTTP/2.0", "Certificate[0] Subject: CN=compat-client,O=edgecert test\n"},
		{"h1 with cert", false, true, "HTTP/1.1", "Certificate[0] Subject: CN=compat-client,O=edgecert test\n"},
		{"h2 without cert", true, false, "HTTP/2.0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := srv.Client().Transport.(*http.Transport).Clone()
			if tt.cert {
				tr.TLSClientConfig.Certificates = []tls.Certificate{clientCert}
			}
			if !tt.http2 {
				tr.ForceAttemptHTTP2 = false
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()

			var local string
			trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
				local = info.Conn.LocalAddr().String()
			}}
			ctx := httptrace.WithClientTrace(t.Context(), trace)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/tls?x=1", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("User-Agent", "compat-test")
			req.Header.Set("Accept-Encoding", "identity")
			req.Header.Set("X-Trace", "abc")
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.Proto != tt.wantProto {
				t.Errorf("protocol %s, want %s", resp.Proto, tt.wantProto)
			}
			want := "Name: tls\nHostname: test-host\n" + testIPLines + "RemoteAddr: " + local + "\n" + tt.wantCert +
				"GET /tls?x=1 HTTP/1.1\r\nHost: " + serverHost + "\r\nUser-Agent: compat-test\r\n" +
				"Accept-Encoding: identity\r\nX-Trace: abc\r\n\r\n"
			if string(got) != want {
				t.Errorf("body =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// newClientCert returns a self-signed ECDSA client certificate for subject.
func newClientCert(t *testing.T, subject pkix.Name) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
