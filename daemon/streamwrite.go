package daemon

import (
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// boundStreams wraps h so that every HTTP/2 response makes write progress
// on its own stream, not only on its connection: a client can withhold
// one stream's flow-control window (no WINDOW_UPDATE for it) while other
// streams, and so the connection, keep moving, which the listener's
// write-progress deadline (progressConn) cannot see. A write of the
// handler that stays blocked for timeout resets the stream
// (RST_STREAM INTERNAL_ERROR; the handler's write fails) and is logged as
// http.write_stalled, rate-limited by log with the connection-level
// stalls. A download that keeps moving is never cut; a handler that waits
// between writes (?wait=) is not either: only a write in progress counts.
//
// What the handler leaves buffered (up to 4 KiB) is sent after it returns,
// by x/net/http2 where no wrapper can watch it, so the last write gets
// the stream's own write deadline (http.ResponseController) of now +
// timeout: a client that never opens its window for the end of a response
// holds its stream for at most that long. HTTP/1 is left alone: one
// stream per connection, progressConn bounds it.
func boundStreams(h http.Handler, timeout time.Duration, log *rateLog) http.Handler {
	if timeout <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			h.ServeHTTP(w, r)
			return
		}
		sw := &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout, log: log, remote: r.RemoteAddr}
		defer sw.handlerDone()
		h.ServeHTTP(sw, r)
		if sw.wrote {
			_ = sw.rc.SetWriteDeadline(time.Now().Add(timeout))
		}
	})
}

// streamWriter is an HTTP/2 response under boundStreams. Write, WriteString
// and Flush come from the handler's goroutine; check from the watchdog
// timer's.
type streamWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	log     *rateLog
	remote  string
	wrote   bool // a body byte was written (handler's goroutine only)

	// mu guards the fields below. check holds it while it resets the
	// stream (a message to the connection's serve loop, which never
	// waits for a handler), so that the handler cannot return, and its
	// ResponseWriter become invalid, in the middle.
	mu      sync.Mutex
	since   time.Time   // start of the write in progress; zero when none
	timer   *time.Timer // the watchdog, created by the first write
	pending bool        // timer is armed
	done    bool        // the handler returned, or the stream was reset
}

// begin marks the start of a write and arms the watchdog if it is not.
func (w *streamWriter) begin() {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since = now
	if w.pending || w.done {
		return
	}
	w.pending = true
	if w.timer == nil {
		w.timer = time.AfterFunc(w.timeout, w.check)
	} else {
		w.timer.Reset(w.timeout)
	}
}

// end marks the end of a write.
func (w *streamWriter) end() {
	w.mu.Lock()
	w.since = time.Time{}
	w.mu.Unlock()
}

// check runs when the watchdog fires: a write in progress for timeout
// resets the stream; a younger one re-arms the watchdog for the rest of
// its time; no write in progress leaves it unarmed until the next.
func (w *streamWriter) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = false
	if w.done || w.since.IsZero() {
		return
	}
	if left := w.timeout - time.Since(w.since); left > 0 {
		w.pending = true
		w.timer.Reset(left)
		return
	}
	w.done = true
	// A deadline in the past resets the stream at once (x/net/http2).
	_ = w.rc.SetWriteDeadline(time.Now().Add(-time.Second))
	w.log.warn("http.write_stalled", "http.write_stalled",
		slog.String("remote", w.remote), slog.Duration("timeout", w.timeout), slog.String("proto", "h2"))
}

// handlerDone stops the watchdog for good.
func (w *streamWriter) handlerDone() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (w *streamWriter) Write(b []byte) (int, error) {
	w.wrote = w.wrote || len(b) > 0
	w.begin()
	defer w.end()
	return w.ResponseWriter.Write(b)
}

func (w *streamWriter) WriteString(s string) (int, error) {
	w.wrote = w.wrote || len(s) > 0
	w.begin()
	defer w.end()
	return io.WriteString(w.ResponseWriter, s)
}

// FlushError flushes through http.ResponseController (which finds it
// first), under the watchdog like a write.
func (w *streamWriter) FlushError() error {
	w.begin()
	defer w.end()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *streamWriter) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the stream's own writer.
func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
