package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/acme"
)

// fakeNewOrderCA is a minimal ACME server for newOrderReplaces: it checks
// the JWS (alg, kid, nonce, url, signature) and answers badNonce the first
// badNonces times.
type fakeNewOrderCA struct {
	t         *testing.T
	pub       crypto.PublicKey
	kid       string
	badNonces int
	refuse    bool // answer newOrder with 409 alreadyReplaced

	mu      sync.Mutex // guards the fields below
	nonces  map[string]bool
	n       int
	posts   int
	payload map[string]any
}

func (f *fakeNewOrderCA) nonce(w http.ResponseWriter) {
	f.mu.Lock()
	f.n++
	n := fmt.Sprintf("nonce-%d", f.n)
	f.nonces[n] = true
	f.mu.Unlock()
	w.Header().Set("Replay-Nonce", n)
}

func (f *fakeNewOrderCA) handler(base func() string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dir", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"newNonce": base() + "/nonce", "newOrder": base() + "/order", "newAccount": base() + "/acct"})
	})
	mux.HandleFunc("HEAD /nonce", func(w http.ResponseWriter, r *http.Request) { f.nonce(w) })
	mux.HandleFunc("POST /order", func(w http.ResponseWriter, r *http.Request) {
		hdr, payload, ok := f.verify(w, r, base()+"/order")
		if !ok {
			return
		}
		f.mu.Lock()
		f.posts++
		bad := f.posts <= f.badNonces
		f.payload = payload
		f.mu.Unlock()
		f.nonce(w)
		switch {
		case bad:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"type":"urn:ietf:params:acme:error:badNonce","detail":"try again"}`)
		case f.refuse:
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"type":"urn:ietf:params:acme:error:alreadyReplaced","detail":"no"}`)
		default:
			if hdr["kid"] != f.kid {
				f.t.Errorf("kid = %v, want %s", hdr["kid"], f.kid)
			}
			w.Header().Set("Location", base()+"/o/1")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"status":"pending"}`)
		}
	})
	mux.HandleFunc("POST /o/1", func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := f.verify(w, r, base()+"/o/1"); !ok {
			return
		}
		f.nonce(w)
		io.WriteString(w, `{"status":"pending","identifiers":[{"type":"dns","value":"example.test"}],"authorizations":["`+base()+`/a/1"],"finalize":"`+base()+`/f/1","profile":"short"}`)
	})
	return mux
}

// verify checks the JWS and returns its protected header and payload.
func (f *fakeNewOrderCA) verify(w http.ResponseWriter, r *http.Request, url string) (map[string]any, map[string]any, bool) {
	var jws struct{ Protected, Payload, Signature string }
	body, _ := io.ReadAll(r.Body)
	fail := func(format string, args ...any) (map[string]any, map[string]any, bool) {
		f.t.Errorf(format, args...)
		http.Error(w, "bad request", http.StatusBadRequest)
		return nil, nil, false
	}
	if err := json.Unmarshal(body, &jws); err != nil {
		return fail("body: %v", err)
	}
	b64 := base64.RawURLEncoding
	ph, _ := b64.DecodeString(jws.Protected)
	var hdr map[string]any
	if err := json.Unmarshal(ph, &hdr); err != nil {
		return fail("protected: %v", err)
	}
	if hdr["url"] != url {
		return fail("url = %v, want %s", hdr["url"], url)
	}
	nonce, _ := hdr["nonce"].(string)
	f.mu.Lock()
	valid := f.nonces[nonce]
	delete(f.nonces, nonce)
	f.mu.Unlock()
	if !valid {
		return fail("nonce %q was not issued or was reused", nonce)
	}
	sig, _ := b64.DecodeString(jws.Signature)
	input := []byte(jws.Protected + "." + jws.Payload)
	alg, _ := hdr["alg"].(string)
	switch pub := f.pub.(type) {
	case *ecdsa.PublicKey:
		h, size := crypto.SHA256, 32
		if pub.Curve == elliptic.P384() {
			h, size = crypto.SHA384, 48
		}
		want := map[crypto.Hash]string{crypto.SHA256: "ES256", crypto.SHA384: "ES384"}[h]
		d := h.New()
		d.Write(input)
		if alg != want || len(sig) != 2*size || !ecdsa.Verify(pub, d.Sum(nil), new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])) {
			return fail("signature with alg %s (len %d) does not verify, want %s", alg, len(sig), want)
		}
	case *rsa.PublicKey:
		d := crypto.SHA256.New()
		d.Write(input)
		if alg != "RS256" || rsa.VerifyPKCS1v15(pub, crypto.SHA256, d.Sum(nil), sig) != nil {
			return fail("RS256 signature does not verify (alg %s)", alg)
		}
	}
	var payload map[string]any
	if jws.Payload != "" {
		pl, _ := b64.DecodeString(jws.Payload)
		if err := json.Unmarshal(pl, &payload); err != nil {
			return fail("payload: %v", err)
		}
	}
	return hdr, payload, true
}

func TestNewOrderReplaces(t *testing.T) {
	ecP256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecP384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name      string
		key       crypto.Signer
		badNonces int
		refuse    bool
		wantErr   string // problem type suffix; "" for success
		wantPosts int
	}{
		{"p256", ecP256, 0, false, "", 1},
		{"p384 after two badNonce", ecP384, 2, false, "", 3},
		{"rsa", rsaKey, 1, false, "", 2},
		{"refused", ecP256, 0, true, ":alreadyReplaced", 1},
		{"badNonce forever", ecP256, 100, false, ":badNonce", maxBadNonce + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeNewOrderCA{t: t, pub: tc.key.Public(), kid: "https://ca.test/acct/7", badNonces: tc.badNonces, refuse: tc.refuse, nonces: map[string]bool{}}
			var srv *httptest.Server
			srv = httptest.NewServer(f.handler(func() string { return srv.URL }))
			defer srv.Close()
			s := &session{
				client: &acme.Client{Key: tc.key, DirectoryURL: srv.URL + "/dir", HTTPClient: srv.Client(), KID: acme.KeyID(f.kid), UserAgent: userAgent},
				key:    tc.key,
				kid:    f.kid,
				dir:    &directory{NewNonce: srv.URL + "/nonce", NewOrder: srv.URL + "/order"},
			}
			o, err := s.newOrderReplaces(t.Context(), srv.Client(), []string{"example.test", "*.example.test"}, "short", "aki.serial")
			if tc.wantErr != "" {
				if !isProblem(err, tc.wantErr) {
					t.Fatalf("got %v, want an *acme.Error of type %s", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("newOrderReplaces: %v", err)
			} else if o.URI != srv.URL+"/o/1" || o.Profile != "short" || o.FinalizeURL != srv.URL+"/f/1" {
				t.Errorf("order = %+v, want URI %s/o/1 read back with GetOrder", o, srv.URL)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.posts != tc.wantPosts {
				t.Errorf("newOrder POSTs = %d, want %d", f.posts, tc.wantPosts)
			}
			ids, _ := json.Marshal(f.payload["identifiers"])
			if f.payload["replaces"] != "aki.serial" || f.payload["profile"] != "short" || !strings.Contains(string(ids), `"value":"*.example.test"`) {
				t.Errorf("payload = %v, want replaces, profile and both identifiers", f.payload)
			}
		})
	}
}

// TestBadNonceOnePolicy: acme.Client's retries (retryBackoff) and the
// hand-written newOrderReplaces give up after the same number of badNonce
// retries.
func TestBadNonceOnePolicy(t *testing.T) {
	bad := &http.Response{StatusCode: http.StatusBadRequest}
	for n := 1; n <= maxBadNonce; n++ {
		d, ok := badNonceRetry(n)
		if !ok || d <= 0 || retryBackoff(n, nil, bad) <= 0 {
			t.Fatalf("retry %d: badNonceRetry = %v, %v, retryBackoff = %v; want a short wait", n, d, ok, retryBackoff(n, nil, bad))
		}
	}
	if _, ok := badNonceRetry(maxBadNonce + 1); ok || retryBackoff(maxBadNonce+1, nil, bad) != 0 {
		t.Errorf("retry %d still allowed; want both to give up after %d", maxBadNonce+1, maxBadNonce)
	}
}
