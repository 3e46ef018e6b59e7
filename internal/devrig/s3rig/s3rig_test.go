package s3rig

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

const bucket = "fleet-test"

// newClient starts a server with opts (plus the test bucket) and returns the
// unmodified SDK client pointed at it.
func newClient(t *testing.T, opts Options) (*Server, *s3.Client) {
	t.Helper()
	opts.Buckets = append(opts.Buckets, bucket)
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	cl := s3.New(s3.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDS3RIG", "s3rig-not-a-secret", ""),
		BaseEndpoint: aws.String(ts.URL),
		UsePathStyle: true,
		Retryer:      aws.NopRetryer{}, // every answer as the server gave it
	})
	return srv, cl
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func put(t *testing.T, cl *s3.Client, key, body string, mod func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
	if mod != nil {
		mod(in)
	}
	return cl.PutObject(ctx(t), in)
}

// status returns the HTTP status and S3 error code of a failed request.
func status(err error) (int, string) {
	var re *awshttp.ResponseError
	var ae smithy.APIError
	code := 0
	if errors.As(err, &re) {
		code = re.HTTPStatusCode()
	}
	if errors.As(err, &ae) {
		return code, ae.ErrorCode()
	}
	return code, err.Error()
}

func TestConditionalPutAndDelete(t *testing.T) {
	// Answers are "ok" or "STATUS Code".
	tests := []struct {
		mode                        Conditionals
		ifMatchMissing              string // PutObject If-Match on a missing key
		deleteWrongETag, deleteGone string // DeleteObject If-Match: stale ETag, missing key
		deleteWrongETagKeepsObject  bool
	}{
		{mode: AWS, ifMatchMissing: "404 NoSuchKey", deleteWrongETag: "412 PreconditionFailed", deleteGone: "404 NoSuchKey", deleteWrongETagKeepsObject: true},
		{mode: Gofakes3, ifMatchMissing: "412 PreconditionFailed", deleteWrongETag: "ok", deleteGone: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			_, cl := newClient(t, Options{Conditionals: tt.mode})
			got := func(err error) string {
				if err == nil {
					return "ok"
				}
				code, s := status(err)
				return strconv.Itoa(code) + " " + s
			}

			// Create-if-absent: first wins, second fails its condition.
			first, err := put(t, cl, "lease", "a", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
			if err != nil {
				t.Fatalf("first If-None-Match put: %v", err)
			}
			if _, err := put(t, cl, "lease", "b", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }); got(err) != "412 PreconditionFailed" {
				t.Errorf("second If-None-Match put: got %q, want 412 PreconditionFailed", got(err))
			}
			// Compare-and-swap on the ETag.
			if _, err := put(t, cl, "lease", "c", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"0123456789abcdef0123456789abcdef"`) }); got(err) != "412 PreconditionFailed" {
				t.Errorf("If-Match with a wrong ETag: got %q, want 412 PreconditionFailed", got(err))
			}
			second, err := put(t, cl, "lease", "d", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag })
			if err != nil {
				t.Fatalf("If-Match with the current ETag: %v", err)
			}
			if _, err := put(t, cl, "missing", "e", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag }); got(err) != tt.ifMatchMissing {
				t.Errorf("If-Match on a missing key: got %q, want %q", got(err), tt.ifMatchMissing)
			}
			if _, err := cl.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("missing")}); err == nil {
				t.Error("a refused If-Match put on a missing key created the object")
			}

			// Conditional delete.
			_, err = cl.DeleteObject(ctx(t), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("lease"), IfMatch: first.ETag})
			if g := got(err); g != tt.deleteWrongETag {
				t.Errorf("DeleteObject If-Match with a stale ETag: got %q, want %q", g, tt.deleteWrongETag)
			}
			_, headErr := cl.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("lease")})
			if kept := headErr == nil; kept != tt.deleteWrongETagKeepsObject {
				t.Errorf("after DeleteObject with a stale ETag the object exists=%v, want %v", kept, tt.deleteWrongETagKeepsObject)
			}
			if tt.deleteWrongETagKeepsObject {
				if _, err := cl.DeleteObject(ctx(t), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("lease"), IfMatch: second.ETag}); err != nil {
					t.Errorf("DeleteObject If-Match with the current ETag: %v", err)
				}
				if _, err := cl.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("lease")}); err == nil {
					t.Error("DeleteObject with the current ETag left the object")
				}
			}
			_, err = cl.DeleteObject(ctx(t), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("lease"), IfMatch: second.ETag})
			if g := got(err); g != tt.deleteGone {
				t.Errorf("DeleteObject If-Match on a missing key: got %q, want %q", g, tt.deleteGone)
			}
		})
	}
}

// The front's check and gofakes3's write are one step: of N racing
// create-if-absent writers exactly one wins, and of N CAS writers holding the
// same ETag exactly one wins.
func TestConditionalRaces(t *testing.T) {
	_, cl := newClient(t, Options{})
	const n = 16
	// Each race writes bodies of its own: were the If-None-Match winner's
	// body written again in the If-Match race, the ETag would not change and
	// a second CAS writer would rightly win too (seen 1 run in 19 under
	// stress, whenever that writer happened to go first).
	race := func(body string, mod func(i int, in *s3.PutObjectInput)) (won int, etag *string) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range n {
			wg.Go(func() {
				out, err := put(t, cl, "lease", body+strconv.Itoa(i+1), func(in *s3.PutObjectInput) { mod(i, in) })
				if err != nil {
					if code, s := status(err); code != 412 {
						t.Errorf("writer %d: got %d %s, want success or 412", i, code, s)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won++
					etag = out.ETag
				}
			})
		}
		wg.Wait()
		return won, etag
	}
	won, etag := race("create-", func(_ int, in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
	if won != 1 {
		t.Fatalf("%d of %d If-None-Match writers won, want exactly 1", won, n)
	}
	won, _ = race("cas-", func(_ int, in *s3.PutObjectInput) { in.IfMatch = etag })
	if won != 1 {
		t.Fatalf("%d of %d If-Match writers with the same ETag won, want exactly 1", won, n)
	}
}

func TestStatsAndDown(t *testing.T) {
	srv, cl := newClient(t, Options{})
	if _, err := put(t, cl, "k", "v", nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := cl.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cl.GetObject(ctx(t), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "v" {
		t.Fatalf("GetObject body %q, want v", b)
	}

	if _, err := cl.ListObjectsV2(ctx(t), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}

	srv.SetDown(true)
	if _, err := cl.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")}); err == nil {
		t.Fatal("HeadObject succeeded while the server was down")
	} else if code, _ := status(err); code != 503 {
		t.Fatalf("HeadObject while down: status %d, want 503", code)
	}
	srv.SetDown(false)

	st := srv.Stats()
	want := map[string]int64{"PUT": 1, "HEAD": 3, "GET": 1, "LIST": 1}
	for m, n := range want {
		if st.ByMethod[m] != n {
			t.Errorf("ByMethod[%s] = %d, want %d (all: %v)", m, st.ByMethod[m], n, st.ByMethod)
		}
	}
	if st.Total != 6 {
		t.Errorf("Total = %d, want 6", st.Total)
	}
	if len(st.ByClient) != 1 || st.ByClient["127.0.0.1"]["HEAD"] != 3 {
		t.Errorf("ByClient = %v, want 127.0.0.1 with HEAD 3", st.ByClient)
	}
	srv.ResetStats()
	if st := srv.Stats(); st.Total != 0 || len(st.ByMethod) != 0 {
		t.Errorf("after ResetStats: %+v", st)
	}
}
