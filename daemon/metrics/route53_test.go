package metrics

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
)

// The SDK option counts every attempt of the unmodified client, after its
// retries: a throttled attempt that a retry recovers from still shows.
func TestRoute53APIOption(t *testing.T) {
	fake := fakeroute53.New(fakeroute53.Options{})
	fake.AddZone(fakeroute53.Zone{ID: "Z1", Name: "example.test"})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.Close()
	r, _ := newTestRecorder(t)
	cl := route53.New(route53.Options{
		BaseEndpoint: aws.String(srv.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
		APIOptions: []func(*middleware.Stack) error{r.Route53APIOption()},
	})
	ctx := context.Background()
	fake.Fail(fakeroute53.OpGetHostedZone, fakeroute53.Fault{Code: "Throttling", Times: 2})
	if _, err := cl.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String("Z1")}); err != nil {
		t.Fatalf("GetHostedZone after 2 throttles (3 attempts): %v", err)
	}
	fake.Fail(fakeroute53.OpListHostedZonesByName, fakeroute53.Fault{Code: "AccessDenied", Times: 1})
	if _, err := cl.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{}); err == nil {
		t.Fatal("ListHostedZonesByName with AccessDenied succeeded")
	}
	for _, tc := range []struct {
		op, outcome string
		want        float64
	}{
		{"GetHostedZone", OutcomeThrottled, 2},
		{"GetHostedZone", OutcomeOK, 1},
		{"ListHostedZonesByName", OutcomeAccessDenied, 1},
		{"ListHostedZonesByName", OutcomeOK, 0},
	} {
		if got := testutil.ToFloat64(r.r53Requests.WithLabelValues(tc.op, tc.outcome)); got != tc.want {
			t.Errorf("route53_requests_total{operation=%q,outcome=%q} = %v, want %v", tc.op, tc.outcome, got, tc.want)
		}
	}
}
