package routes

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// echoControlWait bounds the write of one ping or close frame.
const echoControlWait = 5 * time.Second

// serveEcho answers /echo: a websocket that sends every message back with
// its type and payload. Any Origin is accepted. A request that is not a
// websocket upgrade gets gorilla's 4xx (400 for a plain GET).
//
// Bounds: messages above echoMax close the connection with 1009; the server
// pings every echoIdle/2 and closes a connection that sent neither a
// message nor a pong for echoIdle; each echo write must finish within
// echoIdle. The connection ends (close 1001) when the request context is
// done, e.g. when the server's base context is cancelled at shutdown.
// Traffic is logged at debug level only.
func (h *Handler) serveEcho(w http.ResponseWriter, r *http.Request) {
	conn, err := h.upgrader.Upgrade(hijackable(w), r, nil)
	if err != nil {
		// The upgrader has already answered with an error status.
		h.log.Debug("routes.echo.upgrade_failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	defer conn.Close()
	ctx := r.Context()
	h.log.Debug("routes.echo.open", "remote", r.RemoteAddr)

	idle := h.echoIdle
	conn.SetReadLimit(h.echoMax)
	_ = conn.SetReadDeadline(time.Now().Add(idle))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(idle))
	})

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { echoKeepalive(ctx, conn, idle, done) })
	defer wg.Wait()
	defer close(done)

	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			h.log.Debug("routes.echo.closed", "remote", r.RemoteAddr, "err", err)
			return
		}
		if h.log.Enabled(ctx, slog.LevelDebug) {
			h.log.LogAttrs(ctx, slog.LevelDebug, "routes.echo.message",
				slog.String("remote", r.RemoteAddr), slog.Int("type", mt), slog.Int("len", len(msg)))
		}
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		_ = conn.SetWriteDeadline(time.Now().Add(idle))
		if err := conn.WriteMessage(mt, msg); err != nil {
			h.log.Debug("routes.echo.closed", "remote", r.RemoteAddr, "err", err)
			return
		}
	}
}

// echoKeepalive pings conn every idle/2 until done is closed. When ctx ends
// first it sends close 1001 and closes conn, which ends the read loop.
func echoKeepalive(ctx context.Context, conn *websocket.Conn, idle time.Duration, done <-chan struct{}) {
	t := time.NewTicker(idle / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server going away")
			_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(echoControlWait))
			_ = conn.Close()
			return
		case <-t.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(echoControlWait)); err != nil {
				return // the read loop sees the broken connection too
			}
		}
	}
}

// hijackable returns w if it is an http.Hijacker (which gorilla requires);
// otherwise a wrapper that hijacks through http.ResponseController, so a
// middleware ResponseWriter with an Unwrap method still works.
func hijackable(w http.ResponseWriter) http.ResponseWriter {
	if _, ok := w.(http.Hijacker); ok {
		return w
	}
	return controllerHijacker{w, http.NewResponseController(w)}
}

type controllerHijacker struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (c controllerHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := c.rc.Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		return nil, nil, errors.New("routes: echo: connection cannot be hijacked")
	}
	return conn, rw, err
}
