package routes

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults applied by New when the corresponding Options field is zero.
const (
	DefaultDataMax         int64         = 1 << 30 // 1 GiB
	DefaultWaitMax         time.Duration = 30 * time.Second
	DefaultEchoMaxMessage  int64         = 1 << 20 // 1 MiB
	DefaultEchoIdleTimeout time.Duration = 60 * time.Second
	DefaultAddrRefresh     time.Duration = 30 * time.Second
)

// Options configures the handler. Zero values mean the documented defaults;
// negative limits are rejected by New.
type Options struct {
	// Name is whoami's -name. "" omits the "Name:" line of / and the "name"
	// field of /api.
	Name string

	// Hostname is reported by / and /api. "" means os.Hostname(), read once in
	// New; New fails if it cannot be read.
	Hostname string

	// AllowEnv honours ?env=true on / and /api. When false (the default) the
	// parameter is ignored and the output is the same as with env=false, so
	// the process environment (which may hold credentials) is never served.
	// When true, secret-looking values are still redacted (see the package
	// documentation).
	AllowEnv bool

	// HealthToken authorises POST /health from clients that are not on a
	// loopback address, presented as "Authorization: Bearer <token>" and
	// compared in constant time. "" means POST /health is accepted from
	// loopback only.
	HealthToken string

	// DataMax caps the size of a /data body in bytes; larger requests get a
	// 400. Zero means DefaultDataMax (1 GiB).
	DataMax int64

	// WaitMax caps ?wait on / and unmatched paths. Zero means DefaultWaitMax
	// (30 s).
	WaitMax time.Duration

	// EchoMaxMessage is the largest websocket message /echo accepts; a larger
	// one closes the connection with status 1009. Zero means
	// DefaultEchoMaxMessage (1 MiB).
	EchoMaxMessage int64

	// EchoIdleTimeout closes a /echo connection that has sent neither a
	// message nor a pong for this long; the server pings every half of it.
	// It also bounds each echo write. Zero means DefaultEchoIdleTimeout (60 s).
	EchoIdleTimeout time.Duration

	// AddrRefresh is how long the cached interface address list served by /
	// and /api is reused before a background refresh. Zero means
	// DefaultAddrRefresh (30 s).
	AddrRefresh time.Duration

	// Addrs lists the addresses printed as "IP:" lines. nil means every
	// address of every network interface, in interface order (whoami's list).
	// It is called once synchronously by the first request that needs it and
	// afterwards from at most one background refresh at a time.
	Addrs func() ([]string, error)

	// Logger receives the handler's events. nil discards them. Events:
	// routes.addrs.refresh_failed (warn), routes.health.set and
	// routes.health.forbidden (info); routes.health.read_failed,
	// routes.whoami.dump_failed, routes.whoami.write_failed,
	// routes.data.write_failed and routes.echo.{upgrade_failed,open,message,
	// closed} (debug). Message payloads are never logged.
	Logger *slog.Logger
}

// Handler serves the traefik/whoami endpoints (see the package
// documentation). It is safe for concurrent use; its only mutable state is
// the /health status code and the interface address cache.
type Handler struct {
	mux *http.ServeMux
	log *slog.Logger

	hostname string
	name     string
	// whoamiHead is "Name: …\nHostname: …\n", the fixed start of every /
	// body.
	whoamiHead []byte
	// apiHost is `"hostname":"…"` and apiName is `"name":"…"`, each empty
	// when the value is (encoding/json omitempty).
	apiHost []byte
	apiName []byte

	allowEnv bool
	waitMax  time.Duration
	dataMax  int64

	addrs *addrCache

	// health is the status code answered by non-POST /health requests.
	health      atomic.Int32
	healthToken [sha256.Size]byte // sha256 of Options.HealthToken
	hasToken    bool

	echoMax  int64
	echoIdle time.Duration
	upgrader websocket.Upgrader

	// textPool holds *textWriter values for / responses.
	textPool sync.Pool
	// bufPool holds *apiBuf scratch space for /api responses.
	bufPool sync.Pool
}

// New returns a Handler configured by opts. It fails if a limit in opts is
// negative (the error names the field) or if Hostname is empty and the OS
// hostname cannot be read. New starts no goroutines.
func New(opts Options) (*Handler, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	hostname := opts.Hostname
	if hostname == "" {
		var err error
		if hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("routes: reading hostname: %w", err)
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	list := opts.Addrs
	if list == nil {
		list = interfaceAddrs
	}

	h := &Handler{
		log:      logger,
		hostname: hostname,
		name:     opts.Name,
		allowEnv: opts.AllowEnv,
		waitMax:  orDefault(opts.WaitMax, DefaultWaitMax),
		dataMax:  orDefault(opts.DataMax, DefaultDataMax),
		echoMax:  orDefault(opts.EchoMaxMessage, DefaultEchoMaxMessage),
		echoIdle: orDefault(opts.EchoIdleTimeout, DefaultEchoIdleTimeout),
		addrs:    newAddrCache(list, orDefault(opts.AddrRefresh, DefaultAddrRefresh), logger),
	}
	h.health.Store(http.StatusOK)
	if opts.HealthToken != "" {
		h.healthToken = sha256.Sum256([]byte(opts.HealthToken))
		h.hasToken = true
	}
	h.precomputeHeads()
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		CheckOrigin:      func(*http.Request) bool { return true },
		WriteBufferPool:  &sync.Pool{},
	}
	h.mux = h.newMux()
	return h, nil
}

// validate joins an error naming each limit in o that is negative.
func (o Options) validate() error {
	var errs []error
	negative := func(field string, v int64, shown any) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("routes: Options.%s must not be negative, got %v", field, shown))
		}
	}
	negative("DataMax", o.DataMax, o.DataMax)
	negative("WaitMax", int64(o.WaitMax), o.WaitMax)
	negative("EchoMaxMessage", o.EchoMaxMessage, o.EchoMaxMessage)
	negative("EchoIdleTimeout", int64(o.EchoIdleTimeout), o.EchoIdleTimeout)
	negative("AddrRefresh", int64(o.AddrRefresh), o.AddrRefresh)
	return errors.Join(errs...)
}

// precomputeHeads encodes once the name and hostname lines of / and the
// fields of /api.
func (h *Handler) precomputeHeads() {
	if h.name != "" {
		h.whoamiHead = append(h.whoamiHead, "Name: "+h.name+"\n"...)
		h.apiName = appendJSONField(nil, "name", h.name)
	}
	h.whoamiHead = append(h.whoamiHead, "Hostname: "+h.hostname+"\n"...)
	if h.hostname != "" {
		h.apiHost = appendJSONField(nil, "hostname", h.hostname)
	}
}

// newMux is the route table.
func (h *Handler) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", h.serveWhoami)
	mux.HandleFunc("/api", h.serveAPI)
	mux.HandleFunc("/bench", serveBench)
	mux.HandleFunc("/data", h.serveData)
	mux.HandleFunc("/echo", h.serveEcho)
	mux.HandleFunc("/health", h.serveHealth)
	return mux
}

// ServeHTTP routes r to the endpoint for its path. Paths that are not clean
// get the ServeMux redirect to the clean path; paths that match no endpoint
// get the / response.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /bench is what load tests hit: skip the mux lookup for it. The mux
	// would pick the same handler for this exact, clean path.
	if r.URL.Path == "/bench" {
		serveBench(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func orDefault[T int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Shared, read-only header values. Each slice has capacity 1 so that an
// Add by a wrapping middleware reallocates instead of writing into it.
var (
	hdrKeepAlive     = []string{"keep-alive"}[:1:1]
	hdrTextPlain     = []string{"text/plain"}[:1:1]
	hdrTextPlainUTF8 = []string{"text/plain; charset=utf-8"}[:1:1]
	hdrJSON          = []string{"application/json"}[:1:1]
	benchBody        = []byte("1")
)

// serveBench answers /bench: body "1", Content-Type text/plain and
// Connection: keep-alive, with no allocation of its own.
func serveBench(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Connection"] = hdrKeepAlive
	h["Content-Type"] = hdrTextPlain
	_, _ = w.Write(benchBody)
}
