package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

func TestReapEvery(t *testing.T) {
	for _, tc := range []struct{ head, idle, want time.Duration }{
		{10 * time.Second, 120 * time.Second, 5 * time.Second},
		{120 * time.Second, 10 * time.Second, 5 * time.Second},
		{0, 120 * time.Second, 60 * time.Second},
		{10 * time.Second, 0, 5 * time.Second},
		{0, 0, 0},
	} {
		if got := reapEvery(tc.head, tc.idle); got != tc.want {
			t.Errorf("reapEvery(%v, %v) = %v; want %v", tc.head, tc.idle, got, tc.want)
		}
	}
}

func TestExpired(t *testing.T) {
	const head, idle = 10 * time.Second, 120 * time.Second
	at := func(d time.Duration, phase int64) int64 { return int64(d)<<phaseBits | phase }
	for _, tc := range []struct {
		name  string
		state int64
		now   time.Duration
		want  bool
	}{
		{"head within", at(time.Second, phaseHead), 11 * time.Second, false},
		{"head past", at(time.Second, phaseHead), 11*time.Second + 1, true},
		{"idle within", at(time.Second, phaseIdle), 121 * time.Second, false},
		{"idle past", at(time.Second, phaseIdle), 121*time.Second + 1, true},
		{"busy never", at(0, phaseBusy), time.Hour, false},
		{"off never", at(0, phaseOff), time.Hour, false},
		{"expired not again", at(0, phaseExpired), time.Hour, false},
	} {
		if got := expired(tc.state, tc.now, head, idle); got != tc.want {
			t.Errorf("%s: expired = %v; want %v", tc.name, got, tc.want)
		}
	}
	if expired(at(0, phaseHead), time.Hour, 0, idle) || expired(at(0, phaseIdle), time.Hour, head, 0) {
		t.Error("a zero bound expired a connection")
	}
}

// TestReaper: on a connection with no buffer (net.Pipe) and fake time, a
// read blocked in the head or idle phase fails with a timeout between its
// bound and 1.5× it, and not before; bytes read while idle start a head;
// a busy or off connection (a handler running, HTTP/2, a websocket) is
// never cut; and a keep-alive client whose requests each arrive quickly is
// never cut, however long it stays.
func TestReaper(t *testing.T) {
	const head, idle = 400 * time.Millisecond, 2 * time.Second
	// start returns a registered connection in phase and a channel that
	// gets the result of one read from it.
	start := func(t *testing.T, l *limitListener, phase int64) (*progressConn, net.Conn) {
		srv, cli := net.Pipe()
		t.Cleanup(func() { srv.Close(); cli.Close() })
		c := &progressConn{Conn: srv, l: l, timeout: time.Minute}
		c.state.Store(l.stamp(phase))
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		return c, cli
	}
	read := func(c net.Conn) chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			ch <- err
		}()
		return ch
	}
	// failedBy reports whether the read has failed with a timeout after
	// waiting d more.
	failedBy := func(t *testing.T, ch chan error, d time.Duration) bool {
		t.Helper()
		time.Sleep(d)
		synctest.Wait()
		select {
		case err := <-ch:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read failed with %v; want a timeout", err)
			}
			return true
		default:
			return false
		}
	}
	bubble := func(t *testing.T, f func(t *testing.T, l *limitListener)) {
		synctest.Test(t, func(t *testing.T) {
			lim := defaultLimits()
			lim.HeaderTimeout, lim.IdleTimeout = head, idle
			l := newLimitListener(nil, lim, slog.New(slog.DiscardHandler))
			go l.reap(reapEvery(head, idle))
			defer close(l.done)
			f(t, l)
		})
	}
	for _, tc := range []struct {
		name  string
		phase int64
		bound time.Duration
	}{{"head", phaseHead, head}, {"idle", phaseIdle, idle}} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, l *limitListener) {
				c, _ := start(t, l, tc.phase)
				ch := read(c)
				if failedBy(t, ch, tc.bound-time.Millisecond) {
					t.Fatalf("read cut before the bound %v", tc.bound)
				}
				if !failedBy(t, ch, tc.bound/2+2*time.Millisecond) {
					t.Fatalf("read still blocked after 1.5 × %v", tc.bound)
				}
				if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("read after the expiry: %v; want a timeout", err)
				}
			})
		})
	}
	t.Run("bytes while idle start a head", func(t *testing.T) {
		bubble(t, func(t *testing.T, l *limitListener) {
			c, cli := start(t, l, phaseIdle)
			time.Sleep(idle - head) // most of the idle bound used up
			go cli.Write([]byte("GE"))
			if _, err := c.Read(make([]byte, 2)); err != nil {
				t.Fatal(err)
			}
			ch := read(c) // the rest of the head never comes
			if failedBy(t, ch, head-time.Millisecond) {
				t.Fatal("head cut before HeaderTimeout")
			}
			if !failedBy(t, ch, head/2+2*time.Millisecond) {
				t.Fatal("head still open after 1.5 × HeaderTimeout")
			}
		})
	})
	for _, phase := range []int64{phaseBusy, phaseOff} {
		t.Run(fmt.Sprintf("phase %d never cut", phase), func(t *testing.T) {
			bubble(t, func(t *testing.T, l *limitListener) {
				c, _ := start(t, l, phase)
				ch := read(c)
				if failedBy(t, ch, 10*idle) {
					t.Fatal("read cut")
				}
				c.setPhase(phaseIdle)
				if phase == phaseOff && c.state.Load()&phaseMask != phaseOff {
					t.Fatal("an off connection left phase off")
				}
			})
		})
	}
	t.Run("keep-alive client", func(t *testing.T) {
		bubble(t, func(t *testing.T, l *limitListener) {
			c, cli := start(t, l, phaseIdle)
			for range 50 { // 50 × 0.6 × HeaderTimeout: 30 s in all, 15 idle bounds
				time.Sleep(head * 6 / 10)
				go cli.Write([]byte("G"))
				if _, err := c.Read(make([]byte, 1)); err != nil {
					t.Fatalf("request cut: %v", err)
				}
				c.setPhase(phaseBusy) // the head is read: http.StateActive
				c.setPhase(phaseIdle) // response sent: http.StateIdle
			}
		})
	})
}

// TestReadBoundsSpareServedRequests: over real HTTP/1.1 with HeaderTimeout
// and IdleTimeout short, a handler that runs far longer than both (/?wait=)
// is not cut, and a keep-alive connection serves requests spread over many
// bounds.
func TestReadBoundsSpareServedRequests(t *testing.T) {
	lim := testLimits()
	lim.IdleTimeout = time.Second
	s := startLimitServer(t, lim)
	c := s.dialTLS(t, "http/1.1")
	br := bufio.NewReader(c)
	get := func(path string) {
		t.Helper()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a.example.test\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
	}
	get("/?wait=" + (2 * lim.IdleTimeout).String()) // both bounds passed 1.5× over

	for range 10 {
		time.Sleep(lim.HeaderTimeout / 3)
		get("/bench")
	}
}
