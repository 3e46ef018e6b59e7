package daemon

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"
)

// boundBodies wraps h so that every request body must arrive within
// timeout of the handler starting, over HTTP/1 and HTTP/2 alike (through
// http.ResponseController). A body that is slower fails its Read with a
// deadline error, logged as http.body_timeout. A body the handler leaves
// unread is not waited for: once h returns, what has already arrived is
// discarded and otherwise the connection (HTTP/1) or stream (HTTP/2) is
// closed (finishBody). A body that failed its deadline closes the
// connection too. A body read to its end clears the
// deadline, so the rest of the response is bounded by the write-progress
// deadline only.
//
// Requests without a body (http.NoBody: every GET without Content-Length
// or Transfer-Encoding) cost nothing here.
func boundBodies(h http.Handler, timeout time.Duration, log *rateLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(timeout))
		b := &boundedBody{ReadCloser: r.Body, rc: rc, log: log, remote: r.RemoteAddr}
		r.Body = b
		h.ServeHTTP(w, r)
		if !b.eof {
			finishBody(w, rc, b.ReadCloser)
		}
	})
}

// maxDiscard is how much of an unread body finishBody discards so that the
// connection can be reused (net/http's own limit is 256 KiB).
const maxDiscard = 64 << 10

// finishBody deals with a body its handler did not read to the end: what
// has already arrived (up to maxDiscard) is discarded without waiting for
// more, and if the body does not end there, the HTTP/1 connection is
// closed after the response — net/http would otherwise read the rest of
// the body as the next request. (HTTP/2 resets the stream by itself.)
func finishBody(w http.ResponseWriter, rc *http.ResponseController, body io.Reader) {
	_ = rc.SetReadDeadline(time.Now())
	if _, err := io.CopyN(io.Discard, body, maxDiscard); err == io.EOF {
		return
	}
	closeAfterReply(w)
}

// closeAfterReply makes net/http close an HTTP/1 connection once the
// response is sent, through the one hook it has for that: an
// http.MaxBytesReader over its limit marks the response "close after
// reply" (and sets Connection: close if the header is not yet written).
// Other ResponseWriters are left alone.
func closeAfterReply(w http.ResponseWriter) {
	var one [1]byte
	_, _ = http.MaxBytesReader(w, io.NopCloser(oneByte{}), 0).Read(one[:])
}

// oneByte is an endless reader of zero bytes.
type oneByte struct{}

func (oneByte) Read(p []byte) (int, error) { return len(p), nil }

// boundedBody is a request body under boundBodies. It is read by the
// handler's goroutine only.
type boundedBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	log    *rateLog
	remote string
	eof    bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF && !b.eof:
		b.eof = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.log.warn("http.body_timeout", "http.body_timeout", slog.String("remote", b.remote))
	}
	return n, err
}
