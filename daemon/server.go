package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgecert/edgecert/daemon/metrics"
)

// Timeouts of the admin and redirect listeners; the public listener's
// bounds are in Limits.
const (
	readHeaderTimeout = 10 * time.Second  // slowloris bound on the request head
	idleTimeout       = 120 * time.Second // keep-alive connections between requests
	maxHeaderBytes    = 64 << 10          // net/http's default is 1 MiB
)

// tlsSettings holds the parts of the TLS configuration that SIGHUP can
// change (the client CA pool), behind an atomic pointer so handshakes never
// take a lock.
type tlsSettings struct {
	cfg atomic.Pointer[tls.Config]
}

// newTLSConfig returns the listener's TLS configuration: TLS 1.2+, HTTP/2,
// certificates chosen by SNI from getCert, session resumption on (Go's
// default rotating ticket keys). Without a client CA pool, client
// certificates are requested but not verified, as whoami does, so / can print
// them; with one they are required and verified.
func newTLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: getCert,
		ClientAuth:     tls.RequestClientCert,
	}
	if clientCAs != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = clientCAs
	}
	return c
}

// config returns the listener's configuration. With reloadable settings (a
// client CA file) its GetConfigForClient serves the current ones, so a reload
// applies to the next handshake; without, handshakes use the one
// configuration directly and pay for no indirection.
func (s *tlsSettings) config(reloadable bool) *tls.Config {
	cur := s.cfg.Load()
	if !reloadable {
		return cur
	}
	base := cur.Clone()
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return s.cfg.Load(), nil }
	return base
}

// newHTTPSServer returns the public server for h within lim (see Limits):
// request heads, header blocks and the TLS handshake bounded by
// HeaderTimeout, bodies by BodyTimeout, idle connections by IdleTimeout,
// HTTP/2 streams, windows and PINGs as configureHTTP2 sets them. It must
// serve a newLimitListener: the HTTP/1 head and idle bounds (and so the
// TLS handshake's) are the listener's, driven by the trackPhases hook
// (readbound.go), not http.Server's ReadHeaderTimeout and IdleTimeout,
// which re-arm a timer several times per request. There is
// deliberately no ReadTimeout or WriteTimeout: /echo websockets, large
// /data bodies and /?wait= are long-lived; the write-progress deadline of
// the listener (newLimitListener) bounds a client that stops reading.
// Connections' contexts derive from base, which the caller cancels when
// shutdown starts so that hijacked websockets end too.
func newHTTPSServer(h http.Handler, tlsCfg *tls.Config, base context.Context, lim Limits, log *slog.Logger) (*http.Server, error) {
	rl := newRateLog(log, logEvery)
	srv := &http.Server{
		Handler:        boundStreams(boundBodies(h, lim.BodyTimeout, rl), lim.WriteTimeout, rl),
		TLSConfig:      tlsCfg,
		MaxHeaderBytes: lim.MaxHeaderBytes,
		BaseContext:    func(net.Listener) context.Context { return base },
		ErrorLog:       slog.NewLogLogger(log.With("event", "http.error").Handler(), slog.LevelDebug),
	}
	watchHeads(srv, lim, rl)
	heads := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		trackPhases(c, s)
		heads(c, s)
	}
	err := configureHTTP2(srv, lim, func(remote net.Addr) {
		rl.info("http.header_timeout", "http.header_timeout", slog.String("remote", remote.String()), slog.Duration("timeout", lim.HeaderTimeout), slog.String("proto", "h2"))
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return srv, nil
}

// redirectHandler sends every plain-HTTP request to the same host and path
// over HTTPS on httpsPort ("443" is left out of the URL).
func redirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/\\@") {
			http.Error(w, "missing or invalid Host header", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") { // IPv6 literal
			host = "[" + host + "]"
		}
		if httpsPort != "443" {
			host = net.JoinHostPort(strings.Trim(host, "[]"), httpsPort)
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

func newRedirectServer(httpsPort string, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           redirectHandler(httpsPort),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.With("event", "http.error").Handler(), slog.LevelDebug),
	}
}

// instrument chains rec's open-connection count into srv's ConnState (after
// any hook srv already has) and returns srv.
func instrument(srv *http.Server, rec *metrics.Recorder) *http.Server {
	if rec == nil {
		return srv
	}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		rec.ConnState(c, s)
		if prev != nil {
			prev(c, s)
		}
	}
	return srv
}
