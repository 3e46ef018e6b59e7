package daemon

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/poll"
)

// notifySocket listens where systemd would and collects every datagram.
type notifySocket struct {
	mu   sync.Mutex // guards msgs
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	ns := &notifySocket{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	return ns
}

func (ns *notifySocket) count(prefix string) int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := 0
	for _, m := range ns.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// TestSystemdProtocol checks what systemd sees: READY=1 with a STATUS once
// serving, watchdog pings at half WATCHDOG_USEC from the main loop,
// RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 at shutdown —
// and that TLS sessions resume.
func TestSystemdProtocol(t *testing.T) {
	r := newRig(t, pebblerig.Options{Profiles: map[string]time.Duration{"default": 24 * time.Hour}})
	ns := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	d := start(t, r.config(t, t.TempDir()))

	poll.Until(t, 5*time.Second, "READY=1", func() bool { return ns.count("READY=1\nSTATUS=serving 1 certificate(s)") == 1 })
	poll.Until(t, 5*time.Second, "three watchdog pings", func() bool { return ns.count("WATCHDOG=1") >= 3 })

	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	<-d.reloaded
	poll.Until(t, 5*time.Second, "RELOADING=1 then READY=1", func() bool {
		return ns.count("RELOADING=1") == 1 && ns.count("READY=1") == 2
	})

	cache := tls.NewLRUClientSessionCache(4)
	resumed := false
	for range 3 {
		c, err := tls.Dial("tcp", d.addrs["https"], &tls.Config{ServerName: "example.test", RootCAs: r.ca.IssuerRoots(), ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		// TLS 1.3 tickets arrive after the handshake: read to receive them.
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		c.Read(make([]byte, 1))
		resumed = resumed || c.ConnectionState().DidResume
		c.Close()
	}
	if !resumed {
		t.Error("no TLS session was resumed; want session resumption on")
	}

	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	if ns.count("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 sent %d times; want once", ns.count("STOPPING=1"))
	}
}
