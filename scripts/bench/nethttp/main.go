// Command nethttp is the bare net/http TLS server `make bench` measures
// edgecert against: what traefik/whoami is (http.ListenAndServeTLS, no
// timeouts, no limits, no certificate store), with whoami's /bench handler
// shape. It exists only as a baseline; never expose it.
//
// Usage: nethttp -addr 127.0.0.1:PORT -cert cert.pem -key key.pem
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "listen address")
	cert := flag.String("cert", "cert.pem", "certificate chain (PEM)")
	key := flag.String("key", "key.pem", "private key (PEM)")
	flag.Parse()
	mux := http.NewServeMux()
	// whoami's benchHandler.
	mux.HandleFunc("/bench", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "keep-alive")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "1")
	})
	log.Fatal(http.ListenAndServeTLS(*addr, *cert, *key, mux))
}
