package routes

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecert/edgecert/internal/poll"
)

// addrSource is a scripted Options.Addrs: each call returns the next list
// (the last one repeats) and can be made to block.
type addrSource struct {
	mu      sync.Mutex
	lists   [][]string
	errs    []error
	calls   atomic.Int32
	gate    chan struct{} // when non-nil, calls after the first wait on it
	entered chan int      // receives the call number as each call starts
}

func (s *addrSource) list() ([]string, error) {
	n := int(s.calls.Add(1))
	if s.entered != nil {
		s.entered <- n
	}
	if n > 1 && s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(n-1, len(s.lists)-1)
	var err error
	if n-1 < len(s.errs) {
		err = s.errs[n-1]
	}
	return s.lists[i], err
}

func ipLinesOf(h *Handler) string {
	body := get(h, "/").Body.String()
	var ips []string
	for _, line := range strings.Split(body, "\n") {
		if ip, ok := strings.CutPrefix(line, "IP: "); ok {
			ips = append(ips, ip)
		}
	}
	return strings.Join(ips, ",")
}

func TestAddrCacheFillsOnceAndReuses(t *testing.T) {
	src := &addrSource{lists: [][]string{{"10.0.0.1", "fe80::1"}}}
	h := newTestHandler(t, Options{Addrs: src.list, AddrRefresh: time.Hour})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if got := ipLinesOf(h); got != "10.0.0.1,fe80::1" {
				t.Errorf("IP lines %q", got)
			}
		})
	}
	wg.Wait()
	if rec := get(h, "/api"); !strings.Contains(rec.Body.String(), `"ip":["10.0.0.1","fe80::1"]`) {
		t.Errorf("/api = %s, want the cached list", rec.Body.String())
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("Addrs called %d times for 21 requests within AddrRefresh, want 1", got)
	}
}

// TestAddrCacheRefreshesInBackground: a stale list is served while one
// refresh runs; the request never waits for it; the new list follows.
func TestAddrCacheRefreshesInBackground(t *testing.T) {
	src := &addrSource{
		lists:   [][]string{{"10.0.0.1"}, {"10.0.0.2"}},
		gate:    make(chan struct{}),
		entered: make(chan int, 100),
	}
	h := newTestHandler(t, Options{Addrs: src.list, AddrRefresh: time.Hour})
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	h.addrs.now = func() time.Time { return time.Unix(0, clock.Load()) }

	if got := ipLinesOf(h); got != "10.0.0.1" {
		t.Fatalf("first list %q", got)
	}
	<-src.entered
	clock.Store(now.Add(2 * time.Hour).UnixNano()) // the list is now stale

	// The refresh blocks on gate; requests meanwhile get the old list
	// without waiting, and no second refresh starts.
	var once sync.Once
	release := func() { once.Do(func() { close(src.gate) }) }
	t.Cleanup(release)
	served := make(chan string, 30)
	go func() {
		for range 30 {
			served <- ipLinesOf(h)
		}
	}()
	for i := range 30 {
		select {
		case got := <-served:
			if got != "10.0.0.1" {
				t.Fatalf("request %d during refresh: %q, want the previous list", i, got)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("request %d blocked on the background refresh", i)
		}
	}
	select {
	case n := <-src.entered:
		if n != 2 {
			t.Fatalf("call %d started, want call 2", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no background refresh started")
	}
	if got := src.calls.Load(); got != 2 {
		t.Errorf("%d calls with one refresh blocked, want 2 (one in flight)", got)
	}
	release()

	poll.Until(t, 20*time.Second, "the refreshed list", func() bool { return ipLinesOf(h) == "10.0.0.2" })
	// Fresh again: no further calls.
	calls := src.calls.Load()
	for range 10 {
		ipLinesOf(h)
	}
	if got := src.calls.Load(); got != calls {
		t.Errorf("%d calls after the refresh, want %d", got, calls)
	}
}

func TestAddrCacheKeepsListOnError(t *testing.T) {
	src := &addrSource{
		lists: [][]string{{"10.0.0.1"}, nil, {"10.0.0.3"}},
		errs:  []error{nil, errors.New("netlink busy")},
	}
	h := newTestHandler(t, Options{Addrs: src.list, AddrRefresh: time.Hour})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	h.addrs.now = func() time.Time { return time.Unix(0, clock.Load()) }
	advance := func() { clock.Add(int64(2 * time.Hour)) }

	if got := ipLinesOf(h); got != "10.0.0.1" {
		t.Fatalf("first list %q", got)
	}
	advance()
	ipLinesOf(h) // starts the failing refresh
	waitCalls(t, src, 2)
	waitRefreshIdle(t, h)
	if got := ipLinesOf(h); got != "10.0.0.1" {
		t.Errorf("after a failed refresh: %q, want the previous list", got)
	}
	if got := src.calls.Load(); got != 2 {
		t.Errorf("%d calls right after a failed refresh, want 2 (no retry before AddrRefresh)", got)
	}
	advance()
	ipLinesOf(h)
	waitCalls(t, src, 3)
	poll.Until(t, 20*time.Second, "the list to recover after the error", func() bool { return ipLinesOf(h) == "10.0.0.3" })
}

func TestAddrCacheFirstFillError(t *testing.T) {
	src := &addrSource{lists: [][]string{nil}, errs: []error{errors.New("boom")}}
	h := newTestHandler(t, Options{Addrs: src.list})
	rec := get(h, "/")
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "IP:") {
		t.Errorf("with a failing first fill: %d %q, want 200 without IP lines", rec.Code, rec.Body.String())
	}
	if rec := get(h, "/api"); rec.Code != 200 || strings.Contains(rec.Body.String(), `"ip"`) {
		t.Errorf("/api with a failing first fill: %d %s", rec.Code, rec.Body.String())
	}
}

func waitCalls(t *testing.T, src *addrSource, n int32) {
	t.Helper()
	poll.Until(t, 20*time.Second, fmt.Sprintf("%d calls to Addrs", n), func() bool { return src.calls.Load() >= n })
}

func waitRefreshIdle(t *testing.T, h *Handler) {
	t.Helper()
	poll.Until(t, 20*time.Second, "the refresh to finish", func() bool { return !h.addrs.refreshing.Load() })
}

// TestInterfaceAddrs compares the default list with the stdlib's flat list
// (same addresses, interface order) and checks loopback is included.
func TestInterfaceAddrs(t *testing.T) {
	got, err := interfaceAddrs()
	if err != nil {
		t.Fatalf("interfaceAddrs: %v", err)
	}
	flat, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatalf("net.InterfaceAddrs: %v", err)
	}
	var want []string
	for _, a := range flat {
		if n, ok := a.(*net.IPNet); ok {
			want = append(want, n.IP.String())
		}
	}
	gotSorted, wantSorted := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(gotSorted, wantSorted) {
		t.Errorf("interfaceAddrs = %q, want the addresses %q", got, want)
	}
	if !slices.Contains(got, "127.0.0.1") {
		t.Errorf("interfaceAddrs = %q, want loopback included", got)
	}

	h, err := New(Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	rec := get(h, "/")
	for _, ip := range got {
		if !strings.Contains(rec.Body.String(), "IP: "+ip+"\n") {
			t.Errorf("/ lacks %q:\n%s", "IP: "+ip, rec.Body.String())
		}
	}
}
