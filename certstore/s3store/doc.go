// Package s3store shares edgecert's certificates and ACME state across a
// fleet through one S3 bucket, using only conditional writes: no other
// service, no host clock in any decision that two hosts must agree on.
// The local certstore stays the copy the TLS server reads, so an S3 outage
// or a restart never takes a site down. Store implements the issuer's
// Store contract (daemon/issuer.Store).
//
// # Bucket layout (under Options.Prefix)
//
//	data/<key>                           opaque blobs: the fleet's one ACME account key
//	                                     (created with If-None-Match: *), account URL, ARI state
//	leases/<name>.json                   {holder, nonce, generation}: the lease of one certificate
//	certs/<name>/<generation>-<serial>.json  one version: chain, key, meta; written once
//	                                     (If-None-Match: *), never overwritten
//	certs/<name>/current.json            {generation, serial, bundle, not_after, instance, history}:
//	                                     the pointer, moved forward only, by If-Match on its ETag
//
// # Protocol
//
// Lease: created with If-None-Match: *, renewed every TTL/4 and taken
// over with If-Match. A lease is stale when the server's Date minus its
// LastModified exceeds the TTL. Every write carries a fresh nonce (ETags
// are content hashes) and the generation, the fencing token: above the
// previous lease's and the pointer's. A refused condition (412, 409
// ConditionalRequestConflict, or 404 on If-Match, as AWS answers for a
// missing key) is read back before concluding: a write whose response was
// lost and which the SDK retried is recognised by its nonce. A holder
// whose renewal is refused by another holder, or which cannot renew for
// 3/4 of the TTL, loses the lease: its Context is cancelled. Release
// deletes it with If-Match.
//
// Publishing: the version object, then the pointer by CAS, only under a
// held lease whose generation is above the pointer's. The pointer keeps
// the issuance history of the last 7 days (the issuer's duplicate guard).
// After taking a lease the pointer is read again and a newer certificate
// installed, so a host never orders what a peer just published.
//
// Sync: one HEAD of each pointer per interval (plus jitter); only when the
// ETag moved are the pointer and the version read and installed through
// the local store's crash-safe PutCert (hot reload). A certificate
// obtained while the bucket was unreachable (generation 0) is published
// by Sync when it is back.
//
// # Log events
//
// Attributes name, serial, generation and instance where they apply:
//
//	fleet.lease_acquired  (previous_holder, stale_for on a takeover)
//	fleet.lease_waiting   holder
//	fleet.lease_lost      why
//	fleet.lease_released
//	fleet.cert_published  not_after, fenced
//	fleet.cert_installed  publisher, not_after
//	fleet.store_error     op (get, put, delete, create, lock, renew, release, publish, sync), error
//	fleet.cache_failed    key, error (the local copy of a blob could not be written)
package s3store
