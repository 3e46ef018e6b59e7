package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/certstore/s3store"
	"github.com/edgecert/edgecert/daemon/issuer"
	"github.com/edgecert/edgecert/daemon/metrics"
	"github.com/edgecert/edgecert/daemon/route53dns"
	"github.com/edgecert/edgecert/routes"
)

// run is the daemon's life, in named phases: open (state dir, store,
// issuer, routes), bind (every listener), serve (admin, store watcher,
// HTTPS, redirect), obtain (missing certificates, bounded), ready (READY to
// systemd), loop (signals, the watchdog) until ctx ends, then drain
// (within cfg.ShutdownTimeout).
//
// Start-up order matters: every listener is bound before anything slow;
// stored valid certificates are served at once with no CA contact; the
// admin and HTTPS listeners answer while missing certificates are
// obtained; READY is sent once every certificate is obtained or the bound
// has passed (the scheduler keeps retrying with backoff). SIGHUP is handled
// from the first instant: before READY it reloads without reporting READY.
// Configuration problems found on the way (an unusable state dir, an
// address in use, a CA refusing the account for a reason no retry fixes)
// are *configError, which Main turns into exit 78.
func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	return runWith(ctx, cfg, log, hooks{})
}

// hooks let tests observe the daemon; every field may be nil.
type hooks struct {
	listening func(server, addr string) // a listener is bound
	ready     func()                    // READY has been sent
	reloaded  func()                    // a SIGHUP reload finished
}

// daemon is the state the phases of run share. Fields are set by the phase
// that creates them and read by later ones; only the phases' goroutine
// writes them.
type daemon struct {
	cfg *Config
	log *slog.Logger
	hk  hooks
	n   notifier
	hup chan os.Signal // SIGHUP, subscribed before anything else
	// events receives every log event, for the admin streams of `edgecert
	// renew/revoke`.
	events *eventHub

	reg      *prometheus.Registry
	rec      *metrics.Recorder
	store    *certstore.Store
	fleet    *s3store.Store       // nil without -fleet-store
	mgr      *issuer.Manager      // nil without -domains
	solver   *route53dns.Provider // mgr's DNS-01 solver; its cleanup loop runs in serve
	handler  http.Handler
	settings tlsSettings
	live     *liveness

	httpsLn, httpLn, adminLn net.Listener

	connCtx     context.Context // cancelled when draining starts: /echo, ?wait end
	cancelConns context.CancelFunc
	bg          context.Context // background loops (watcher, issuer)
	stopBG      context.CancelFunc
	servers     []*http.Server
	wg          sync.WaitGroup // every goroutine started by serve and obtain
	serveErr    chan error     // a server that failed
}

func runWith(ctx context.Context, cfg *Config, log *slog.Logger, hk hooks) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // Go's default for SIGHUP is to exit
	defer signal.Stop(hup)
	events := newEventHub()
	log = slog.New(events.tee(log.Handler()))
	d := &daemon{cfg: cfg, log: log, hk: hk, n: notifier{log}, hup: hup, events: events, serveErr: make(chan error, 4)}
	log.Info("daemon.starting", "version", version(), "state_dir", cfg.StateDir, "certificates", len(cfg.Domains))
	d.n.status("starting")
	if err := d.open(ctx); err != nil {
		return err
	}
	defer d.store.Close()
	if err := d.bind(); err != nil {
		return err
	}
	defer d.closeListeners()
	if err := d.serve(ctx); err != nil {
		return err
	}
	err := d.obtain(ctx)
	if err == nil && ctx.Err() == nil { // not stopped during the first order
		d.ready()
		err = d.loop(ctx)
	}
	d.drain()
	return err
}

// open checks and opens the state directory, adds the operator pair and
// builds the issuer, the routes and the TLS settings. It does no network
// I/O.
func (d *daemon) open(ctx context.Context) error {
	cfg := d.cfg
	if !cfg.InsecureStateDir {
		if err := checkStateDir(cfg.StateDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return badFlag("state-dir", "%v", err)
	}
	// One registry for every metric of the process (the recorder's, the
	// certificate collector's, Go and process metrics).
	d.reg = prometheus.NewRegistry()
	d.rec = metrics.New(d.reg)
	d.live = newLiveness()
	store, err := certstore.Open(ctx, cfg.StateDir, certstore.Options{Logger: d.log, Default: cfg.defaultCertName(), Observer: d.rec, Alive: d.live.watcherAlive})
	if err != nil {
		return badFlag("state-dir", "%v", err)
	}
	d.store = store
	if cfg.CertFile != "" {
		if err := store.AddFilePair(fileCertName, cfg.CertFile, cfg.KeyFile); err != nil {
			store.Close()
			return badFlag("cert-file", "%v", err)
		}
	}
	if d.fleet, err = newFleet(ctx, cfg, store, d.log); err != nil {
		store.Close()
		return err
	}
	if d.fleet != nil {
		d.reg.MustRegister(newFleetCollector(d.fleet))
	}
	if len(cfg.Domains) > 0 {
		if d.mgr, d.solver, err = newIssuer(ctx, cfg, issuerStore(store, d.fleet), d.log, nil, d.rec); err != nil {
			store.Close()
			return err
		}
		d.live.issuer = d.mgr
	}
	if d.handler, err = routes.New(routes.Options{
		Name:        cfg.Name,
		AllowEnv:    cfg.AllowEnv,
		HealthToken: cfg.HealthToken,
		DataMax:     cfg.DataMax,
		Logger:      d.log.With("component", "routes"),
	}); err != nil {
		store.Close()
		return fmt.Errorf("daemon: %w", err)
	}
	clientCAs, err := loadClientCAs(cfg)
	if err != nil {
		store.Close()
		return err
	}
	d.settings.cfg.Store(newTLSConfig(store.GetCertificate, clientCAs))
	return nil
}

// bind opens every listener, so a port clash fails the start at once
// (exit 78 naming the flag).
func (d *daemon) bind() error {
	var err error
	if d.httpsLn, err = net.Listen("tcp", d.cfg.HTTPSAddr); err != nil {
		return badFlag("https-addr", "%v", err)
	}
	if d.cfg.HTTPAddr != "" {
		if d.httpLn, err = net.Listen("tcp", d.cfg.HTTPAddr); err != nil {
			d.closeListeners()
			return badFlag("http-addr", "%v", err)
		}
	}
	if d.cfg.AdminAddr != "" {
		if d.adminLn, err = net.Listen("tcp", d.cfg.AdminAddr); err != nil {
			d.closeListeners()
			return badFlag("admin-addr", "%v", err)
		}
	}
	return nil
}

func (d *daemon) closeListeners() {
	for _, l := range []net.Listener{d.httpsLn, d.httpLn, d.adminLn} {
		if l != nil {
			l.Close() // already closed by Shutdown when serving: the error says only that
		}
	}
}

// serve starts the admin server, the memory policy (memory.go), the store
// watcher, the HTTPS server, the redirect and the fleet sync. Certificates
// already valid in the store are served at once, while missing ones are
// being obtained (a handshake for a name with no certificate yet fails with
// an alert, never a panic).
func (d *daemon) serve(ctx context.Context) error {
	d.connCtx, d.cancelConns = context.WithCancel(context.WithoutCancel(ctx))
	d.bg, d.stopBG = context.WithCancel(ctx)
	https, err := newHTTPSServer(d.rec.Handler(d.handler), d.settings.config(d.cfg.ClientCAFile != ""), d.connCtx, d.cfg.Limits, d.log)
	if err != nil {
		d.cancelConns()
		d.stopBG()
		return err
	}
	if d.adminLn != nil {
		d.reg.MustRegister(metrics.NewCertCollector(func() []metrics.Cert { return metricCerts(d.views()) }, nil),
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		ops := &adminOps{mgr: d.mgr, hub: d.events, base: d.connCtx, log: d.log.With("component", "admin")}
		if d.cfg.AdminToken != "" {
			ops.token, ops.hasTk = sha256.Sum256([]byte(d.cfg.AdminToken)), true
		}
		d.start("admin", &http.Server{Handler: adminHandler(d.views, d.readiness, d.reg, ops), ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}, d.adminLn, false)
	}
	if memPolicyOwner.CompareAndSwap(false, true) {
		mem, stopGCNotify := newMemPolicy(d.log)
		d.wg.Go(func() {
			defer memPolicyOwner.Store(false)
			mem.run(d.bg)
			stopGCNotify()
		})
	}
	if d.solver != nil {
		d.wg.Go(func() { _ = d.solver.Run(d.bg) }) // returns nil when bg ends
	}
	d.wg.Go(func() {
		if err := d.store.Watch(d.bg); err != nil && d.bg.Err() == nil {
			d.log.Error("store.watch_failed", "error", err)
		}
	})
	d.start("https", instrument(https, d.rec), newLimitListener(d.httpsLn, d.cfg.Limits, d.log), true)
	if d.httpLn != nil {
		_, port, _ := net.SplitHostPort(d.httpsLn.Addr().String())
		d.start("http-redirect", newRedirectServer(port, d.log), d.httpLn, false)
	}
	// In a fleet, install the shared certificates first: a new host then
	// serves them without contacting the CA.
	startFleet(d.bg, d.fleet, d.cfg.Fleet.SyncInterval, d.log, d.wg.Go)
	return nil
}

// start serves srv on ln in a goroutine; a failure other than shutdown is
// sent to serveErr, which ends the main loop.
func (d *daemon) start(name string, srv *http.Server, ln net.Listener, tlsOn bool) {
	d.servers = append(d.servers, srv)
	d.log.Info("server.listening", "server", name, "addr", ln.Addr().String())
	if d.hk.listening != nil {
		d.hk.listening(name, ln.Addr().String())
	}
	d.wg.Go(func() {
		var err error
		if tlsOn {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.serveErr <- fmt.Errorf("daemon: %s server: %w", name, err)
		}
	})
}

// obtain gets the missing certificates within -obtain-timeout (a stored
// valid certificate needs no CA contact), handling SIGHUP meanwhile, then
// starts the renewal loop. A problem no retry can fix (terms not accepted,
// EAB, an unknown profile, a refused contact) is returned as a
// *configError naming the flag; transient failures are logged and left to
// the renewal loop.
func (d *daemon) obtain(ctx context.Context) error {
	if d.mgr == nil {
		return nil
	}
	d.n.status("obtaining certificates")
	octx, cancel := context.WithTimeout(ctx, d.cfg.ObtainTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.mgr.Obtain(octx) }()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-d.hup:
			d.reload(ctx) // no READY yet: systemd still waits for the first one
			if d.hk.reloaded != nil {
				d.hk.reloaded()
			}
		}
	}
	if err != nil && issuer.IsPermanent(err) {
		d.log.Error("cert.obtain_failed", "error", err, "permanent", true)
		return flagError(err)
	}
	if err != nil && ctx.Err() == nil {
		d.log.Error("cert.obtain_incomplete", "error", err, "bound", shortDuration(d.cfg.ObtainTimeout))
	}
	d.wg.Go(func() {
		if err := d.mgr.Run(d.bg); err != nil && d.bg.Err() == nil {
			d.log.Error("issuer.stopped", "error", err)
		}
	})
	return nil
}

// ready tells systemd READY with a STATUS saying what is served and what is
// still missing.
func (d *daemon) ready() {
	ok, _ := d.readiness()
	d.n.ready(d.statusLine())
	d.log.Info("daemon.ready", "certificates_served", len(d.store.Entries()), "ready", ok)
	if d.hk.ready != nil {
		d.hk.ready()
	}
}

// loop runs the main loop until ctx ends or a server fails.
func (d *daemon) loop(ctx context.Context) error {
	var tick <-chan time.Time
	if iv := watchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
		d.log.Info("systemd.watchdog", "interval", shortDuration(iv))
	}
	return mainLoop(ctx, d.serveErr, d.hup, tick, d.n, d.live, d.log, func() {
		d.reload(ctx)
		d.n.ready(d.statusLine())
		if d.hk.reloaded != nil {
			d.hk.reloaded()
		}
	})
}

// drain stops the background loops and shuts the servers down within
// -shutdown-timeout, closing what does not finish, and waits for every
// goroutine.
func (d *daemon) drain() {
	d.n.stopping()
	d.log.Info("server.stopping", "drain_bound", shortDuration(d.cfg.ShutdownTimeout))
	d.stopBG()
	sctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	var shutErr error
	for _, srv := range d.servers {
		srv.RegisterOnShutdown(d.cancelConns)
	}
	for _, srv := range d.servers {
		if err := srv.Shutdown(sctx); err != nil {
			shutErr = errors.Join(shutErr, err)
			srv.Close()
		}
	}
	d.cancelConns()
	d.wg.Wait()
	if shutErr != nil {
		d.log.Warn("server.drain_incomplete", "error", shutErr)
	}
	d.log.Info("server.stopped")
}

func (d *daemon) views() []certView { return addFleetViews(certViews(d.store, d.mgr), d.fleet) }

// readiness is /readyz: ready once at least one certificate is served.
func (d *daemon) readiness() (bool, string) {
	if len(d.store.Entries()) == 0 {
		return false, "no valid certificate loaded yet"
	}
	return true, "ok"
}

// statusLine is systemd's STATUS: what is served and, for every configured
// certificate not served yet, its name and last error.
func (d *daemon) statusLine() string {
	return readyStatus(d.store, d.mgr)
}

// reload re-reads what SIGHUP covers: the store and operator files, and the
// client CA file. Flags and environment are fixed for the life of the
// process (systemd reads EnvironmentFile only at start).
func (d *daemon) reload(ctx context.Context) {
	d.log.Info("config.reloading")
	if err := d.store.Reload(ctx); err != nil {
		d.log.Error("config.reload_failed", "what", "store", "error", err)
	}
	if d.cfg.ClientCAFile != "" {
		pool, err := loadClientCAs(d.cfg)
		if err != nil {
			d.log.Error("config.reload_failed", "what", "client-ca-file", "error", err)
		} else {
			d.settings.cfg.Store(newTLSConfig(d.store.GetCertificate, pool))
		}
	}
	d.log.Info("config.reloaded", "certificates_served", len(d.store.Entries()))
}

func loadClientCAs(cfg *Config) (*x509.CertPool, error) {
	if cfg.ClientCAFile == "" {
		return nil, nil
	}
	p, err := loadPool(cfg.ClientCAFile)
	if err != nil {
		return nil, badFlag("client-ca-file", "%v", err)
	}
	return p, nil
}
