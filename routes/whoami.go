package routes

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// textWriter buffers a / response. dst passes the buffered bytes on to the
// ResponseWriter and records whether any reached it, so that a failure
// before the first flush can still become a 400.
type textWriter struct {
	bw  *bufio.Writer
	dst passThrough
}

type passThrough struct {
	w     io.Writer
	wrote bool
}

func (p *passThrough) Write(b []byte) (int, error) {
	p.wrote = true
	return p.w.Write(b)
}

func (h *Handler) getTextWriter(w io.Writer) *textWriter {
	tw, _ := h.textPool.Get().(*textWriter)
	if tw == nil {
		tw = &textWriter{}
		tw.bw = bufio.NewWriterSize(&tw.dst, 4096)
	}
	tw.dst = passThrough{w: w}
	tw.bw.Reset(&tw.dst)
	return tw
}

func (h *Handler) putTextWriter(tw *textWriter) {
	tw.bw.Reset(&tw.dst) // drops anything unflushed
	tw.dst = passThrough{}
	h.textPool.Put(tw)
}

// serveWhoami answers / and every unmatched path: Name, Hostname, IP lines,
// RemoteAddr and client certificate subjects (LF-terminated), then the
// request as (*http.Request).Write renders it (CRLF), then, with ?env=true
// and Options.AllowEnv, the environment. ?wait=<duration> delays the answer
// by at most waitMax; the wait ends without an answer if the request
// context ends first.
func (h *Handler) serveWhoami(w http.ResponseWriter, r *http.Request) {
	env := false
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		if d := h.waitDuration(q.Get("wait")); d > 0 && !sleepCtx(r.Context(), d) {
			return
		}
		env = h.envRequested(q)
	}
	snap := h.addrs.get()

	w.Header()["Content-Type"] = hdrTextPlainUTF8
	tw := h.getTextWriter(w)
	defer h.putTextWriter(tw)
	bw := tw.bw
	_, _ = bw.Write(h.whoamiHead)
	_, _ = bw.Write(snap.ipLines)
	_, _ = bw.WriteString("RemoteAddr: ")
	_, _ = bw.WriteString(r.RemoteAddr)
	_ = bw.WriteByte('\n')
	if r.TLS != nil {
		for i, cert := range r.TLS.PeerCertificates {
			_, _ = bw.WriteString("Certificate[")
			_, _ = bw.WriteString(strconv.Itoa(i))
			_, _ = bw.WriteString("] Subject: ")
			_, _ = bw.WriteString(cert.Subject.String())
			_ = bw.WriteByte('\n')
		}
	}
	// bw is an io.ByteWriter, so Request.Write uses it without adding a
	// bufio.Writer of its own.
	if err := r.Write(bw); err != nil {
		h.log.Debug("routes.whoami.dump_failed", "remote", r.RemoteAddr, "err", err)
		if !tw.dst.wrote {
			bw.Reset(&tw.dst)
			http.Error(w, "whoami: the request cannot be rendered", http.StatusBadRequest)
			return
		}
		_ = bw.Flush()
		return
	}
	if env {
		for _, kv := range printedEnviron() {
			_, _ = bw.WriteString(kv)
			_ = bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		h.log.Debug("routes.whoami.write_failed", "remote", r.RemoteAddr, "err", err)
	}
}

// waitDuration parses ?wait: a Go duration, capped at waitMax. An empty,
// unparsable, zero or negative value means no wait (0).
func (h *Handler) waitDuration(v string) time.Duration {
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0
	}
	return min(d, h.waitMax)
}

// envRequested reports whether q asks for the environment (?env= with any
// value strconv.ParseBool accepts as true) and Options.AllowEnv permits it.
func (h *Handler) envRequested(q url.Values) bool {
	if !h.allowEnv {
		return false
	}
	ok, _ := strconv.ParseBool(q.Get("env"))
	return ok
}

// sleepCtx waits for d and reports true, or reports false as soon as ctx is
// done.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
