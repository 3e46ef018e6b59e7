package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/issuer"
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

// newIssuer wires the ACME manager: the store persists, Route 53 answers
// DNS-01. now is the issuer's clock for scheduling decisions; nil is
// time.Now (tests shift it).
func newIssuer(ctx context.Context, cfg *Config, store *certstore.Store, log *slog.Logger, now func() time.Time) (*issuer.Manager, error) {
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
		Logger:             log.With("component", "route53"),
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	hc, err := acmeHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	var specs []issuer.CertSpec
	for _, d := range cfg.Domains {
		specs = append(specs, issuer.CertSpec{Name: d[0], Domains: d})
	}
	m, err := issuer.New(issuer.Config{
		DirectoryURL: cfg.ACMEDirectory,
		HTTPClient:   hc,
		Email:        cfg.Email,
		AcceptTOS:    cfg.AcceptTOS,
		Profile:      cfg.ACMEProfile,
		EABKID:       cfg.EABKID,
		EABHMAC:      cfg.EABHMAC,
		KeyType:      cfg.KeyType,
		Certs:        specs,
		Store:        store,
		Solver:       solver,
		Logger:       log.With("component", "acme"),
		Now:          now,
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
			v.Serial = fmt.Sprintf("%x", leaf.SerialNumber)
			v.NotBefore, v.NotAfter = leaf.NotBefore, leaf.NotAfter
		}
		byName[e.Name] = v
	}
	if mgr != nil {
		for _, s := range mgr.Status() {
			v := byName[s.Name]
			if v == nil {
				v = &certView{Name: s.Name}
				byName[s.Name] = v
			}
			v.NextRenewal, v.Reason = s.NextRenewal, s.Reason
			v.ARIStart, v.ARIEnd = s.ARIStart, s.ARIEnd
			v.LastSuccess, v.LastError, v.Failures = s.LastSuccess, s.LastError, s.Failures
		}
	}
	out := make([]certView, 0, len(byName))
	for _, v := range byName {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// printIAMPolicy writes the least-privilege policy for the configured
// certificates. With -route53-zone-id the policy is scoped to that zone;
// otherwise each name's zone is looked up through the API when credentials
// allow, and falls back to hostedzone/* (record names still restricted).
func printIAMPolicy(ctx context.Context, cfg *Config, stdout, stderr io.Writer) error {
	if len(cfg.Domains) == 0 {
		return fmt.Errorf("-domains: iam-policy needs the certificates' names")
	}
	zoneOf := func(string) string { return cfg.Route53ZoneID }
	if cfg.Route53ZoneID == "" {
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		var p *route53dns.Provider
		if r53, err := newRoute53(lctx); err == nil {
			p, _ = route53dns.New(r53, route53dns.Options{PrivateZone: cfg.PrivateZone})
		}
		zoneOf = func(name string) string {
			if p == nil {
				return ""
			}
			id, err := p.ZoneID(lctx, name)
			if err != nil {
				fmt.Fprintf(stderr, "edgecert: zone of %s not found (%v); using hostedzone/*\n", name, err)
				return ""
			}
			return id
		}
	}
	zones := map[string][]string{}
	for _, cert := range cfg.Domains {
		for _, d := range cert {
			name := strings.TrimPrefix(d, "*.")
			rec := "_acme-challenge." + name
			z := zoneOf(name)
			if !slices.Contains(zones[z], rec) {
				zones[z] = append(zones[z], rec)
			}
		}
	}
	var pz []route53dns.PolicyZone
	for id, names := range zones {
		pz = append(pz, route53dns.PolicyZone{ZoneID: id, RecordNames: names})
	}
	sort.Slice(pz, func(i, j int) bool { return pz[i].ZoneID < pz[j].ZoneID })
	b, err := route53dns.PolicyJSON(pz)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
