package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The fleet's addresses: scripts/fleet/test.sh lays them out.
const (
	rigIP      = "10.231.7.1"
	s3IP       = "10.231.7.2"
	acmePort   = "14000" // management API on 14001
	r53Port    = "14002"
	dnsPort    = "14053"
	s3Port     = "14090"
	adminPort  = "14080"
	bucket     = "edgecert-fleet"
	zone       = "demo.test"
	profile    = "fleet"
	apex       = zone
	wildName   = "x." + zone
	httpsPort  = "8443"
	s3Endpoint = "http://" + s3IP + ":" + s3Port
)

// proc is a process the driver started, with its log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

// start runs argv in network namespace ns with env, output to logPath.
func start(name, ns, logPath string, env []string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// ip netns exec execs argv: the PID is the program's own.
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to limit, then SIGKILL.
func (p *proc) stop(limit time.Duration) {
	if p == nil || !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.kill()
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	if p == nil || !p.running() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// rig is the two devrig processes: the CA side and the S3 server.
type rig struct {
	ca, s3   *proc
	dir      string
	rootPEM  string // the CA's issuing root: what served chains must verify against
	caTLSPEM string // the root of the CA's HTTPS certificate (-acme-ca-roots)
}

func startRig(ctx context.Context, devrig, work string) (*rig, error) {
	r := &rig{dir: filepath.Join(work, "rig")}
	r.rootPEM = filepath.Join(r.dir, "root.pem")
	r.caTLSPEM = filepath.Join(r.dir, "acme-ca.pem")
	env := []string{"PATH=" + os.Getenv("PATH")}
	var err error
	// Orders wait 3 s for INSYNC: long enough to kill a holder mid-order.
	// Certificates live 30 days (ARI window well ahead); ARI answers say
	// "ask again in 1 s" (the daemon polls at most once a minute).
	r.ca, err = start("devrig-ca", "ft-rig", filepath.Join(work, "devrig-ca.log"), env, devrig,
		"-serve", "ca", "-ip", rigIP, "-acme-port", acmePort, "-route53-port", r53Port, "-dns-port", dnsPort,
		"-admin-port", adminPort, "-zone", zone, "-profile", profile, "-profile-validity", "720h",
		"-insync-after", "3s", "-ari-retry-after", "1s", "-dir", r.dir)
	if err != nil {
		return nil, err
	}
	r.s3, err = start("devrig-s3", "ft-s3", filepath.Join(work, "devrig-s3.log"), env, devrig,
		"-serve", "s3", "-ip", s3IP, "-s3-port", s3Port, "-s3-bucket", bucket, "-admin-port", adminPort,
		"-dir", filepath.Join(work, "s3"))
	if err != nil {
		r.close()
		return nil, err
	}
	err = waitFor(ctx, 60*time.Second, "the rig's admin APIs and files", func() (bool, error) {
		for _, p := range []*proc{r.ca, r.s3} {
			if !p.running() {
				return false, fmt.Errorf("%s exited: %v (log %s)", p.name, p.err, p.log)
			}
		}
		for _, f := range []string{r.rootPEM, r.caTLSPEM} {
			if st, err := os.Stat(f); err != nil || st.Size() == 0 {
				return false, nil
			}
		}
		_, err1 := fetchCounters(ctx, rigIP)
		_, err2 := fetchCounters(ctx, s3IP)
		return err1 == nil && err2 == nil, nil
	})
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *rig) close() {
	r.ca.stop(10 * time.Second)
	r.s3.stop(10 * time.Second)
}

// counters is the part of devrig's GET /counters the driver reads.
type counters struct {
	ACME *struct {
		Requests          int64            `json:"requests"`
		RequestsByClient  map[string]int64 `json:"requests_by_client"`
		NewOrders         int              `json:"new_orders"`
		NewOrdersReplaces int              `json:"new_orders_replaces"`
		NewOrdersCreated  int              `json:"new_orders_created"`
		Orders            []struct {
			Identifiers []string `json:"identifiers"`
			Replaces    string   `json:"replaces"`
			Status      int      `json:"status"`
		} `json:"orders"`
	} `json:"acme"`
	Route53 *struct {
		Changes int            `json:"changes"`
		Calls   map[string]int `json:"calls"`
	} `json:"route53"`
	S3 *struct {
		ByMethod map[string]int64            `json:"by_method"`
		ByClient map[string]map[string]int64 `json:"by_client"`
		Total    int64                       `json:"total"`
	} `json:"s3"`
}

var counterClient = &http.Client{Timeout: 5 * time.Second}

func fetchCounters(ctx context.Context, ip string) (*counters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ip+":"+adminPort+"/counters", nil)
	if err != nil {
		return nil, err
	}
	res, err := counterClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /counters on %s: %s", ip, res.Status)
	}
	var c counters
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("GET /counters on %s: %w", ip, err)
	}
	return &c, nil
}

// snapshot is both rigs' counters at one moment.
type snapshot struct {
	ca, s3 *counters
}

func (r *rig) snapshot(ctx context.Context) (snapshot, error) {
	ca, err := fetchCounters(ctx, rigIP)
	if err != nil {
		return snapshot{}, err
	}
	s3, err := fetchCounters(ctx, s3IP)
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{ca: ca, s3: s3}, nil
}

func (s snapshot) orders() int   { return s.ca.ACME.NewOrders }
func (s snapshot) replaces() int { return s.ca.ACME.NewOrdersReplaces }
func (s snapshot) changes() int  { return s.ca.Route53.Changes }

// s3From is how many S3 requests ip sent, all methods.
func (s snapshot) s3From(ip string) int64 {
	var n int64
	for _, c := range s.s3.S3.ByClient[ip] {
		n += c
	}
	return n
}
