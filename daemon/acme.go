package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/issuer"
	"github.com/edgecert/edgecert/daemon/metrics"
	"github.com/edgecert/edgecert/daemon/route53dns"
)

// newRoute53 builds the Route 53 client from the SDK's default chain: the
// instance role through IMDSv2 on EC2, AWS_* variables and shared files
// elsewhere, AWS_ENDPOINT_URL_ROUTE_53 for another endpoint. Credentials never
// come from flags. Route 53 is a global service homed in us-east-1, which is
// used when no region is configured.
func newRoute53(ctx context.Context) (*route53.Client, error) {
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("daemon: aws config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	return route53.NewFromConfig(awsCfg), nil
}

// route53Journal is the file in the state directory recording every
// challenge value written to Route 53 and not yet removed.
const route53Journal = "route53-journal.json"

// newIssuer wires the ACME manager: the store persists, Route 53 answers
// DNS-01. now is the issuer's clock for scheduling decisions; nil is
// time.Now (tests shift it). rec counts ACME and Route 53 requests and
// order results (nil: nothing is counted).
func newIssuer(ctx context.Context, cfg *Config, store issuer.Store, log *slog.Logger, now func() time.Time, rec *metrics.Recorder) (*issuer.Manager, error) {
	r53, err := newRoute53(ctx)
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
	// Cleans up what an earlier run left (read from the journal) and retries
	// failed cleanups, for as long as the daemon runs.
	go solver.Run(ctx)
	hc, err := acmeHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	hc.Transport = rec.Transport(hc.Transport, cfg.ACMEDirectory)
	var specs []issuer.CertSpec
	for _, d := range cfg.Domains {
		specs = append(specs, issuer.CertSpec{Name: d[0], Domains: d})
	}
	m, err := issuer.New(issuer.Config{
		DirectoryURL:        cfg.ACMEDirectory,
		HTTPClient:          hc,
		Email:               cfg.Email,
		AcceptTOS:           cfg.AcceptTOS,
		Profile:             cfg.ACMEProfile,
		EABKID:              cfg.EABKID,
		EABHMAC:             cfg.EABHMAC,
		KeyType:             cfg.KeyType,
		Certs:               specs,
		Store:               store,
		Solver:              solver,
		Logger:              log.With("component", "acme"),
		Now:                 now,
		Metrics:             rec,
		MaxConcurrentOrders: cfg.MaxConcurrentOrders,
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return m, nil
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

// certViews merges what the store serves with what the scheduler plans.
func certViews(store *certstore.Store, mgr *issuer.Manager) []certView {
	byName := map[string]*certView{}
	for _, e := range store.Entries() {
		v := &certView{Name: e.Name, Source: e.Source, Profile: e.Meta.Profile}
		if leaf := e.Cert.Leaf; leaf != nil {
			v.Names = leaf.DNSNames
			v.Issuer = leaf.Issuer.CommonName
			v.Serial = fmt.Sprintf("%x", leaf.SerialNumber)
			v.NotBefore, v.NotAfter = leaf.NotBefore, leaf.NotAfter
		}
		byName[e.Name] = v
	}
	for name, reason := range store.Rejected() {
		v := byName[name]
		if v == nil {
			v = &certView{Name: name, Source: certstore.SourceFile}
			byName[name] = v
		}
		v.Rejected = reason
	}
	if mgr != nil {
		for _, s := range mgr.Status() {
			v := byName[s.Name]
			if v == nil {
				v = &certView{Name: s.Name}
				byName[s.Name] = v
			}
			v.Managed = true
			v.NextRenewal, v.Reason, v.PlannedRenewal = s.NextRenewal, s.Reason, s.Planned
			v.ARIStart, v.ARIEnd = s.ARIStart, s.ARIEnd
			v.LastSuccess, v.LastFailure, v.LastError, v.Failures = s.LastSuccess, s.LastFailure, s.LastError, s.Failures
		}
	}
	out := make([]certView, 0, len(byName))
	for _, v := range byName {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// policyFlags are the flags only `edgecert iam-policy` has.
type policyFlags struct {
	lookup    bool   // -lookup
	partition string // -partition
}

func (pf *policyFlags) define(fs *flag.FlagSet) {
	fs.BoolVar(&pf.lookup, "lookup", false, "iam-policy: ask Route 53 for the zones and CNAME targets (default: no AWS call)")
	fs.StringVar(&pf.partition, "partition", "", "iam-policy: ARN partition aws, aws-cn or aws-us-gov (default: from the AWS region)")
}

// printIAMPolicy writes the least-privilege policy for the configured
// certificates. Offline by default: the zone is -route53-zone-id, or any
// zone (hostedzone/*, record names still restricted); -dns01-follow-cname
// needs -lookup, because only Route 53 knows where the CNAMEs point. With
// -lookup the zones and CNAME targets are found exactly as the daemon finds
// them. The ARN partition is -partition, else that of the region the AWS
// SDK is configured with (read locally, no call).
func printIAMPolicy(ctx context.Context, cfg *Config, pf policyFlags, stdout, stderr io.Writer) error {
	if len(cfg.Domains) == 0 {
		return fmt.Errorf("-domains: iam-policy needs the certificates' names")
	}
	var domains []string
	for _, cert := range cfg.Domains {
		domains = append(domains, cert...)
	}
	opts := route53dns.Options{ZoneID: cfg.Route53ZoneID, PrivateZone: cfg.PrivateZone, FollowCNAME: cfg.FollowCNAME}
	if pf.partition == "" {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("-partition: aws config: %w", err)
		}
		pf.partition = route53dns.PartitionOf(awsCfg.Region)
	}
	var pol route53dns.Policy
	var err error
	if pf.lookup {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var r53 *route53.Client
		if r53, err = newRoute53(lctx); err != nil {
			return err
		}
		var p *route53dns.Provider
		if p, err = route53dns.New(r53, opts); err != nil {
			return err
		}
		pol, err = p.PolicyFor(lctx, domains, pf.partition)
	} else {
		if cfg.FollowCNAME {
			return fmt.Errorf("-dns01-follow-cname: the records are written where the CNAMEs point, which only Route 53 knows: add -lookup")
		}
		pol, err = route53dns.PolicyFor(domains, opts, pf.partition)
		if err == nil && cfg.Route53ZoneID == "" {
			fmt.Fprintln(stderr, "edgecert: no -route53-zone-id: the policy allows the record names in any hosted zone; pin the zone with -route53-zone-id or look it up with -lookup")
		}
	}
	if err != nil {
		return err
	}
	b, err := pol.JSON()
	if err == nil {
		b, err = addFleetStatements(b, cfg, pf.partition)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
