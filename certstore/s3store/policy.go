package s3store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// PolicyStatement is one IAM policy statement.
type PolicyStatement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Principal any                       `json:"Principal,omitempty"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// PolicyPlace is where the fleet state lives, for the policies.
type PolicyPlace struct {
	Partition string // "aws" (also ""), "aws-cn", "aws-us-gov"
	Bucket    string
	Prefix    string // "" or ending in "/"
	// KMSKeyID is the -fleet-sse-kms-key-id value: a key ARN (best), or a
	// key ID (granted in any region and account of the partition).
	KMSKeyID string
}

func (p PolicyPlace) check() error {
	switch {
	case p.Bucket == "":
		return errors.New("s3store: policy: no bucket")
	case p.Prefix != "" && !strings.HasSuffix(p.Prefix, "/"):
		return fmt.Errorf("s3store: policy: prefix %q must end in /", p.Prefix)
	}
	return nil
}

func (p PolicyPlace) partition() string {
	if p.Partition == "" {
		return "aws"
	}
	return p.Partition
}

func (p PolicyPlace) bucketARN() string { return "arn:" + p.partition() + ":s3:::" + p.Bucket }
func (p PolicyPlace) objects(pattern string) string {
	return p.bucketARN() + "/" + p.Prefix + pattern
}

// IAMStatements are what the instance role needs for the fleet store:
// GetObject, PutObject and DeleteObject on the prefix (a PUT with If-Match
// also needs GetObject); ListBucket limited to the prefix, without which
// S3 answers a missing key with 403 instead of 404 and a new fleet would
// look unreachable; and, with a KMS key, GenerateDataKey and Decrypt on it.
func IAMStatements(p PolicyPlace) ([]PolicyStatement, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	st := []PolicyStatement{
		{Sid: "EdgecertFleetObjects", Effect: "Allow",
			Action:   []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
			Resource: []string{p.objects("*")}},
		{Sid: "EdgecertFleetList", Effect: "Allow",
			Action:    []string{"s3:ListBucket"},
			Resource:  []string{p.bucketARN()},
			Condition: map[string]map[string]any{"StringLike": {"s3:prefix": []string{p.Prefix + "*"}}}},
	}
	if k := p.KMSKeyID; k != "" {
		arn := k
		if !strings.HasPrefix(k, "arn:") {
			arn = "arn:" + p.partition() + ":kms:*:*:key/" + k
		}
		st = append(st, PolicyStatement{Sid: "EdgecertFleetKMS", Effect: "Allow",
			Action: []string{"kms:GenerateDataKey", "kms:Decrypt"}, Resource: []string{arn}})
	}
	return st, nil
}

// BucketPolicy returns a bucket policy document for the fleet bucket: it
// denies any request without TLS, any PutObject under leases/ and certs/
// (leases, versions and pointers) carrying neither If-None-Match nor
// If-Match, and any DeleteObject of a lease without If-Match — so an old
// or broken binary cannot clobber the fleet's state with an unconditional
// write (condition keys s3:if-none-match and s3:if-match).
func BucketPolicy(p PolicyPlace) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	state := []string{p.objects("leases/*"), p.objects("certs/*")}
	doc := struct {
		Version   string            `json:"Version"`
		Statement []PolicyStatement `json:"Statement"`
	}{Version: "2012-10-17", Statement: []PolicyStatement{
		{Sid: "EdgecertRequireTLS", Effect: "Deny", Principal: "*", Action: []string{"s3:*"},
			Resource:  []string{p.bucketARN(), p.bucketARN() + "/*"},
			Condition: map[string]map[string]any{"Bool": {"aws:SecureTransport": "false"}}},
		{Sid: "EdgecertDenyUnconditionalStateWrites", Effect: "Deny", Principal: "*", Action: []string{"s3:PutObject"},
			Resource:  state,
			Condition: map[string]map[string]any{"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}}},
		{Sid: "EdgecertDenyUnconditionalLeaseDeletes", Effect: "Deny", Principal: "*", Action: []string{"s3:DeleteObject"},
			Resource:  []string{p.objects("leases/*")},
			Condition: map[string]map[string]any{"Null": {"s3:if-match": "true"}}},
	}}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("s3store: policy: %w", err)
	}
	return append(out, '\n'), nil
}
