package s3store

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestIAMStatements(t *testing.T) {
	st, err := IAMStatements(PolicyPlace{Bucket: "certs", Prefix: "edge/", KMSKeyID: "1234abcd"})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]PolicyStatement{}
	for _, s := range st {
		byID[s.Sid] = s
	}
	obj := byID["EdgecertFleetObjects"]
	if !slices.Equal(obj.Resource, []string{"arn:aws:s3:::certs/edge/*"}) || !slices.Equal(obj.Action, []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}) {
		t.Errorf("objects statement %+v", obj)
	}
	list := byID["EdgecertFleetList"]
	if !slices.Equal(list.Resource, []string{"arn:aws:s3:::certs"}) || list.Condition["StringLike"]["s3:prefix"].([]string)[0] != "edge/*" {
		t.Errorf("list statement %+v (ListBucket must be limited to the prefix)", list)
	}
	if k := byID["EdgecertFleetKMS"]; !slices.Equal(k.Resource, []string{"arn:aws:kms:*:*:key/1234abcd"}) {
		t.Errorf("KMS statement %+v", k)
	}
	st, _ = IAMStatements(PolicyPlace{Partition: "aws-cn", Bucket: "certs"})
	if len(st) != 2 || st[0].Resource[0] != "arn:aws-cn:s3:::certs/*" {
		t.Errorf("without prefix or key: %+v", st)
	}
	if _, err := IAMStatements(PolicyPlace{Bucket: "certs", Prefix: "edge"}); err == nil {
		t.Error("a prefix without / accepted")
	}
}

func TestBucketPolicy(t *testing.T) {
	b, err := BucketPolicy(PolicyPlace{Bucket: "certs", Prefix: "edge/"})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Sid, Effect string
			Principal   any
			Action      []string
			Resource    []string
			Condition   map[string]map[string]string
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for i, s := range doc.Statement {
		got[s.Sid] = i
		if s.Effect != "Deny" || s.Principal != "*" {
			t.Errorf("%s: effect %s principal %v, want Deny *", s.Sid, s.Effect, s.Principal)
		}
	}
	tls := doc.Statement[got["EdgecertRequireTLS"]]
	if tls.Condition["Bool"]["aws:SecureTransport"] != "false" || !slices.Contains(tls.Resource, "arn:aws:s3:::certs/*") {
		t.Errorf("TLS statement %+v", tls)
	}
	w := doc.Statement[got["EdgecertDenyUnconditionalStateWrites"]]
	if !slices.Equal(w.Resource, []string{"arn:aws:s3:::certs/edge/leases/*", "arn:aws:s3:::certs/edge/certs/*"}) ||
		w.Condition["Null"]["s3:if-none-match"] != "true" || w.Condition["Null"]["s3:if-match"] != "true" || w.Action[0] != "s3:PutObject" {
		t.Errorf("unconditional-write statement %+v: must deny PutObject on leases and certs when both headers are absent", w)
	}
	d := doc.Statement[got["EdgecertDenyUnconditionalLeaseDeletes"]]
	if d.Action[0] != "s3:DeleteObject" || d.Condition["Null"]["s3:if-match"] != "true" {
		t.Errorf("delete statement %+v", d)
	}
}
