package issuer

import (
	"errors"
	"net/http"

	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/metrics"
)

// orderResult classifies the outcome of one issuance attempt for
// edgecert_acme_orders_total: valid (issued and stored), rate_limited (the
// CA said rateLimited or 429), invalid (the CA found an authorization or
// the order invalid), the fleet's already_replaced, lease_lost and
// duplicate_guard, or error (DNS, Route 53, network, store, ...).
func orderResult(err error) string {
	var (
		ae *acme.Error
		ze *acme.AuthorizationError
		oe *acme.OrderError
	)
	switch {
	case err == nil:
		return metrics.OrderValid
	case errors.Is(err, errPeerRenewing):
		return metrics.OrderAlreadyReplaced
	case errors.Is(err, certstore.ErrLeaseLost):
		return metrics.OrderLeaseLost
	case errors.Is(err, errDuplicateGuard):
		return metrics.OrderDuplicateGuard
	case isProblem(err, ":rateLimited") || errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests:
		return metrics.OrderRateLimited
	case errors.As(err, &ze), errors.As(err, &oe):
		return metrics.OrderInvalid
	}
	return metrics.OrderError
}
