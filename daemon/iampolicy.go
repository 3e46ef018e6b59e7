package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"

	"github.com/edgecert/edgecert/daemon/route53dns"
)

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
		if r53, err = newRoute53(lctx, cfg.route53Client...); err != nil {
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
