package routes

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// addrSnapshot is one immutable reading of the address list, with the two
// renderings the handlers need precomputed.
type addrSnapshot struct {
	at      time.Time
	ips     []string
	ipLines []byte // "IP: a\nIP: b\n" for /
	ipJSON  []byte // `"ip":["a","b"]` for /api; empty when there is no address
}

func newAddrSnapshot(ips []string, at time.Time) *addrSnapshot {
	s := &addrSnapshot{at: at, ips: ips}
	for _, ip := range ips {
		s.ipLines = append(s.ipLines, "IP: "...)
		s.ipLines = append(s.ipLines, ip...)
		s.ipLines = append(s.ipLines, '\n')
	}
	if len(ips) > 0 {
		s.ipJSON = append(s.ipJSON, `"ip":[`...)
		for i, ip := range ips {
			if i > 0 {
				s.ipJSON = append(s.ipJSON, ',')
			}
			s.ipJSON = appendJSONString(s.ipJSON, ip)
		}
		s.ipJSON = append(s.ipJSON, ']')
	}
	return s
}

// addrCache serves the interface address list from memory. The first get
// fills it synchronously; afterwards a get that finds the list older than
// refresh starts one background refresh and returns the current list
// without waiting. A refresh that fails keeps the previous list (and is
// retried after another refresh period).
//
// The refresh goroutine does one bounded enumeration and exits; no
// goroutine outlives it, so the cache needs no context or Close.
type addrCache struct {
	list    func() ([]string, error)
	refresh time.Duration
	log     *slog.Logger
	now     func() time.Time // time.Now; replaced by tests

	cur atomic.Pointer[addrSnapshot]
	// fillMu serialises the first, synchronous fill so that concurrent
	// first requests enumerate once.
	fillMu sync.Mutex
	// refreshing is set while a background refresh is in flight.
	refreshing atomic.Bool
}

func newAddrCache(list func() ([]string, error), refresh time.Duration, log *slog.Logger) *addrCache {
	return &addrCache{list: list, refresh: refresh, log: log, now: time.Now}
}

// get returns the current snapshot, never nil.
func (c *addrCache) get() *addrSnapshot {
	s := c.cur.Load()
	if s == nil {
		return c.fill()
	}
	if c.now().Sub(s.at) >= c.refresh && c.refreshing.CompareAndSwap(false, true) {
		go c.refreshAsync(s)
	}
	return s
}

func (c *addrCache) fill() *addrSnapshot {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	if s := c.cur.Load(); s != nil {
		return s
	}
	ips, err := c.list()
	if err != nil {
		c.log.Warn("routes.addrs.refresh_failed", "err", err)
		ips = nil
	}
	s := newAddrSnapshot(ips, c.now())
	c.cur.Store(s)
	return s
}

func (c *addrCache) refreshAsync(old *addrSnapshot) {
	defer c.refreshing.Store(false)
	ips, err := c.list()
	if err != nil {
		c.log.Warn("routes.addrs.refresh_failed", "err", err, "kept", len(old.ips))
		c.cur.Store(&addrSnapshot{at: c.now(), ips: old.ips, ipLines: old.ipLines, ipJSON: old.ipJSON})
		return
	}
	c.cur.Store(newAddrSnapshot(ips, c.now()))
}

// interfaceAddrs lists the address of every network interface, IPv4 and
// IPv6, loopback and link-local included, in interface order.
func interfaceAddrs() ([]string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("routes: listing interfaces: %w", err)
	}
	var ips []string
	for _, iface := range ifaces {
		addrs, err := iface.Addrs()
		if err != nil {
			return nil, fmt.Errorf("routes: addresses of %s: %w", iface.Name, err)
		}
		for _, a := range addrs {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			if ip != nil {
				ips = append(ips, ip.String())
			}
		}
	}
	return ips, nil
}
