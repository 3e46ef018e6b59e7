package fakeroute53

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Request bodies. Element names match without regard to namespace.

type xChangeRequest struct {
	XMLName xml.Name  `xml:"ChangeResourceRecordSetsRequest"`
	Comment string    `xml:"ChangeBatch>Comment"`
	Changes []xChange `xml:"ChangeBatch>Changes>Change"`
}

type xChange struct {
	Action string `xml:"Action"`
	Set    xRRSet `xml:"ResourceRecordSet"`
}

type xRRSet struct {
	Name          string     `xml:"Name"`
	Type          string     `xml:"Type"`
	SetIdentifier string     `xml:"SetIdentifier,omitempty"`
	TTL           *int64     `xml:"TTL,omitempty"`
	Records       []xRecord  `xml:"ResourceRecords>ResourceRecord"`
	AliasTarget   *xAnything `xml:"AliasTarget,omitempty"`
}

// xRecord is one ResourceRecord; each must be its own element.
type xRecord struct {
	Value string `xml:"Value"`
}

// xAnything records the presence of an element whose content is ignored.
type xAnything struct {
	Inner string `xml:",innerxml"`
}

// Response bodies.

type xHostedZone struct {
	ID              string `xml:"Id"`
	Name            string `xml:"Name"`
	CallerReference string `xml:"CallerReference"`
	PrivateZone     bool   `xml:"Config>PrivateZone"`
	RRSetCount      int    `xml:"ResourceRecordSetCount"`
}

type xListHostedZonesByNameResponse struct {
	XMLName          xml.Name      `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListHostedZonesByNameResponse"`
	HostedZones      []xHostedZone `xml:"HostedZones>HostedZone"`
	DNSName          string        `xml:"DNSName,omitempty"`
	HostedZoneID     string        `xml:"HostedZoneId,omitempty"`
	IsTruncated      bool          `xml:"IsTruncated"`
	NextDNSName      string        `xml:"NextDNSName,omitempty"`
	NextHostedZoneID string        `xml:"NextHostedZoneId,omitempty"`
	MaxItems         int           `xml:"MaxItems"`
}

type xVPC struct {
	Region string `xml:"VPCRegion"`
	ID     string `xml:"VPCId"`
}

type xGetHostedZoneResponse struct {
	XMLName       xml.Name        `xml:"https://route53.amazonaws.com/doc/2013-04-01/ GetHostedZoneResponse"`
	HostedZone    xHostedZone     `xml:"HostedZone"`
	DelegationSet *xDelegationSet `xml:"DelegationSet,omitempty"`
	VPCs          []xVPC          `xml:"VPCs>VPC,omitempty"`
}

type xDelegationSet struct {
	NameServers []string `xml:"NameServers>NameServer"`
}

type xListRRSetsResponse struct {
	XMLName        xml.Name `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListResourceRecordSetsResponse"`
	Sets           []xRRSet `xml:"ResourceRecordSets>ResourceRecordSet"`
	IsTruncated    bool     `xml:"IsTruncated"`
	NextRecordName string   `xml:"NextRecordName,omitempty"`
	NextRecordType string   `xml:"NextRecordType,omitempty"`
	MaxItems       int      `xml:"MaxItems"`
}

type xChangeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
	Comment     string `xml:"Comment,omitempty"`
}

type xChangeResponse struct {
	XMLName    xml.Name    `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ChangeResourceRecordSetsResponse"`
	ChangeInfo xChangeInfo `xml:"ChangeInfo"`
}

type xGetChangeResponse struct {
	XMLName    xml.Name    `xml:"https://route53.amazonaws.com/doc/2013-04-01/ GetChangeResponse"`
	ChangeInfo xChangeInfo `xml:"ChangeInfo"`
}

type xErrorResponse struct {
	XMLName   xml.Name `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// xInvalidChangeBatch is the special error root Route 53 uses for rejected
// change batches; the SDK decodes it into *types.InvalidChangeBatch.
type xInvalidChangeBatch struct {
	XMLName   xml.Name `xml:"https://route53.amazonaws.com/doc/2013-04-01/ InvalidChangeBatch"`
	Messages  []string `xml:"Messages>Message"`
	RequestID string   `xml:"RequestId"`
}

// apiError is an error answer.
type apiError struct {
	status   int
	code     string
	messages []string
}

func invalidInput(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "InvalidInput", messages: []string{msg}}
}

// faultError builds the answer for an injected fault.
func faultError(op, id, code string) *apiError {
	status := http.StatusBadRequest
	msg := "fakeroute53: injected " + code
	switch code {
	case "AccessDenied", "AccessDeniedException":
		status = http.StatusForbidden
		res := "*"
		switch op {
		case OpGetHostedZone, OpListResourceRecordSets, OpChangeResourceRecordSets:
			res = "hostedzone/" + id
		case OpGetChange:
			res = "change/" + id
		}
		msg = fmt.Sprintf("User: arn:aws:sts::000000000000:assumed-role/edgecert/i-0fake is not authorized to perform: route53:%s on resource: arn:aws:route53:::%s because no identity-based policy allows the route53:%s action", op, res, op)
	case "Throttling":
		msg = "Rate exceeded"
	case "PriorRequestNotComplete":
		msg = "The request was rejected because Route 53 was still processing a prior request."
	case "NoSuchHostedZone", "NoSuchChange":
		status = http.StatusNotFound
	case "InternalError", "InternalFailure":
		status = http.StatusInternalServerError
	case "ServiceUnavailable":
		status = http.StatusServiceUnavailable
	}
	return &apiError{status: status, code: code, messages: []string{msg}}
}

func (s *Server) nextRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestID++
	return "fake-" + strconv.FormatUint(s.requestID, 10)
}

func (s *Server) writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, "fakeroute53: marshal: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", s.nextRequestID())
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), body...)) // client gone: nothing to do
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	s.log.Debug("fakeroute53.error", "code", e.code, "messages", e.messages)
	if e.code == "InvalidChangeBatch" {
		s.writeXML(w, e.status, xInvalidChangeBatch{Messages: e.messages, RequestID: s.nextRequestID()})
		return
	}
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	msg := ""
	if len(e.messages) > 0 {
		msg = e.messages[0]
	}
	s.writeXML(w, e.status, xErrorResponse{Type: typ, Code: e.code, Message: msg, RequestID: s.nextRequestID()})
}

func changeInfo(c *change) xChangeInfo {
	return xChangeInfo{
		ID:          "/change/" + c.id,
		Status:      c.status,
		SubmittedAt: c.submitted.UTC().Format(time.RFC3339),
		Comment:     c.comment,
	}
}
