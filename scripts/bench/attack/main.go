// Command attack replays the attacks of issue 8 that any HTTPS server
// shares against one or more servers side by side, while a normal client
// makes requests, and reports per attack and server: the normal client's
// p50/p99 latency and failures, when the server closed the attack
// connections, and the server's RSS before, at its peak and after.
// scripts/bench/attack.sh runs it against edgecert and nginx
// (`make bench-attack`; BENCHMARKS.md explains the figures).
//
// Usage:
//
//	attack -server-name bench.test -ca cert.pem \
//	    -target edgecert=127.0.0.1:8443,pid=123,big=/data?size=1&unit=gb \
//	    -target nginx=127.0.0.1:8444,pid=456,big=/data1g.bin
//
// A target is NAME=HOST:PORT with optional ,pid=PID (the server's process;
// its children count too: nginx's workers) and ,big=PATH (a response far
// larger than the socket buffers, for the never-read row; default
// /data?size=1&unit=gb). Without a pid there are no RSS figures and the
// never-read row's close is seen from the client only.
//
// The rows run one after another, each on every target in turn (A B A B:
// the machine's load drifts). The bounds flags say what the servers were
// configured with; each row waits for the attack connections to close
// until its bound plus -slack and reports those still open as held.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgecert/edgecert/internal/attack"
)

// config is the command line.
type config struct {
	targets    []server
	rows       []string
	normalFrom string
	normalPath string
	bodyPath   string
	from       []string // attack connections' source addresses
	idleFrom   []string // the idle flood's
	conns      int      // connections per attack
	idle       int      // idle connections
	streams    int      // HTTP/2 streams per connection
	resets     int      // HEADERS+RST_STREAM pairs per connection
	bounds     bounds
	slack      time.Duration
	quiet      time.Duration // the no-attack baseline's length
}

// bounds are the limits both servers are configured with.
type bounds struct {
	header, body, write, idle, ping time.Duration
}

// server is one target.
type server struct {
	name string
	tg   attack.Target
	pid  int    // 0: unknown
	big  string // the never-read row's path
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(2)
	}
	results, err := runAll(cfg)
	printTable(os.Stdout, cfg, results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(1)
	}
}

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("attack", flag.ContinueOnError)
	var targets multi
	cfg := &config{}
	fs.Var(&targets, "target", "NAME=HOST:PORT[,pid=PID][,big=PATH] (repeatable)")
	serverName := fs.String("server-name", "bench.test", "SNI, :authority and Host of every request")
	caFile := fs.String("ca", "", "PEM file of the roots that verify the servers (required)")
	rows := fs.String("rows", strings.Join(rowNames(), ","), "attacks to run, in order")
	fs.StringVar(&cfg.normalFrom, "normal-from", "127.0.0.2", "the normal client's source address")
	fs.StringVar(&cfg.normalPath, "normal-path", "/api", "what the normal client GETs every 20 ms")
	fs.StringVar(&cfg.bodyPath, "body-path", "/", "what the slow-body and HTTP/2 body attacks POST to")
	from := fs.String("from", "127.0.0.1", "the attack connections' source addresses (comma-separated, used in turn)")
	idleFrom := fs.Int("idle-from", 16, "the idle flood comes from this many addresses, 127.0.1.1 onwards")
	fs.IntVar(&cfg.conns, "conns", 120, "connections per attack")
	fs.IntVar(&cfg.idle, "idle", 3000, "idle keep-alive connections")
	fs.IntVar(&cfg.streams, "streams", 250, "HTTP/2 streams opened per connection by the body attack")
	fs.IntVar(&cfg.resets, "resets", 200000, "HEADERS+RST_STREAM pairs per connection")
	fs.DurationVar(&cfg.bounds.header, "header-timeout", 10*time.Second, "the servers' bound on a request head")
	fs.DurationVar(&cfg.bounds.body, "body-timeout", 10*time.Second, "the servers' bound on a request body")
	fs.DurationVar(&cfg.bounds.write, "write-timeout", 30*time.Second, "the servers' bound on a write making no progress")
	fs.DurationVar(&cfg.bounds.idle, "idle-timeout", 120*time.Second, "the servers' keep-alive bound")
	fs.DurationVar(&cfg.bounds.ping, "ping", 40*time.Second, "edgecert's HTTP/2 PING bound (after + timeout)")
	fs.DurationVar(&cfg.slack, "slack", 15*time.Second, "how long past its bound a row waits for the attack connections to close")
	fs.DurationVar(&cfg.quiet, "quiet", 5*time.Second, "length of the no-attack baseline row")
	mlkem := fs.Bool("mlkem", false, "offer crypto/tls's default key exchanges (X25519MLKEM768 first) instead of X25519 only, which is what nginx on OpenSSL 3.0 and the other bench rows use")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if len(targets) == 0 || *caFile == "" {
		return nil, errors.New("need -ca and at least one -target")
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", *caFile)
	}
	base := attack.Target{ServerName: *serverName, Roots: roots, Curves: []tls.CurveID{tls.X25519}}
	if *mlkem {
		base.Curves = nil
	}
	for _, t := range targets {
		s, err := parseTarget(t, base)
		if err != nil {
			return nil, err
		}
		cfg.targets = append(cfg.targets, s)
	}
	cfg.from = strings.Split(*from, ",")
	for i := range *idleFrom {
		cfg.idleFrom = append(cfg.idleFrom, fmt.Sprintf("127.0.1.%d", i+1))
	}
	cfg.rows = strings.Split(*rows, ",")
	for _, r := range cfg.rows {
		if _, ok := rowByName(r); !ok {
			return nil, fmt.Errorf("-rows: no row %q (rows: %s)", r, strings.Join(rowNames(), ","))
		}
	}
	return cfg, nil
}

// parseTarget parses NAME=HOST:PORT[,pid=PID][,big=PATH].
func parseTarget(spec string, tg attack.Target) (server, error) {
	name, rest, ok := strings.Cut(spec, "=")
	parts := strings.Split(rest, ",")
	if !ok || name == "" || parts[0] == "" {
		return server{}, fmt.Errorf("-target %q: want NAME=HOST:PORT[,pid=PID][,big=PATH]", spec)
	}
	tg.Addr = parts[0]
	s := server{name: name, tg: tg, big: "/data?size=1&unit=gb"}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "pid":
			pid, err := strconv.Atoi(v)
			if err != nil {
				return server{}, fmt.Errorf("-target %q: pid: %w", spec, err)
			}
			s.pid = pid
		case "big":
			s.big = v
		default:
			return server{}, fmt.Errorf("-target %q: unknown option %q", spec, k)
		}
	}
	return s, nil
}
