// Command idleconns opens N connections to a TLS server and holds them idle,
// for `make bench` to read the server's RSS per connection. Each connection
// finishes its handshake and one request first, so the server holds what it
// holds for a real idle keep-alive client (tls: one GET /bench over
// HTTP/1.1) or a real idle websocket (ws: the /echo upgrade plus one message
// echoed back). When all are open it prints "open N" and waits until its
// standard input closes, then closes them and exits.
//
// Usage: idleconns -kind tls|ws -n N https://127.0.0.1:PORT
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	kind := flag.String("kind", "tls", "tls (HTTP/1.1 keep-alive after one request) or ws (websocket after one echo)")
	n := flag.Int("n", 1000, "connections to open")
	flag.Parse()
	if flag.NArg() != 1 || (*kind != "tls" && *kind != "ws") {
		fmt.Fprintln(os.Stderr, "usage: idleconns -kind tls|ws -n N https://HOST:PORT")
		os.Exit(2)
	}
	u, err := url.Parse(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	open := openTLS
	if *kind == "ws" {
		open = openWS
	}
	conns := make([]io.Closer, *n)
	errs := make(chan error, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16) // bounded concurrency: no accept-queue overflow
	for i := range *n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := open(u.Host)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		fail(err)
	}
	fmt.Printf("open %d\n", *n)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// tlsConfig offers X25519 only, the key exchange wrk and curl (OpenSSL 3.0)
// negotiate with every server in the other rows: Go's default would offer
// X25519MLKEM768 as well, which the Go servers pick and nginx on OpenSSL
// 3.0 cannot, and whose 1.2 KiB key share a Go server keeps in its TLS
// buffers for the connection's life (about 2.7 KiB more per connection).
var tlsConfig = &tls.Config{
	InsecureSkipVerify: true, ServerName: "bench.test", NextProtos: []string{"http/1.1"},
	CurvePreferences: []tls.CurveID{tls.X25519},
}

func openTLS(addr string) (io.Closer, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tlsConfig)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /bench HTTP/1.1\r\nHost: bench.test\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("GET /bench: %s", resp.Status)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func openWS(addr string) (io.Closer, error) {
	d := websocket.Dialer{TLSClientConfig: tlsConfig, HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("wss://"+addr+"/echo", http.Header{"Host": {"bench.test"}})
	if err != nil {
		return nil, err
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		c.Close()
		return nil, err
	}
	if _, _, err := c.ReadMessage(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
	os.Exit(1)
}
