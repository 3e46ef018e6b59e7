package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/crypto/acme"

	"github.com/edgecert/edgecert/internal/devrig/authdns/authdnstest"
	"github.com/edgecert/edgecert/internal/devrig/fakeroute53"
	"github.com/edgecert/edgecert/internal/devrig/pebblerig"
	"github.com/edgecert/edgecert/internal/devrig/s3rig"
)

// GET /counters reports ACME orders with and without "replaces", Route 53
// changes and S3 requests by method and client, from the real services
// driven by the unmodified clients.
func TestCounters(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dns := authdnstest.Start(t)
	ca, err := pebblerig.Start(pebblerig.Options{DNSAddr: dns.Addr(), Profiles: map[string]time.Duration{"p": time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	r53 := fakeroute53.New(fakeroute53.Options{DNS: dns})
	defer r53.Close()
	r53.AddZone(fakeroute53.Zone{ID: "Z0TEST", Name: "rig.test", NameServers: []string{"ns1.rig.invalid"}})
	r53Srv := httptest.NewServer(r53)
	defer r53Srv.Close()
	s3srv, err := s3rig.New(s3rig.Options{Buckets: []string{"fleet"}})
	if err != nil {
		t.Fatal(err)
	}
	s3Srv := httptest.NewServer(s3srv)
	defer s3Srv.Close()
	admin := httptest.NewServer(rigServices{ca: ca, r53: r53, s3: s3srv}.adminHandler())
	defer admin.Close()

	// ACME: one accepted order without replaces, and one newOrder carrying
	// replaces that Pebble refuses (no valid signature): counted all the same.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &acme.Client{Key: key, DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient()}
	if _, err := cl.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AuthorizeOrder(ctx, acme.DomainIDs("rig.test"), acme.WithOrderIssuanceProfile("p")); err != nil {
		t.Fatal(err)
	}
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"identifiers":[{"type":"dns","value":"rig.test"}],"replaces":"aaaa.bbbb"}`))
	body := `{"protected":"e30","payload":"` + payload + `","signature":"AA"}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(ca.DirectoryURL(), "/dir")+"/order-plz", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/jose+json")
	req.Header.Set("User-Agent", "devrig-test")
	res, err := ca.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	// Route 53: one change.
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test", "")}
	rc := route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(r53Srv.URL) })
	_, err = rc.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String("Z0TEST"),
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{
			Action: r53types.ChangeActionUpsert,
			ResourceRecordSet: &r53types.ResourceRecordSet{
				Name: aws.String("_acme-challenge.rig.test."), Type: r53types.RRTypeTxt, TTL: aws.Int64(60),
				ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(`"v"`)}},
			},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}

	// S3: a PUT and two HEADs.
	sc := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(s3Srv.URL); o.UsePathStyle = true })
	if _, err := sc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("fleet"), Key: aws.String("k"), Body: bytes.NewReader([]byte("v"))}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := sc.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("fleet"), Key: aws.String("k")}); err != nil {
			t.Fatal(err)
		}
	}

	res, err = http.Get(admin.URL + "/counters")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "application/json" {
		t.Fatalf("GET /counters: %s, Content-Type %q", res.Status, ct)
	}
	var got Counters
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.ACME == nil || got.Route53 == nil || got.S3 == nil {
		t.Fatalf("counters %+v: want all three sections", got)
	}
	if a := got.ACME; a.NewOrders != 2 || a.NewOrdersReplaces != 1 || a.NewOrdersCreated != 1 || a.NewAccounts != 1 {
		t.Errorf("acme = %+v, want 2 new orders, 1 with replaces, 1 created, 1 account", a)
	}
	if n := got.ACME.RequestsByClient["127.0.0.1"]; n != got.ACME.Requests || n < 4 {
		t.Errorf("acme requests by client = %v, want all %d from 127.0.0.1", got.ACME.RequestsByClient, got.ACME.Requests)
	}
	if len(got.ACME.Orders) == 2 && got.ACME.Orders[1].Replaces != "aaaa.bbbb" {
		t.Errorf("second order replaces = %q, want aaaa.bbbb", got.ACME.Orders[1].Replaces)
	}
	if got.Route53.Changes != 1 {
		t.Errorf("route53 changes = %d, want 1 (calls %v)", got.Route53.Changes, got.Route53.Calls)
	}
	if s := got.S3; s.ByMethod["PUT"] != 1 || s.ByMethod["HEAD"] != 2 || s.ByClient["127.0.0.1"]["HEAD"] != 2 {
		t.Errorf("s3 = %+v, want PUT 1, HEAD 2, all from 127.0.0.1", s)
	}

	// A devrig without a service reports it as null.
	var none Counters
	b, _ := json.Marshal(rigServices{s3: s3srv}.counters())
	if err := json.Unmarshal(b, &none); err != nil || none.ACME != nil || none.Route53 != nil || none.S3 == nil {
		t.Errorf("S3-only counters = %s, want acme and route53 null", b)
	}
}
