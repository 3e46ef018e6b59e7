package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// fleetConfig is what every host of one fleet shares.
type fleetConfig struct {
	edgecert     string // binary
	prefix       string // S3 key prefix: a fresh fleet per run
	syncInterval time.Duration
	leaseTTL     time.Duration
	rig          *rig
}

// host is one edgecert daemon in its own network namespace.
type host struct {
	name, ns, ip string
	dir          string // state dir and logs
	starts       int
	p            *proc
}

func newHost(work string, n int) *host {
	name := "h" + strconv.Itoa(n)
	return &host{name: name, ns: "ft-" + name, ip: "10.231.7." + strconv.Itoa(10+n), dir: filepath.Join(work, name)}
}

// start runs the daemon; fresh wipes its state directory first (a new
// instance).
func (h *host) start(fc fleetConfig, fresh bool) error {
	state := filepath.Join(h.dir, "state-"+fc.prefix)
	if fresh {
		if err := os.RemoveAll(state); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	h.starts++
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_ENDPOINT_URL_ROUTE_53=http://" + rigIP + ":" + r53Port,
		"AWS_ENDPOINT_URL_S3=" + s3Endpoint,
		"AWS_ACCESS_KEY_ID=AKIDDEVRIG",
		"AWS_SECRET_ACCESS_KEY=devrig-not-a-secret",
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
	}
	var err error
	h.p, err = start(h.name, h.ns, filepath.Join(h.dir, fmt.Sprintf("%s-%s-%d.log", h.name, fc.prefix, h.starts)), env,
		fc.edgecert, "run",
		"-domains", apex+",*."+zone,
		"-acme-directory", "https://"+rigIP+":"+acmePort+"/dir",
		"-acme-ca-roots", fc.rig.caTLSPEM,
		"-acme-profile", profile,
		"-email", "ops@"+zone, "-accept-tos",
		"-dns01-nameservers", rigIP+":"+dnsPort,
		"-state-dir", state,
		"-https-addr", h.ip+":"+httpsPort, "-http-addr", "", "-admin-addr", "127.0.0.1:9180",
		"-name", h.name, "-log-format", "json", "-log-level", "debug",
		"-fleet-store", "s3://"+bucket+"/"+fc.prefix, "-fleet-s3-path-style",
		"-fleet-sync-interval", fc.syncInterval.String(), "-fleet-lease-ttl", fc.leaseTTL.String(),
		"-instance-id", "ft-"+h.name,
	)
	return err
}

func (h *host) running() bool { return h.p != nil && h.p.running() }

// event is one JSON log line of the daemon.
type event struct {
	Time  time.Time
	Msg   string
	Attrs map[string]any
}

// events returns the log events of the current run whose msg is one of
// names (all if none given).
func (h *host) events(names ...string) []event {
	if h.p == nil {
		return nil
	}
	f, err := os.Open(h.p.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		msg, _ := m["msg"].(string)
		if len(names) > 0 && !slices.Contains(names, msg) {
			continue
		}
		ts, _ := m["time"].(string)
		t, _ := time.Parse(time.RFC3339Nano, ts)
		out = append(out, event{Time: t, Msg: msg, Attrs: m})
	}
	return out
}

// tlsConfig trusts only roots.
func tlsConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// served is the certificate a host serves for one name.
type served struct {
	leaf   *x509.Certificate
	serial string
}

// serving does a TLS handshake with the host for SNI name, verifying the
// chain against the rig's issuing root.
func (h *host) serving(ctx context.Context, roots *x509.CertPool, name string) (served, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{ServerName: name, RootCAs: roots, MinVersion: tls.VersionTLS12}}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h.ip, httpsPort))
	if err != nil {
		return served{}, err
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return served{}, errors.New("no peer certificate")
	}
	return served{leaf: certs[0], serial: certs[0].SerialNumber.Text(16)}, nil
}

// waitFor polls cond every 100 ms until it reports true, returns an error,
// or limit passes.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %v waiting for %s", limit, what)
		case <-tick.C:
		}
	}
}
