package route53dns

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/smithy-go"
)

// ErrAccessDenied is matched (errors.Is) by every error caused by Route 53
// answering AccessDenied. Such errors are *AccessDeniedError values.
var ErrAccessDenied = errors.New("route53: access denied")

// accessDeniedBackoff is what AccessDeniedError.RetryAfter asks for: a missing
// IAM permission does not fix itself in minutes.
const accessDeniedBackoff = time.Hour

// AccessDeniedError reports that the credentials lack an IAM permission. It
// is returned at once, without retries.
type AccessDeniedError struct {
	Action   string // IAM action, e.g. "route53:ChangeResourceRecordSets"
	Resource string // e.g. "hostedzone/Z1", "change/C1" or "*"
	Err      error  // the API error
}

func (e *AccessDeniedError) Error() string {
	return fmt.Sprintf("route53: access denied for %s on %s (grant it in the instance role's IAM policy): %v", e.Action, e.Resource, e.Err)
}

// Is makes errors.Is(err, ErrAccessDenied) true.
func (e *AccessDeniedError) Is(target error) bool { return target == ErrAccessDenied }

// Unwrap returns the API error.
func (e *AccessDeniedError) Unwrap() error { return e.Err }

// RetryAfter tells a scheduler to back off for an hour.
func (e *AccessDeniedError) RetryAfter() time.Duration { return accessDeniedBackoff }

// backoff is an exponential backoff with jitter: the delay before retry n
// (n >= 1) is drawn from [d/2, d) with d = min(base*2^(n-1), max).
type backoff struct {
	attempts int // total attempts, first one included
	base     time.Duration
	max      time.Duration
}

// delay is the wait before retry n; u in [0,1) picks the point in the
// jitter range (pure: callers pass rand.Float64()).
func (b backoff) delay(n int, u float64) time.Duration {
	d := b.base
	for i := 1; i < n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(u*float64(d-half))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// noSDKRetry disables the client's retryer for one call; call retries.
func noSDKRetry(o *route53.Options) { o.Retryer = aws.NopRetryer{} }

var (
	retryables = retry.IsErrorRetryables(retry.DefaultRetryables)
	throttles  = retry.IsErrorThrottles(retry.DefaultThrottles)
)

// apiCode returns the Route 53 error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// call runs fn (one API request, SDK retries off) after taking a token from
// the client-side bucket, and retries it with p.api backoff while the error
// is a throttle (Throttling, PriorRequestNotComplete, ...) or transient (5xx,
// connection error). AccessDenied returns an *AccessDeniedError at once.
// Every request is reported to the Observer. action is the IAM action
// without "route53:", resource its target for messages.
func (p *Provider) call(ctx context.Context, action, resource string, fn func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if err := p.limit.Wait(ctx); err != nil {
			return fmt.Errorf("route53: %s on %s: waiting for the request budget: %w", action, resource, err)
		}
		err := fn(ctx)
		p.obs.apiCall(action, err)
		if err == nil {
			return nil
		}
		code := apiCode(err)
		if isAccessDenied(err) {
			return &AccessDeniedError{Action: "route53:" + action, Resource: resource, Err: err}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("route53: %s on %s: %w", action, resource, err)
		}
		retryable := throttles.IsErrorThrottle(err) == aws.TrueTernary ||
			retryables.IsErrorRetryable(err) == aws.TrueTernary
		if !retryable {
			return fmt.Errorf("route53: %s on %s: %w", action, resource, err)
		}
		if attempt >= p.api.attempts {
			return fmt.Errorf("route53: %s on %s: giving up after %d attempts: %w", action, resource, attempt, err)
		}
		d := p.api.delay(attempt, p.rnd())
		p.log.Warn("dns.api_retry", "op", action, "code", code, "attempt", attempt, "delay", d)
		if cerr := sleep(ctx, d); cerr != nil {
			return fmt.Errorf("route53: %s on %s: %w (last error: %v)", action, resource, cerr, err)
		}
	}
}
