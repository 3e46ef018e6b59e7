package fakeroute53

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	statusPending = "PENDING"
	statusInsync  = "INSYNC"
)

// knownTypes are the record types Route 53 accepts.
var knownTypes = map[string]bool{
	"A": true, "AAAA": true, "CAA": true, "CNAME": true, "DS": true, "HTTPS": true, "MX": true,
	"NAPTR": true, "NS": true, "PTR": true, "SOA": true, "SPF": true, "SRV": true, "SSHFP": true,
	"SVCB": true, "TLSA": true, "TXT": true,
}

type zone struct {
	Zone
	sets map[rrKey]*rrset
}

type rrKey struct {
	name  string // canonical
	rtype string
}

// rrset is one record set as stored: Values are the raw strings of the API
// (TXT values quoted). Stored sets are never mutated, only replaced.
type rrset struct {
	Name   string
	Type   string
	TTL    int64
	Values []string
}

func (r *rrset) wire() xRRSet {
	ttl := r.TTL
	x := xRRSet{Name: r.Name, Type: r.Type, TTL: &ttl}
	for _, v := range r.Values {
		x.Records = append(x.Records, xRecord{Value: v})
	}
	return x
}

// matches reports whether the DELETE request d names exactly this set.
func (r *rrset) matches(d *rrset) bool {
	if r.TTL != d.TTL || len(r.Values) != len(d.Values) {
		return false
	}
	a, b := slices.Clone(r.Values), slices.Clone(d.Values)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// pubKey names a record set for publication ordering.
type pubKey struct {
	zoneID string
	key    rrKey
}

// change is one accepted change batch.
type change struct {
	id        string
	seq       uint64
	zoneID    string
	private   bool
	comment   string
	submitted time.Time
	status    string
	insyncAt  time.Time
	due       bool      // the delay passed while INSYNC was held back
	after     []pubItem // state of every touched set after the batch
}

// pubItem is the state of one set after a change; set nil means deleted.
type pubItem struct {
	key rrKey
	set *rrset
}

func (s *Server) listHostedZonesByName(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dnsName, startID := q.Get("dnsname"), trimID(q.Get("hostedzoneid"), "hostedzone")
	if startID != "" && dnsName == "" {
		s.writeError(w, invalidInput("hostedzoneid requires dnsname"))
		return
	}
	maxItems, apiErr := parseMaxItems(q.Get("maxitems"), 100)
	if apiErr != nil {
		s.writeError(w, apiErr)
		return
	}
	s.mu.Lock()
	zs := make([]*zone, 0, len(s.zones))
	for _, z := range s.zones {
		zs = append(zs, z)
	}
	s.mu.Unlock()
	slices.SortFunc(zs, func(a, b *zone) int {
		return cmp.Or(compareNames(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	resp := xListHostedZonesByNameResponse{DNSName: dnsName, HostedZoneID: q.Get("hostedzoneid"), MaxItems: maxItems}
	start := ""
	if dnsName != "" {
		start = canonical(dnsName)
	}
	for _, z := range zs {
		if start != "" {
			c := compareNames(z.Name, start)
			if c < 0 || (c == 0 && startID != "" && z.ID < startID) {
				continue
			}
		}
		if len(resp.HostedZones) == maxItems {
			resp.IsTruncated = true
			resp.NextDNSName = z.Name
			resp.NextHostedZoneID = z.ID
			break
		}
		resp.HostedZones = append(resp.HostedZones, s.hostedZone(z))
	}
	s.writeXML(w, http.StatusOK, resp)
}

func (s *Server) hostedZone(z *zone) xHostedZone {
	s.mu.Lock()
	defer s.mu.Unlock()
	return xHostedZone{ID: "/hostedzone/" + z.ID, Name: z.Name, CallerReference: "fake-" + z.ID,
		PrivateZone: z.Private, RRSetCount: len(z.sets)}
}

func (s *Server) getHostedZone(w http.ResponseWriter, id string) {
	s.mu.Lock()
	z := s.zones[id]
	s.mu.Unlock()
	if z == nil {
		s.writeError(w, noSuchZone(id))
		return
	}
	resp := xGetHostedZoneResponse{HostedZone: s.hostedZone(z)}
	if z.Private {
		resp.VPCs = []xVPC{{Region: "us-east-1", ID: "vpc-0fake"}}
	} else {
		resp.DelegationSet = &xDelegationSet{NameServers: slices.Clone(z.NameServers)}
	}
	s.writeXML(w, http.StatusOK, resp)
}

func noSuchZone(id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "NoSuchHostedZone",
		messages: []string{"No hosted zone found with ID: " + id}}
}

func (s *Server) listResourceRecordSets(w http.ResponseWriter, r *http.Request, id string) {
	q := r.URL.Query()
	name, typ := q.Get("name"), q.Get("type")
	if typ != "" && name == "" {
		s.writeError(w, invalidInput("The input is not valid: type requires name"))
		return
	}
	if typ != "" && !knownTypes[typ] {
		s.writeError(w, invalidInput("Invalid type: "+typ))
		return
	}
	maxItems, apiErr := parseMaxItems(q.Get("maxitems"), 300)
	if apiErr != nil {
		s.writeError(w, apiErr)
		return
	}
	s.mu.Lock()
	z := s.zones[id]
	var sets []*rrset
	if z != nil {
		for _, rs := range z.sets {
			sets = append(sets, rs)
		}
	}
	s.mu.Unlock()
	if z == nil {
		s.writeError(w, noSuchZone(id))
		return
	}
	slices.SortFunc(sets, func(a, b *rrset) int {
		return cmp.Or(compareNames(a.Name, b.Name), strings.Compare(a.Type, b.Type))
	})
	resp := xListRRSetsResponse{MaxItems: maxItems}
	start := ""
	if name != "" {
		start = canonical(name)
	}
	for _, rs := range sets {
		if start != "" {
			c := compareNames(rs.Name, start)
			if c < 0 || (c == 0 && rs.Type < typ) {
				continue
			}
		}
		if len(resp.Sets) == maxItems {
			resp.IsTruncated = true
			resp.NextRecordName = rs.Name
			resp.NextRecordType = rs.Type
			break
		}
		resp.Sets = append(resp.Sets, rs.wire())
	}
	s.writeXML(w, http.StatusOK, resp)
}

func parseMaxItems(v string, def int) (int, *apiError) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, invalidInput("maxitems must be a positive integer")
	}
	return min(n, def), nil
}

func (s *Server) changeResourceRecordSets(w http.ResponseWriter, r *http.Request, id string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		s.writeError(w, invalidInput("read body: "+err.Error()))
		return
	}
	var req xChangeRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		s.writeError(w, invalidInput("malformed XML: "+err.Error()))
		return
	}
	c, apiErr := s.applyBatch(id, req.Changes, req.Comment)
	if apiErr != nil {
		s.writeError(w, apiErr)
		return
	}
	s.mu.Lock()
	info := changeInfo(c)
	s.mu.Unlock()
	info.Status = statusPending // the response always reports PENDING
	s.writeXML(w, http.StatusOK, xChangeResponse{ChangeInfo: info})
}

// applyBatch validates and applies changes atomically to zone id and
// schedules the change's INSYNC.
func (s *Server) applyBatch(id string, changes []xChange, comment string) (*change, *apiError) {
	if len(changes) == 0 {
		return nil, invalidInput("1 validation error detected: Value null at 'changeBatch.changes' failed to satisfy constraint: Member must not be null")
	}
	if apiErr := batchLimits(changes); apiErr != nil {
		return nil, apiErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zones[id]
	if z == nil {
		return nil, noSuchZone(id)
	}
	next, touched, msgs, apiErr := applyChanges(z, changes)
	if apiErr != nil {
		return nil, apiErr
	}
	msgs = append(msgs, cnameConflicts(next, touched)...)
	if len(msgs) > 0 {
		return nil, &apiError{status: http.StatusBadRequest, code: "InvalidChangeBatch", messages: msgs}
	}
	z.sets = next
	return s.recordChangeLocked(z, next, touched, comment, len(changes)), nil
}

// applyChanges applies changes in order to a copy of z's sets and returns
// the copy, the keys of the sets touched (in order of first change), and
// why Route 53 refuses each refused change. An *apiError refuses the whole
// request (a malformed change).
func applyChanges(z *zone, changes []xChange) (map[rrKey]*rrset, []rrKey, []string, *apiError) {
	next := make(map[rrKey]*rrset, len(z.sets))
	for k, v := range z.sets {
		next[k] = v
	}
	var msgs []string
	seen := map[rrKey][]string{} // actions per set in this batch
	var touched []rrKey
	for _, ch := range changes {
		rs, apiErr := parseSet(ch)
		if apiErr != nil {
			return nil, nil, nil, apiErr
		}
		k := rrKey{rs.Name, rs.Type}
		prev := seen[k]
		seen[k] = append(prev, ch.Action)
		if len(prev) > 0 && (len(prev) > 1 || prev[0] != "DELETE" || ch.Action == "DELETE") {
			msgs = append(msgs, fmt.Sprintf("The request contains an invalid set of changes for a resource record set '%s %s'", rs.Type, rs.Name))
			continue
		}
		if len(prev) == 0 {
			touched = append(touched, k)
		}
		if !inZone(rs.Name, z.Name) {
			msgs = append(msgs, fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", rs.Name, z.Name))
			continue
		}
		msg, apiErr := applyChange(next, z, k, rs, ch.Action)
		if apiErr != nil {
			return nil, nil, nil, apiErr
		}
		if msg != "" {
			msgs = append(msgs, msg)
		}
	}
	return next, touched, msgs, nil
}

// applyChange applies action on the set rs (key k, in zone z) to next, or
// returns why Route 53 refuses it; an unknown action is an *apiError.
func applyChange(next map[rrKey]*rrset, z *zone, k rrKey, rs *rrset, action string) (string, *apiError) {
	desc := fmt.Sprintf("[name='%s', type='%s']", rs.Name, rs.Type)
	cur := next[k]
	switch action {
	case "CREATE":
		if cur != nil {
			return fmt.Sprintf("Tried to create resource record set %s but it already exists", desc), nil
		}
		next[k] = rs
	case "UPSERT":
		next[k] = rs
	case "DELETE":
		switch {
		case cur == nil:
			return fmt.Sprintf("Tried to delete resource record set %s but it was not found", desc), nil
		case !cur.matches(rs):
			return fmt.Sprintf("Tried to delete resource record set %s but the values provided do not match the current values", desc), nil
		case rs.Name == z.Name && (rs.Type == "SOA" || rs.Type == "NS"):
			return fmt.Sprintf("A HostedZone must contain at least one NS record and one SOA record for the zone itself; cannot delete %s", desc), nil
		}
		delete(next, k)
	default:
		return "", invalidInput("Invalid action: " + action)
	}
	return "", nil
}

// cnameConflicts returns, for each touched name that holds a CNAME in
// next, Route 53's refusal if another set has the same name.
func cnameConflicts(next map[rrKey]*rrset, touched []rrKey) []string {
	var msgs []string
	checked := map[string]bool{}
	for _, k := range touched {
		if checked[k.name] || next[rrKey{k.name, "CNAME"}] == nil {
			continue
		}
		checked[k.name] = true
		for other := range next {
			if other.name == k.name && other.rtype != "CNAME" {
				msgs = append(msgs, fmt.Sprintf("RRSet of type CNAME with DNS name %s is not permitted because a conflicting RRSet of type %s with the same DNS name already exists", k.name, other.rtype))
				break
			}
		}
	}
	return msgs
}

// recordChangeLocked records an applied batch of n changes to z (the sets
// touched, as in next) as a PENDING change and schedules its INSYNC. The
// caller holds s.mu.
func (s *Server) recordChangeLocked(z *zone, next map[rrKey]*rrset, touched []rrKey, comment string, n int) *change {
	s.seq++
	c := &change{
		id:        fmt.Sprintf("C%012d", s.seq),
		seq:       s.seq,
		zoneID:    z.ID,
		private:   z.Private,
		comment:   comment,
		submitted: time.Now(),
		status:    statusPending,
	}
	for _, k := range touched {
		c.after = append(c.after, pubItem{key: k, set: next[k]})
	}
	s.changes[c.id] = c
	s.order = append(s.order, c)
	s.log.Debug("fakeroute53.change", "id", c.id, "zone", z.ID, "changes", n)
	if s.opts.InsyncAfter <= 0 {
		s.dueLocked(c)
	} else {
		s.afterLocked(s.opts.InsyncAfter, func() { s.dueLocked(c) })
	}
	return c
}

// Route 53's limits on one ChangeResourceRecordSets request.
const (
	MaxBatchChanges = 1000  // Change elements
	MaxBatchRecords = 1000  // ResourceRecord elements
	MaxBatchChars   = 32000 // characters in all Value elements
)

// batchLimits rejects a batch over Route 53's size limits as Route 53 does.
func batchLimits(changes []xChange) *apiError {
	records, chars := 0, 0
	for _, ch := range changes {
		for _, r := range ch.Set.Records {
			records++
			chars += len(r.Value)
		}
	}
	var msg string
	switch {
	case len(changes) > MaxBatchChanges:
		msg = fmt.Sprintf("Number of changes limit of %d exceeded.", MaxBatchChanges)
	case records > MaxBatchRecords:
		msg = fmt.Sprintf("Number of records limit of %d exceeded.", MaxBatchRecords)
	case chars > MaxBatchChars:
		msg = fmt.Sprintf("Number of characters in record values limit of %d exceeded.", MaxBatchChars)
	default:
		return nil
	}
	return &apiError{status: http.StatusBadRequest, code: "InvalidChangeBatch", messages: []string{msg}}
}

// parseSet validates the record set of one change.
func parseSet(ch xChange) (*rrset, *apiError) {
	x := ch.Set
	name := canonical(x.Name)
	if x.Name == "" || strings.Contains(name, "..") {
		return nil, invalidInput("Invalid resource record set name: " + x.Name)
	}
	if !knownTypes[x.Type] {
		return nil, invalidInput("Invalid type: " + x.Type)
	}
	if x.SetIdentifier != "" || x.AliasTarget != nil {
		return nil, invalidInput("fakeroute53 supports simple routing only (no SetIdentifier, no AliasTarget)")
	}
	values := make([]string, 0, len(x.Records))
	for _, r := range x.Records {
		values = append(values, r.Value)
	}
	if x.TTL == nil || len(values) == 0 {
		return nil, invalidInput(fmt.Sprintf("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with [Action=%s, Name=%s, Type=%s, SetIdentifier=null]", ch.Action, x.Name, x.Type))
	}
	if *x.TTL < 0 || *x.TTL > 2147483647 {
		return nil, invalidInput("Invalid TTL")
	}
	if x.Type == "CNAME" && len(values) != 1 {
		return nil, &apiError{status: http.StatusBadRequest, code: "InvalidChangeBatch",
			messages: []string{"CNAME record sets must contain exactly one value"}}
	}
	for _, v := range values {
		if x.Type != "TXT" && x.Type != "SPF" {
			continue
		}
		if _, err := unquoteTXT(v); err != nil {
			return nil, &apiError{status: http.StatusBadRequest, code: "InvalidChangeBatch", messages: []string{
				fmt.Sprintf("Invalid Resource Record: 'FATAL problem: InvalidCharacterString (%v) encountered with '%s''", err, v)}}
		}
	}
	return &rrset{Name: name, Type: x.Type, TTL: *x.TTL, Values: values}, nil
}

func (s *Server) getChange(w http.ResponseWriter, id string) {
	s.mu.Lock()
	c := s.changes[id]
	var info xChangeInfo
	if c != nil {
		info = changeInfo(c)
	}
	s.mu.Unlock()
	if c == nil {
		s.writeError(w, &apiError{status: http.StatusNotFound, code: "NoSuchChange",
			messages: []string{"Could not find resource with ID: " + id}})
		return
	}
	s.writeXML(w, http.StatusOK, xGetChangeResponse{ChangeInfo: info})
}
