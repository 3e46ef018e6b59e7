// Package s3rig runs an S3-compatible server inside the calling process for
// tests and the offline rig: gofakes3 v1.2.0 with its in-memory backend,
// behind a front that
//
//   - answers conditional requests as AWS does (Options.Conditionals):
//     PutObject with If-Match on a missing key is 404 NoSuchKey (gofakes3
//     says 412), and DeleteObject honours If-Match (gofakes3 ignores it and
//     deletes unconditionally): 412 PreconditionFailed on another ETag, 404
//     NoSuchKey on a missing key;
//   - counts requests by client address and method (Server.Stats), so a test
//     can tell what each host of a fleet sent;
//   - can be switched down (Server.SetDown): every request is answered 503.
//
// Only path-style addressing (http://host/BUCKET/KEY) is served: clients set
// UsePathStyle (edgecert: -fleet-s3-path-style). Bodies must be seekable on
// the client side (the SDK's default for bytes and strings readers); see
// /work/shared/docs/test-rig.md.
//
// Mutating requests (PUT, POST, DELETE) are serialised by one mutex so that
// the front's existence and ETag checks and gofakes3's write are one atomic
// step; reads run concurrently. That is plenty for a rig: objects are small.
package s3rig

import (
	"bytes"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Conditionals selects how conditional requests are answered.
type Conditionals int

const (
	// AWS answers as Amazon S3 general purpose buckets do (the default).
	AWS Conditionals = iota
	// Gofakes3 leaves gofakes3's own answers: 412 for If-Match on a missing
	// key, and DeleteObject ignores If-Match. Some S3-compatible servers
	// (Ceph) answer 412 too; clients must handle both.
	Gofakes3
)

func (c Conditionals) String() string {
	switch c {
	case AWS:
		return "aws"
	case Gofakes3:
		return "gofakes3"
	}
	return fmt.Sprintf("Conditionals(%d)", int(c))
}

// Options configures New. The zero value serves no bucket with AWS semantics.
type Options struct {
	// Buckets are created at start (names of 3 characters or more).
	Buckets []string
	// Conditionals selects AWS (default) or gofakes3 answers to If-Match.
	Conditionals Conditionals
	// Logger receives one debug line per request; nil discards them.
	Logger *slog.Logger
}

// Server is an S3-compatible http.Handler. Its methods are safe for
// concurrent use.
type Server struct {
	backend      gofakes3.Backend
	s3           http.Handler
	conditionals Conditionals
	log          *slog.Logger

	down atomic.Bool

	writeMu sync.Mutex // serialises mutating requests (see the package doc)

	mu    sync.Mutex              // guards stats
	stats map[string]ClientCounts // client address -> counts
}

// ClientCounts are the requests one client sent, by HTTP method; a GET of a
// bucket (a listing) counts as "LIST", not "GET".
type ClientCounts map[string]int64

// Stats is a snapshot of the requests the server received, including those
// refused while down.
type Stats struct {
	// ByMethod counts every request by HTTP method (GET, HEAD, PUT, ...;
	// LIST for a GET of a bucket).
	ByMethod map[string]int64 `json:"by_method"`
	// ByClient counts requests by the client's IP address, then method.
	ByClient map[string]ClientCounts `json:"by_client"`
	// Total is the number of requests.
	Total int64 `json:"total"`
}

// New returns a server holding the buckets in opts.Buckets, empty.
func New(opts Options) (*Server, error) {
	backend := s3mem.New()
	for _, b := range opts.Buckets {
		if err := backend.CreateBucket(b); err != nil {
			return nil, fmt.Errorf("s3rig: create bucket %q: %w", b, err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		backend:      backend,
		s3:           gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server(),
		conditionals: opts.Conditionals,
		log:          log,
		stats:        make(map[string]ClientCounts),
	}, nil
}

// SetDown makes every request answer 503 ServiceUnavailable (down) or be
// served again.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{ByMethod: make(map[string]int64), ByClient: make(map[string]ClientCounts, len(s.stats))}
	for client, counts := range s.stats {
		c := make(ClientCounts, len(counts))
		for m, n := range counts {
			c[m] = n
			st.ByMethod[m] += n
			st.Total += n
		}
		st.ByClient[client] = c
	}
	return st
}

// ResetStats sets every counter to zero.
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.stats = make(map[string]ClientCounts)
	s.mu.Unlock()
}

func (s *Server) count(r *http.Request) {
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	method := r.Method
	if _, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); method == http.MethodGet && key == "" {
		method = "LIST"
	}
	s.mu.Lock()
	c := s.stats[client]
	if c == nil {
		c = make(ClientCounts)
		s.stats[client] = c
	}
	c[method]++
	s.mu.Unlock()
}

// ServeHTTP serves the S3 API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.count(r)
	s.log.Debug("s3.request", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr,
		"if_match", r.Header.Get("If-Match"), "if_none_match", r.Header.Get("If-None-Match"))
	if s.down.Load() {
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "s3rig: the server is down", "")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		s.s3.ServeHTTP(w, r)
		return
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.conditionals == AWS && !s.precondition(w, r) {
		return
	}
	s.s3.ServeHTTP(w, r)
}

// precondition applies AWS's answers to a conditional PutObject or
// DeleteObject that gofakes3 answers differently. It reports whether the
// request may proceed; if not, it has written the response. Called with
// writeMu held.
func (s *Server) precondition(w http.ResponseWriter, r *http.Request) bool {
	ifMatch := r.Header.Get("If-Match")
	if ifMatch == "" || r.URL.Query().Has("versionId") {
		return true
	}
	bucket, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || key == "" {
		return true
	}
	switch {
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") == "" && !r.URL.Query().Has("partNumber"):
	case r.Method == http.MethodDelete && !r.URL.Query().Has("uploadId"):
	default:
		return true
	}
	obj, err := s.backend.HeadObject(bucket, key)
	switch {
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket):
		return true // gofakes3 answers NoSuchBucket itself
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey):
		writeError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", key)
		return false
	case err != nil:
		writeError(w, http.StatusInternalServerError, "InternalError", "s3rig: head object: "+err.Error(), key)
		return false
	}
	if obj.Contents != nil {
		obj.Contents.Close()
	}
	if r.Method == http.MethodPut {
		return true // gofakes3 compares the ETag atomically itself
	}
	if ifMatch != "*" && strings.Trim(ifMatch, `"`) != hex.EncodeToString(obj.Hash) {
		writeError(w, http.StatusPreconditionFailed, "PreconditionFailed",
			"At least one of the pre-conditions you specified did not hold", key)
		return false
	}
	return true
}

// errorBody is S3's XML error document.
type errorBody struct {
	XMLName xml.Name `xml:"Error"`
	Code    string   `xml:"Code"`
	Message string   `xml:"Message"`
	Key     string   `xml:"Key,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg, key string) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(errorBody{Code: code, Message: msg, Key: key}); err != nil {
		panic(err) // cannot fail for this type
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.Copy(w, &b) // the client has gone away; nothing to do
}
