package metrics

import (
	"context"
	"errors"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Route53APIOption returns an SDK stack option (for route53.Options.APIOptions)
// that records every attempt of every Route 53 call, after the SDK's retry
// step, so a throttled attempt that a retry recovers from is still counted.
// On a nil Recorder it adds nothing.
func (r *Recorder) Route53APIOption() func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if r == nil {
			return nil
		}
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("edgecert.metrics",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleFinalize(ctx, in)
				r.Route53Request(awsmiddleware.GetOperationName(ctx), Route53Outcome(err))
				return out, md, err
			}), "Retry", middleware.After)
	}
}

// Route53Outcome classifies the error of one Route 53 call into an Outcome*
// value: throttling (Throttling, PriorRequestNotComplete), conflicts
// (InvalidChangeBatch: the record set changed under us or is not there,
// ConcurrentModification), access denied, and everything else.
func Route53Outcome(err error) string {
	if err == nil {
		return OutcomeOK
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return OutcomeError
	}
	switch ae.ErrorCode() {
	case "Throttling", "ThrottlingException", "PriorRequestNotComplete", "RequestLimitExceeded":
		return OutcomeThrottled
	case "InvalidChangeBatch", "ConcurrentModification", "ConflictingDomainExists":
		return OutcomeConflict
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		return OutcomeAccessDenied
	}
	return OutcomeError
}
