package daemon

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// LetsEncryptURL is the default ACME directory: Let's Encrypt production.
const LetsEncryptURL = "https://acme-v02.api.letsencrypt.org/directory"

// LetsEncryptStagingURL is Let's Encrypt's staging directory, for trials.
const LetsEncryptStagingURL = "https://acme-staging-v02.api.letsencrypt.org/directory"

// Config is the daemon's configuration, filled from flags and EDGECERT_*
// environment variables by parseConfig. Every field has the default its flag
// documents.
type Config struct {
	HTTPSAddr string // -https-addr
	HTTPAddr  string // -http-addr; "" disables the redirect listener
	AdminAddr string // -admin-addr; "" disables the admin listener
	StateDir  string // -state-dir

	CertFile, KeyFile string // -cert-file, -key-file: operator-supplied pair
	ClientCAFile      string // -client-ca-file
	DefaultCert       string // -default-cert: name served for unknown SNI; "none" = TLS alert

	Name        string // -name (whoami name)
	HealthToken string // -health-token
	AllowEnv    bool   // -allow-env
	DataMax     int64  // -data-max, bytes

	LogLevel  slog.Level // -log-level
	LogFormat string     // -log-format: text or json

	Domains       [][]string // -domains, one entry per certificate
	Email         string
	ACMEDirectory string
	ACMECARoots   string
	ACMEProfile   string
	EABKID        string
	EABHMAC       string
	KeyType       string
	Route53ZoneID string
	PrivateZone   bool // -route53-private-zone
	FollowCNAME   bool // -dns01-follow-cname
	AcceptTOS     bool

	DNS01NameServers []string      // -dns01-nameservers
	DNS01Timeout     time.Duration // -dns01-timeout
	ObtainTimeout    time.Duration // -obtain-timeout: bound on the first order before READY
	ShutdownTimeout  time.Duration // -shutdown-timeout: bound on draining connections
}

// configError is a configuration problem: one line naming the flag.
type configError struct {
	flag string
	msg  string
}

func (e *configError) Error() string { return "-" + e.flag + ": " + e.msg }

func badFlag(name, format string, args ...any) error {
	return &configError{flag: name, msg: fmt.Sprintf(format, args...)}
}

// domainsFlag collects one certificate per -domains occurrence.
type domainsFlag struct{ certs *[][]string }

func (d domainsFlag) String() string {
	if d.certs == nil {
		return ""
	}
	var parts []string
	for _, c := range *d.certs {
		parts = append(parts, strings.Join(c, ","))
	}
	return strings.Join(parts, ";")
}

func (d domainsFlag) Set(v string) error {
	var names []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, strings.ToLower(strings.TrimSuffix(n, ".")))
		}
	}
	if len(names) == 0 {
		return errors.New("empty domain list")
	}
	*d.certs = append(*d.certs, names)
	return nil
}

// listFlag is a comma-separated list.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	*l.v = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// sizeFlag is a byte count with an optional binary unit (KiB, MiB, GiB, TiB;
// also K, M, G, T and KB/MB/GB/TB read as binary).
type sizeFlag struct{ v *int64 }

func (s sizeFlag) String() string {
	if s.v == nil {
		return ""
	}
	return strconv.FormatInt(*s.v, 10)
}

func (s sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s.v = n
	return nil
}

func parseSize(v string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10},
		{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10},
		{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a positive size (e.g. 1GiB)", v)
	}
	return n * mult, nil
}

// envName is the environment variable that backs flag name.
func envName(name string) string {
	return "EDGECERT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// newFlagSet defines every flag of `edgecert run` on a fresh FlagSet that
// writes into c.
func newFlagSet(c *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("edgecert run", flag.ContinueOnError)
	fs.SetOutput(out)
	stateDefault := "/var/lib/edgecert"
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		stateDefault = strings.Split(d, ":")[0]
	}
	fs.StringVar(&c.HTTPSAddr, "https-addr", ":443", "address of the HTTPS listener")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":80", "address of the HTTP listener that redirects to HTTPS (empty disables it)")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:9180", "address of the admin listener: /livez /readyz /metrics /status (empty disables it)")
	fs.StringVar(&c.StateDir, "state-dir", stateDefault, "persistent certificate store (default $STATE_DIRECTORY, else /var/lib/edgecert)")
	fs.StringVar(&c.CertFile, "cert-file", "", "operator-supplied certificate chain (PEM), watched and hot-reloaded; needs -key-file")
	fs.StringVar(&c.KeyFile, "key-file", "", "private key (PEM) for -cert-file")
	fs.StringVar(&c.ClientCAFile, "client-ca-file", "", "require and verify client certificates signed by these CAs (PEM)")
	fs.StringVar(&c.DefaultCert, "default-cert", "", `certificate served when SNI matches none: a certificate name, or "none" for a TLS alert (default: the first certificate)`)
	fs.StringVar(&c.Name, "name", "", "whoami name printed by / and /api")
	fs.StringVar(&c.HealthToken, "health-token", "", "bearer token that allows POST /health from non-loopback clients")
	fs.BoolVar(&c.AllowEnv, "allow-env", false, "honour ?env=true on / and /api (prints the environment: keep off on public hosts)")
	c.DataMax = 1 << 30
	fs.Var(sizeFlag{&c.DataMax}, "data-max", "largest /data body (e.g. 512MiB; default 1GiB)")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.Var(domainsFlag{&c.Domains}, "domains", "names of one certificate, comma-separated (repeat for more certificates; in the env var separate certificates with ';')")
	fs.StringVar(&c.Email, "email", "", "ACME account contact e-mail")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", LetsEncryptURL, "ACME directory URL (staging: "+LetsEncryptStagingURL+")")
	fs.StringVar(&c.ACMECARoots, "acme-ca-roots", "", "extra PEM roots trusted for the ACME CA's HTTPS endpoint")
	fs.StringVar(&c.ACMEProfile, "acme-profile", "", "ACME profile to order (e.g. tlsserver, shortlived); kept on renewal")
	fs.StringVar(&c.EABKID, "acme-eab-kid", "", "external account binding key ID")
	fs.StringVar(&c.EABHMAC, "acme-eab-hmac", "", "external account binding HMAC key (base64url)")
	fs.StringVar(&c.KeyType, "key-type", "ecdsa-p256", "certificate key: ecdsa-p256, ecdsa-p384, rsa2048, rsa3072 or rsa4096")
	fs.StringVar(&c.Route53ZoneID, "route53-zone-id", "", "Route 53 hosted zone ID (default: found by name)")
	fs.BoolVar(&c.PrivateZone, "route53-private-zone", false, "find private hosted zones instead of public ones (propagation then ends at INSYNC)")
	fs.BoolVar(&c.FollowCNAME, "dns01-follow-cname", false, "follow a CNAME at _acme-challenge.<name> and write the record in the target's zone")
	fs.BoolVar(&c.AcceptTOS, "accept-tos", false, "agree to the ACME CA's terms of service")
	fs.Var(listFlag{&c.DNS01NameServers}, "dns01-nameservers", "host:port list queried for DNS-01 propagation instead of the zone's name servers")
	fs.DurationVar(&c.DNS01Timeout, "dns01-timeout", 2*time.Minute, "bound on waiting for a challenge record to propagate")
	fs.DurationVar(&c.ObtainTimeout, "obtain-timeout", 3*time.Minute, "bound on obtaining missing certificates at start-up, before READY")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "bound on draining connections at shutdown")
	return fs
}

// parseConfig parses args, then fills every flag not given on the command
// line from its EDGECERT_* variable (lookupEnv, as os.LookupEnv), then
// validates. A variable that is set but empty counts: EDGECERT_HTTP_ADDR=
// disables the redirect listener. Errors name the flag (or its variable) and
// the problem on one line.
// Commands other than run may define flags of their own with extra.
func parseConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer, extra ...func(*flag.FlagSet)) (*Config, error) {
	c := &Config{}
	fs := newFlagSet(c, out)
	for _, f := range extra {
		f(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := lookupEnv(envName(f.Name))
		if given[f.Name] || !ok || envErr != nil {
			return
		}
		vals := []string{v}
		if f.Name == "domains" {
			vals = strings.Split(v, ";")
		}
		for _, one := range vals {
			if f.Name == "domains" && strings.TrimSpace(one) == "" {
				continue
			}
			if err := fs.Set(f.Name, one); err != nil {
				envErr = badFlag(f.Name, "%s=%q: %v", envName(f.Name), v, err)
				return
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	return c, c.validate()
}

// validate checks everything that can be checked before start-up.
func (c *Config) validate() error {
	if err := checkAddr("https-addr", c.HTTPSAddr, false); err != nil {
		return err
	}
	if err := checkAddr("http-addr", c.HTTPAddr, true); err != nil {
		return err
	}
	if err := checkAddr("admin-addr", c.AdminAddr, true); err != nil {
		return err
	}
	if c.StateDir == "" {
		return badFlag("state-dir", "must not be empty")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			return badFlag("cert-file", "required with -key-file")
		}
		return badFlag("key-file", "required with -cert-file")
	}
	for _, f := range []struct{ flag, path string }{{"cert-file", c.CertFile}, {"key-file", c.KeyFile}, {"client-ca-file", c.ClientCAFile}, {"acme-ca-roots", c.ACMECARoots}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return badFlag(f.flag, "%v", err)
		}
	}
	if c.ClientCAFile != "" {
		if _, err := loadPool(c.ClientCAFile); err != nil {
			return badFlag("client-ca-file", "%v", err)
		}
	}
	if c.ACMECARoots != "" {
		if _, err := loadPool(c.ACMECARoots); err != nil {
			return badFlag("acme-ca-roots", "%v", err)
		}
	}
	if len(c.Domains) == 0 && c.CertFile == "" {
		return badFlag("domains", "no certificate to serve: set -domains (ACME) or -cert-file and -key-file")
	}
	seen := map[string]bool{}
	for _, cert := range c.Domains {
		if seen[cert[0]] {
			return badFlag("domains", "certificate %q is configured twice", cert[0])
		}
		seen[cert[0]] = true
		for _, d := range cert {
			if err := checkDomain(d); err != nil {
				return badFlag("domains", "%q: %v", d, err)
			}
		}
	}
	if len(c.Domains) > 0 {
		u, err := url.Parse(c.ACMEDirectory)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return badFlag("acme-directory", "%q is not an https URL", c.ACMEDirectory)
		}
		if c.Email != "" && !strings.Contains(c.Email, "@") {
			return badFlag("email", "%q is not an e-mail address", c.Email)
		}
	}
	if (c.EABKID == "") != (c.EABHMAC == "") {
		if c.EABKID == "" {
			return badFlag("acme-eab-kid", "required with -acme-eab-hmac")
		}
		return badFlag("acme-eab-hmac", "required with -acme-eab-kid")
	}
	if c.EABHMAC != "" {
		if _, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(c.EABHMAC, "=")); err != nil {
			return badFlag("acme-eab-hmac", "not base64url: %v", err)
		}
	}
	switch c.KeyType {
	case "ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa3072", "rsa4096":
	default:
		return badFlag("key-type", "%q is not one of ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096", c.KeyType)
	}
	for _, ns := range c.DNS01NameServers {
		if _, _, err := net.SplitHostPort(ns); err != nil {
			return badFlag("dns01-nameservers", "%q is not host:port", ns)
		}
	}
	if c.DNS01Timeout <= 0 {
		return badFlag("dns01-timeout", "must be positive")
	}
	if c.ObtainTimeout <= 0 {
		return badFlag("obtain-timeout", "must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		return badFlag("shutdown-timeout", "must be positive")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return badFlag("log-format", "%q is not text or json", c.LogFormat)
	}
	if c.DefaultCert != "" && c.DefaultCert != "none" && !c.hasCertName(c.DefaultCert) {
		return badFlag("default-cert", "%q names no configured certificate", c.DefaultCert)
	}
	return nil
}

// fileCertName is the store name of the operator-supplied -cert-file pair.
const fileCertName = "operator"

func (c *Config) hasCertName(name string) bool {
	if name == fileCertName && c.CertFile != "" {
		return true
	}
	for _, d := range c.Domains {
		if d[0] == name {
			return true
		}
	}
	return false
}

// defaultCertName resolves -default-cert: "" picks the first certificate.
func (c *Config) defaultCertName() string {
	switch {
	case c.DefaultCert == "none":
		return ""
	case c.DefaultCert != "":
		return c.DefaultCert
	case len(c.Domains) > 0:
		return c.Domains[0][0]
	default:
		return fileCertName
	}
}

func checkAddr(name, addr string, emptyOK bool) error {
	if addr == "" {
		if emptyOK {
			return nil
		}
		return badFlag(name, "must not be empty")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return badFlag(name, "%q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return badFlag(name, "%q has no valid port", addr)
	}
	return nil
}

// checkDomain accepts a DNS name with an optional leading "*." label.
func checkDomain(d string) error {
	name := strings.TrimPrefix(d, "*.")
	if strings.Contains(name, "*") {
		return errors.New("a wildcard is allowed only as the whole leftmost label")
	}
	if len(name) == 0 || len(name) > 253 || !strings.Contains(name, ".") {
		return errors.New("not a fully qualified domain name")
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad label %q", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("bad character %q", r)
			}
		}
	}
	return nil
}

// loadPool reads a PEM file holding at least one certificate.
func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return p, nil
}
