package certstore

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/logtest"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

// Environment of the crash child (see TestMain).
const (
	crashChildEnv = "CERTSTORE_CRASH_CHILD" // store directory
	crashPairsEnv = "CERTSTORE_CRASH_PAIRS" // directory of <i>.chain / <i>.key
	crashName     = "crash"
	crashHost     = "crash.example.test"
	crashKeep     = 3
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		if err := crashChild(dir, os.Getenv(crashPairsEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	code := m.Run()
	removeScaleFixtures()
	os.Exit(code)
}

// crashChild opens the store and writes versions through PutCert forever,
// printing one line per committed version, until it is killed.
func crashChild(dir, pairs string) error {
	s, err := Open(context.Background(), dir, Options{Keep: crashKeep})
	if err != nil {
		return err
	}
	var chains, keys [][]byte
	for i := 0; ; i++ {
		c, err := os.ReadFile(filepath.Join(pairs, strconv.Itoa(i)+".chain"))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		k, err := os.ReadFile(filepath.Join(pairs, strconv.Itoa(i)+".key"))
		if err != nil {
			return err
		}
		chains, keys = append(chains, c), append(keys, k)
	}
	if len(chains) == 0 {
		return errors.New("no certificate pairs")
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		e, err := s.PutCert(context.Background(), crashName, chains[i%len(chains)], keys[i%len(keys)], Meta{Names: []string{crashHost}})
		if err != nil {
			return err
		}
		fmt.Fprintln(out, e.Version)
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// TestCrashSafety re-executes the test binary as a child that rotates a
// certificate in a loop through PutCert, and SIGKILLs it at random moments.
// After every kill a freshly opened store must serve a certificate whose key
// matches, the version served must never go backwards, and Open must leave
// only committed versions (at most Keep) and "current" on disk.
func TestCrashSafety(t *testing.T) {
	const kills = 60
	ca := certstoretest.NewCA(t)
	root := t.TempDir()
	dir, pairs := filepath.Join(root, "state"), filepath.Join(root, "pairs")
	must(t, os.Mkdir(pairs, 0o700))
	serials := map[string]bool{}
	for i := range 8 {
		chain, key := ca.Valid(t, crashHost)
		serials[certstoretest.Serial(t, chain)] = true
		must(t, os.WriteFile(filepath.Join(pairs, strconv.Itoa(i)+".chain"), chain, 0o600))
		must(t, os.WriteFile(filepath.Join(pairs, strconv.Itoa(i)+".key"), key, 0o600))
	}
	seed, err := Open(t.Context(), dir, Options{Keep: crashKeep})
	if err != nil {
		t.Fatal(err)
	}
	chain, key := ca.Valid(t, crashHost)
	serials[certstoretest.Serial(t, chain)] = true
	lastVersion := mustPut(t, seed, crashName, chain, key, Meta{}).Version
	must(t, seed.Close())

	start := time.Now()
	var killed, midWrite, committedTotal, cleaned int
	for round := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashPairsEnv+"="+pairs)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Most rounds wait for the child to commit a version and then kill
		// it within the next few writes; some kill it early, possibly while
		// Open is still cleaning up after the previous kill.
		var committed []string
		if round%4 != 3 {
			for want := 1 + rand.IntN(3); len(committed) < want; {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("round %d: child exited early; stderr: %s", round, stderr.String())
					}
					committed = append(committed, l)
				case <-time.After(20 * time.Second):
					t.Fatalf("round %d: child committed nothing within 20s; stderr: %s", round, stderr.String())
				}
			}
			time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond)
		} else {
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("round %d: kill: %v", round, err)
		}
		for l := range lines {
			committed = append(committed, l)
		}
		werr := cmd.Wait()
		var exitErr *exec.ExitError
		if errors.As(werr, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				killed++
			}
		}
		if werr == nil || stderr.Len() > 0 {
			t.Fatalf("round %d: child exited by itself (%v); stderr: %s", round, werr, stderr.String())
		}
		committedTotal += len(committed)
		if len(committed) > 0 {
			midWrite++
		}

		// Restart.
		rec := logtest.New()
		s, err := Open(t.Context(), dir, Options{Keep: crashKeep, Logger: newLogger(rec)})
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: crashHost})
		if err != nil {
			t.Fatalf("round %d: GetCertificate after kill: %v", round, err)
		}
		if !serials[c.Leaf.SerialNumber.Text(16)] {
			t.Errorf("round %d: served unknown serial %s", round, c.Leaf.SerialNumber.Text(16))
		}
		pub, ok := c.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if signer, sok := c.PrivateKey.(crypto.Signer); !ok || !sok || !pub.Equal(signer.Public()) {
			t.Fatalf("round %d: served key does not match the served leaf", round)
		}
		e, _ := s.Current(crashName)
		// Durability of order: the served version is the newest one any
		// child reported as committed, or newer.
		if len(committed) > 0 {
			lastVersion = max(lastVersion, committed[len(committed)-1])
		}
		if e.Version < lastVersion {
			t.Errorf("round %d: served version %s is older than committed version %s", round, e.Version, lastVersion)
		}
		lastVersion = e.Version
		// What any other reader of the directory sees is a matching pair too.
		nameDir := filepath.Join(dir, "certs", crashName)
		cur, err := readCurrent(nameDir)
		if err != nil {
			t.Fatalf("round %d: current: %v", round, err)
		}
		vf, err := readVersion(filepath.Join(nameDir, cur))
		if err != nil {
			t.Fatalf("round %d: read current version: %v", round, err)
		}
		if _, err := tls.X509KeyPair(vf.chain, vf.key); err != nil {
			t.Fatalf("round %d: current version %s on disk is not a matching pair: %v", round, cur, err)
		}
		// Tidy: no temporary entries, at most Keep versions.
		des, err := os.ReadDir(nameDir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		versions := 0
		for _, de := range des {
			names = append(names, de.Name())
			switch {
			case de.Name() == "current":
			case strings.HasPrefix(de.Name(), "."):
				t.Errorf("round %d: temporary entry %s left after Open", round, de.Name())
			default:
				versions++
			}
		}
		if versions > crashKeep {
			t.Errorf("round %d: %d versions on disk (%v); want at most %d", round, versions, names, crashKeep)
		}
		assertNoTemp(t, filepath.Join(dir, "certs"))
		if len(rec.Find("store.cleaned", nil)) > 0 {
			cleaned++
		}
		must(t, s.Close())
		if t.Failed() {
			break
		}
	}
	if killed < 50 {
		t.Errorf("only %d children were killed by SIGKILL; want at least 50", killed)
	}
	if midWrite < kills/2 {
		t.Errorf("only %d rounds killed a child that had committed versions; want at least %d", midWrite, kills/2)
	}
	// Evidence that kills landed inside writes, not only between them.
	if cleaned == 0 {
		t.Errorf("no kill left a temporary entry for Open to clean; kills never landed mid-write")
	}
	t.Logf("%d kills (%d after at least one commit, %d leaving temporary entries), %d versions committed by children, %v",
		killed, midWrite, cleaned, committedTotal, time.Since(start).Round(time.Millisecond))
}
