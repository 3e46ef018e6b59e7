package daemon

import "time"

// Limits are the bounds the public HTTPS server puts on every client, in
// time and in memory. README's "Limits and timeouts" table lists each with
// its default and flag; the attack suite (attack_test.go) replays an attack
// against each. The zero value is not useful: start from defaultLimits.
type Limits struct {
	// HeaderTimeout bounds the arrival of a request head: the TLS
	// handshake with HTTP/1's first request line and headers, each later
	// HTTP/1 head from its first byte (the listener's reaper, readbound.go:
	// closed within 1.5× the bound), and every HTTP/2 header block from
	// its HEADERS frame to the CONTINUATION that ends it. The connection is
	// closed when it passes.
	HeaderTimeout time.Duration

	// BodyTimeout bounds the arrival of a whole request body, from the
	// moment the handler starts. A slower body fails the read (the route
	// answers 400 or stops), and the connection is closed. A route that
	// does not read the body does not wait for it: the rest is discarded
	// only if it has already arrived.
	BodyTimeout time.Duration

	// WriteTimeout aborts a connection whose writes make no progress for
	// this long: a client that stops reading. A download that keeps moving,
	// however slowly, is not cut (the deadline moves with every write).
	WriteTimeout time.Duration

	// IdleTimeout closes a keep-alive connection (HTTP/1, by the
	// listener's reaper: within IdleTimeout + HeaderTimeout/2) or an HTTP/2
	// connection with no open stream after this long without a request.
	IdleTimeout time.Duration

	// H2PingAfter sends an HTTP/2 PING when nothing was read for this
	// long; H2PingTimeout closes the connection when the answer does not
	// come within it. A client stuck in the middle of a frame cannot
	// answer, so every partial frame is bounded by their sum.
	H2PingAfter, H2PingTimeout time.Duration

	// H2MaxStreams is the number of concurrent streams an HTTP/2 client may
	// open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS; Go's default
	// is 250, nginx's 128).
	H2MaxStreams int

	// H2StreamWindow and H2ConnWindow are the HTTP/2 receive windows: the
	// request body bytes the server buffers per stream and per connection
	// before the handler reads them.
	H2StreamWindow, H2ConnWindow int

	// MaxHeaderBytes caps a request head (HTTP/1) and a decoded header
	// list (HTTP/2).
	MaxHeaderBytes int

	// MaxConns caps the open connections of the HTTPS listener (-max-connections);
	// PerClientConns caps those from one client address, IPv6 clients
	// counted per /64 (-max-connections-per-client). A connection over either cap
	// is closed at once, before the TLS handshake. 0 means no cap.
	MaxConns, PerClientConns int
}

// defaultLimits are the bounds used unless a flag says otherwise.
//
// Memory bound (measured by the attack suite's long form, BENCHMARKS.md):
// an idle connection costs about 44 KiB (TLS and bufio buffers, the
// serving goroutine); an HTTP/2 connection at its worst holds H2MaxStreams
// handlers (goroutine, write buffer, stream state) plus H2ConnWindow of
// unread body, about 1.7 MiB, for at most BodyTimeout. Connection memory
// therefore stays under about MaxConns × 1.7 MiB with every connection
// attacking at once, and MaxConns × 44 KiB when idle.
func defaultLimits() Limits {
	return Limits{
		HeaderTimeout:  10 * time.Second,
		BodyTimeout:    10 * time.Second,
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    120 * time.Second,
		H2PingAfter:    30 * time.Second,
		H2PingTimeout:  10 * time.Second,
		H2MaxStreams:   64,
		H2StreamWindow: 64 << 10,
		H2ConnWindow:   256 << 10,
		MaxHeaderBytes: 64 << 10,
		MaxConns:       4096,
		PerClientConns: 256,
	}
}
