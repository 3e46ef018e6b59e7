package attack

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// dialTimeout bounds one TCP connect plus TLS handshake.
const dialTimeout = 10 * time.Second

// Target is an HTTPS server under attack.
type Target struct {
	// Addr is the server's host:port; every connection goes there.
	Addr string
	// ServerName is sent in SNI, in :authority and in Host.
	ServerName string
	// Roots verify the server's certificate.
	Roots *x509.CertPool
	// Curves are the key exchanges offered, in order; nil is crypto/tls's
	// default (X25519MLKEM768 first, which a Go server picks and nginx on
	// OpenSSL 3.0 cannot: compare the two with X25519 only).
	Curves []tls.CurveID
}

// tlsConfig is the client configuration of every connection to tg.
func (tg Target) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{ServerName: tg.ServerName, RootCAs: tg.Roots, NextProtos: protos, CurvePreferences: tg.Curves}
}

// Dial opens a TLS connection from the local address from (an IP; ""
// lets the kernel pick) offering the ALPN protocol proto ("h2",
// "http/1.1").
func (tg Target) Dial(ctx context.Context, from, proto string) (*tls.Conn, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: dialTimeout},
		Config:    tg.tlsConfig(proto),
	}
	if from != "" {
		d.NetDialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.DialContext(ctx, "tcp", tg.Addr)
	if err != nil {
		return nil, fmt.Errorf("attack: dial %s from %q: %w", tg.Addr, from, err)
	}
	return c.(*tls.Conn), nil
}

// H2Conn is a raw HTTP/2 client connection: it speaks frames, so it can
// misbehave. Frames are written with Framer; HeaderBlock encodes requests.
type H2Conn struct {
	Conn   *tls.Conn
	Framer *http2.Framer

	authority string
	enc       *hpack.Encoder
	hbuf      bytes.Buffer
}

// DialH2 dials an "h2" connection from from, checks that the server chose
// HTTP/2, and writes the client preface and an empty SETTINGS frame.
func (tg Target) DialH2(ctx context.Context, from string) (*H2Conn, error) {
	c, err := tg.Dial(ctx, from, "h2")
	if err != nil {
		return nil, err
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		c.Close()
		return nil, fmt.Errorf("attack: %s negotiated %q, not h2", tg.Addr, p)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		c.Close()
		return nil, fmt.Errorf("attack: h2 preface: %w", err)
	}
	h := &H2Conn{Conn: c, Framer: http2.NewFramer(c, c), authority: tg.ServerName}
	h.enc = hpack.NewEncoder(&h.hbuf)
	if err := h.Framer.WriteSettings(); err != nil {
		c.Close()
		return nil, fmt.Errorf("attack: h2 settings: %w", err)
	}
	return h, nil
}

// HeaderBlock encodes a request head (method, path, the target's
// authority) for a HEADERS frame.
func (h *H2Conn) HeaderBlock(method, path string) []byte {
	h.hbuf.Reset()
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", h.authority}, {":path", path}} {
		_ = h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return bytes.Clone(h.hbuf.Bytes())
}
