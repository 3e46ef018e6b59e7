package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/attack"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    server
		wantErr bool
	}{
		{"e=127.0.0.1:1", server{name: "e", big: "/data?size=1&unit=gb"}, false},
		{"n=127.0.0.1:2,pid=42,big=/data1g.bin", server{name: "n", pid: 42, big: "/data1g.bin"}, false},
		{"e=127.0.0.1:1,big=/data?size=1&unit=gb", server{name: "e", big: "/data?size=1&unit=gb"}, false},
		{"127.0.0.1:1", server{}, true},
		{"e=", server{}, true},
		{"e=127.0.0.1:1,pid=x", server{}, true},
		{"e=127.0.0.1:1,color=red", server{}, true},
	} {
		got, err := parseTarget(tc.spec, attack.Target{ServerName: "s"})
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: error %v, want error %v", tc.spec, err, tc.wantErr)
			continue
		}
		if err == nil && (got.name != tc.want.name || got.pid != tc.want.pid || got.big != tc.want.big || got.tg.Addr == "" || got.tg.ServerName != "s") {
			t.Errorf("%q: got %+v, want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, selfSigned(t), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"-ca", ca, "-target", "e=127.0.0.1:1", "-rows", "quiet,idle", "-idle-from", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.targets) != 1 || strings.Join(cfg.rows, ",") != "quiet,idle" || strings.Join(cfg.idleFrom, " ") != "127.0.1.1 127.0.1.2 127.0.1.3" {
		t.Errorf("cfg %+v", cfg)
	}
	if _, err := parseFlags([]string{"-ca", ca, "-target", "e=127.0.0.1:1", "-rows", "nosuch"}); err == nil {
		t.Error("-rows nosuch: no error")
	}
	if _, err := parseFlags([]string{"-target", "e=127.0.0.1:1"}); err == nil {
		t.Error("no -ca: no error")
	}
}

func TestPrintTable(t *testing.T) {
	cfg := &config{targets: []server{{name: "a"}, {name: "b"}}, rows: []string{"slowloris", "rapidreset"}}
	ms := time.Millisecond
	results := []result{
		{row: "slowloris", server: "a", conns: 10, wait: 30 * time.Second, closedAfter: 13700 * ms,
			stats: attack.Stats{N: 9, P50: ms, P99: 3 * ms}, rss: [3]int64{10 << 10, 12 << 10, 11 << 10}},
		{row: "slowloris", server: "b", conns: 10, open: 2, wait: 30 * time.Second, stats: attack.Stats{N: 5, Errs: []string{"x"}}},
		{row: "rapidreset", server: "a", err: errors.New("boom")},
		{row: "rapidreset", server: "b", cpu: 2 * time.Second, pairs: 1000000, rss: [3]int64{1, 1, 1}},
	}
	var b strings.Builder
	printTable(&b, cfg, results)
	out := b.String()
	for _, want := range []string{
		"| attack | a normal p50 / p99 | b normal p50 / p99 | a attack conns closed after |",
		"| HTTP/1 head sent slowly (slowloris) | 1.0 ms / 3.0 ms | 0.0 ms / 0.0 ms (1 of 6 failed) | 10 in 13.7 s | 2 of 10 held > 30s | 10 → 12 MiB (+2.0) | — |",
		"| error: boom | — |",
		"| 2.00 s (2.0 µs per pair) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// selfSigned is a PEM certificate, for -ca.
func selfSigned(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"bench.test"}, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
