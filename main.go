// Command edgecert is a certificate-managing edge daemon: it obtains TLS
// certificates by ACME DNS-01 on Route 53, keeps them in a crash-safe store,
// hot-reloads them, and serves the traefik/whoami routes over HTTPS.
// See the README and package daemon.
package main

import (
	"os"

	"github.com/edgecert/edgecert/daemon"
)

func main() {
	os.Exit(daemon.Main(os.Args[1:], os.Stdout, os.Stderr))
}
