package daemon

import (
	"flag"
	"fmt"
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
		{[]string{"-domains", "127.0.0.1"}, nil, "-domains"},
		{[]string{"-domains", "example.com,[::1]"}, nil, "-domains"},
		{[]string{"-domains", longName(240)}, nil, "-domains"},
		{[]string{"-domains", manyNames(101)}, nil, "-domains"},
		{[]string{"-domains", manyNames(3), "-acme-max-names", "2"}, nil, "-domains"},
		{[]string{d, "-staging", "-acme-directory", "https://ca.example/dir"}, nil, "-staging"},
		{[]string{d, "-staging"}, map[string]string{"EDGECERT_ACME_DIRECTORY": "https://ca.example/dir"}, "-staging"},
		{[]string{d, "-acme-profile", "two words"}, nil, "-acme-profile"},
		{[]string{d, "-email", "mailto:ops@example.com"}, nil, "-email"},
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

// longName is a valid DNS name of n characters.
func longName(n int) string {
	var b strings.Builder
	for b.Len() < n-4 {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		l := min(60, n-4-b.Len())
		b.WriteString(strings.Repeat("a", max(l, 1)))
	}
	return b.String() + ".com"
}

func manyNames(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("h%d.example.com", i)
	}
	return strings.Join(names, ",")
}

func TestConfigDomainLimits(t *testing.T) {
	// The challenge name _acme-challenge.<name> must fit 253 characters:
	// 237 does, 238 does not.
	if _, err := parseConfig([]string{"-domains", longName(237)}, envMap(nil), io.Discard); err != nil {
		t.Errorf("a 237-character name: %v; want it accepted", err)
	}
	_, err := parseConfig([]string{"-domains", longName(238)}, envMap(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-domains") || !strings.Contains(err.Error(), "253") {
		t.Errorf("a 238-character name: %v; want -domains and the 253 limit", err)
	}
	if _, err := parseConfig([]string{"-domains", manyNames(100)}, envMap(nil), io.Discard); err != nil {
		t.Errorf("100 names: %v; want them accepted (Let's Encrypt's limit)", err)
	}
	_, err = parseConfig([]string{"-domains", manyNames(1000)}, envMap(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "at most 100") || !strings.Contains(err.Error(), "-acme-max-names") {
		t.Errorf("1000 names: %v; want the limit (100) and the flag that changes it", err)
	}
	_, err = parseConfig([]string{"-domains", "a.example.com,127.0.0.1"}, envMap(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "IP address") {
		t.Errorf("an IP literal: %v; want it refused as an IP address", err)
	}
}

func TestConfigStaging(t *testing.T) {
	c, err := parseConfig([]string{"-domains", "example.com", "-staging"}, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ACMEDirectory != LetsEncryptStagingURL {
		t.Errorf("ACMEDirectory = %q with -staging; want %q", c.ACMEDirectory, LetsEncryptStagingURL)
	}
	c, err = parseConfig([]string{"-domains", "example.com"}, envMap(map[string]string{"EDGECERT_STAGING": "true"}), io.Discard)
	if err != nil || c.ACMEDirectory != LetsEncryptStagingURL {
		t.Errorf("EDGECERT_STAGING=true: %v, %q; want the staging directory", err, c.ACMEDirectory)
	}
}

// TestConfigParseErrors pins the one-line messages of flag and variable
// errors: the problem, a hint of a good value, the closest known name.
func TestConfigParseErrors(t *testing.T) {
	d := "-domains=example.com"
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{d, "-dns01-timeout", "2"}, nil, `-dns01-timeout: "2" is not a duration (e.g. 2m); see 'edgecert run -h'`},
		{[]string{d}, map[string]string{"EDGECERT_ACCEPT_TOS": "yes"}, `EDGECERT_ACCEPT_TOS: "yes" is not true or false (-accept-tos)`},
		{[]string{"-domain", "example.com"}, nil, `-domain: unknown flag (did you mean -domains?); see 'edgecert run -h'`},
		{[]string{d, "-httpsaddr", ":1"}, nil, `-httpsaddr: unknown flag (did you mean -https-addr?); see 'edgecert run -h'`},
		{[]string{d, "-acme-max-names", "lots"}, nil, `-acme-max-names: "lots" is not a whole number; see 'edgecert run -h'`},
		{[]string{d, "-log-level", "loud"}, nil, `-log-level: "loud" is not debug, info, warn or error; see 'edgecert run -h'`},
		{[]string{d, "-data-max", "big"}, nil, `-data-max: "big" is not a positive size (e.g. 1GiB); see 'edgecert run -h'`},
		{[]string{d, "-email"}, nil, `-email: needs a value; see 'edgecert run -h'`},
		{[]string{d, "extra"}, nil, `unexpected argument "extra" (flags start with -); see 'edgecert run -h'`},
		{[]string{d, "-route53-max-rps", "0"}, nil, `-route53-max-rps: 0 is not in (0, 100]; Route 53 allows 5 per second per account`},
		{[]string{d}, map[string]string{"EDGECERT_ROUTE53_MAX_RPS": "-1"}, `-route53-max-rps: -1 is not in (0, 100]; Route 53 allows 5 per second per account`},
		{[]string{d, "-max-concurrent-orders", "-2"}, nil, `-max-concurrent-orders: -2 is negative`},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, envMap(tt.env), io.Discard)
		if err == nil || err.Error() != tt.want {
			t.Errorf("parseConfig(%q, %v) = %v;\nwant %s", tt.args, tt.env, err, tt.want)
		}
	}
}

func TestUnknownEnv(t *testing.T) {
	got := unknownEnv([]string{"EDGECERT_DOMIANS=a.example.com", "EDGECERT_HTTPSADDR=:1", "EDGECERT_DOMAINS=x", "HOME=/root", "EDGECERT_ZZZZZZZZZZZZZZZZ=1"})
	want := []string{
		"EDGECERT_DOMIANS is not a known variable, ignored (did you mean EDGECERT_DOMAINS?)",
		"EDGECERT_HTTPSADDR is not a known variable, ignored (did you mean EDGECERT_HTTPS_ADDR?)",
		"EDGECERT_ZZZZZZZZZZZZZZZZ is not a known variable, ignored",
	}
	if !slices.Equal(got, want) {
		t.Errorf("unknownEnv = %q;\nwant %q", got, want)
	}
}

// TestRunHelp checks -h: exit 0, every flag in exactly one group, each
// default printed once, examples at the end; status -h exits 0 too and
// iam-policy -h names its command.
func TestRunHelp(t *testing.T) {
	var out, errb strings.Builder
	if code := Main([]string{"run", "-h"}, &out, &errb); code != exitOK {
		t.Fatalf("run -h: exit %d, stderr %q", code, errb.String())
	}
	help := out.String()
	for _, group := range []string{"Listeners:", "Certificates and ACME:", "Route 53 and DNS-01:", "whoami routes:", "Logging:", "Examples:"} {
		if !strings.Contains(help, "\n"+group+"\n") {
			t.Errorf("run -h has no %q group", group)
		}
	}
	newFlagSet(&Config{}, io.Discard).VisitAll(func(f *flag.Flag) {
		if n := strings.Count(help, "\n  -"+f.Name+" ") + strings.Count(help, "\n  -"+f.Name+"\n"); n != 1 {
			t.Errorf("-%s listed %d times in run -h; want once", f.Name, n)
		}
	})
	for _, line := range strings.Split(help, "\n") {
		if strings.Count(line, "default") > 1 {
			t.Errorf("a default printed twice: %q", line)
		}
	}
	if !strings.Contains(help, "(default 1GiB)") || strings.Contains(help, "1073741824") {
		t.Errorf("-data-max default not shown once as 1GiB")
	}
	if strings.Index(help, "Examples:") < strings.Index(help, "Logging:") {
		t.Error("examples are not at the end")
	}
	out.Reset()
	if code := Main([]string{"status", "-h"}, &out, &errb); code != exitOK {
		t.Errorf("status -h: exit %d; want 0", code)
	}
	out.Reset()
	if code := Main([]string{"iam-policy", "-h"}, &out, &errb); code != exitOK || !strings.HasPrefix(out.String(), "Usage: edgecert iam-policy") {
		t.Errorf("iam-policy -h: exit %d, %q; want 0 and its own name", code, firstLine(out.String()))
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
func TestFleetFlags(t *testing.T) {
	base := []string{"-domains", "example.com", "-state-dir", t.TempDir()}
	for _, tc := range []struct {
		args           []string
		bucket, prefix string
		err            string
	}{
		{[]string{"-fleet-store", "s3://certs"}, "certs", "", ""},
		{[]string{"-fleet-store", "s3://certs/edge/prod/"}, "certs", "edge/prod/", ""},
		{[]string{"-fleet-store", "https://certs"}, "", "", "-fleet-store: "},
		{[]string{"-fleet-store", "s3:///x"}, "", "", "-fleet-store: "},
		{[]string{"-fleet-store", "s3://certs", "-fleet-lease-ttl", "5s"}, "", "", "-fleet-lease-ttl: "},
		{[]string{"-fleet-store", "s3://certs", "-fleet-sync-interval", "0s"}, "", "", "-fleet-sync-interval: "},
		{[]string{"-fleet-lease-ttl", "5s"}, "", "", ""}, // ignored without -fleet-store
	} {
		c, err := parseConfig(append(append([]string{}, base...), tc.args...), func(string) (string, bool) { return "", false }, io.Discard)
		switch {
		case tc.err != "":
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%v: err = %v, want prefix %q", tc.args, err, tc.err)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case c.Fleet.bucket != tc.bucket || c.Fleet.prefix != tc.prefix:
			t.Errorf("%v: bucket %q prefix %q", tc.args, c.Fleet.bucket, c.Fleet.prefix)
		}
	}
	c, err := parseConfig(base, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil || c.Fleet.SyncInterval != time.Minute || c.Fleet.LeaseTTL != 2*time.Minute {
		t.Errorf("defaults %+v, %v", c.Fleet, err)
	}
}

func TestInstanceID(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	if got := instanceID(t.Context(), "i-0abc"); got != "i-0abc" {
		t.Errorf("flag value: %q", got)
	}
	h, _ := os.Hostname()
	if got := instanceID(t.Context(), ""); got != h {
		t.Errorf("without IMDS: %q, want the hostname %q", got, h)
	}
}
