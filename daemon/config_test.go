package daemon

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigDefaultsAndEnv(t *testing.T) {
	env := map[string]string{
		"EDGECERT_DOMAINS":       "Example.com,*.example.com; other.example.org",
		"EDGECERT_HTTPS_ADDR":    ":9443",
		"EDGECERT_DATA_MAX":      "512MiB",
		"EDGECERT_ACCEPT_TOS":    "true",
		"EDGECERT_LOG_LEVEL":     "debug",
		"EDGECERT_ADMIN_ADDR":    "",
		"EDGECERT_DNS01_TIMEOUT": "45s",
	}
	c, err := parseConfig([]string{"-https-addr", ":8443"}, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"example.com", "*.example.com"}, {"other.example.org"}}
	if !slices.EqualFunc(c.Domains, want, slices.Equal) {
		t.Errorf("Domains = %q; want %q", c.Domains, want)
	}
	if c.HTTPSAddr != ":8443" {
		t.Errorf("HTTPSAddr = %q; want the command line's :8443 over the environment", c.HTTPSAddr)
	}
	if c.DataMax != 512<<20 || !c.AcceptTOS || c.LogLevel.String() != "DEBUG" || c.DNS01Timeout != 45*time.Second {
		t.Errorf("env not applied: DataMax=%d AcceptTOS=%v LogLevel=%v DNS01Timeout=%v", c.DataMax, c.AcceptTOS, c.LogLevel, c.DNS01Timeout)
	}
	if c.AdminAddr != "" {
		t.Errorf("AdminAddr = %q; an empty EDGECERT_ADMIN_ADDR must disable it", c.AdminAddr)
	}
	if c.HTTPAddr != ":80" || c.ACMEDirectory != LetsEncryptURL || c.KeyType != "ecdsa-p256" {
		t.Errorf("defaults: http=%q dir=%q key=%q", c.HTTPAddr, c.ACMEDirectory, c.KeyType)
	}
	if got := c.defaultCertName(); got != "example.com" {
		t.Errorf("defaultCertName = %q; want the first certificate", got)
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := certstoretest.NewCA(t)
	chain, key := ca.Issue(t, []string{"a.example.com"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, chain, 0o600)
	os.WriteFile(keyFile, key, 0o600)
	d := "-domains=example.com"
	tests := []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{[]string{d, "-https-addr", "nope"}, nil, "-https-addr"},
		{[]string{d, "-https-addr", ""}, nil, "-https-addr"},
		{[]string{d, "-http-addr", "1.2.3.4:99999"}, nil, "-http-addr"},
		{[]string{"-cert-file", certFile}, nil, "-key-file"},
		{[]string{"-key-file", keyFile}, nil, "-cert-file"},
		{[]string{"-cert-file", filepath.Join(dir, "missing"), "-key-file", keyFile}, nil, "-cert-file"},
		{[]string{d, "-client-ca-file", garbage}, nil, "-client-ca-file"},
		{[]string{d, "-acme-ca-roots", garbage}, nil, "-acme-ca-roots"},
		{[]string{}, nil, "-domains"},
		{[]string{"-domains", "*.*.example.com"}, nil, "-domains"},
		{[]string{"-domains", "bad_name.example.com"}, nil, "-domains"},
		{[]string{"-domains", "localhost"}, nil, "-domains"},
		{[]string{d, "-domains", "example.com,www.example.com"}, nil, "-domains"},
		{[]string{d, "-acme-directory", "http://ca.example/dir"}, nil, "-acme-directory"},
		{[]string{d, "-acme-eab-kid", "kid"}, nil, "-acme-eab-hmac"},
		{[]string{d, "-acme-eab-hmac", "aGVsbG8"}, nil, "-acme-eab-kid"},
		{[]string{d, "-acme-eab-kid", "k", "-acme-eab-hmac", "!!"}, nil, "-acme-eab-hmac"},
		{[]string{d, "-key-type", "ed25519"}, nil, "-key-type"},
		{[]string{d, "-dns01-nameservers", "10.0.0.1"}, nil, "-dns01-nameservers"},
		{[]string{d, "-dns01-timeout", "0s"}, nil, "-dns01-timeout"},
		{[]string{d, "-log-format", "xml"}, nil, "-log-format"},
		{[]string{d, "-default-cert", "other.example.com"}, nil, "-default-cert"},
		{[]string{d, "-email", "ops"}, nil, "-email"},
		{[]string{d}, map[string]string{"EDGECERT_DATA_MAX": "-5"}, "-data-max"},
		{[]string{d}, map[string]string{"EDGECERT_ALLOW_ENV": "maybe"}, "-allow-env"},
		{[]string{d}, map[string]string{"EDGECERT_LOG_LEVEL": "loud"}, "-log-level"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+tt.flag, func(t *testing.T) {
			_, err := parseConfig(tt.args, envMap(tt.env), io.Discard)
			if err == nil {
				t.Fatalf("parseConfig(%q) = nil error; want one naming %s", tt.args, tt.flag)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.flag) || strings.Contains(msg, "\n") {
				t.Errorf("error %q; want one line naming %s", msg, tt.flag)
			}
		})
	}
}

func TestConfigOperatorPairAlone(t *testing.T) {
	dir := t.TempDir()
	ca := certstoretest.NewCA(t)
	chain, key := ca.Issue(t, []string{"a.example.com"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, chain, 0o600)
	os.WriteFile(keyFile, key, 0o600)
	c, err := parseConfig([]string{"-cert-file", certFile, "-key-file", keyFile}, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.defaultCertName(); got != fileCertName {
		t.Errorf("defaultCertName = %q; want %q", got, fileCertName)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "1GiB": 1 << 30, "512mib": 512 << 20, "2K": 2048, "3 MB": 3 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1XB", "99999999999TiB", "GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = nil error; want one", in)
		}
	}
}

func TestRedirectHandler(t *testing.T) {
	tests := []struct{ port, host, uri, want string }{
		{"443", "example.com", "/a?b=c", "https://example.com/a?b=c"},
		{"443", "example.com:80", "/", "https://example.com/"},
		{"8443", "example.com:8080", "/x", "https://example.com:8443/x"},
		{"8443", "[::1]:8080", "/x", "https://[::1]:8443/x"},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", tt.uri, nil)
		r.Host = tt.host
		redirectHandler(tt.port).ServeHTTP(w, r)
		if w.Code != 308 || w.Header().Get("Location") != tt.want {
			t.Errorf("redirect(%s, %s%s) = %d %q; want 308 %q", tt.port, tt.host, tt.uri, w.Code, w.Header().Get("Location"), tt.want)
		}
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = ""
	redirectHandler("443").ServeHTTP(w, r)
	if w.Code != 400 {
		t.Errorf("missing Host: %d; want 400", w.Code)
	}
}
