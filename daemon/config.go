package daemon

// How to add a flag (one place for each rule):
//
//  1. Add a field to Config, commented with its flag.
//  2. Define the flag in the define function of the section (-h group) it
//     belongs to (defineListenerFlags, defineCertFlags, …; see
//     newCommandFlagSet). Its EDGECERT_* variable, the one-line parse error
//     with a hint, the "did you mean" suggestions and the -h entry follow
//     from that.
//     Write its default in the definition, never again in the usage text.
//  3. Validate it once, where the setting is owned: a setting passed to a
//     package (issuer, route53dns, …) is checked by that package's Validate;
//     pass it in issuerConfig and name its Go field in issuerFlags so errors
//     name the flag. A daemon-only setting is checked in the validate phase
//     of its section (validateListeners, validateFiles, …).
//  4. Add a row to README.md's Configuration table
//     (TestREADMEDocumentsEveryFlag fails until you do).
//
// Configuration errors are *configError: one line naming the flag; Main
// exits 78 (EX_CONFIG) on them.

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgecert/edgecert/daemon/issuer"
	"github.com/edgecert/edgecert/daemon/route53dns"
)

// LetsEncryptURL is the default ACME directory: Let's Encrypt production.
const LetsEncryptURL = "https://acme-v02.api.letsencrypt.org/directory"

// LetsEncryptStagingURL is Let's Encrypt's staging directory (-staging).
const LetsEncryptStagingURL = "https://acme-staging-v02.api.letsencrypt.org/directory"

// Config is the daemon's configuration, filled from flags and EDGECERT_*
// environment variables by parseConfig. Every field has the default its flag
// documents.
type Config struct {
	HTTPSAddr string // -https-addr
	HTTPAddr  string // -http-addr; "" disables the redirect listener
	AdminAddr string // -admin-addr; "" disables the admin listener
	StateDir  string // -state-dir
	// InsecureStateDir (-insecure-state-dir) skips the StrictModes check of
	// the state directory's ownership, modes and symlinks.
	InsecureStateDir bool

	CertFile, KeyFile string // -cert-file, -key-file: operator-supplied pair
	ClientCAFile      string // -client-ca-file
	DefaultCert       string // -default-cert: name served for unknown SNI; "none" = TLS alert

	Name        string // -name (whoami name)
	HealthToken string // -health-token
	AdminToken  string // -admin-token
	AllowEnv    bool   // -allow-env
	DataMax     int64  // -data-max, bytes

	// Limits bound every client of the HTTPS listener; -max-connections
	// and -max-connections-per-client set MaxConns and PerClientConns, the
	// rest are defaultLimits.
	Limits Limits

	LogLevel  slog.Level // -log-level
	LogFormat string     // -log-format: text or json

	Domains       [][]string // -domains, one entry per certificate
	Email         string     // -email
	ACMEDirectory string     // -acme-directory (or -staging)
	Staging       bool       // -staging: ACMEDirectory is Let's Encrypt staging
	ACMECARoots   string     // -acme-ca-roots
	ACMEProfile   string     // -acme-profile
	ACMEMaxNames  int        // -acme-max-names
	EABKID        string     // -acme-eab-kid
	EABHMAC       string     // -acme-eab-hmac
	KeyType       string     // -key-type
	Route53ZoneID string     // -route53-zone-id
	PrivateZone   bool       // -route53-private-zone
	FollowCNAME   bool       // -dns01-follow-cname
	AcceptTOS     bool       // -accept-tos

	Route53MaxRPS       float64 // -route53-max-rps: client-side share of the account's 5 requests/s
	MaxConcurrentOrders int     // -max-concurrent-orders

	DNS01NameServers []string      // -dns01-nameservers
	DNS01Timeout     time.Duration // -dns01-timeout
	ObtainTimeout    time.Duration // -obtain-timeout: bound on the first order before READY
	ShutdownTimeout  time.Duration // -shutdown-timeout: bound on draining connections

	Fleet FleetConfig // -fleet-*, -instance-id (fleet.go)

	// route53Client is applied to the Route 53 client after the SDK's
	// default chain (no flag: tests set the endpoint and credentials here
	// instead of in the process environment, so that they can run in
	// parallel).
	route53Client route53Options
}

// newFlagSet defines every flag of `edgecert run` on a fresh FlagSet that
// writes into c, grouped into sections for -h (printed to out by the
// FlagSet's Usage).
func newFlagSet(c *Config, out io.Writer) *flag.FlagSet {
	fs, _ := newCommandFlagSet("edgecert run", c, out)
	return fs
}

// newCommandFlagSet is newFlagSet for command cmd; it also returns where
// the first bad flag value is recorded (see checkValues). Each -h section
// is one define function below, the one place its flags are added (see the
// top of this file); extra defines the command's own section.
func newCommandFlagSet(cmd string, c *Config, out io.Writer, extra ...func(*flag.FlagSet)) (*flag.FlagSet, **configError) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	var sections []flagSection
	section := func(title string, define func(*flag.FlagSet, *Config)) {
		sections = append(sections, defineSection(fs, title, func() { define(fs, c) }))
	}
	section("Listeners", defineListenerFlags)
	section("Certificates and ACME", defineCertFlags)
	section("Route 53 and DNS-01", defineRoute53Flags)
	section("Fleet", func(fs *flag.FlagSet, c *Config) { c.Fleet.define(fs) })
	section("whoami routes", defineRouteFlags)
	section("Logging", defineLogFlags)
	if len(extra) > 0 {
		section(strings.TrimPrefix(cmd, "edgecert "), func(fs *flag.FlagSet, _ *Config) {
			for _, f := range extra {
				f(fs)
			}
		})
	}
	fs.Lookup("log-level").DefValue = "info"
	failed := checkValues(fs)
	fs.Usage = func() { writeUsage(out, fs, sections) }
	return fs, failed
}

// defineSection runs define and returns the -h section titled title with
// the flags define added to fs.
func defineSection(fs *flag.FlagSet, title string, define func()) flagSection {
	before := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { before[f.Name] = true })
	define()
	s := flagSection{title: title}
	fs.VisitAll(func(f *flag.Flag) {
		if !before[f.Name] {
			s.names = append(s.names, f.Name)
		}
	})
	return s
}

// defineListenerFlags defines the -h section "Listeners".
func defineListenerFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.HTTPSAddr, "https-addr", ":443", "address of the HTTPS listener")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":80", "address of the HTTP listener that redirects to HTTPS (empty disables it)")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:9180", "address of the admin listener: /livez /readyz /metrics /status (empty disables it)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token that allows POST /renew and /revoke on the admin listener from non-loopback clients")
	fs.StringVar(&c.ClientCAFile, "client-ca-file", "", "require and verify client certificates signed by these CAs (PEM)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "bound on draining connections at shutdown")
	c.Limits = defaultLimits()
	fs.IntVar(&c.Limits.MaxConns, "max-connections", c.Limits.MaxConns, "most open HTTPS connections; more are closed at once (0: no cap)")
	fs.IntVar(&c.Limits.PerClientConns, "max-connections-per-client", c.Limits.PerClientConns, "most open HTTPS connections from one client IP (IPv6: one /64) (0: no cap)")
}

// defineCertFlags defines the -h section "Certificates and ACME".
func defineCertFlags(fs *flag.FlagSet, c *Config) {
	stateDefault := "/var/lib/edgecert"
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		stateDefault = strings.Split(d, ":")[0]
	}
	fs.Var(domainsFlag{&c.Domains}, "domains", "names of one certificate, comma-separated (repeat for more certificates; in the env var separate certificates with ';')")
	fs.StringVar(&c.StateDir, "state-dir", stateDefault, "persistent certificate store (default $STATE_DIRECTORY, else /var/lib/edgecert)")
	fs.BoolVar(&c.InsecureStateDir, "insecure-state-dir", false, "use a -state-dir that is group/world-writable or reached through a symlink (refused otherwise)")
	fs.StringVar(&c.Email, "email", "", "ACME account contact e-mail")
	fs.BoolVar(&c.AcceptTOS, "accept-tos", false, "agree to the ACME CA's terms of service")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", LetsEncryptURL, "ACME directory URL")
	fs.BoolVar(&c.Staging, "staging", false, "use Let's Encrypt's staging directory ("+LetsEncryptStagingURL+"); not with -acme-directory")
	fs.StringVar(&c.ACMECARoots, "acme-ca-roots", "", "extra PEM roots trusted for the ACME CA's HTTPS endpoint")
	fs.StringVar(&c.ACMEProfile, "acme-profile", "", "ACME profile to order (e.g. tlsserver, shortlived); kept on renewal")
	fs.IntVar(&c.ACMEMaxNames, "acme-max-names", issuer.DefaultMaxNames, "most names the CA allows in one certificate (Let's Encrypt: 100)")
	fs.StringVar(&c.EABKID, "acme-eab-kid", "", "external account binding key ID")
	fs.StringVar(&c.EABHMAC, "acme-eab-hmac", "", "external account binding HMAC key (base64url)")
	fs.StringVar(&c.KeyType, "key-type", issuer.KeyECDSAP256, "certificate key: ecdsa-p256, ecdsa-p384, rsa2048, rsa3072 or rsa4096")
	fs.DurationVar(&c.ObtainTimeout, "obtain-timeout", 3*time.Minute, "bound on obtaining missing certificates at start-up, before READY")
	fs.IntVar(&c.MaxConcurrentOrders, "max-concurrent-orders", issuer.DefaultMaxConcurrentOrders, "most ACME orders in flight at once; more due certificates wait for a slot")
	fs.StringVar(&c.CertFile, "cert-file", "", "operator-supplied certificate chain (PEM), watched and hot-reloaded; needs -key-file")
	fs.StringVar(&c.KeyFile, "key-file", "", "private key (PEM) for -cert-file")
	fs.StringVar(&c.DefaultCert, "default-cert", "", `certificate served when SNI matches none: a certificate name, or "none" for a TLS alert (default: the first certificate)`)
}

// defineRoute53Flags defines the -h section "Route 53 and DNS-01".
func defineRoute53Flags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Route53ZoneID, "route53-zone-id", "", "Route 53 hosted zone ID (default: found by name)")
	fs.BoolVar(&c.PrivateZone, "route53-private-zone", false, "find private hosted zones instead of public ones (propagation then ends at INSYNC)")
	fs.BoolVar(&c.FollowCNAME, "dns01-follow-cname", false, "follow a CNAME at _acme-challenge.<name> and write the record in the target's zone")
	fs.Var(listFlag{&c.DNS01NameServers}, "dns01-nameservers", "`host:port` list queried for DNS-01 propagation instead of the zone's name servers")
	fs.DurationVar(&c.DNS01Timeout, "dns01-timeout", 2*time.Minute, "bound on waiting for a challenge record to propagate")
	fs.Float64Var(&c.Route53MaxRPS, "route53-max-rps", route53dns.DefaultMaxRPS, "most Route 53 requests per second this daemon sends (the account allows 5/s shared by every host and tool)")
}

// defineRouteFlags defines the -h section "whoami routes".
func defineRouteFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Name, "name", "", "whoami name printed by / and /api")
	fs.StringVar(&c.HealthToken, "health-token", "", "bearer token that allows POST /health from non-loopback clients")
	fs.BoolVar(&c.AllowEnv, "allow-env", false, "honour ?env=true on / and /api (prints the environment: keep off on public hosts)")
	c.DataMax = 1 << 30
	fs.Var(sizeFlag{&c.DataMax}, "data-max", "largest /data body (e.g. 512MiB)")
}

// defineLogFlags defines the -h section "Logging".
func defineLogFlags(fs *flag.FlagSet, c *Config) {
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
}

// parseConfig parses the flags of `edgecert run`: see parseCommand.
func parseConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (*Config, error) {
	return parseCommand("edgecert run", args, lookupEnv, out)
}

// parseCommand parses args, then fills every flag not given on the command
// line from its EDGECERT_* variable (lookupEnv, as os.LookupEnv), then
// validates. A variable that is set but empty counts: EDGECERT_HTTP_ADDR=
// disables the redirect listener. -h prints the grouped usage to out and
// returns flag.ErrHelp. Every other error is a *configError: one line naming
// the flag (or its variable), the problem and a hint.
// Commands other than run may define flags of their own with extra (-h
// lists them in a section named after the command).
func parseCommand(cmd string, args []string, lookupEnv func(string) (string, bool), out io.Writer, extra ...func(*flag.FlagSet)) (*Config, error) {
	c := &Config{}
	fs, failed := newCommandFlagSet(cmd, c, out, extra...)
	usage := fs.Usage
	fs.Usage = func() {} // errors are reported as one line, not with the usage
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return nil, err
		}
		return nil, parseError(fs, *failed, err)
	}
	if fs.NArg() > 0 {
		return nil, &configError{msg: fmt.Sprintf("unexpected argument %q (flags start with -)", fs.Arg(0)), hint: true}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := applyEnv(fs, set, lookupEnv); err != nil {
		return nil, err
	}
	if c.Staging {
		if set["acme-directory"] {
			return nil, badFlag("staging", "cannot be combined with -acme-directory (pick one)")
		}
		c.ACMEDirectory = LetsEncryptStagingURL
	}
	return c, c.validate()
}

// applyEnv sets every flag not in set from its EDGECERT_* variable and adds
// it to set.
func applyEnv(fs *flag.FlagSet, set map[string]bool, lookupEnv func(string) (string, bool)) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := lookupEnv(envName(f.Name))
		if set[f.Name] || !ok || envErr != nil {
			return
		}
		set[f.Name] = true
		vals := []string{v}
		if f.Name == "domains" {
			vals = strings.Split(v, ";")
		}
		for _, one := range vals {
			if f.Name == "domains" && strings.TrimSpace(one) == "" {
				continue
			}
			if err := fs.Set(f.Name, one); err != nil {
				var ce *configError
				if errors.As(err, &ce) {
					ce.env = envName(f.Name)
				}
				envErr = err
				return
			}
		}
	})
	return envErr
}

// validate checks everything that can be checked before start-up, one
// phase per section of the flags.
func (c *Config) validate() error {
	for _, phase := range []func() error{c.validateListeners, c.validateFiles, c.validateCertificates, c.validateDNS, c.Fleet.validate, c.validateLogging} {
		if err := phase(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateListeners() error {
	if err := checkAddr("https-addr", c.HTTPSAddr, false); err != nil {
		return err
	}
	if err := checkAddr("http-addr", c.HTTPAddr, true); err != nil {
		return err
	}
	if err := checkAddr("admin-addr", c.AdminAddr, true); err != nil {
		return err
	}
	if c.ShutdownTimeout <= 0 {
		return badFlag("shutdown-timeout", "must be positive")
	}
	if c.Limits.MaxConns < 0 {
		return badFlag("max-connections", "must not be negative")
	}
	if c.Limits.PerClientConns < 0 {
		return badFlag("max-connections-per-client", "must not be negative")
	}
	return nil
}

// validateFiles checks the operator-supplied files: the pair, the client
// CAs and the ACME CA roots.
func (c *Config) validateFiles() error {
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
	for _, f := range []struct{ flag, path string }{{"client-ca-file", c.ClientCAFile}, {"acme-ca-roots", c.ACMECARoots}} {
		if f.path == "" {
			continue
		}
		if _, err := loadPool(f.path); err != nil {
			return badFlag(f.flag, "%v", err)
		}
	}
	return nil
}

// validateCertificates checks that there is something to serve and lets
// the issuer check every ACME setting (domains included).
func (c *Config) validateCertificates() error {
	if len(c.Domains) == 0 && c.CertFile == "" {
		return badFlag("domains", "no certificate to serve: set -domains (ACME) or -cert-file and -key-file")
	}
	if c.ObtainTimeout <= 0 {
		return badFlag("obtain-timeout", "must be positive")
	}
	if c.DefaultCert != "" && c.DefaultCert != "none" && !c.hasCertName(c.DefaultCert) {
		return badFlag("default-cert", "%q names no configured certificate", c.DefaultCert)
	}
	if len(c.Domains) == 0 {
		return nil
	}
	return flagError(c.issuerConfig().Validate())
}

func (c *Config) validateDNS() error {
	for _, ns := range c.DNS01NameServers {
		if _, _, err := net.SplitHostPort(ns); err != nil {
			return badFlag("dns01-nameservers", "%q is not host:port", ns)
		}
	}
	if c.DNS01Timeout <= 0 {
		return badFlag("dns01-timeout", "must be positive")
	}
	if !(c.Route53MaxRPS > 0 && c.Route53MaxRPS <= 100) { // also NaN
		return badFlag("route53-max-rps", "%v is not in (0, 100]; Route 53 allows 5 per second per account", c.Route53MaxRPS)
	}
	return nil
}

func (c *Config) validateLogging() error {
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return badFlag("log-format", "%q is not text or json", c.LogFormat)
	}
	return nil
}

// issuerConfig is the issuer's part of c: the settings the issuer validates
// itself. The wiring (store, solver, HTTP client, logger) is added by
// newIssuer.
func (c *Config) issuerConfig() issuer.Config {
	var specs []issuer.CertSpec
	for _, d := range c.Domains {
		specs = append(specs, issuer.CertSpec{Name: d[0], Domains: d})
	}
	return issuer.Config{
		DirectoryURL: c.ACMEDirectory,
		Email:        c.Email,
		AcceptTOS:    c.AcceptTOS,
		Profile:      c.ACMEProfile,
		EABKID:       c.EABKID,
		EABHMAC:      c.EABHMAC,
		KeyType:      c.KeyType,
		MaxNames:     c.ACMEMaxNames,
		Certs:        specs,

		MaxConcurrentOrders: c.MaxConcurrentOrders,
	}
}

// issuerFlags names the flag of every issuer.Config field that comes from
// one (the part of a field path before "[" or ".").
var issuerFlags = map[string]string{
	"DirectoryURL": "acme-directory",
	"HTTPClient":   "acme-ca-roots",
	"Email":        "email",
	"AcceptTOS":    "accept-tos",
	"Profile":      "acme-profile",
	"EABKID":       "acme-eab-kid",
	"EABHMAC":      "acme-eab-hmac",
	"KeyType":      "key-type",
	"MaxNames":     "acme-max-names",
	"Certs":        "domains",

	"MaxConcurrentOrders": "max-concurrent-orders",
}

// flagError turns an *issuer.FieldError (found anywhere in err's chain)
// into a *configError naming the flag, with the Go field names in its
// message replaced by flags. Other errors are returned as they are.
func flagError(err error) error {
	var fe *issuer.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field := fe.Field
	if i := strings.IndexAny(field, "[."); i >= 0 {
		field = field[:i]
	}
	name, ok := issuerFlags[field]
	if !ok {
		return err // wiring, not configuration: the daemon's bug
	}
	msg := fe.Msg
	for f, fl := range issuerFlags {
		msg = strings.ReplaceAll(msg, "Config."+f, "-"+fl)
	}
	msg = strings.TrimPrefix(msg, "-"+name+" ") // `-acme-profile: "x" is not offered`, not `-acme-profile: -acme-profile "x" …`
	return badFlag(name, "%s", msg)
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
