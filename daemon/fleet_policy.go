package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/edgecert/edgecert/certstore/s3store"
	"github.com/edgecert/edgecert/daemon/route53dns"
)

// partitionOrRegion is -partition, else the partition of the AWS region
// configured locally (no AWS call), else "aws".
func (pf policyFlags) partitionOrRegion(ctx context.Context) string {
	if pf.partition != "" {
		return pf.partition
	}
	if awsCfg, err := config.LoadDefaultConfig(ctx); err == nil {
		return route53dns.PartitionOf(awsCfg.Region)
	}
	return "aws"
}

// fleetPlace is where -fleet-store keeps the fleet state, for policies.
func fleetPlace(cfg *Config, partition string) s3store.PolicyPlace {
	return s3store.PolicyPlace{Partition: partition, Bucket: cfg.Fleet.bucket, Prefix: cfg.Fleet.prefix, KMSKeyID: cfg.Fleet.KMSKeyID}
}

// addFleetStatements appends the fleet store's S3 (and KMS) statements to
// the IAM policy document doc when -fleet-store is set.
func addFleetStatements(doc []byte, cfg *Config, partition string) ([]byte, error) {
	if cfg.Fleet.Store == "" {
		return doc, nil
	}
	st, err := s3store.IAMStatements(fleetPlace(cfg, partition))
	if err != nil {
		return nil, err
	}
	var d struct {
		Version   string            `json:"Version"`
		Statement []json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("iam-policy: %w", err)
	}
	for _, s := range st {
		b, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		d.Statement = append(d.Statement, b)
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// printBucketPolicy writes the fleet bucket's policy (see
// s3store.BucketPolicy) for -fleet-store.
func printBucketPolicy(cfg *Config, partition string, stdout io.Writer) error {
	if cfg.Fleet.Store == "" {
		return errors.New("-fleet-store: bucket-policy needs the fleet's s3://BUCKET[/PREFIX]")
	}
	b, err := s3store.BucketPolicy(fleetPlace(cfg, partition))
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}
