package daemon

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/poll"
)

// journalValues returns the values recorded in a state dir's challenge
// journal.
func journalValues(t testing.TB, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, route53Journal))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Entries []struct{ Name, Value, Zone string }
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("journal: %v\n%s", err, b)
	}
	var out []string
	for _, e := range f.Entries {
		out = append(out, e.Value)
	}
	return out
}

// TestNoChallengeRecordLeftAfterSIGKILL kills a daemon process between
// present and cleanup (Route 53 holds the change PENDING, so the order is
// stuck waiting for INSYNC with both values written), adds another tool's
// value at the same name, and restarts the daemon on the same state dir:
// the killed run's values are removed, the foreign value survives, and the
// new run obtains its certificate and leaves nothing of its own behind.
func TestNoChallengeRecordLeftAfterSIGKILL(t *testing.T) {
	t.Parallel()
	r := newRig(t, pebblerig.Options{})
	dir := t.TempDir()
	const name = "_acme-challenge.example.test"
	r.r53.SetNeverInsync(true)

	cmd := exec.Command(os.Args[0], append([]string{"run"}, r.args(dir, "-domains", "example.test,*.example.test")...)...)
	cmd.Env = append(os.Environ(), execMainEnv+"=1")
	for k, v := range r.env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("killed daemon's log:\n%s", logs.String())
		}
	})
	poll.Until(t, 60*time.Second, "the daemon to write both challenge values", func() bool {
		return len(r.r53.TXT(rigZoneID, name)) == 2
	})
	written := r.r53.TXT(rigZoneID, name)
	if got := journalValues(t, dir); !slices.Equal(sortedCopy(got), sortedCopy(written)) {
		t.Fatalf("journal holds %q; want the written values %q", got, written)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	if strings.Contains(logs.String(), "dns.txt_cleanup") {
		t.Fatalf("the daemon was not killed between present and cleanup:\n%s", logs.String())
	}

	// Another tool's value joins ours at the same name.
	const foreign = "written-by-another-tool"
	if _, err := r.r53.UpsertTXT(rigZoneID, name, 10, append(written, foreign)...); err != nil {
		t.Fatal(err)
	}
	r.r53.SetNeverInsync(false)

	d := start(t, r.config(t, dir))
	poll.Until(t, 30*time.Second, "the killed run's values to be removed", func() bool {
		return slices.Equal(r.r53.TXT(rigZoneID, name), []string{foreign})
	})
	poll.Until(t, 10*time.Second, "the journal to empty", func() bool { return len(journalValues(t, dir)) == 0 })
	if !strings.Contains(d.logs.String(), "dns.orphan_removed") {
		t.Errorf("no dns.orphan_removed event in the restarted daemon's log")
	}
	if _, ok := d.addrs["https"]; !ok {
		t.Fatal("restarted daemon has no HTTPS listener")
	}
	if got := leaf(t, d.addrs["https"], "example.test", r.ca.IssuerRoots()); !slices.Contains(got.DNSNames, "*.example.test") {
		t.Errorf("restarted daemon serves %q; want the apex and wildcard certificate", got.DNSNames)
	}
	d.stop(t)
	if got := r.r53.TXT(rigZoneID, name); !slices.Equal(got, []string{foreign}) {
		t.Errorf("after the restarted run: TXT = %q; want only the foreign value", got)
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
