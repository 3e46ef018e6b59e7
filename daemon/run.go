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
	"github.com/edgecert/edgecert/daemon/issuer"
	"github.com/edgecert/edgecert/daemon/metrics"
	"github.com/edgecert/edgecert/routes"
)

// run is the daemon's life: open the store, start the admin listener, obtain
// missing certificates (bounded), serve, notify READY, then loop on signals
// and the watchdog until ctx ends, and drain within cfg.ShutdownTimeout.
//
// Start-up order matters: every listener is bound first; stored valid
// certificates are served at once with no CA contact; the admin and HTTPS
// listeners answer while missing certificates are obtained; READY is sent
// once every certificate is obtained or the bound has passed (the scheduler
// keeps retrying with backoff).
func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	return runWith(ctx, cfg, log, hooks{})
}

// hooks let tests observe the daemon; every field may be nil.
type hooks struct {
	listening func(server, addr string) // a listener is bound
	ready     func()                    // READY has been sent
	reloaded  func()                    // a SIGHUP reload finished
}

func runWith(ctx context.Context, cfg *Config, log *slog.Logger, hk hooks) error {
	// Log events also go to the admin streams of `edgecert renew/revoke`.
	events := newEventHub()
	log = slog.New(events.tee(log.Handler()))
	log.Info("daemon.starting", "version", version(), "state_dir", cfg.StateDir, "certificates", len(cfg.Domains))
	n := notifier{log}
	n.status("starting")

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
	reg := prometheus.NewRegistry()
	rec := metrics.New(reg)
	store, err := certstore.Open(ctx, cfg.StateDir, certstore.Options{Logger: log, Default: cfg.defaultCertName(), Observer: rec})
	if err != nil {
		return badFlag("state-dir", "%v", err)
	}
	defer store.Close()
	if cfg.CertFile != "" {
		if err := store.AddFilePair(fileCertName, cfg.CertFile, cfg.KeyFile); err != nil {
			return fmt.Errorf("daemon: -cert-file: %w", err)
		}
	}

	fleet, err := newFleet(ctx, cfg, store, log)
	if err != nil {
		return err
	}
	if fleet != nil {
		reg.MustRegister(newFleetCollector(fleet))
	}
	var mgr *issuer.Manager
	if len(cfg.Domains) > 0 {
		if mgr, err = newIssuer(ctx, cfg, issuerStore(store, fleet), log, nil, rec); err != nil {
			return err
		}
	}

	h, err := routes.New(routes.Options{
		Name:        cfg.Name,
		AllowEnv:    cfg.AllowEnv,
		HealthToken: cfg.HealthToken,
		DataMax:     cfg.DataMax,
		Logger:      log.With("component", "routes"),
	})
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}

	clientCAs, err := loadClientCAs(cfg)
	if err != nil {
		return err
	}
	var settings tlsSettings
	settings.cfg.Store(newTLSConfig(store.GetCertificate, clientCAs))

	// Bind every listener before doing anything slow, so a port clash fails
	// the start at once.
	httpsLn, err := net.Listen("tcp", cfg.HTTPSAddr)
	if err != nil {
		return badFlag("https-addr", "%v", err)
	}
	listeners := []net.Listener{httpsLn}
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	var httpLn, adminLn net.Listener
	if cfg.HTTPAddr != "" {
		if httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return badFlag("http-addr", "%v", err)
		}
		listeners = append(listeners, httpLn)
	}
	if cfg.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			return badFlag("admin-addr", "%v", err)
		}
		listeners = append(listeners, adminLn)
	}

	views := func() []certView { return addFleetViews(certViews(store, mgr), fleet) }
	ready := func() (bool, string) {
		if len(store.Entries()) == 0 {
			return false, "no valid certificate loaded yet"
		}
		return true, "ok"
	}

	// connCtx is cancelled when shutdown starts: long-lived requests (/echo,
	// /?wait=) end with it.
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	httpsSrv, err := newHTTPSServer(rec.Handler(h), settings.config(cfg.ClientCAFile != ""), connCtx, cfg.Limits, log)
	if err != nil {
		return err
	}
	var servers []*http.Server
	var wg sync.WaitGroup
	serveErr := make(chan error, 4)
	serve := func(name string, srv *http.Server, ln net.Listener, tlsOn bool) {
		servers = append(servers, srv)
		log.Info("server.listening", "server", name, "addr", ln.Addr().String())
		if hk.listening != nil {
			hk.listening(name, ln.Addr().String())
		}
		wg.Go(func() {
			var err error
			if tlsOn {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("daemon: %s server: %w", name, err)
			}
		})
	}
	if adminLn != nil {
		reg.MustRegister(metrics.NewCertCollector(func() []metrics.Cert { return metricCerts(views()) }, nil),
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		ops := &adminOps{mgr: mgr, hub: events, base: connCtx, log: log.With("component", "admin")}
		if cfg.AdminToken != "" {
			ops.token, ops.hasTk = sha256.Sum256([]byte(cfg.AdminToken)), true
		}
		serve("admin", &http.Server{Handler: adminHandler(views, ready, reg, ops), ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}, adminLn, false)
	}

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	wg.Go(func() {
		if err := store.Watch(bg); err != nil && bg.Err() == nil {
			log.Error("store.watch_failed", "error", err)
		}
	})

	// Serve at once: certificates already valid in the store are served
	// while missing ones are being obtained (a handshake for a name with no
	// certificate yet fails with an alert, never a panic).
	serve("https", instrument(httpsSrv, rec), newLimitListener(httpsLn, cfg.Limits, log), true)
	if httpLn != nil {
		_, port, _ := net.SplitHostPort(httpsLn.Addr().String())
		serve("http-redirect", newRedirectServer(port, log), httpLn, false)
	}

	// In a fleet, install the shared certificates first: a new host then
	// serves them without contacting the CA.
	startFleet(bg, fleet, cfg.Fleet.SyncInterval, log, wg.Go)

	// A stored valid certificate needs no CA contact; otherwise obtain it
	// now, within the bound, while the admin listener already answers.
	if mgr != nil {
		n.status("obtaining certificates")
		octx, cancel := context.WithTimeout(ctx, cfg.ObtainTimeout)
		err := mgr.Obtain(octx)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Error("cert.obtain_incomplete", "error", err, "bound", cfg.ObtainTimeout.String())
		}
		wg.Go(func() {
			if err := mgr.Run(bg); err != nil && bg.Err() == nil {
				log.Error("issuer.stopped", "error", err)
			}
		})
	}

	var runErr error
	if ctx.Err() == nil { // not stopped during the first order
		// SIGHUP is caught before READY: systemd may send a reload right after.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)

		ok, why := ready()
		n.ready(readyStatus(ok, why, store))
		log.Info("daemon.ready", "certificates_served", len(store.Entries()), "ready", ok)
		if hk.ready != nil {
			hk.ready()
		}

		runErr = mainLoop(ctx, serveErr, hup, n, log, func() {
			reload(ctx, cfg, store, &settings, log)
			ok, why := ready()
			n.ready(readyStatus(ok, why, store))
			if hk.reloaded != nil {
				hk.reloaded()
			}
		})
	}

	n.stopping()
	log.Info("server.stopping", "drain_bound", cfg.ShutdownTimeout.String())
	stopBG()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var shutErr error
	for _, srv := range servers {
		srv.RegisterOnShutdown(cancelConns)
	}
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			shutErr = errors.Join(shutErr, err)
			srv.Close()
		}
	}
	cancelConns()
	wg.Wait()
	if shutErr != nil {
		log.Warn("server.drain_incomplete", "error", shutErr)
	}
	log.Info("server.stopped")
	return runErr
}

// mainLoop runs until ctx ends (nil) or a server fails (its error). It pings
// systemd's watchdog at half WatchdogSec — from this loop, so a daemon whose
// main loop hangs is restarted — and handles SIGHUP: RELOADING=1, then
// onHUP, which reloads and reports READY again.
func mainLoop(ctx context.Context, serveErr <-chan error, hup <-chan os.Signal, n notifier, log *slog.Logger, onHUP func()) error {
	var tick <-chan time.Time
	if d := watchdogInterval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
		log.Info("systemd.watchdog", "interval", d.String())
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-serveErr:
			return err
		case <-tick:
			n.watchdog()
		case <-hup:
			n.reloading()
			onHUP()
		}
	}
}

func readyStatus(ok bool, why string, store *certstore.Store) string {
	if !ok {
		return "serving, waiting for a certificate: " + why
	}
	return fmt.Sprintf("serving %d certificate(s)", len(store.Entries()))
}

// reload re-reads what SIGHUP covers: the store and operator files, and the
// client CA file. Flags and environment are fixed for the life of the
// process (systemd reads EnvironmentFile only at start).
func reload(ctx context.Context, cfg *Config, store *certstore.Store, settings *tlsSettings, log *slog.Logger) {
	log.Info("config.reloading")
	if err := store.Reload(ctx); err != nil {
		log.Error("config.reload_failed", "what", "store", "error", err)
	}
	if cfg.ClientCAFile != "" {
		pool, err := loadClientCAs(cfg)
		if err != nil {
			log.Error("config.reload_failed", "what", "client-ca-file", "error", err)
		} else {
			settings.cfg.Store(newTLSConfig(store.GetCertificate, pool))
		}
	}
	log.Info("config.reloaded", "certificates_served", len(store.Entries()))
}

func loadClientCAs(cfg *Config) (*x509.CertPool, error) {
	if cfg.ClientCAFile == "" {
		return nil, nil
	}
	p, err := loadPool(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("daemon: -client-ca-file: %w", err)
	}
	return p, nil
}
