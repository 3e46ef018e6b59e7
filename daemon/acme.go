package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/edgecert/edgecert/daemon/issuer"
	"github.com/edgecert/edgecert/daemon/metrics"
	"github.com/edgecert/edgecert/daemon/route53dns"
)

// route53Journal is the file in the state directory recording every
// challenge value written to Route 53 and not yet removed.
const route53Journal = "route53-journal.json"

// acme.go wires the ACME issuer: its settings come from Config.issuerConfig
// (config.go, validated by the issuer at start-up), the wiring from here.
// AWS configuration is in aws.go, the admin view model in views.go and the
// iam-policy command in iampolicy.go.

// newIssuer wires the ACME manager: the store persists, Route 53 answers
// DNS-01. now is the issuer's clock for scheduling decisions; nil is
// time.Now (tests shift it). rec counts ACME and Route 53 requests and
// order results (nil: nothing is counted). The caller runs the returned
// solver's cleanup loop (Provider.Run) for as long as the manager is used,
// and joins it.
func newIssuer(ctx context.Context, cfg *Config, store issuer.Store, log *slog.Logger, now func() time.Time, rec *metrics.Recorder) (*issuer.Manager, *route53dns.Provider, error) {
	solver, err := newSolver(ctx, cfg, log, rec)
	if err != nil {
		return nil, nil, err
	}
	hc, err := acmeHTTPClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	hc.Transport = rec.Transport(hc.Transport, cfg.ACMEDirectory)
	ic := cfg.issuerConfig() // the settings, validated at start-up; the wiring below
	ic.HTTPClient, ic.Store, ic.Solver = hc, store, solver
	ic.Logger, ic.Now, ic.Metrics = log.With("component", "acme"), now, rec
	m, err := issuer.New(ic)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: %w", err)
	}
	return m, solver, nil
}

// newSolver builds the Route 53 DNS-01 solver. Its cleanup loop (what an
// earlier run left, and failed cleanups) is the caller's to run.
func newSolver(ctx context.Context, cfg *Config, log *slog.Logger, rec *metrics.Recorder) (*route53dns.Provider, error) {
	r53, err := newRoute53(ctx, cfg.route53Client...)
	if err != nil {
		return nil, err
	}
	solver, err := route53dns.New(r53, route53dns.Options{
		ZoneID:             cfg.Route53ZoneID,
		PrivateZone:        cfg.PrivateZone,
		FollowCNAME:        cfg.FollowCNAME,
		NameServers:        cfg.DNS01NameServers,
		PropagationTimeout: cfg.DNS01Timeout,
		MaxRPS:             cfg.Route53MaxRPS,
		Journal:            filepath.Join(cfg.StateDir, route53Journal),
		Observer: route53dns.Observer{
			APICall:       rec.Route53Request,
			Insync:        func(d time.Duration) { rec.Propagation(metrics.StageInsync, d) },
			Authoritative: func(d time.Duration) { rec.Propagation(metrics.StageAuthoritative, d) },
		},
		Logger: log.With("component", "route53"),
	})
	if solver == nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if err != nil { // an unreadable journal, moved aside: say so and go on
		log.Error("dns.journal_unreadable", "error", err)
	}
	return solver, nil
}

// acmeHTTPClient trusts the system roots plus -acme-ca-roots.
func acmeHTTPClient(cfg *Config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.ACMECARoots != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		b, err := os.ReadFile(cfg.ACMECARoots)
		if err != nil || !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("daemon: -acme-ca-roots: no PEM certificate in %s", cfg.ACMECARoots)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}
