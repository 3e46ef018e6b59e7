package issuer

// This file is edgecert's only hand-written JWS, fenced here: x/crypto/acme
// cannot send the ARI "replaces" field of a new order (RFC 9773 section 5;
// golang/go#60958). Delete the file, and call acme.Client.AuthorizeOrder
// with a replaces option in createOrder, once x/crypto/acme has one.
// Everything else (account, authorizations, challenges, finalize,
// certificates, the order read back after this POST) goes through
// acme.Client.
//
// Nonces: acme.Client keeps its nonce pool unexported, so none can be taken
// from it; this file asks newNonce once and then uses the Replay-Nonce of
// each answer (RFC 8555 section 7.2). badNonce is retried by the same policy
// as acme.Client's requests (badNonceRetry in http.go). Errors are returned
// without a prefix: createOrder adds "issuer: new order: " like the rest.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // hashes for JWS
	_ "crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"golang.org/x/crypto/acme"
)

// newOrderReplaces creates an order carrying the ARI "replaces" field (RFC
// 9773 section 5), which x/crypto/acme cannot send: one JWS-signed POST to
// newOrder with the account key and KID, retried on badNonce with the nonce
// the error carried. The order is then read back with x/crypto (GetOrder),
// so the rest of the flow is the same as for AuthorizeOrder. Error answers
// are *acme.Error.
func (s *session) newOrderReplaces(ctx context.Context, hc *http.Client, domains []string, profile, replaces string) (*acme.Order, error) {
	payload, err := newOrderPayload(domains, profile, replaces)
	if err != nil {
		return nil, err
	}
	var nonce string
	for attempt := 0; ; attempt++ {
		if nonce == "" {
			if nonce, err = fetchNonce(ctx, hc, s.dir.NewNonce); err != nil {
				return nil, fmt.Errorf("newNonce: %w", err)
			}
		}
		var loc string
		loc, nonce, err = s.postNewOrder(ctx, hc, nonce, payload)
		if err == nil {
			return s.client.GetOrder(ctx, loc)
		}
		if !isProblem(err, ":badNonce") {
			return nil, err
		}
		delay, retry := badNonceRetry(attempt + 1)
		if !retry {
			return nil, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// newOrderPayload is the JSON newOrder request for domains, with the
// profile (omitted when empty) and the ARI "replaces" CertID.
func newOrderPayload(domains []string, profile, replaces string) ([]byte, error) {
	type ident struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	req := struct {
		Identifiers []ident `json:"identifiers"`
		Profile     string  `json:"profile,omitempty"`
		Replaces    string  `json:"replaces"`
	}{Profile: profile, Replaces: replaces}
	for _, d := range domains {
		req.Identifiers = append(req.Identifiers, ident{"dns", d})
	}
	return json.Marshal(req)
}

// postNewOrder POSTs payload to newOrder, signed with nonce, and returns the
// created order's URL and the answer's Replay-Nonce (also on error, for the
// next attempt). An error answer is an *acme.Error.
func (s *session) postNewOrder(ctx context.Context, hc *http.Client, nonce string, payload []byte) (loc, next string, err error) {
	body, err := signJWS(s.key, s.kid, nonce, s.dir.NewOrder, payload)
	if err != nil {
		return "", "", err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.dir.NewOrder, bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	hreq.Header.Set("Content-Type", "application/jose+json")
	hreq.Header.Set("User-Agent", userAgent)
	res, err := hc.Do(hreq)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	next = res.Header.Get("Replay-Nonce")
	if res.StatusCode != http.StatusCreated {
		return "", next, problemError(res)
	}
	if loc = res.Header.Get("Location"); loc == "" {
		return "", next, errors.New("newOrder: no Location in the answer")
	}
	return loc, next, nil
}

func fetchNonce(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", userAgent)
	res, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	if n := res.Header.Get("Replay-Nonce"); n != "" {
		return n, nil
	}
	if res.StatusCode >= 300 {
		return "", problemError(res)
	}
	return "", errors.New("no Replay-Nonce in the answer")
}

// signJWS returns the flattened JSON serialisation of payload signed with
// key, protected header {alg, kid, nonce, url} (RFC 8555 section 6.2).
func signJWS(key crypto.Signer, kid, nonce, url string, payload []byte) ([]byte, error) {
	alg, hash, size, err := jwsAlgorithm(key.Public())
	if err != nil {
		return nil, err
	}
	protected, err := json.Marshal(struct {
		Alg   string `json:"alg"`
		KID   string `json:"kid"`
		Nonce string `json:"nonce"`
		URL   string `json:"url"`
	}{alg, kid, nonce, url})
	if err != nil {
		return nil, err
	}
	b64 := base64.RawURLEncoding
	signingInput := b64.EncodeToString(protected) + "." + b64.EncodeToString(payload)
	h := hash.New()
	h.Write([]byte(signingInput))
	sig, err := key.Sign(rand.Reader, h.Sum(nil), hash)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if size > 0 { // ECDSA: ASN.1 (r, s) -> fixed-size r||s (RFC 7518 section 3.4)
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(sig, &rs); err != nil {
			return nil, fmt.Errorf("sign: %w", err)
		}
		sig = make([]byte, 2*size)
		rs.R.FillBytes(sig[:size])
		rs.S.FillBytes(sig[size:])
	}
	return json.Marshal(struct {
		Protected string `json:"protected"`
		Payload   string `json:"payload"`
		Signature string `json:"signature"`
	}{b64.EncodeToString(protected), b64.EncodeToString(payload), b64.EncodeToString(sig)})
}

// jwsAlgorithm returns the JWS alg, hash and (for ECDSA) the size of r and s.
func jwsAlgorithm(pub crypto.PublicKey) (string, crypto.Hash, int, error) {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return "ES256", crypto.SHA256, 32, nil
		case elliptic.P384():
			return "ES384", crypto.SHA384, 48, nil
		}
	case *rsa.PublicKey:
		return "RS256", crypto.SHA256, 0, nil
	}
	return "", 0, 0, fmt.Errorf("unsupported account key %T", pub)
}
