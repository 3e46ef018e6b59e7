package route53dns

import (
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// Outcomes reported to Observer.APICall.
const (
	OutcomeOK           = "ok"
	OutcomeThrottled    = "throttled"     // Throttling, PriorRequestNotComplete and other throttles
	OutcomeConflict     = "conflict"      // InvalidChangeBatch: a compare-and-swap lost a race (or the change is invalid)
	OutcomeAccessDenied = "access_denied" // an IAM permission is missing
	OutcomeError        = "error"         // anything else: 5xx, network, cancelled
)

// Observer receives what the provider does, for metrics. Every field may be
// nil. The functions are called synchronously from the provider's
// goroutines, never with a lock held; they must be fast and safe for
// concurrent use.
type Observer struct {
	// APICall is called once per Route 53 request (every retry counts):
	// op is the API operation ("ChangeResourceRecordSets", ...), outcome
	// one of the Outcome* constants.
	APICall func(op, outcome string)
	// Insync is called once per change when GetChange first reports INSYNC,
	// with the time since the change was accepted.
	Insync func(d time.Duration)
	// Authoritative is called once per Wait that ends with every
	// authoritative name server serving the value, with the time since the
	// value's change became INSYNC (since Wait started if none was needed).
	Authoritative func(d time.Duration)
}

func (o *Observer) apiCall(op string, err error) {
	if o.APICall != nil {
		o.APICall(op, outcome(err))
	}
}

func (o *Observer) insync(d time.Duration) {
	if o.Insync != nil {
		o.Insync(d)
	}
}

func (o *Observer) authoritative(d time.Duration) {
	if o.Authoritative != nil {
		o.Authoritative(d)
	}
}

// outcome classifies the result of one request.
func outcome(err error) string {
	var icb *types.InvalidChangeBatch
	switch {
	case err == nil:
		return OutcomeOK
	case isAccessDenied(err):
		return OutcomeAccessDenied
	case throttles.IsErrorThrottle(err) == aws.TrueTernary:
		return OutcomeThrottled
	case errors.As(err, &icb):
		return OutcomeConflict
	}
	return OutcomeError
}

func isAccessDenied(err error) bool {
	code := apiCode(err)
	return code == "AccessDenied" || code == "AccessDeniedException"
}
