// Package issuer obtains and renews edgecert's certificates from an ACME CA
// (RFC 8555) by DNS-01, on golang.org/x/crypto/acme. autocert cannot do
// DNS-01; its Cache contract is kept for the store (account key, ARI state).
//
// # What it does
//
//   - One ACME account per store: an ECDSA P-256 key created once and kept
//     in the store under "acme_account+key", the account URL (per directory
//     URL) under "acme_account+info". A restart reuses both without a
//     newAccount request. External account binding and terms-of-service
//     agreement are sent when configured; a CA that requires either without
//     configuration fails with an error naming the Config field.
//   - One order per certificate with every identifier (apex and wildcard in
//     one certificate), the configured profile (kept on renewals; stored as
//     Meta.Profile), all DNS-01 challenges presented, waited for
//     concurrently, accepted; valid authorizations are skipped. TXT values
//     are always cleaned up with a fresh, bounded context, also after
//     failure or cancellation.
//   - ARI (RFC 9773): the renewalInfo URL comes from the raw directory; the
//     window is polled as Retry-After says (clamped to 1 min .. 24 h) and
//     persisted under "acme_ari+<name>"; renewal orders carry "replaces"
//     (sent by this package, since x/crypto cannot), retried without it if
//     the CA refuses.
//   - Renewal timing is the pure RenewalTime; failures back off with the
//     pure Backoff, honouring Retry-After, acme rate-limit errors and errors
//     with a RetryAfter() time.Duration method. The current certificate keeps
//     serving throughout: nothing is written to the store until a new
//     certificate has been issued.
//   - Every order runs under the store's lease for the certificate (see
//     Store): losing it cancels the order and nothing is published; a
//     peer's certificate installed while waiting is served instead of
//     ordering; with a shared store, a non-ARI order that would be the 4th
//     for the same names in 7 days is refused (duplicate guard), and
//     alreadyReplaced means a peer is renewing. Only a certificate in
//     emergency (expired, or under 1/20 of its lifetime left) is ordered
//     when the shared store is unreachable.
//   - Start-up: Obtain serves a valid stored certificate with no CA contact
//     at all; it re-obtains when the stored one is missing, expired, or was
//     ordered for other names or another profile.
//
// # Log events
//
// Stable messages; attributes name, serial (hex), not_after (RFC 3339),
// reason, next and error where they apply. Keys, EAB HMAC, tokens and
// challenge values are never logged.
//
//	acme.account             status=registered|reused, account (URL)
//	cert.order_started       reason=missing|expired|domains_changed|profile_changed|renewal|ari|manual|revoked, domains, profile, replaces
//	dns.challenge_present    domain
//	acme.challenge_validated domain
//	cert.issued              serial, not_after, profile (as the CA reports it)
//	cert.stored              serial, version
//	cert.renewal_scheduled   at, reason=ari|lifetime|lifetime_cap|expired, ari_start, ari_end
//	cert.renewal_failed      reason, error, attempt, next_try
//	cert.revoked             serial, reason (RFC 5280 code); a replacement order follows
//	cert.attempt_cancelled   reason, error (ctx cancelled: shutdown, no backoff)
//	ari.checked              ari_start, ari_end, retry_after, next_poll
//	ari.check_failed         error, next_poll
//	acme.replaces_refused    error (the order is retried without replaces)
//	cert.order_skipped       serial, generation, instance (a peer's certificate was installed while waiting for the lease)
//	fleet.duplicate_guard    recent, window, generation, instance (a non-ARI order refused)
//	fleet.emergency_order    serial, not_after, error (ordering without the lease: the shared store is unreachable)
//	fleet.peer_renewing      replaces, generation, instance (alreadyReplaced under a shared lease)
//	fleet.lease_release_failed generation, error
//	dns.cleanup_failed       domain, error
package issuer
