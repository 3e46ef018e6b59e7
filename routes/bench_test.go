package routes

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
)

// The benchmarks run each route through edgecert's handler and through a
// naive handler written the way whoami's are (per-request hostname and
// interface enumeration, fmt, encoding/json, Header.Set, a byte-at-a-time
// generator), so one run gives the ratio. Both write into discardWriter,
// so the numbers are handler cost without the network.

func naiveIPs() []string {
	var ips []string
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP.String())
			}
		}
	}
	return ips
}

func naiveRoot(w http.ResponseWriter, r *http.Request) {
	host, _ := os.Hostname()
	fmt.Fprintln(w, "Hostname:", host)
	for _, ip := range naiveIPs() {
		fmt.Fprintln(w, "IP:", ip)
	}
	fmt.Fprintln(w, "RemoteAddr:", r.RemoteAddr)
	_ = r.Write(w)
}

func naiveAPI(w http.ResponseWriter, r *http.Request) {
	host, _ := os.Hostname()
	d := whoamiData{Hostname: host, IP: naiveIPs(), Headers: r.Header, URL: r.URL.RequestURI(),
		Host: r.Host, Method: r.Method, RemoteAddr: r.RemoteAddr}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(d)
}

func naiveBench(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Connection", "keep-alive")
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, "1")
}

// naiveReader generates the pattern one byte at a time.
type naiveReader struct{ size, cur int64 }

func (r *naiveReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.cur < r.size {
		c := patternCharset[r.cur%27]
		if r.cur == 0 || r.cur == r.size-1 {
			c = '|'
		}
		p[n] = c
		n++
		r.cur++
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func naiveData(w http.ResponseWriter, r *http.Request) {
	size, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	_, _ = io.Copy(w, &naiveReader{size: size})
}

func benchRoute(b *testing.B, h http.Handler, target string, body int64) {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("User-Agent", "bench/1.0")
	r.Header.Set("Accept", "*/*")
	w := newDiscardWriter()
	if body > 0 {
		b.SetBytes(body)
	}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code, w.n = 0, 0
		h.ServeHTTP(w, r)
	}
	if w.code != http.StatusOK {
		b.Fatalf("status %d", w.code)
	}
}

func benchPair(b *testing.B, target string, naive http.HandlerFunc, body int64) {
	h := newTestHandler(b, Options{Addrs: nil, Hostname: "bench-host"})
	h.addrs.list = interfaceAddrs // the real enumeration, as the naive handler does
	b.Run("edgecert", func(b *testing.B) { benchRoute(b, h, target, body) })
	b.Run("naive", func(b *testing.B) { benchRoute(b, naive, target, body) })
}

func BenchmarkBench(b *testing.B)   { benchPair(b, "/bench", naiveBench, 0) }
func BenchmarkRoot(b *testing.B)    { benchPair(b, "/", naiveRoot, 0) }
func BenchmarkAPI(b *testing.B)     { benchPair(b, "/api", naiveAPI, 0) }
func BenchmarkData1MB(b *testing.B) { benchPair(b, "/data?size=1048576", naiveData, 1<<20) }
func BenchmarkData10B(b *testing.B) { benchPair(b, "/data?size=10", naiveData, 0) }

// BenchmarkHTTP measures whole requests over loopback with a keep-alive
// client (client cost included), edgecert against the naive handlers
// behind a plain ServeMux.
func BenchmarkHTTP(b *testing.B) {
	h := newTestHandler(b, Options{Hostname: "bench-host"})
	h.addrs.list = interfaceAddrs
	naive := http.NewServeMux()
	naive.HandleFunc("/bench", naiveBench)
	naive.HandleFunc("/api", naiveAPI)
	naive.HandleFunc("/data", naiveData)
	naive.HandleFunc("/", naiveRoot)
	for _, route := range []struct{ name, target string }{
		{"bench", "/bench"}, {"root", "/"}, {"api", "/api"}, {"data1MB", "/data?size=1048576"},
	} {
		target := route.target
		for _, impl := range []struct {
			name string
			h    http.Handler
		}{{"edgecert", h}, {"naive", naive}} {
			b.Run(route.name+"/"+impl.name, func(b *testing.B) {
				srv := httptest.NewServer(impl.h)
				defer srv.Close()
				client := srv.Client()
				b.ReportAllocs()
				for b.Loop() {
					resp, err := client.Get(srv.URL + target)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		}
	}
}
