package pebblerig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"
)

// Paths of Pebble v2.10.3's ACME API that the wrapper looks at (unexported
// in package wfe).
const (
	pathDirectory  = "/dir"
	pathNewAccount = "/sign-me-up"
	pathNewOrder   = "/order-plz"
	pathARIPrefix  = "/draft-ietf-acme-ari-03/renewalInfo"
)

// statusWriter records the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// wrap adds the rig's counters and fault switches in front of Pebble's ACME
// handler.
func (c *CA) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		c.countClient(r.RemoteAddr)
		sw := &statusWriter{ResponseWriter: w}
		defer func() { c.countStatus(sw.status) }()

		if c.down.Load() {
			writeProblem(sw, http.StatusServiceUnavailable, "serverInternal", "pebblerig: the CA is down")
			return
		}
		if c.noARI && strings.HasPrefix(r.URL.Path, pathARIPrefix) {
			writeProblem(sw, http.StatusNotFound, "malformed", "pebblerig: this CA has no ARI")
			return
		}
		switch {
		case r.URL.Path == pathNewAccount && r.Method == http.MethodPost:
			c.accounts.Add(1)
		case r.URL.Path == pathNewOrder && r.Method == http.MethodPost:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				writeProblem(sw, http.StatusBadRequest, "malformed", "pebblerig: reading body: "+err.Error())
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			o := decodeNewOrder(body)
			defer func() {
				o.Status = sw.status
				c.mu.Lock()
				c.orders = append(c.orders, o)
				c.mu.Unlock()
			}()
		case r.URL.Path == pathDirectory && c.noARI:
			serveWithoutARI(sw, r, h)
			return
		case c.ariRetry > 0 && strings.HasPrefix(r.URL.Path, pathARIPrefix):
			secs := strconv.Itoa(max(1, int(c.ariRetry/time.Second)))
			h.ServeHTTP(&headerWriter{statusWriter: sw, set: map[string]string{"Retry-After": secs}}, r)
			return
		}
		h.ServeHTTP(sw, r)
	})
}

// headerWriter sets headers just before the status line is written,
// replacing what the handler set.
type headerWriter struct {
	*statusWriter
	set   map[string]string
	wrote bool
}

func (h *headerWriter) WriteHeader(code int) {
	if !h.wrote {
		h.wrote = true
		for k, v := range h.set {
			h.Header().Set(k, v)
		}
	}
	h.statusWriter.WriteHeader(code)
}

func (h *headerWriter) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	return h.statusWriter.Write(b)
}

func (c *CA) countClient(remoteAddr string) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	c.mu.Lock()
	c.clients[host]++
	c.mu.Unlock()
}

func (c *CA) countStatus(status int) {
	c.mu.Lock()
	c.statuses[status]++
	c.mu.Unlock()
}

// decodeNewOrder extracts the order fields from a flattened JWS body; fields
// it cannot decode stay empty (Pebble then rejects the request anyway).
func decodeNewOrder(body []byte) NewOrder {
	var jws struct {
		Payload string `json:"payload"`
	}
	var o NewOrder
	if json.Unmarshal(body, &jws) != nil {
		return o
	}
	payload, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return o
	}
	var req struct {
		Identifiers []struct{ Value string } `json:"identifiers"`
		Profile     string                   `json:"profile"`
		Replaces    string                   `json:"replaces"`
	}
	if json.Unmarshal(payload, &req) != nil {
		return o
	}
	for _, id := range req.Identifiers {
		o.Identifiers = append(o.Identifiers, id.Value)
	}
	o.Profile, o.Replaces = req.Profile, req.Replaces
	return o
}

// serveWithoutARI serves the directory with its renewalInfo entry removed.
func serveWithoutARI(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	var dir map[string]json.RawMessage
	if rec.Code == http.StatusOK && json.Unmarshal(body, &dir) == nil {
		delete(dir, "renewalInfo")
		if b, err := json.Marshal(dir); err == nil {
			body = b
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body) // the client has gone away; nothing to do
}

func writeProblem(w http.ResponseWriter, status int, typ, detail string) {
	b, _ := json.Marshal(map[string]any{ // cannot fail for these types
		"type":   "urn:ietf:params:acme:error:" + typ,
		"detail": detail,
		"status": status,
	})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(b) // the client has gone away; nothing to do
}
