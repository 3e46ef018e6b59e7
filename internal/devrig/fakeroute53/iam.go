package fakeroute53

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
)

// Enforcer answers requests as the Server does when the caller's identity
// holds exactly one IAM policy: a request the policy does not allow gets
// Route 53's 403 AccessDenied (naming the action and the resource ARN, as
// AWS does) and never reaches the Server. Use it to prove that a generated
// policy grants what a client really does, no more needed.
//
// It evaluates what Route 53 evaluates for the five operations the fake
// serves, for identity policies with Effect Allow only (anything else is
// refused by WithPolicy): Action (exact or with * and ? wildcards),
// Resource (ARN globs; ListHostedZonesByName's resource is "*"), and for
// ChangeResourceRecordSets the condition keys
// route53:ChangeResourceRecordSetsNormalizedRecordNames, …RecordTypes and
// …Actions under ForAllValues:StringEquals (every value in the request must
// be listed). Any other condition makes a statement never match.
type Enforcer struct {
	s         *Server
	partition string
	stmts     []iamStatement

	mu     sync.Mutex // guards denied
	denied []string
}

type iamStatement struct {
	Sid       string
	Effect    string
	Action    stringOrList
	Resource  stringOrList
	Condition map[string]map[string]stringOrList
}

// stringOrList is an IAM policy element that may be a string or a list.
type stringOrList []string

func (l *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = []string{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(l))
}

// WithPolicy returns an Enforcer in front of s for the IAM policy document
// doc, whose ARNs are in partition ("aws", "aws-cn", "aws-us-gov").
func (s *Server) WithPolicy(doc []byte, partition string) (*Enforcer, error) {
	var p struct {
		Version   string
		Statement []iamStatement
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		return nil, fmt.Errorf("fakeroute53: policy: %w", err)
	}
	if p.Version != "2012-10-17" {
		return nil, fmt.Errorf("fakeroute53: policy Version %q, want 2012-10-17", p.Version)
	}
	for _, st := range p.Statement {
		if st.Effect != "Allow" {
			return nil, fmt.Errorf("fakeroute53: policy statement %q: Effect %q not supported", st.Sid, st.Effect)
		}
	}
	return &Enforcer{s: s, partition: partition, stmts: p.Statement}, nil
}

// Denied returns "Action Resource" of every request refused so far.
func (e *Enforcer) Denied() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.denied)
}

// ServeHTTP implements http.Handler.
func (e *Enforcer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, id := route(r)
	if op == "" {
		e.s.ServeHTTP(w, r)
		return
	}
	resource := "*"
	switch op {
	case OpGetHostedZone, OpListResourceRecordSets, OpChangeResourceRecordSets:
		resource = "arn:" + e.partition + ":route53:::hostedzone/" + id
	case OpGetChange:
		resource = "arn:" + e.partition + ":route53:::change/" + id
	}
	ctxKeys := map[string][]string{}
	if op == OpChangeResourceRecordSets {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			e.s.writeError(w, invalidInput("read body: "+err.Error()))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req xChangeRequest
		if err := xml.Unmarshal(body, &req); err != nil {
			e.s.writeError(w, invalidInput("malformed XML: "+err.Error()))
			return
		}
		for _, c := range req.Changes {
			ctxKeys["route53:changeresourcerecordsetsnormalizedrecordnames"] = append(
				ctxKeys["route53:changeresourcerecordsetsnormalizedrecordnames"], normalizedName(c.Set.Name))
			ctxKeys["route53:changeresourcerecordsetsrecordtypes"] = append(
				ctxKeys["route53:changeresourcerecordsetsrecordtypes"], c.Set.Type)
			ctxKeys["route53:changeresourcerecordsetsactions"] = append(
				ctxKeys["route53:changeresourcerecordsetsactions"], c.Action)
		}
	}
	action := "route53:" + op
	if !e.allowed(action, resource, ctxKeys) {
		e.mu.Lock()
		e.denied = append(e.denied, action+" "+resource)
		e.mu.Unlock()
		e.s.writeError(w, &apiError{status: http.StatusForbidden, code: "AccessDenied", messages: []string{fmt.Sprintf(
			"User: arn:%s:sts::000000000000:assumed-role/edgecert/i-0fake is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
			e.partition, action, resource, action)}})
		return
	}
	e.s.ServeHTTP(w, r)
}

func (e *Enforcer) allowed(action, resource string, ctxKeys map[string][]string) bool {
	for _, st := range e.stmts {
		if matchAny(st.Action, action, true) && matchAny(st.Resource, resource, false) && conditionsHold(st.Condition, ctxKeys) {
			return true
		}
	}
	return false
}

// matchAny reports whether value matches one of the IAM patterns (* and ?
// wildcards; actions compare case-insensitively, ARNs case-sensitively).
func matchAny(patterns []string, value string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, value = strings.ToLower(p), strings.ToLower(value)
		}
		// path.Match's * stops at '/', IAM's does not: escape nothing, but
		// replace '/' on both sides so a * spans it.
		if ok, _ := path.Match(strings.ReplaceAll(p, "/", "\x00"), strings.ReplaceAll(value, "/", "\x00")); ok {
			return true
		}
	}
	return false
}

func conditionsHold(cond map[string]map[string]stringOrList, ctxKeys map[string][]string) bool {
	for op, keys := range cond {
		if op != "ForAllValues:StringEquals" {
			return false
		}
		for key, allowed := range keys {
			for _, v := range ctxKeys[strings.ToLower(key)] {
				if !slices.Contains(allowed, v) {
					return false
				}
			}
		}
	}
	return true
}

// normalizedName renders a record name as the
// ChangeResourceRecordSetsNormalizedRecordNames key carries it: lower case,
// no trailing dot, characters other than a-z 0-9 - _ . as \ooo octal.
//
// The fake keeps its own normalizer on purpose, although route53dns's
// policy builder has one of the same shape: the fake checks the policy the
// provider writes, and sharing the code would hide a bug the two had in
// common.
func normalizedName(name string) string {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\%03o`, c)
		}
	}
	return b.String()
}
