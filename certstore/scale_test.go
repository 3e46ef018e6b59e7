package certstore

import (
	"context"
	"crypto"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

// The scale benchmarks (issue 10): a store of 1, 1k, 10k and 100k
// certificates (each apex + wildcard, its own P-256 key), as the daemon finds
// it at start-up. BenchmarkOpen is the time from Open to the index being
// served (ns/op) and the heap the store keeps per certificate (heap-B/cert);
// BenchmarkHandshake compares full TLS handshakes with one certificate and
// with random SNI over 10k.

var scaleSizes = []int{1, 1000, 10_000, 100_000}

// scaleDirs caches one store directory per size for the whole test binary
// (benchmark functions run several times); TestMain removes them.
var scaleDirs struct {
	mu   sync.Mutex // guards dirs
	dirs map[int]string
}

func removeScaleFixtures() {
	scaleDirs.mu.Lock()
	defer scaleDirs.mu.Unlock()
	for _, d := range scaleDirs.dirs {
		os.RemoveAll(d)
	}
}

func scaleName(i int) string { return fmt.Sprintf("c%06d.example.test", i) }

// scaleFixture returns a store directory holding n certificates written the
// way the store writes them (version 0000000001, "current" symlink), without
// the fsyncs: the fixture measures reading, not writing. Every leaf has the
// same key (one key generation instead of n, which made the 100k fixture
// take minutes): what a load does with a key (decode, parse, derive its
// public half, match it with the leaf) costs the same whichever key it is,
// and nothing is shared between entries because of it.
func scaleFixture(b *testing.B, n int) string {
	b.Helper()
	scaleDirs.mu.Lock()
	defer scaleDirs.mu.Unlock()
	if d, ok := scaleDirs.dirs[n]; ok {
		return d
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("perf-certstore-scale-%d-", n))
	if err != nil {
		b.Fatal(err)
	}
	ca := certstoretest.NewCA(b)
	leafKey := certstoretest.NewKey(b)
	key := certstoretest.EncodeKey(b, leafKey)
	nb, na := time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := w; i < n; i += runtime.GOMAXPROCS(0) {
				name := scaleName(i)
				names := []string{name, "*." + name}
				chain := ca.IssueForKey(b, leafKey, names, nb, na)
				meta, _ := json.Marshal(Meta{Names: names, Source: "acme", ObtainedAt: nb})
				v := filepath.Join(dir, certsDirName, name, formatVersion(1))
				if err := os.MkdirAll(v, dirPerm); err != nil {
					errs <- err
					return
				}
				for f, data := range map[string][]byte{chainFile: chain, keyFile: key, metaFile: meta} {
					if err := os.WriteFile(filepath.Join(v, f), data, 0o600); err != nil {
						errs <- err
						return
					}
				}
				if err := os.Symlink(formatVersion(1), filepath.Join(dir, certsDirName, name, currentName)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		os.RemoveAll(dir)
		b.Fatal(err)
	}
	if scaleDirs.dirs == nil {
		scaleDirs.dirs = map[int]string{}
	}
	scaleDirs.dirs[n] = dir
	return dir
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkOpen has two cases per size: cache=none is the first start (no
// certs.validated: every version validated in full), cache=valid a restart
// of a store that validated everything before (the cache lists every
// version: keys parsed on first use). Both run alternately within one
// benchmark run, so the machine's load slows them alike.
func BenchmarkOpen(b *testing.B) {
	for _, n := range scaleSizes {
		for _, cached := range []bool{false, true} {
			b.Run(fmt.Sprintf("certs=%d/cache=%s", n, map[bool]string{false: "none", true: "valid"}[cached]), func(b *testing.B) {
				if n > 10_000 && testing.Short() {
					b.Skip("100k certificates take a minute to generate; run without -short")
				}
				benchOpen(b, scaleFixture(b, n), n, cached)
			})
		}
	}
}

// benchOpen opens dir (n certificates) b.N times, with its validated cache
// removed before each Open unless cached (then written by a first Open
// outside the timing).
func benchOpen(b *testing.B, dir string, n int, cached bool) {
	ctx := context.Background()
	cache := filepath.Join(dir, validCacheName)
	os.Remove(cache)
	if cached {
		s, err := Open(ctx, dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		if _, err := os.Stat(cache); err != nil {
			b.Fatalf("no validated cache after Open: %v", err)
		}
	}
	var s *Store
	var cpu time.Duration
	for b.Loop() {
		if s != nil {
			s.Close()
			s = nil
		}
		if !cached {
			b.StopTimer()
			os.Remove(cache)
			b.StartTimer()
		}
		cpu0 := cpuTime()
		var err error
		if s, err = Open(ctx, dir, Options{}); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - cpu0
	}
	b.StopTimer()
	// CPU time (all threads) per Open: what contention on a shared
	// machine does not inflate, unlike ns/op.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	if got := len(s.Entries()); got != n {
		b.Fatalf("Open served %d certificates; want %d", got, n)
	}
	// Heap kept per certificate: with the store open, then without.
	with := heapInUse()
	runtime.KeepAlive(s)
	s.Close()
	s = nil
	without := heapInUse()
	if with > without {
		b.ReportMetric(float64(with-without)/float64(n), "heap-B/cert")
	}
}

// BenchmarkHandshake is full TLS 1.3 handshakes (no resumption) through
// GetCertificate over an in-memory pipe, alternating within each iteration
// between a store of one certificate and random SNI over a store of 10k, so
// a noisy machine slows both alike: rate-ratio is the 10k rate over the
// one-certificate rate (target >= 0.95). "cold" is the first handshakes
// after start-up: crypto/ecdsa derives (and caches, for as long as the key
// lives) its internal form of a private key on the key's first signature,
// which the one-certificate store pays once; "warm" has signed once with
// every key first, the steady state of a long-running server.
func BenchmarkHandshake(b *testing.B) {
	for _, warm := range []bool{false, true} {
		b.Run(map[bool]string{false: "10k-random-sni-vs-1/cold", true: "10k-random-sni-vs-1/warm"}[warm], func(b *testing.B) {
			one, err := Open(context.Background(), scaleFixture(b, 1), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer one.Close()
			many, err := Open(context.Background(), scaleFixture(b, 10_000), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer many.Close()
			for _, s := range []*Store{one, many} {
				if !warm && s == many {
					continue
				}
				for _, e := range s.Entries() {
					if _, err := e.Cert.PrivateKey.(crypto.Signer).Sign(crand.Reader, make([]byte, 32), crypto.SHA256); err != nil {
						b.Fatal(err)
					}
				}
			}
			oneCfg := &tls.Config{GetCertificate: one.GetCertificate, SessionTicketsDisabled: true}
			manyCfg := &tls.Config{GetCertificate: many.GetCertificate, SessionTicketsDisabled: true}
			rnd := rand.New(rand.NewPCG(1, 2))
			var dOne, dMany time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := handshake(oneCfg, &tls.Config{ServerName: scaleName(0), InsecureSkipVerify: true}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := handshake(manyCfg, &tls.Config{ServerName: scaleName(rnd.IntN(10_000)), InsecureSkipVerify: true}); err != nil {
					b.Fatal(err)
				}
				dOne, dMany = dOne+t1.Sub(t0), dMany+time.Since(t1)
			}
			b.ReportMetric(float64(dOne)/float64(dMany), "rate-ratio")
			b.ReportMetric(float64(dOne.Nanoseconds())/float64(b.N), "ns/handshake-1")
			b.ReportMetric(float64(dMany.Nanoseconds())/float64(b.N), "ns/handshake-10k")
		})
	}
}

func handshake(srvCfg, cliCfg *tls.Config) error {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	errc := make(chan error, 1)
	go func() { errc <- tls.Server(c1, srvCfg).Handshake() }()
	cli := tls.Client(c2, cliCfg)
	if err := cli.Handshake(); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if got := cli.ConnectionState().PeerCertificates[0].DNSNames[0]; got != cliCfg.ServerName {
		return fmt.Errorf("served %s for SNI %s", got, cliCfg.ServerName)
	}
	return nil
}
