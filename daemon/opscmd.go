package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// adminClientFlags are the flags of the commands that talk to a running
// daemon's admin listener.
type adminClientFlags struct {
	addr, token string
	timeout     time.Duration
}

func (f *adminClientFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "admin-addr", "127.0.0.1:9180", "admin listener of the running daemon (env EDGECERT_ADMIN_ADDR)")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Minute, "give up after this long")
	if v, ok := os.LookupEnv(envName("admin-addr")); ok && v != "" {
		f.addr = v
	}
	// The token comes from the environment only: never on a command line
	// that ps shows.
	f.token = os.Getenv(envName("admin-token"))
}

// parseInterspersed parses args with fs, allowing flags after positional
// arguments ("revoke NAME -reason superseded"), and returns the positional
// ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// runRenew is `edgecert renew [-force] [NAME...]`.
func runRenew(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgecert renew", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf adminClientFlags
	cf.define(fs)
	force := fs.Bool("force", false, "renew also certificates that are not due yet")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: edgecert renew [-force] [NAME...]\n\nRenews now, through the running daemon, the named certificates (all without a name),\nprinting the rotation events; exit 0 once every new certificate is served.\nWithout -force a certificate that is not due is reported and left alone.\n\n")
		fs.PrintDefaults()
	}
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return usageExit(err)
	}
	return adminCall(cf, "/renew", renewRequest{Names: names, Force: *force}, stdout, stderr)
}

// runRevoke is `edgecert revoke NAME -reason REASON`.
func runRevoke(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgecert revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf adminClientFlags
	cf.define(fs)
	reason := fs.String("reason", "", "why: "+revokeReasonNames()+" (required)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: edgecert revoke NAME -reason "+revokeReasonNames()+"\n\nRevokes the certificate served for NAME at the CA, then orders a replacement with a\nnew key at once so the site keeps serving; exit 0 once the replacement is served.\n\n")
		fs.PrintDefaults()
	}
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return usageExit(err)
	}
	if len(names) != 1 {
		fmt.Fprintln(stderr, "edgecert: revoke takes exactly one certificate name")
		return exitUsage
	}
	if _, ok := revokeReasons[*reason]; !ok {
		fmt.Fprintf(stderr, "edgecert: -reason: revoking needs an explicit reason: one of %s\n", revokeReasonNames())
		return exitUsage
	}
	return adminCall(cf, "/revoke", revokeRequest{Name: names[0], Reason: *reason}, stdout, stderr)
}

func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// adminCall POSTs body to path on the admin listener, prints the streamed
// events and results, and returns exitOK when every certificate's result is
// renewed or not_due, exitFailure when one failed (or the stream ended
// early), and exitUsage when the daemon cannot be reached or refuses the
// request.
func adminCall(cf adminClientFlags, path string, body any, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+cf.addr+path, bytes.NewReader(b))
	if err != nil {
		fmt.Fprintf(stderr, "edgecert: -admin-addr: %v\n", err)
		return exitUsage
	}
	req.Header.Set("Content-Type", "application/json")
	if cf.token != "" {
		req.Header.Set("Authorization", "Bearer "+cf.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "edgecert: is the daemon running? %v\n", err)
		return exitUsage
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		fmt.Fprintf(stderr, "edgecert: %s\n", strings.TrimSpace(string(msg)))
		return exitUsage
	}
	failed, results := false, 0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue
		}
		if ev["msg"] != "admin.result" {
			fmt.Fprintln(stdout, formatEvent(ev))
			continue
		}
		results++
		failed = failed || ev["result"] == resultFailed
		fmt.Fprintln(stdout, formatResult(ev))
	}
	if err := sc.Err(); err != nil || results == 0 {
		fmt.Fprintf(stderr, "edgecert: the stream ended before every result (%v)\n", err)
		return exitFailure
	}
	if failed {
		return exitFailure
	}
	return exitOK
}

// formatResult renders a certificate's admin.result line.
func formatResult(ev event) string {
	switch ev["result"] {
	case resultRenewed:
		return fmt.Sprintf("%v: renewed: serving serial %v (not after %v)", ev["name"], ev["serial"], ev["not_after"])
	case resultNotDue:
		return fmt.Sprintf("%v: not due: renewal planned at %v; left alone (-force renews now)", ev["name"], ev["planned_renewal"])
	}
	return fmt.Sprintf("%v: FAILED: %v", ev["name"], ev["error"])
}

// formatEvent renders one streamed event as a journal-like line:
// "15:04:05 NAME MSG key=value ...", attributes sorted.
func formatEvent(ev event) string {
	var sb strings.Builder
	if t, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"])); err == nil {
		sb.WriteString(t.Local().Format("15:04:05 "))
	}
	fmt.Fprintf(&sb, "%v %v", ev["name"], ev["msg"])
	keys := make([]string, 0, len(ev))
	for k := range ev {
		switch k {
		case "time", "msg", "name", "level", "component":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := fmt.Sprint(ev[k])
		if strings.ContainsAny(v, " \"=") {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&sb, " %s=%s", k, v)
	}
	return sb.String()
}
