package issuer

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/metrics"
)

func TestOrderResult(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, metrics.OrderValid},
		{fmt.Errorf("issuer: new order: %w", &acme.Error{StatusCode: 429, ProblemType: "urn:ietf:params:acme:error:rateLimited"}), metrics.OrderRateLimited},
		{&acme.Error{StatusCode: 429}, metrics.OrderRateLimited},
		{errors.Join(errors.New("x"), fmt.Errorf("issuer: validation of a: %w", &acme.AuthorizationError{URI: "u"})), metrics.OrderInvalid},
		{fmt.Errorf("issuer: wait for order: %w", &acme.OrderError{OrderURL: "o", Status: acme.StatusInvalid}), metrics.OrderInvalid},
		{errors.New("route53: AccessDenied"), metrics.OrderError},
		{fmt.Errorf("issuer: new order: %w: %w", errPeerRenewing, &acme.Error{StatusCode: 409}), metrics.OrderAlreadyReplaced},
		{fmt.Errorf("order abandoned: %w", certstore.ErrLeaseLost), metrics.OrderLeaseLost},
		{fmt.Errorf("issuer: %w", errDuplicateGuard), metrics.OrderDuplicateGuard},
		{&acme.Error{StatusCode: 503}, metrics.OrderError},
	} {
		if got := orderResult(tc.err); got != tc.want {
			t.Errorf("orderResult(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
