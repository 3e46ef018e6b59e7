package daemon

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
	"time"
)

// printStatus asks the admin listener of a running daemon for /status and
// prints one line per certificate. It returns an error when the daemon
// cannot be reached, and reports (via the bool) whether any certificate needs
// attention: expired, past its latest renewal point (less than 1/20 of its
// lifetime left, which the scheduler never allows when renewal works), or
// failing to renew.
func printStatus(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, error) {
	fs := flag.NewFlagSet("edgecert status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin-addr", "127.0.0.1:9180", "admin listener of the running daemon (env EDGECERT_ADMIN_ADDR)")
	if v, ok := os.LookupEnv(envName("admin-addr")); ok && v != "" {
		*addr = v
	}
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/status", nil)
	if err != nil {
		return false, fmt.Errorf("-admin-addr: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("status: is the daemon running? %w", err)
	}
	defer resp.Body.Close()
	var st struct {
		Version      string     `json:"version"`
		Certificates []certView `json:"certificates"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return false, fmt.Errorf("status: bad answer from %s: %w", *addr, err)
	}
	return writeStatus(stdout, st.Version, st.Certificates, time.Now()), nil
}

// writeStatus renders views as a table and reports whether any needs
// attention.
func writeStatus(w io.Writer, version string, views []certView, now time.Time) bool {
	fmt.Fprintf(w, "edgecert %s, %d certificate(s)\n", version, len(views))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSERIAL\tEXPIRES\tNEXT RENEWAL\tFAILURES\tSTATE")
	attention := false
	for _, v := range views {
		state := "ok"
		switch {
		case v.NotAfter.IsZero():
			state, attention = "NO CERTIFICATE", true
		case !now.Before(v.NotAfter):
			state, attention = "EXPIRED", true
		case v.NotAfter.Sub(now) < v.NotAfter.Sub(v.NotBefore)/20:
			state, attention = "EXPIRES SOON", true
		}
		if v.Failures > 0 {
			state, attention = "RENEWAL FAILING: "+v.LastError, true
		}
		if v.Rejected != "" {
			state, attention = "FILES REJECTED: "+v.Rejected, true
			if !v.NotAfter.IsZero() {
				state += " (serving the previous pair)"
			}
		}
		next := "-"
		if !v.NextRenewal.IsZero() {
			next = fmt.Sprintf("%s (%s)", relTime(v.NextRenewal.Sub(now)), v.Reason)
		}
		expires := "-"
		if !v.NotAfter.IsZero() {
			expires = fmt.Sprintf("%s (%s)", v.NotAfter.UTC().Format(time.RFC3339), relTime(v.NotAfter.Sub(now)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", v.Name, orDash(v.Serial), expires, next, v.Failures, state)
	}
	tw.Flush()
	writeFleetStatus(w, views, now)
	return attention
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// relTime renders d from now as "in 59d 23h", "in 5h 3m", "in 4m 10s",
// "in 12s", or "3d 2h ago" when d is negative.
func relTime(d time.Duration) string {
	if d < 0 {
		return humanDuration(-d) + " ago"
	}
	return "in " + humanDuration(d)
}

// humanDuration renders d in its two largest units (days, hours, minutes,
// seconds), rounded down: 1439h59m43s is "59d 23h".
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	units := []struct {
		size time.Duration
		name string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units[:len(units)-1] {
		if d >= u.size {
			next := units[i+1]
			return fmt.Sprintf("%d%s %d%s", d/u.size, u.name, (d%u.size)/next.size, next.name)
		}
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
