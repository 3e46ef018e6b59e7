package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sort"
	"strings"

	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/daemon/issuer"
)

// Revocation reasons accepted by `edgecert revoke -reason` (RFC 5280
// CRLReason names; the ones Let's Encrypt accepts).
var revokeReasons = map[string]acme.CRLReasonCode{
	"unspecified":          acme.CRLReasonUnspecified,
	"keyCompromise":        acme.CRLReasonKeyCompromise,
	"affiliationChanged":   acme.CRLReasonAffiliationChanged,
	"superseded":           acme.CRLReasonSuperseded,
	"cessationOfOperation": acme.CRLReasonCessationOfOperation,
}

func revokeReasonNames() string {
	names := make([]string, 0, len(revokeReasons))
	for n := range revokeReasons {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "|")
}

// Results of one certificate in a renew or revoke stream (the last line,
// msg "admin.result").
const (
	resultRenewed = "renewed" // a new certificate is served
	resultNotDue  = "not_due" // left alone (not forced)
	resultFailed  = "failed"
)

// renewRequest is the JSON body of POST /renew.
type renewRequest struct {
	Names []string `json:"names"` // empty: every certificate
	Force bool     `json:"force"`
}

// revokeRequest is the JSON body of POST /revoke.
type revokeRequest struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// adminOps serves the admin endpoints that change state: POST /renew and
// POST /revoke. They answer a stream of JSON lines (application/x-ndjson):
// the daemon's log events for the certificates concerned as they happen,
// then one admin.result line per certificate.
type adminOps struct {
	mgr   *issuer.Manager // nil: no ACME certificates configured
	hub   *eventHub
	base  context.Context // ends with the daemon: running operations stop
	token [sha256.Size]byte
	hasTk bool
	log   *slog.Logger
}

func (o *adminOps) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /renew", o.guard(o.renew))
	mux.HandleFunc("POST /revoke", o.guard(o.revoke))
}

// guard admits a state-changing request only from a loopback client, or
// from any client presenting the admin token (-admin-token) as a bearer
// token, and only with a JSON body (a browser cannot send one to another
// origin without a CORS preflight, which is never answered).
func (o *adminOps) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !o.allowed(r) {
			msg := "admin: state-changing requests are accepted from loopback clients only (configure -admin-token to allow others)"
			code := http.StatusForbidden
			if o.hasTk {
				msg, code = "admin: a valid admin token is required from non-loopback clients", http.StatusUnauthorized
			}
			http.Error(w, msg, code)
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			http.Error(w, "admin: the request body must be JSON (Content-Type: application/json)", http.StatusUnsupportedMediaType)
			return
		}
		if o.mgr == nil {
			http.Error(w, "admin: no ACME certificates are configured (-domains)", http.StatusConflict)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		next(w, r)
	}
}

func (o *adminOps) allowed(r *http.Request) bool {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return true
		}
	}
	if !o.hasTk {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(got))
	return ok && subtle.ConstantTimeCompare(sum[:], o.token[:]) == 1
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, "admin: bad request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// managed returns the configured certificate names, or an error naming the
// first unknown one in names.
func (o *adminOps) managed(names []string) ([]string, error) {
	var all []string
	for _, s := range o.mgr.Status() {
		all = append(all, s.Name)
	}
	if len(names) == 0 {
		return all, nil
	}
	for _, n := range names {
		found := false
		for _, a := range all {
			found = found || a == n
		}
		if !found {
			return nil, fmt.Errorf("admin: no certificate named %q (configured: %s)", n, strings.Join(all, ", "))
		}
	}
	return names, nil
}

func (o *adminOps) renew(w http.ResponseWriter, r *http.Request) {
	var req renewRequest
	if !decodeBody(w, r, &req) {
		return
	}
	names, err := o.managed(req.Names)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	o.log.Info("admin.renew", "names", names, "force", req.Force, "remote", r.RemoteAddr)
	o.stream(w, r, names, func(ctx context.Context, name string) event {
		e, err := o.mgr.Renew(ctx, name, req.Force)
		var nd *issuer.NotDueError
		switch {
		case errors.As(err, &nd):
			return event{"result": resultNotDue, "planned_renewal": nd.At.UTC().Format(timeFormat), "error": err.Error()}
		case err != nil:
			return event{"result": resultFailed, "error": err.Error()}
		}
		return event{"result": resultRenewed, "serial": e.Serial(), "not_after": e.NotAfter().UTC().Format(timeFormat)}
	})
}

func (o *adminOps) revoke(w http.ResponseWriter, r *http.Request) {
	var req revokeRequest
	if !decodeBody(w, r, &req) {
		return
	}
	reason, ok := revokeReasons[req.Reason]
	if !ok {
		http.Error(w, fmt.Sprintf("admin: revoke needs an explicit reason: one of %s", revokeReasonNames()), http.StatusBadRequest)
		return
	}
	if req.Name == "" {
		http.Error(w, "admin: revoke needs the certificate's name", http.StatusBadRequest)
		return
	}
	if _, err := o.managed([]string{req.Name}); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	o.log.Warn("admin.revoke", "name", req.Name, "reason", req.Reason, "remote", r.RemoteAddr)
	o.stream(w, r, []string{req.Name}, func(ctx context.Context, name string) event {
		e, err := o.mgr.Revoke(ctx, name, reason)
		if err != nil {
			return event{"result": resultFailed, "error": err.Error()}
		}
		return event{"result": resultRenewed, "serial": e.Serial(), "not_after": e.NotAfter().UTC().Format(timeFormat)}
	})
}

const timeFormat = "2006-01-02T15:04:05Z07:00"

// stream runs op for every name concurrently and writes, as JSON lines,
// the log events about those names while they run and then each name's
// result (msg admin.result, name, result, error or serial). The operations
// end when the client goes away or the daemon stops.
func (o *adminOps) stream(w http.ResponseWriter, r *http.Request, names []string, op func(context.Context, string) event) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(o.base, cancel)
	defer stop()

	sub := o.hub.subscribe(names)
	defer o.hub.unsubscribe(sub)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	write := func(ev event) {
		enc.Encode(ev) // a gone client ends ctx; nothing else to do
		rc.Flush()
	}

	results := make(chan event, len(names))
	for _, n := range names {
		go func() {
			res := op(ctx, n)
			res["msg"], res["name"] = "admin.result", n
			results <- res
		}()
	}
	for left := len(names); left > 0; {
		select {
		case ev := <-sub.ch:
			write(ev)
		case res := <-results:
			// Events logged before the result are written first.
			for drained := false; !drained; {
				select {
				case ev := <-sub.ch:
					write(ev)
				default:
					drained = true
				}
			}
			write(res)
			left--
		}
	}
}
