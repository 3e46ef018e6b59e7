package main

import (
	"encoding/json"
	"net/http"

	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/devrig/s3rig"
)

// Counters is what GET /counters on the rig's admin port answers: what each
// rig service was asked, so that a test can count ACME orders, Route 53
// changes and S3 requests across a fleet. A section is null when this devrig
// does not run that service.
type Counters struct {
	ACME    *ACMECounters    `json:"acme"`
	Route53 *Route53Counters `json:"route53"`
	S3      *s3rig.Stats     `json:"s3"`
}

// ACMECounters counts requests to the CA's ACME API.
type ACMECounters struct {
	Requests int64 `json:"requests"`
	// RequestsByClient counts requests by client IP address.
	RequestsByClient map[string]int64 `json:"requests_by_client"`
	NewAccounts      int64            `json:"new_accounts"`
	// NewOrders counts every newOrder request, accepted or not;
	// NewOrdersReplaces those that carried ARI "replaces", NewOrdersCreated
	// those the CA accepted (201).
	NewOrders         int                  `json:"new_orders"`
	NewOrdersReplaces int                  `json:"new_orders_replaces"`
	NewOrdersCreated  int                  `json:"new_orders_created"`
	Orders            []pebblerig.NewOrder `json:"orders"`
}

// Route53Counters counts requests to the Route 53 API by operation.
type Route53Counters struct {
	// Changes counts ChangeResourceRecordSets calls.
	Changes int            `json:"changes"`
	Calls   map[string]int `json:"calls"`
}

// rigServices are the services one devrig runs; nil fields are not running.
type rigServices struct {
	ca  *pebblerig.CA
	r53 *fakeroute53.Server
	s3  *s3rig.Server
}

func (s rigServices) counters() Counters {
	var c Counters
	if s.ca != nil {
		orders := s.ca.NewOrders()
		a := &ACMECounters{Requests: s.ca.Requests(), RequestsByClient: s.ca.RequestsByClient(), NewAccounts: s.ca.NewAccounts(), NewOrders: len(orders), Orders: orders}
		for _, o := range orders {
			if o.Replaces != "" {
				a.NewOrdersReplaces++
			}
			if o.Status == http.StatusCreated {
				a.NewOrdersCreated++
			}
		}
		c.ACME = a
	}
	if s.r53 != nil {
		r := &Route53Counters{Calls: make(map[string]int)}
		for _, op := range []string{fakeroute53.OpListHostedZonesByName, fakeroute53.OpGetHostedZone,
			fakeroute53.OpListResourceRecordSets, fakeroute53.OpChangeResourceRecordSets, fakeroute53.OpGetChange} {
			r.Calls[op] = s.r53.Calls(op)
		}
		r.Changes = r.Calls[fakeroute53.OpChangeResourceRecordSets]
		c.Route53 = r
	}
	if s.s3 != nil {
		st := s.s3.Stats()
		c.S3 = &st
	}
	return c
}

// adminHandler serves the rig's admin API:
//
//	GET /counters   Counters as JSON
func (s rigServices) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counters", func(w http.ResponseWriter, _ *http.Request) {
		b, err := json.MarshalIndent(s.counters(), "", "  ")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(b, '\n')) // the client has gone away; nothing to do
	})
	return mux
}
