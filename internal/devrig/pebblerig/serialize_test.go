package pebblerig

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// TestConcurrentOrdersAndPolls drives the request mix that deadlocks an
// unserialised Pebble v2.10.3 (serialize.go): new orders (store read lock,
// then authorization locks), authorization polls (authorization lock, then
// the store's read lock) and store writes, from many clients at once. Every
// client must finish its rounds. Without serialisation this hangs within a
// few seconds (seen every run: the test binary's timeout then dumps the
// goroutines blocked in FindValidAuthorization and the authorization
// handler); the rig's Close cannot return while handlers are deadlocked, so
// the failure is the package timeout, not the 60 s bound.
func TestConcurrentOrdersAndPolls(t *testing.T) {
	c, _ := startRig(t, Options{AuthzReuse: 100})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &acme.Client{Key: key, DirectoryURL: c.DirectoryURL(), HTTPClient: c.HTTPClient(),
		RetryBackoff: func(int, *http.Request, *http.Response) time.Duration { return time.Millisecond }}
	if _, err := cl.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Fatalf("Register: %v", err)
	}
	const clients, rounds = 12, 15
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			for r := range rounds {
				name := fmt.Sprintf("c%d-%d.rig.test", i, r%3)
				o, err := cl.AuthorizeOrder(ctx, acme.DomainIDs(name, "*."+name))
				if err != nil {
					errs <- fmt.Errorf("AuthorizeOrder: %w", err)
					return
				}
				for _, u := range o.AuthzURLs {
					if _, err := cl.GetAuthorization(ctx, u); err != nil {
						errs <- fmt.Errorf("GetAuthorization: %w", err)
						return
					}
				}
				if _, err := cl.GetOrder(ctx, o.URI); err != nil {
					errs <- fmt.Errorf("GetOrder: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
