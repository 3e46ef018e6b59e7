package daemon

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/edgecert/edgecert/internal/poll"
)

// starveStream opens, on h, a download on stream 1 whose flow-control
// window the client never grants and one on stream 3 that it reads at
// full speed (granting the connection window for both), and reads frames
// until stream 1 ends or d passes. With closed, the client's initial
// stream window is 0 (SETTINGS_INITIAL_WINDOW_SIZE), so stream 1 gets no
// byte at all. It returns how stream 1 ended ("" if it had not) and the
// bytes stream 3 had received by then.
func starveStream(h *h2Client, starved, moving string, closed bool, d time.Duration) (end string, moved int) {
	if closed {
		_ = h.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	}
	_ = h.fr.WriteWindowUpdate(0, 1<<30)
	_ = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h.headerBlock("GET", starved), EndHeaders: true, EndStream: true})
	_ = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h.headerBlock("GET", moving), EndHeaders: true, EndStream: true})
	if closed {
		_ = h.fr.WriteWindowUpdate(3, 1<<20)
	}
	_ = h.conn.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return "", moved
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			n := uint32(len(f.Data()))
			if f.StreamID == 1 && f.StreamEnded() {
				return "end", moved
			}
			if f.StreamID == 3 {
				moved += int(n)
				if n > 0 && !f.StreamEnded() {
					_ = h.fr.WriteWindowUpdate(3, n)
				}
			}
			if n > 0 {
				_ = h.fr.WriteWindowUpdate(0, n)
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return "rst " + f.ErrCode.String(), moved
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.fr.WritePing(true, f.Data)
			}
		}
	}
}

// TestHTTP2StarvedStream: a stream whose client never opens its
// flow-control window is reset within the write-progress bound and
// logged as http.write_stalled, although another stream on the same
// connection keeps the connection's writes moving (so the listener's
// connection-level deadline never bites).
func TestHTTP2StarvedStream(t *testing.T) {
	lim := testLimits()
	s := startLimitServer(t, lim)
	h := s.h2(t)
	start := time.Now()
	end, moved := starveStream(h, "/data?size=16777216", "/data?size=1073741824", false, give)
	if !strings.HasPrefix(end, "rst ") {
		t.Fatalf("starved stream ended %q after %v (WriteTimeout %v); want a RST_STREAM; the other stream moved %d bytes",
			end, time.Since(start).Round(time.Millisecond), lim.WriteTimeout, moved)
	}
	t.Logf("starved stream reset (%s) after %v; the other stream moved %d bytes meanwhile", end, time.Since(start).Round(time.Millisecond), moved)
	poll.Until(t, give, "http.write_stalled proto=h2 in the log", func() bool {
		return strings.Contains(s.logs.String(), "msg=http.write_stalled") && strings.Contains(s.logs.String(), "proto=h2")
	})
}

// TestHTTP2StarvedEnd: a response small enough to sit in the server's
// buffer when its handler returns (the handler does not wait for the
// window; x/net/http2 sends it afterwards) is bounded too: a client whose
// stream window is 0 and never opens gets the stream reset.
func TestHTTP2StarvedEnd(t *testing.T) {
	lim := testLimits()
	s := startLimitServer(t, lim)
	h := s.h2(t)
	end, _ := starveStream(h, "/data?size=1000", "/data?size=1073741824", true, give)
	if !strings.HasPrefix(end, "rst ") {
		t.Fatalf("stream with a starved end ended %q; want a RST_STREAM within WriteTimeout %v", end, lim.WriteTimeout)
	}
}
