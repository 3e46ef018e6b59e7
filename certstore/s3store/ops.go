package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/edgecert/edgecert/certstore"
)

// maxObject bounds what is read from the bucket: leases and pointers are
// small; a certificate bundle with an RSA 4096 key and a long chain is a
// few KiB. Anything larger is refused, never buffered.
const maxObject = 1 << 20

// errConditionFailed means a conditional request was refused: 412
// PreconditionFailed, 409 ConditionalRequestConflict, or 404 on If-Match
// (AWS answers 404 for If-Match on a missing key, others 412). The SDK may
// have retried a write whose first response was lost, so the caller reads
// the object back before concluding anything.
var errConditionFailed = errors.New("condition failed")

// errNotFound means the object does not exist.
var errNotFound = errors.New("not found")

// object is one object read from the bucket.
type object struct {
	body         []byte
	etag         string
	lastModified time.Time
	// age is the server's Date minus LastModified: how long ago the object
	// was written, by the server's clock (never this host's).
	age time.Duration
}

// classify maps an SDK error to errConditionFailed, errNotFound or
// certstore.ErrUnavailable (anything that is not a definite answer about
// the object: network, throttling, 5xx, access denied), keeping err.
func classify(err error, conditional bool) error {
	if err == nil {
		return nil
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	switch {
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed" ||
		status == http.StatusConflict || code == "ConditionalRequestConflict":
		return fmt.Errorf("%w: %w", errConditionFailed, err)
	case errors.As(err, &nsk) || errors.As(err, &nf) || code == "NoSuchKey" || status == http.StatusNotFound:
		if conditional {
			return fmt.Errorf("%w: %w", errConditionFailed, err)
		}
		return fmt.Errorf("%w: %w", errNotFound, err)
	}
	return fmt.Errorf("%w: %w", certstore.ErrUnavailable, err)
}

// serverAge computes Date − LastModified from the response metadata; 0
// when the server sent no Date.
func serverAge(md smithymiddleware.Metadata, lastModified *time.Time) time.Duration {
	if lastModified == nil {
		return 0
	}
	date, ok := awsmiddleware.GetServerTime(md)
	if !ok {
		if raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
			date, _ = http.ParseTime(raw.Header.Get("Date"))
		}
	}
	if date.IsZero() {
		return 0
	}
	return date.Sub(*lastModified)
}

func (s *Store) key(parts ...string) string {
	k := s.prefix
	for _, p := range parts {
		k += p
	}
	return k
}

// get reads key whole (errNotFound if absent).
func (s *Store) get(ctx context.Context, key string) (*object, error) {
	s.count("get")
	ctx, cancel := context.WithTimeout(ctx, s.reqTimeout)
	defer cancel()
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, classify(err, false)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, maxObject+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", certstore.ErrUnavailable, key, err)
	}
	if len(body) > maxObject {
		return nil, fmt.Errorf("object %s is larger than %d bytes", key, maxObject)
	}
	return &object{body: body, etag: aws.ToString(out.ETag), lastModified: aws.ToTime(out.LastModified),
		age: serverAge(out.ResultMetadata, out.LastModified)}, nil
}

// head returns key's ETag (errNotFound if absent).
func (s *Store) head(ctx context.Context, key string) (string, error) {
	s.count("head")
	ctx, cancel := context.WithTimeout(ctx, s.reqTimeout)
	defer cancel()
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return "", classify(err, false)
	}
	return aws.ToString(out.ETag), nil
}

// put writes body to key: ifMatch "" and create true is If-None-Match: *,
// ifMatch set is If-Match, neither is unconditional. It returns the new
// ETag. The body is a bytes.Reader: seekable, so the SDK can sign and
// retry it.
func (s *Store) put(ctx context.Context, key string, body []byte, create bool, ifMatch string) (string, error) {
	s.count("put")
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/json")}
	switch {
	case ifMatch != "":
		in.IfMatch = aws.String(ifMatch)
	case create:
		in.IfNoneMatch = aws.String("*")
	}
	if s.kmsKeyID != "" {
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(s.kmsKeyID)
	}
	ctx, cancel := context.WithTimeout(ctx, s.reqTimeout)
	defer cancel()
	out, err := s.c.PutObject(ctx, in)
	if err != nil {
		return "", classify(err, ifMatch != "" || create)
	}
	return aws.ToString(out.ETag), nil
}

// del deletes key, with If-Match when etag is set (servers without
// conditional deletes ignore it; the lease protocol tolerates that).
func (s *Store) del(ctx context.Context, key, etag string) error {
	s.count("delete")
	in := &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	ctx, cancel := context.WithTimeout(ctx, s.reqTimeout)
	defer cancel()
	_, err := s.c.DeleteObject(ctx, in)
	err = classify(err, etag != "")
	if errors.Is(err, errNotFound) {
		return nil
	}
	return err
}
