package attack

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// normalTimeout bounds one request of the normal client: a request that
// takes longer counts as failed.
const normalTimeout = 30 * time.Second

// Normal is a well-behaved client that makes requests, alternating
// HTTP/2 and HTTP/1.1 on keep-alive connections, with a pause between
// them, until Stop. Start one per measurement.
type Normal struct {
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex // guards lat and errs
	lat  []time.Duration
	errs []string
}

// Stats are what a normal client saw.
type Stats struct {
	N        int           // requests that succeeded
	P50, P99 time.Duration // of the successful requests' latencies
	Max      time.Duration
	Errs     []string // the failures, in order
}

// StartNormal starts a normal client of tg from the local address from
// ("" for any) that GETs path (expecting 200) every pause. Its first
// request is made at once, so Stop always sees at least one.
func StartNormal(tg Target, from, path string, pause time.Duration) *Normal {
	n := &Normal{stop: make(chan struct{}), done: make(chan struct{})}
	clients := []*http.Client{tg.httpClient(from, true), tg.httpClient(from, false)}
	url := "https://" + tg.ServerName + path
	go func() {
		defer close(n.done)
		defer clients[0].CloseIdleConnections()
		defer clients[1].CloseIdleConnections()
		for i := 0; ; i++ {
			if i > 0 {
				select {
				case <-n.stop:
					return
				case <-time.After(pause):
				}
			}
			start := time.Now()
			err := getOK(clients[i%2], url)
			n.mu.Lock()
			if err != nil {
				n.errs = append(n.errs, err.Error())
			} else {
				n.lat = append(n.lat, time.Since(start))
			}
			n.mu.Unlock()
		}
	}()
	return n
}

// httpClient is an HTTP/2 (h2) or HTTP/1.1-only client that sends every
// request to tg.Addr from the address from.
func (tg Target) httpClient(from string, h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   tg.tlsConfig(),
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			if from != "" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
			}
			return d.DialContext(ctx, network, tg.Addr)
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: normalTimeout}
}

func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// Count is the number of requests done so far, failed or not.
func (n *Normal) Count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.lat) + len(n.errs)
}

// Stop waits for the request in flight, stops the client and returns
// what it saw. Call it once.
func (n *Normal) Stop() Stats {
	close(n.stop)
	<-n.done
	n.mu.Lock()
	defer n.mu.Unlock()
	return statsOf(n.lat, n.errs)
}

// statsOf computes Stats; a percentile is the latency at index
// len*p/100 of the sorted latencies (nearest rank, rounded down).
func statsOf(lat []time.Duration, errs []string) Stats {
	lat = slices.Clone(lat)
	slices.Sort(lat)
	s := Stats{N: len(lat), Errs: slices.Clone(errs)}
	if len(lat) > 0 {
		s.P50, s.P99, s.Max = lat[len(lat)*50/100], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return s
}
