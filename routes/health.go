package routes

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxHealthBody bounds the POST /health body; a status code with
// surrounding whitespace fits many times over.
const maxHealthBody = 64

// Reasons for a 400 from POST /health.
var (
	errHealthBodySize = errors.New("health: body too large")
	errHealthNotInt   = errors.New("health: body must be a JSON integer, e.g. 503")
	errHealthRange    = errors.New("health: status code must be between 200 and 599")
)

// serveHealth answers /health. POST sets the status code answered by later
// non-POST requests: it must come from a loopback RemoteAddr or carry
// "Authorization: Bearer <Options.HealthToken>" (403 otherwise), and its
// body must be one JSON integer in 200..599, optionally surrounded by JSON
// whitespace (400 otherwise). A successful POST answers 200 with an empty
// body. Any other method answers the current code (initially 200) with an
// empty body.
func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(int(h.health.Load()))
		return
	}
	if !h.healthAuthorized(r) {
		h.log.Info("routes.health.forbidden", "remote", r.RemoteAddr)
		http.Error(w, "health: POST is allowed from loopback or with the bearer token only", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxHealthBody+1))
	if err != nil {
		h.log.Debug("routes.health.read_failed", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "health: cannot read body", http.StatusBadRequest)
		return
	}
	if len(body) > maxHealthBody {
		http.Error(w, errHealthBodySize.Error(), http.StatusBadRequest)
		return
	}
	code, err := parseHealthCode(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	old := h.health.Swap(int32(code))
	h.log.Info("routes.health.set", "remote", r.RemoteAddr, "code", code, "previous", old)
}

// healthAuthorized reports whether r may change the health status.
func (h *Handler) healthAuthorized(r *http.Request) bool {
	if isLoopback(r.RemoteAddr) {
		return true
	}
	if !h.hasToken {
		return false
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Comparing digests keeps the comparison constant-time in the token
	// length too.
	got := sha256.Sum256([]byte(strings.TrimLeft(token, " ")))
	return subtle.ConstantTimeCompare(got[:], h.healthToken[:]) == 1
}

// isLoopback reports whether remoteAddr ("ip:port") is a loopback address,
// IPv4-mapped IPv6 included.
func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}

// parseHealthCode parses body as one JSON integer (optional '-', no leading
// zeros, no fraction or exponent) with optional JSON whitespace around it,
// and checks it is in 200..599.
func parseHealthCode(body []byte) (int, error) {
	b := bytes.Trim(body, " \t\r\n")
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) {
		return 0, errHealthNotInt
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, errHealthNotInt
		}
	}
	if len(b) != len(digits) || len(digits) != 3 {
		return 0, errHealthRange // negative, or not three digits
	}
	code := int(digits[0]-'0')*100 + int(digits[1]-'0')*10 + int(digits[2]-'0')
	if code < 200 || code > 599 {
		return 0, errHealthRange
	}
	return code, nil
}
