// Package fakeroute53 is an in-memory Route 53 API for tests and the offline
// demo. It speaks the REST-XML wire format of the 2013-04-01 API closely
// enough for the unmodified aws-sdk-go-v2 route53 client, for exactly the
// operations edgecert uses: ListHostedZonesByName, GetHostedZone,
// ListResourceRecordSets, ChangeResourceRecordSets and GetChange.
//
// Semantics follow Route 53:
//
//   - A change batch is atomic: if any change fails, nothing is applied and the
//     answer is an InvalidChangeBatch error listing every failure.
//
//   - CREATE of an existing set fails; DELETE must match the set exactly (name,
//     type, TTL and every value, in any order); UPSERT replaces the set. One
//     batch may touch a set twice only as DELETE then CREATE/UPSERT (the
//     compare-and-swap form).
//
//   - TXT values must be quoted character-strings, as on the real API.
//
//   - Names are case-insensitive and matched exactly; list operations return
//     everything that sorts at or after the start point (labels reversed).
//
//   - A change is PENDING until Options.InsyncAfter has passed, then INSYNC.
//     Record sets are published to the authoritative DNS servers only when
//     their change becomes INSYNC, as real name servers behave. Private zones
//     are never published.
//
//   - A batch over Route 53's size limits (1,000 changes, 1,000 records,
//     32,000 characters of values) is rejected as a whole.
//
//   - With Options.RateLimit, requests beyond Route 53's account-wide limit
//     (5 per second, shared by every client of the Server) are answered 400
//     Throttling "Rate exceeded", as AWS does; they are counted in Calls and
//     in Throttled.
//
// Faults (Throttling, PriorRequestNotComplete, AccessDenied, ...) can be
// injected per operation, and every request is counted per operation so that
// tests can assert API call counts.
//
// Requests must carry a SigV4 Authorization header (any credentials); the
// signature itself is not checked.
package fakeroute53

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/edgecert/edgecert/internal/devrig/authdns"
)

// Operation names accepted by Fail and Calls.
const (
	OpListHostedZonesByName    = "ListHostedZonesByName"
	OpGetHostedZone            = "GetHostedZone"
	OpListResourceRecordSets   = "ListResourceRecordSets"
	OpChangeResourceRecordSets = "ChangeResourceRecordSets"
	OpGetChange                = "GetChange"
)

// Zone describes a hosted zone. ID may be given with or without the
// "/hostedzone/" prefix. NameServers is the delegation set GetHostedZone
// reports for a public zone; entries may carry a ":port" (not something Route
// 53 does, but it lets a client on loopback reach an authdns server without
// an override). Private zones report no delegation set.
type Zone struct {
	ID          string
	Name        string
	Private     bool
	NameServers []string
}

// AccountRateLimit is Route 53's limit on API requests per second per AWS
// account, for Options.RateLimit.
const AccountRateLimit = 5

// Mirror is an extra authoritative server that receives each INSYNC record
// set Lag after the primary does, to model a lagging name server.
type Mirror struct {
	DNS *authdns.Server
	Lag time.Duration
}

// Options configure a Server. The zero value is usable: no DNS publication,
// changes INSYNC at once, logs discarded.
type Options struct {
	// DNS receives every record set (TXT and CNAME) of public zones when its
	// change becomes INSYNC. Nil publishes nowhere.
	DNS *authdns.Server
	// Mirrors receive the same publications, each after its own lag.
	Mirrors []Mirror
	// InsyncAfter is how long a change stays PENDING; 0 makes it INSYNC as
	// soon as the ChangeResourceRecordSets response is written (the response
	// itself always says PENDING).
	InsyncAfter time.Duration
	// RateLimit, when positive, is the number of requests per second the
	// Server accepts from all clients together (AccountRateLimit models
	// Route 53); the excess is answered 400 Throttling. The bucket holds
	// RateLimit tokens, so at most RateLimit requests pass in any burst.
	// 0 means no limit.
	RateLimit float64
	// Now is the clock of the rate limit; nil means time.Now. Tests of the
	// limit itself pass a fake clock (or run in a synctest bubble).
	Now func() time.Time
	// Logger receives debug events (fakeroute53.*); nil discards them.
	Logger *slog.Logger
}

// Fault makes an operation fail with the given error code. Known codes get
// Route 53's HTTP status (AccessDenied 403, NoSuchHostedZone/NoSuchChange 404,
// InternalError 500, ServiceUnavailable 503, everything else 400). Times is how
// many requests fail; 0 means every request until ClearFaults.
type Fault struct {
	Code  string
	Times int
}

// Server is the fake API; it implements http.Handler. All methods are safe for
// concurrent use.
type Server struct {
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	limit *rate.Limiter // nil without Options.RateLimit; safe for concurrent use

	mu          sync.Mutex           // guards every field below
	zones       map[string]*zone     // by zone ID (no prefix)
	changes     map[string]*change   // by change ID (no prefix)
	order       []*change            // changes in submission order
	seq         uint64               // last change sequence number
	published   map[pubKey]uint64    // primary: sequence of the last published change per set
	mirrorSeq   []map[pubKey]uint64  // per mirror: same as published
	faults      map[string][]*Fault  // pending faults per operation, FIFO
	calls       map[string]int       // requests per operation
	throttled   map[string]int       // requests per operation refused by the rate limit
	neverInsync bool                 // hold changes PENDING
	timers      map[*time.Timer]bool // pending INSYNC and mirror timers
	closed      bool
	requestID   uint64
}

// New returns a Server with no zones.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:      opts,
		log:       log,
		zones:     make(map[string]*zone),
		changes:   make(map[string]*change),
		published: make(map[pubKey]uint64),
		faults:    make(map[string][]*Fault),
		calls:     make(map[string]int),
		throttled: make(map[string]int),
		timers:    make(map[*time.Timer]bool),
		now:       opts.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.RateLimit > 0 {
		s.limit = rate.NewLimiter(rate.Limit(opts.RateLimit), max(1, int(opts.RateLimit)))
	}
	for range opts.Mirrors {
		s.mirrorSeq = append(s.mirrorSeq, make(map[pubKey]uint64))
	}
	return s
}

// AddZone creates a hosted zone (replacing one with the same ID) holding the
// apex SOA and NS record sets Route 53 creates with every zone.
func (s *Server) AddZone(z Zone) {
	z.ID = trimID(z.ID, "hostedzone")
	z.Name = canonical(z.Name)
	zn := &zone{Zone: z, sets: make(map[rrKey]*rrset)}
	ns := make([]string, 0, len(z.NameServers))
	for _, n := range z.NameServers {
		ns = append(ns, canonical(n))
	}
	if len(ns) == 0 {
		ns = []string{"ns-0.fakeroute53.invalid."}
	}
	zn.sets[rrKey{z.Name, "NS"}] = &rrset{Name: z.Name, Type: "NS", TTL: 172800, Values: ns}
	zn.sets[rrKey{z.Name, "SOA"}] = &rrset{Name: z.Name, Type: "SOA", TTL: 900, Values: []string{
		ns[0] + " awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"}}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[z.ID] = zn
}

// Fail queues a fault for op (one of the Op* constants). Faults for one
// operation are consumed in the order they were queued.
func (s *Server) Fail(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], &f)
}

// ClearFaults removes every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// SetNeverInsync(true) keeps every change PENDING and unpublished, as if
// INSYNC never arrived. SetNeverInsync(false) releases the held changes whose
// delay has passed, in submission order; later ones follow on schedule.
func (s *Server) SetNeverInsync(never bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.neverInsync = never
	if never {
		return
	}
	for _, c := range s.order {
		if c.due && c.status == statusPending {
			s.insyncLocked(c)
		}
	}
}

// Calls reports how many requests op has received, faulted ones included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Throttled reports how many requests to op the rate limit refused; op ""
// sums every operation.
func (s *Server) Throttled(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op != "" {
		return s.throttled[op]
	}
	n := 0
	for _, v := range s.throttled {
		n += v
	}
	return n
}

// TotalCalls reports the requests of every operation, faulted and throttled
// ones included.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.calls {
		n += v
	}
	return n
}

// ResetCalls sets every call and throttle counter to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	clear(s.throttled)
}

// TXT returns the values (unquoted) of the TXT set at name in the zone as the
// API currently holds it, INSYNC or not; nil if there is none.
func (s *Server) TXT(zoneID, name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zones[trimID(zoneID, "hostedzone")]
	if z == nil {
		return nil
	}
	rs := z.sets[rrKey{canonical(name), "TXT"}]
	if rs == nil {
		return nil
	}
	out := make([]string, 0, len(rs.Values))
	for _, v := range rs.Values {
		u, err := unquoteTXT(v)
		if err != nil {
			u = v
		}
		out = append(out, u)
	}
	return out
}

// UpsertTXT sets the TXT set at name to values (unquoted; none deletes it) as
// if another API client had sent an UPSERT (or DELETE): it goes through the
// same PENDING/INSYNC path and returns the change ID. It is not counted in
// Calls.
func (s *Server) UpsertTXT(zoneID, name string, ttl int64, values ...string) (string, error) {
	name = canonical(name)
	s.mu.Lock()
	z := s.zones[trimID(zoneID, "hostedzone")]
	var cur *rrset
	if z != nil {
		cur = z.sets[rrKey{name, "TXT"}]
	}
	s.mu.Unlock()
	var changes []xChange
	if len(values) == 0 {
		if cur == nil {
			return "", nil
		}
		changes = []xChange{{Action: "DELETE", Set: cur.wire()}}
	} else {
		rs := &rrset{Name: name, Type: "TXT", TTL: ttl}
		for _, v := range values {
			rs.Values = append(rs.Values, quoteTXT(v))
		}
		changes = []xChange{{Action: "UPSERT", Set: rs.wire()}}
	}
	c, apiErr := s.applyBatch(trimID(zoneID, "hostedzone"), changes, "fakeroute53.UpsertTXT")
	if apiErr != nil {
		return "", fmt.Errorf("fakeroute53: %s: %s", apiErr.code, strings.Join(apiErr.messages, "; "))
	}
	return c.id, nil
}

// Pending reports how many changes are still PENDING, i.e. not yet
// published to the name servers. A test that checks what DNS serves after
// the daemon's last API call waits for Pending to reach 0 first.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.order {
		if c.status == statusPending {
			n++
		}
	}
	return n
}

// InsyncTime reports when the change became INSYNC; ok is false while it is
// PENDING or unknown.
func (s *Server) InsyncTime(changeID string) (t time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.changes[trimID(changeID, "change")]
	if c == nil || c.status != statusInsync {
		return time.Time{}, false
	}
	return c.insyncAt, true
}

// Close stops the pending INSYNC and mirror timers. Changes still PENDING stay
// so; the handler keeps answering.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for t := range s.timers {
		t.Stop()
	}
	clear(s.timers)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, id := route(r)
	if op == "" {
		s.writeError(w, &apiError{status: http.StatusNotFound, code: "UnknownOperationException",
			messages: []string{"fakeroute53: unsupported operation " + r.Method + " " + r.URL.Path}})
		return
	}
	limited := s.limit != nil && !s.limit.AllowN(s.now(), 1)
	s.mu.Lock()
	s.calls[op]++
	var f *Fault
	if limited {
		s.throttled[op]++
	} else {
		f = s.takeFaultLocked(op)
	}
	s.mu.Unlock()
	s.log.Debug("fakeroute53.request", "op", op, "id", id, "throttled", limited)
	if limited {
		s.writeError(w, faultError(op, id, "Throttling"))
		return
	}
	if f != nil {
		s.writeError(w, faultError(op, id, f.Code))
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		s.writeError(w, &apiError{status: http.StatusForbidden, code: "MissingAuthenticationToken",
			messages: []string{"Missing Authentication Token"}})
		return
	}
	switch op {
	case OpListHostedZonesByName:
		s.listHostedZonesByName(w, r)
	case OpGetHostedZone:
		s.getHostedZone(w, id)
	case OpListResourceRecordSets:
		s.listResourceRecordSets(w, r, id)
	case OpChangeResourceRecordSets:
		s.changeResourceRecordSets(w, r, id)
	case OpGetChange:
		s.getChange(w, id)
	}
}

// route maps a request to its operation and path ID.
func route(r *http.Request) (op, id string) {
	p, ok := strings.CutPrefix(r.URL.Path, "/2013-04-01/")
	if !ok {
		return "", ""
	}
	parts := strings.Split(strings.TrimSuffix(p, "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "hostedzonesbyname":
		return OpListHostedZonesByName, ""
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "hostedzone":
		return OpGetHostedZone, parts[1]
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "hostedzone" && parts[2] == "rrset":
		return OpListResourceRecordSets, parts[1]
	case r.Method == http.MethodPost && len(parts) == 3 && parts[0] == "hostedzone" && parts[2] == "rrset":
		return OpChangeResourceRecordSets, parts[1]
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "change":
		return OpGetChange, parts[1]
	}
	return "", ""
}

func (s *Server) takeFaultLocked(op string) *Fault {
	q := s.faults[op]
	if len(q) == 0 {
		return nil
	}
	f := q[0]
	if f.Times == 0 {
		return f
	}
	f.Times--
	if f.Times == 0 {
		s.faults[op] = q[1:]
	}
	return f
}

// trimID strips "/kind/" or "kind/" from id.
func trimID(id, kind string) string {
	id = strings.TrimPrefix(id, "/")
	return strings.TrimPrefix(id, kind+"/")
}
