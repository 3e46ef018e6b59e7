// Package s3test runs an in-process S3-compatible server for tests:
// gofakes3 behind a small middleware that makes it answer conditional
// requests the way AWS does, with a server clock the test controls, and
// with faults the test injects.
//
// What the middleware changes, and why:
//   - If-Match on PutObject for a missing key: 404 NoSuchKey (AWS), not
//     gofakes3's 412.
//   - DeleteObject with If-Match: 412 PreconditionFailed on an ETag
//     mismatch, 404 on a missing key (AWS since 2025-09); gofakes3 ignores
//     the header and deletes.
//   - The Date header and LastModified come from Clock, so lease expiry
//     by the server's clock is tested without sleeping.
//   - Drop: the request is executed, then its connection is closed
//     without a response, as when a response is lost on the network; the
//     SDK retries, and the retry meets its own condition.
//   - Down: every request is answered 503 SlowDown (S3 refusing).
//   - Hang: no request is answered (a black-holed network).
//   - ConflictNext: one request is answered 409 ConditionalRequestConflict.
//
// Mutating requests are serialised, so the middleware's checks and the
// backend's write are atomic together.
package s3test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Bucket is the bucket every Server creates.
const Bucket = "fleet"

// Clock is a settable server clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

// Now implements gofakes3.TimeSource.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Since implements gofakes3.TimeSource.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Server is one fake S3 endpoint.
type Server struct {
	URL   string
	Clock *Clock
	// AWS selects AWS's answers (see the package documentation); true by
	// default. With false, gofakes3's own answers are served.
	AWS atomic.Bool
	// Down makes every request fail with 503 SlowDown.
	Down atomic.Bool
	// Hang makes every request wait, unanswered, until the client gives up
	// (a black-holed endpoint).
	Hang atomic.Bool

	backend   *s3mem.Backend
	inner     http.Handler
	mu        sync.Mutex                 // serialises PUT and DELETE; guards drops and reqs
	drops     []func(*http.Request) bool // pending one-shot drop rules
	conflicts []func(*http.Request) bool // pending one-shot 409 rules
	reqs      map[string]int             // requests by "METHOD key"
}

// New starts a Server with bucket Bucket; it is closed with the test.
func New(t testing.TB) *Server {
	t.Helper()
	clock := &Clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	be := s3mem.New(s3mem.WithTimeSource(clock))
	if err := be.CreateBucket(Bucket); err != nil {
		t.Fatal(err)
	}
	f := &Server{Clock: clock, backend: be, reqs: map[string]int{}}
	f.AWS.Store(true)
	f.inner = gofakes3.New(be, gofakes3.WithTimeSource(clock), gofakes3.WithTimeSkewLimit(0)).Server()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Client returns an unmodified SDK client for the server: path-style,
// static credentials, the standard retryer with short backoff and no
// retry quota (so injected faults are retried as on AWS, quickly).
func (f *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.NewExponentialJitterBackoff(5 * time.Millisecond)
			o.RateLimiter = ratelimit.None
		}),
	})
}

// ConflictNext makes the next request matching method and a key with
// suffix keySuffix be answered 409 ConditionalRequestConflict without
// being executed (a concurrent conditional request won the race).
func (f *Server) ConflictNext(method, keySuffix string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conflicts = append(f.conflicts, requestTo(method, keySuffix))
}

// DropNext makes the next request matching method and a key with suffix
// keySuffix be executed but answered by closing the connection.
func (f *Server) DropNext(method, keySuffix string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drops = append(f.drops, requestTo(method, keySuffix))
}

// Requests returns how many requests with method reached a key ending in
// keySuffix ("" counts every key).
func (f *Server) Requests(method, keySuffix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.reqs {
		m, key, _ := strings.Cut(k, " ")
		if (method == "" || m == method) && strings.HasSuffix(key, keySuffix) {
			n += v
		}
	}
	return n
}

// ETag returns the current ETag of key ("" if absent).
func (f *Server) ETag(key string) string {
	obj, err := f.backend.HeadObject(Bucket, key)
	if err != nil {
		return ""
	}
	return `"` + fmt.Sprintf("%x", obj.Hash) + `"`
}

// ServeHTTP counts the request, then answers it by the injected faults
// (Hang, a pending ConflictNext, Down, AWS's If-Match rules, a pending
// DropNext) or else by gofakes3. Mutating requests are served one at a
// time, as S3 serialises writes to a key.
func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Date", f.Clock.Now().UTC().Format(http.TimeFormat))
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	mutating := r.Method == http.MethodPut || r.Method == http.MethodDelete
	f.mu.Lock()
	f.reqs[r.Method+" "+key]++
	drop := takeMatch(&f.drops, r)
	conflict := takeMatch(&f.conflicts, r)
	if !mutating {
		f.mu.Unlock()
	} else {
		defer f.mu.Unlock()
	}
	if f.Hang.Load() {
		<-r.Context().Done()
		return
	}
	if conflict {
		s3Error(w, r, http.StatusConflict, "ConditionalRequestConflict", "A conflicting conditional operation is currently in progress against this resource.")
		return
	}
	if f.Down.Load() {
		s3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	}
	if mutating && key != "" && f.AWS.Load() && f.refuseIfMatch(w, r, key) {
		return
	}
	if drop {
		f.serveAndDrop(w, r)
		return
	}
	f.inner.ServeHTTP(w, r)
}

// requestTo matches requests with method to a key ending in keySuffix.
func requestTo(method, keySuffix string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == method && strings.HasSuffix(r.URL.Path, keySuffix)
	}
}

// takeMatch removes the first matcher in *list that matches r and reports
// whether there was one. The caller holds f.mu.
func takeMatch(list *[]func(*http.Request) bool, r *http.Request) bool {
	for i, match := range *list {
		if match(r) {
			*list = append((*list)[:i], (*list)[i+1:]...)
			return true
		}
	}
	return false
}

// refuseIfMatch answers a mutating request's If-Match as AWS does where
// gofakes3 does not (404 for a missing key; 412 for a DELETE whose ETag
// differs) and reports whether it answered.
func (f *Server) refuseIfMatch(w http.ResponseWriter, r *http.Request, key string) bool {
	im := r.Header.Get("If-Match")
	if im == "" {
		return false
	}
	cur := f.ETag(key)
	switch {
	case cur == "":
		s3Error(w, r, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return true
	case r.Method == http.MethodDelete && im != "*" && im != cur:
		s3Error(w, r, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
		return true
	}
	return false
}

// serveAndDrop executes r but answers by closing the connection.
func (f *Server) serveAndDrop(w http.ResponseWriter, r *http.Request) {
	f.inner.ServeHTTP(httptest.NewRecorder(), r)
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func s3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
	}
}
