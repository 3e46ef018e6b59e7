package pebblerig

import (
	"bytes"
	"net/http"
	"strings"
	"time"

	"github.com/letsencrypt/pebble/v2/acme"
	"github.com/letsencrypt/pebble/v2/core"
	"github.com/letsencrypt/pebble/v2/db"
)

// Pebble v2.10.3's in-memory store has two lock-order faults that a busy
// test (many concurrent orders, a renewal that fails validation) can hit.
// The rig works around both in front of Pebble rather than patching it:
//
//   - Deadlock. New-order (FindValidAuthorization) and order polls
//     (GetOrderByID) hold the store's read lock and then take an
//     authorization's lock; the authorization handler holds the
//     authorization's lock and then takes the store's read lock to look up
//     the account. With a third request waiting to write the store, Go's
//     RWMutex queues the second reader behind the writer and all three wait
//     for good. Serialising Pebble's ACME handlers (apiMu) removes every
//     handler-against-handler cycle; the VA and the CA's issuance goroutine
//     only take the store's lock with no other lock held (or, for the VA's
//     replacement bookkeeping, the order's), which does not close a cycle
//     with a single handler.
//   - Data race. When a challenge fails, the VA marks the authorization
//     invalid, then (under the order's lock) clears IsReplaced on the order
//     the failed one replaced; new-order reads IsReplaced with no lock. A
//     client that learns of the failure from the authorization and orders
//     again at once races that write (the race detector reports it). Before
//     an invalid authorization is shown, the rig waits until the VA has
//     finished with its order (settleInvalid), which orders the write before
//     anything the client does next.
const (
	pathAuthzPrefix = "/authZ/"
	pathChalPrefix  = "/chalZ/"
	// settleWait bounds settleInvalid: an authorization can be invalid
	// without the VA having failed it (it expired), and then there is no
	// write to wait for.
	settleWait = time.Second
)

// serialized runs h one request at a time (apiMu) and, for authorization
// and challenge requests, settles an invalid authorization before the
// response leaves.
func (c *CA) serialized(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		settle := strings.HasPrefix(r.URL.Path, pathAuthzPrefix) || strings.HasPrefix(r.URL.Path, pathChalPrefix)
		if !settle {
			c.apiMu.Lock()
			defer c.apiMu.Unlock()
			h.ServeHTTP(w, r)
			return
		}
		bw := &bufferedWriter{header: w.Header()}
		c.apiMu.Lock()
		h.ServeHTTP(bw, r)
		c.apiMu.Unlock()
		settleInvalid(c.db, r.URL.Path)
		bw.flushTo(w)
	})
}

// settleInvalid waits, at most settleWait, until the order of the
// authorization named by path (an authorization or challenge URL) carries
// the VA's error, if that authorization is invalid.
func settleInvalid(mdb *db.MemoryStore, path string) {
	var authz *core.Authorization
	if id, ok := strings.CutPrefix(path, pathAuthzPrefix); ok {
		authz = mdb.GetAuthorizationByID(id)
	} else if id, ok := strings.CutPrefix(path, pathChalPrefix); ok {
		if ch := mdb.GetChallengeByID(id); ch != nil {
			ch.RLock()
			authz = ch.Authz
			ch.RUnlock()
		}
	}
	if authz == nil {
		return
	}
	authz.RLock()
	invalid, order := authz.Status == acme.StatusInvalid, authz.Order
	authz.RUnlock()
	if !invalid || order == nil {
		return
	}
	for deadline := time.Now().Add(settleWait); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		order.RLock()
		done := order.Error != nil
		order.RUnlock()
		if done {
			return
		}
	}
}

// bufferedWriter holds a response until flushTo; headers go straight to
// the real writer's map.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedWriter) flushTo(w http.ResponseWriter) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}
