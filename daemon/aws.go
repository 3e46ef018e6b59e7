package daemon

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"
)

// route53Options adjust the Route 53 client after the SDK's default chain.
type route53Options []func(*route53.Options)

// newRoute53 builds the Route 53 client from the SDK's default chain: the
// instance role through IMDSv2 on EC2, AWS_* variables and shared files
// elsewhere, AWS_ENDPOINT_URL_ROUTE_53 for another endpoint. Credentials never
// come from flags. Route 53 is a global service homed in us-east-1, which is
// used when no region is configured. opts are applied last.
func newRoute53(ctx context.Context, opts ...func(*route53.Options)) (*route53.Client, error) {
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("daemon: aws config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	return route53.NewFromConfig(awsCfg, opts...), nil
}
