// Command fleettest drives edgecert's fleet end-to-end test (issue 7): edgecert
// daemons as separate processes, each in its own network namespace, sharing
// certificates through one S3-compatible server, against the offline CA rig.
// scripts/fleet/test.sh builds it, lays out the namespaces and runs it inside
// the rig's namespace (ft-rig); it is not meant to be run by hand.
//
// Scenarios, each ending in assertions that fail the run:
//
//	s1  three hosts started together: exactly one ACME order fleet-wide, and
//	    all serve the same serial within the sync bound (2 x interval);
//	s3  a host started later (empty state) serves the shared certificate
//	    with no request to the CA and no Route 53 change;
//	quiet  a quiet fleet: no S3 listing, at most 2 requests per host per
//	    sync interval;
//	s4  S3 cut off (link down) for twice the sync interval: every host keeps
//	    serving, nobody orders; after it returns every host talks to S3
//	    again and all serve the same serial;
//	s5  a renewal forced through the CA's ARI window: exactly one order
//	    fleet-wide, sent with "replaces" naming the old certificate, and all
//	    hosts serve the new serial;
//	s2  (a second, fresh fleet) the lease holder SIGKILLed mid-order: exactly
//	    one more order, and all hosts, the killed one restarted, converge.
//
// With -bench it measures instead: time from publish to the last host
// serving (over several forced renewals) and S3 requests per host per hour
// in a quiet fleet.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}

type env struct {
	work     string
	rig      *rig
	roots    *x509.CertPool
	fc       fleetConfig
	hosts    []*host // h1..h4
	only     map[string]bool
	failures []string
}

func run() error {
	work := flag.String("work", "", "work directory (logs, state)")
	edgecert := flag.String("edgecert", "", "edgecert binary")
	devrig := flag.String("devrig", "", "devrig binary")
	sync := flag.Duration("sync-interval", 5*time.Second, "-fleet-sync-interval of every host")
	ttl := flag.Duration("lease-ttl", 10*time.Second, "-fleet-lease-ttl of every host")
	only := flag.String("run", "", "comma-separated scenarios to run besides s1, which builds the fleet (default all): s3,quiet,s4,s5,s2")
	bench := flag.Bool("bench", false, "run the fleet benchmarks instead of the scenarios")
	renewals := flag.Int("bench-renewals", 3, "forced renewals measured by -bench")
	quiet := flag.Duration("bench-quiet", 2*time.Minute, "quiet window measured by -bench")
	flag.Parse()
	if *work == "" || *edgecert == "" || *devrig == "" {
		return errors.New("-work, -edgecert and -devrig are required")
	}
	// The whole run is bounded; a signal stops it (and the daemons) early.
	limit := 8 * time.Minute
	if *bench {
		limit = 25 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	e := &env{work: *work, only: parseSet(*only)}
	t0 := time.Now()
	r, err := startRig(ctx, *devrig, *work)
	if err != nil {
		return err
	}
	defer r.close()
	e.rig = r
	if e.roots, err = loadRoots(r.rootPEM); err != nil {
		return err
	}
	logf("rig up in %v: CA %s:%s, S3 %s", time.Since(t0).Round(time.Millisecond), rigIP, acmePort, s3Endpoint)
	e.fc = fleetConfig{edgecert: *edgecert, syncInterval: *sync, leaseTTL: *ttl, rig: r}
	err = e.addHosts(4)
	defer e.stopAll()
	if err != nil {
		return err
	}

	if *bench {
		return e.bench(ctx, *renewals, *quiet)
	}
	if err := e.scenarios(ctx); err != nil {
		e.dumpLogs()
		return err
	}
	if len(e.failures) > 0 {
		e.dumpLogs()
		return fmt.Errorf("%d assertion(s) failed:\n  %s", len(e.failures), strings.Join(e.failures, "\n  "))
	}
	logf("PASS: all scenarios in %v", time.Since(t0).Round(time.Second))
	return nil
}

// parseSet is the set of the non-empty items of the comma-separated list.
func parseSet(list string) map[string]bool {
	set := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			set[s] = true
		}
	}
	return set
}

// loadRoots is a pool of the certificates in the PEM file path.
func loadRoots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", path)
	}
	return roots, nil
}

// addHosts adds hosts h1..hn under e.work, creating their directories.
func (e *env) addHosts(n int) error {
	for i := 1; i <= n; i++ {
		h := newHost(e.work, i)
		if err := os.MkdirAll(h.dir, 0o700); err != nil {
			return err
		}
		e.hosts = append(e.hosts, h)
	}
	return nil
}

func (e *env) stopAll() {
	for _, h := range e.hosts {
		if h.p != nil {
			h.p.stop(15 * time.Second)
		}
	}
}

func logf(format string, args ...any) {
	fmt.Printf("    %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

// check records a failed assertion; the scenario goes on so that one run
// shows every failure.
func (e *env) check(ok bool, format string, args ...any) {
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	fmt.Printf("    FAIL: %s\n", msg)
	e.failures = append(e.failures, msg)
}

// dumpLogs prints the tail of every daemon log of the current fleet.
func (e *env) dumpLogs() {
	for _, h := range e.hosts {
		if h.p == nil {
			continue
		}
		b, err := os.ReadFile(h.p.log)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Printf("\n---- %s (%s, last %d lines) ----\n%s\n", h.name, h.p.log, len(lines), strings.Join(lines, "\n"))
	}
}
