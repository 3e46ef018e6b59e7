// Command devrig runs edgecert's offline test rig: an ACME CA (Pebble,
// in-process), a Route 53-compatible API and the zone's authoritative DNS
// server, all on one address, with no AWS and no internet. It is a
// development tool: the production binary never links it.
//
// -serve picks the services: "ca" (the three above, the default), "s3" (an
// S3-compatible server, internal/devrig/s3rig, path-style, one bucket) or
// both; a fleet test runs the S3 server as a second devrig in its own network
// namespace so that it can be cut off alone. -admin-port serves GET
// /counters: what each service was asked (ACME orders with and without ARI
// "replaces", Route 53 calls, S3 requests by client and method) as JSON.
//
// It writes the environment a daemon needs to use the rig (-env-file), the
// PEM to trust for the CA's HTTPS endpoint (-ca-file) and the CA's issuing
// root (-root-file), then runs the command after "--", if any, with that
// environment, and stops everything when the command exits or on SIGINT or
// SIGTERM.
//
//	devrig -demo -- bin/edgecert run      # make demo
//	devrig -ip 127.0.0.1 -env-file rig.env -ca-file ca.pem -root-file root.pem
//	devrig -serve s3 -ip 10.0.0.2 -s3-port 14090 -admin-port 14080
package main

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/authdns"
	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/devrig/s3rig"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devrig:", err)
		os.Exit(1)
	}
}

type options struct {
	ip                             string
	serveCA, serveS3               bool
	acmePort, route53Port, dnsPort int
	s3Port, adminPort              int
	zone, domains, profile         string
	s3Bucket                       string
	validity, insyncAfter          time.Duration
	ariRetryAfter                  time.Duration
	envFile, caFile, rootFile, dir string
	demo                           bool
}

func run() error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "devrig-")
		if err != nil {
			return err
		}
		o.dir = d
		// The directory holds private keys (the daemon's state in -demo):
		// it goes when the rig does, also after Ctrl-C (run returns through
		// the signal context, so this runs). Files given by flag stay.
		defer os.RemoveAll(d)
	}
	if err := o.resolveFiles(); err != nil {
		return err
	}
	log := newLogger()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	env := map[string]string{
		"AWS_ACCESS_KEY_ID":         "AKIDDEVRIG",
		"AWS_SECRET_ACCESS_KEY":     "devrig-not-a-secret",
		"AWS_REGION":                "us-east-1",
		"AWS_EC2_METADATA_DISABLED": "true",
	}
	svcs, closeAll, err := startServices(o, env, log)
	if err != nil {
		return err
	}
	defer closeAll()
	if err := writeFiles(o, env, svcs.ca); err != nil {
		return err
	}
	log.Info("rig.ready", "acme", env["EDGECERT_ACME_DIRECTORY"], "route53", env["AWS_ENDPOINT_URL_ROUTE_53"],
		"dns", env["EDGECERT_DNS01_NAMESERVERS"], "s3", env["AWS_ENDPOINT_URL_S3"], "admin", env["DEVRIG_ADMIN_URL"], "env_file", o.envFile)
	if o.demo {
		printDemoHelp(o)
	}

	if flag.NArg() == 0 {
		<-ctx.Done()
		log.Info("rig.stopping")
		return nil
	}
	return runChild(ctx, flag.Args(), env, log)
}

// parseFlags parses the command line into options (-serve into serveCA
// and serveS3; -domains defaults to ZONE,*.ZONE).
func parseFlags() (options, error) {
	var o options
	flag.StringVar(&o.ip, "ip", "127.0.0.1", "address every rig listener binds")
	flag.IntVar(&o.acmePort, "acme-port", 14000, "ACME directory port (management API on the next port)")
	flag.IntVar(&o.route53Port, "route53-port", 14002, "Route 53-compatible API port")
	flag.IntVar(&o.dnsPort, "dns-port", 14053, "authoritative DNS port (UDP and TCP)")
	flag.StringVar(&o.zone, "zone", "demo.test", "hosted zone served by the rig")
	flag.StringVar(&o.domains, "domains", "", "certificate names for the daemon (default ZONE,*.ZONE)")
	flag.StringVar(&o.profile, "profile", "shortlived", "ACME profile the daemon orders")
	flag.DurationVar(&o.validity, "profile-validity", 6*time.Minute, "validity of certificates issued under -profile")
	flag.DurationVar(&o.insyncAfter, "insync-after", 500*time.Millisecond, "how long a Route 53 change stays PENDING")
	serve := flag.String("serve", "ca", `services to run, comma-separated: "ca" (ACME CA, Route 53 API, DNS) and "s3"`)
	flag.IntVar(&o.s3Port, "s3-port", 14090, "S3-compatible API port (with -serve s3)")
	flag.StringVar(&o.s3Bucket, "s3-bucket", "edgecert-fleet", "bucket the S3 server holds (with -serve s3)")
	flag.IntVar(&o.adminPort, "admin-port", 0, "port of the rig's admin API (GET /counters); 0 disables it")
	flag.DurationVar(&o.ariRetryAfter, "ari-retry-after", 0, "Retry-After the CA sends with ARI answers (default: Pebble's 6h)")
	flag.StringVar(&o.dir, "dir", "", "directory for the files below (default: a new temporary directory, removed on exit)")
	flag.StringVar(&o.envFile, "env-file", "", "write the daemon's environment here (default DIR/rig.env)")
	flag.StringVar(&o.caFile, "ca-file", "", "write the PEM trusted for the CA's HTTPS endpoint here (default DIR/acme-ca.pem)")
	flag.StringVar(&o.rootFile, "root-file", "", "write the CA's issuing root here (default DIR/root.pem)")
	flag.BoolVar(&o.demo, "demo", false, "also give the daemon demo listeners (https 127.0.0.1:8443, http 127.0.0.1:8080, admin 127.0.0.1:9180) and a state dir under DIR")
	flag.Parse()
	for _, svc := range strings.Split(*serve, ",") {
		switch strings.TrimSpace(svc) {
		case "ca":
			o.serveCA = true
		case "s3":
			o.serveS3 = true
		default:
			return o, fmt.Errorf("-serve: unknown service %q (want ca, s3)", svc)
		}
	}
	if o.domains == "" {
		o.domains = o.zone + ",*." + o.zone
	}
	return o, nil
}

// resolveFiles creates o.dir (0700) and makes the output files absolute,
// defaulting them to files in o.dir.
func (o *options) resolveFiles() error {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	for _, f := range []*string{&o.envFile, &o.caFile, &o.rootFile} {
		if *f != "" {
			abs, err := filepath.Abs(*f)
			if err != nil {
				return err
			}
			*f = abs
		}
	}
	def := func(p *string, name string) {
		if *p == "" {
			*p = filepath.Join(o.dir, name)
		}
	}
	def(&o.envFile, "rig.env")
	def(&o.caFile, "acme-ca.pem")
	def(&o.rootFile, "root.pem")
	return nil
}

// newLogger logs text to stderr with short times, every line marked rig=true.
func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				a.Value = slog.StringValue(a.Value.Time().Format("15:04:05.000"))
			}
			return a
		},
	})).With("rig", true)
}

// startServices starts the services o asks for and the admin listener,
// adding what a daemon needs to env. The returned function stops them, in
// reverse order; on error, those started are stopped.
func startServices(o options, env map[string]string, log *slog.Logger) (rigServices, func(), error) {
	var svcs rigServices
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (rigServices, func(), error) {
		closeAll()
		return rigServices{}, nil, err
	}
	if o.serveCA {
		ca, r53, closeCA, err := startCA(o, env, log)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, closeCA)
		svcs.ca, svcs.r53 = ca, r53
	}
	if o.serveS3 {
		s3, closeS3, err := startS3(o, env, log)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, closeS3)
		svcs.s3 = s3
	}
	if o.adminPort != 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(o.ip, strconv.Itoa(o.adminPort)))
		if err != nil {
			return fail(fmt.Errorf("admin listener: %w", err))
		}
		srv := &http.Server{Handler: svcs.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		closers = append(closers, func() { srv.Close() })
		env["DEVRIG_ADMIN_URL"] = "http://" + ln.Addr().String()
	}
	return svcs, closeAll, nil
}

// startCA runs the DNS server, the Route 53 API and the CA, and adds what a
// daemon needs to use them to env. The returned function stops them.
func startCA(o options, env map[string]string, log *slog.Logger) (*pebblerig.CA, *fakeroute53.Server, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*pebblerig.CA, *fakeroute53.Server, func(), error) {
		closeAll()
		return nil, nil, nil, err
	}
	dns, err := authdns.Start(net.JoinHostPort(o.ip, strconv.Itoa(o.dnsPort)))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { dns.Close() })

	r53 := fakeroute53.New(fakeroute53.Options{DNS: dns, InsyncAfter: o.insyncAfter, Logger: log.With("server", "route53")})
	r53.AddZone(fakeroute53.Zone{ID: "Z0DEVRIG", Name: o.zone, NameServers: []string{"ns1.devrig.invalid", "ns2.devrig.invalid"}})
	r53Ln, err := net.Listen("tcp", net.JoinHostPort(o.ip, strconv.Itoa(o.route53Port)))
	if err != nil {
		return fail(fmt.Errorf("route53 listener: %w", err))
	}
	r53Srv := &http.Server{Handler: r53, ReadHeaderTimeout: 10 * time.Second}
	go r53Srv.Serve(r53Ln)
	closers = append(closers, func() { r53Srv.Close() })

	ca, err := pebblerig.Start(pebblerig.Options{
		DNSAddr:       dns.Addr(),
		Addr:          net.JoinHostPort(o.ip, strconv.Itoa(o.acmePort)),
		MgmtAddr:      net.JoinHostPort(o.ip, strconv.Itoa(o.acmePort+1)),
		Profiles:      map[string]time.Duration{o.profile: o.validity, "default": 90 * 24 * time.Hour},
		ARIRetryAfter: o.ariRetryAfter,
		Logger:        log.With("server", "acme"),
	})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, ca.Close)

	maps.Copy(env, map[string]string{
		"EDGECERT_ACME_DIRECTORY":    ca.DirectoryURL(),
		"EDGECERT_ACME_CA_ROOTS":     o.caFile,
		"EDGECERT_ACME_PROFILE":      o.profile,
		"EDGECERT_DOMAINS":           o.domains,
		"EDGECERT_EMAIL":             "ops@" + o.zone,
		"EDGECERT_ACCEPT_TOS":        "true",
		"EDGECERT_DNS01_NAMESERVERS": dns.Addr(),
		"AWS_ENDPOINT_URL_ROUTE_53":  "http://" + r53Ln.Addr().String(),
	})
	if o.demo {
		env["EDGECERT_HTTPS_ADDR"] = "127.0.0.1:8443"
		env["EDGECERT_HTTP_ADDR"] = "127.0.0.1:8080"
		env["EDGECERT_ADMIN_ADDR"] = "127.0.0.1:9180"
		env["EDGECERT_STATE_DIR"] = filepath.Join(o.dir, "state")
		env["EDGECERT_NAME"] = "edgecert-demo"
	}
	return ca, r53, closeAll, nil
}

// startS3 runs the S3-compatible server with its bucket and adds what a
// daemon needs to use it to env: the endpoint, path-style addressing and a
// fleet store URL.
func startS3(o options, env map[string]string, log *slog.Logger) (*s3rig.Server, func(), error) {
	s3, err := s3rig.New(s3rig.Options{Buckets: []string{o.s3Bucket}, Logger: log.With("server", "s3")})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.ip, strconv.Itoa(o.s3Port)))
	if err != nil {
		return nil, nil, fmt.Errorf("s3 listener: %w", err)
	}
	srv := &http.Server{Handler: s3, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	maps.Copy(env, map[string]string{
		"AWS_ENDPOINT_URL_S3":          "http://" + ln.Addr().String(),
		"EDGECERT_FLEET_STORE":         "s3://" + o.s3Bucket + "/fleet",
		"EDGECERT_FLEET_S3_PATH_STYLE": "true",
	})
	return s3, func() { srv.Close() }, nil
}

func writeFiles(o options, env map[string]string, ca *pebblerig.CA) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by devrig: the environment that points edgecert at the offline rig\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	if err := os.WriteFile(o.envFile, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if ca == nil {
		return nil
	}
	if err := os.WriteFile(o.caFile, ca.TLSRootPEM(), 0o644); err != nil {
		return err
	}
	var roots []byte
	for _, c := range ca.IssuerRootCerts() {
		roots = append(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return os.WriteFile(o.rootFile, roots, 0o644)
}

func printDemoHelp(o options) {
	fmt.Fprintf(os.Stderr, `
edgecert demo: the daemon orders %s from the local CA, answering DNS-01 in the local Route 53 API.
  The certificate names %s (not localhost): curl's --resolve sends that name to 127.0.0.1.
  Trust the local CA's root:  %s
  Try it:   curl --cacert %s --resolve %s:8443:127.0.0.1 https://%s:8443/
            curl --cacert %s --resolve www.%s:8443:127.0.0.1 https://www.%s:8443/api
  Status:   curl -s http://127.0.0.1:9180/status
  Certificates live %s and renew every few minutes; watch the rotation lines below. Ctrl-C stops everything.

`, o.domains, o.zone, o.rootFile, o.rootFile, o.zone, o.zone, o.rootFile, o.zone, o.zone, o.validity)
}

// runChild runs args with env added, forwards SIGINT/SIGTERM, and returns
// when it exits.
func runChild(ctx context.Context, args []string, env map[string]string, log *slog.Logger) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = os.Stdout, os.Stderr, nil
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return childErr(err)
	case <-ctx.Done():
		log.Info("rig.stopping", "child", cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return childErr(err)
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			return errors.New("child did not stop within 20s; killed")
		}
	}
}

func childErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == -1 {
		return nil // ended by our signal
	}
	return err
}
