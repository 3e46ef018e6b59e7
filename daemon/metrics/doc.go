// Package metrics is edgecert's Prometheus instrumentation: one Recorder
// that the issuer, the Route 53 client, the certificate store and the HTTPS
// server report their events to, and a collector that exports certificate
// state at scrape time. Every metric is in the edgecert_ namespace, with
// small, bounded label sets; the names are listed in README "Monitoring"
// and used by monitoring/edgecert.rules.yml.
//
// A nil *Recorder is valid and records nothing, so packages work (and are
// tested) without metrics. Recording never does I/O and never blocks: the
// hot path (HTTP requests, connection states) touches only pre-resolved
// atomic counters.
//
// # Events and series
//
//	ACME HTTP request (Transport)         edgecert_acme_requests_total{action,status}
//	                                      edgecert_acme_request_duration_seconds{action}
//	order attempt ends (Order)            edgecert_acme_orders_total{result}
//	Route 53 API request (Route53Request) edgecert_route53_requests_total{operation,outcome}
//	change INSYNC / answered (Propagation) edgecert_route53_propagation_seconds{stage}
//	store version loaded / rejected       edgecert_store_reloads_total{result}
//	                                      edgecert_store_rejected_versions_total{reason}
//	HTTPS request (Handler)               edgecert_http_requests_total{route,status_class}
//	HTTPS connection state (ConnState)    edgecert_http_open_connections
//
// Per-certificate series (CertCollector, label name) are computed from the
// daemon's view of each certificate when scraped, so nothing is counted on
// the handshake path.
package metrics
