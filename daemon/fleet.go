package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/certstore/s3store"
	"github.com/edgecert/edgecert/daemon/issuer"
)

// FleetConfig is fleet mode: hosts sharing certificates through S3. Without
// Store nothing of it applies and a host works alone.
type FleetConfig struct {
	Store        string        // -fleet-store s3://BUCKET[/PREFIX]
	PathStyle    bool          // -fleet-s3-path-style
	KMSKeyID     string        // -fleet-sse-kms-key-id
	SyncInterval time.Duration // -fleet-sync-interval
	LeaseTTL     time.Duration // -fleet-lease-ttl
	InstanceID   string        // -instance-id; "" = IMDSv2, else the hostname

	bucket, prefix string // parsed from Store by validate

	// s3Client is applied to the S3 client after the SDK's default chain
	// and PathStyle (no flag: tests set the endpoint and credentials here
	// instead of in the process environment, so that they can run in
	// parallel).
	s3Client []func(*s3.Options)
}

// Fleet bounds.
const (
	// fleetStartSync bounds the first sync at start-up (a new host installs
	// the shared certificates before deciding to order anything).
	fleetStartSync = 30 * time.Second
	// imdsTimeout bounds the instance ID lookup: off EC2 nothing answers.
	imdsTimeout = 2 * time.Second
)

func (f *FleetConfig) define(fs *flag.FlagSet) {
	fs.StringVar(&f.Store, "fleet-store", "", "share certificates with a fleet through S3: s3://BUCKET[/PREFIX] (endpoint and credentials from the AWS SDK chain, e.g. AWS_ENDPOINT_URL_S3)")
	fs.BoolVar(&f.PathStyle, "fleet-s3-path-style", false, "address the bucket path-style (for S3-compatible servers)")
	fs.StringVar(&f.KMSKeyID, "fleet-sse-kms-key-id", "", "encrypt every fleet object with this KMS key (default: the bucket's own encryption)")
	fs.DurationVar(&f.SyncInterval, "fleet-sync-interval", s3store.DefaultSyncInterval, "bound (plus jitter) within which a certificate published by another host is installed")
	fs.DurationVar(&f.LeaseTTL, "fleet-lease-ttl", s3store.DefaultLeaseTTL, "validity of a certificate lease without renewal (at least 10s)")
	fs.StringVar(&f.InstanceID, "instance-id", "", "this host's name in leases, logs and status (default: the EC2 instance ID from IMDSv2, else the hostname)")
}

// validate parses -fleet-store and checks the fleet flags.
func (f *FleetConfig) validate() error {
	if f.Store == "" {
		return nil
	}
	u, err := url.Parse(f.Store)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return badFlag("fleet-store", "%q is not s3://BUCKET[/PREFIX]", f.Store)
	}
	f.bucket = u.Host
	f.prefix = strings.Trim(u.Path, "/")
	if f.prefix != "" {
		f.prefix += "/"
	}
	if strings.Contains(f.prefix, "//") {
		return badFlag("fleet-store", "%q has an empty path segment", f.Store)
	}
	switch {
	case f.SyncInterval <= 0:
		return badFlag("fleet-sync-interval", "must be positive")
	case f.LeaseTTL < s3store.MinLeaseTTL:
		return badFlag("fleet-lease-ttl", "%v is below the minimum %v", f.LeaseTTL, s3store.MinLeaseTTL)
	}
	return nil
}

// instanceID resolves -instance-id: the flag, else the EC2 instance ID
// from IMDSv2 (skipped when AWS_EC2_METADATA_DISABLED=true, bounded by
// imdsTimeout, no retries), else the hostname.
func instanceID(ctx context.Context, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if !strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		ictx, cancel := context.WithTimeout(ctx, imdsTimeout)
		defer cancel()
		c := imds.New(imds.Options{Retryer: aws.NopRetryer{}})
		if out, err := c.GetMetadata(ictx, &imds.GetMetadataInput{Path: "instance-id"}); err == nil {
			b, err := io.ReadAll(io.LimitReader(out.Content, 256))
			out.Content.Close()
			if id := strings.TrimSpace(string(b)); err == nil && id != "" {
				return id
			}
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "unknown"
}

// newFleet returns the S3 fleet store for cfg, or nil without
// -fleet-store. The S3 client comes from the SDK's default chain
// (instance role, AWS_* variables, AWS_ENDPOINT_URL_S3), in us-east-1 when
// no region is configured.
func newFleet(ctx context.Context, cfg *Config, local *certstore.Store, log *slog.Logger) (*s3store.Store, error) {
	f := cfg.Fleet
	if f.Store == "" {
		return nil, nil
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("daemon: aws config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, append([]func(*s3.Options){func(o *s3.Options) { o.UsePathStyle = f.PathStyle }}, f.s3Client...)...)
	id := instanceID(ctx, f.InstanceID)
	var names []string
	for _, d := range cfg.Domains {
		names = append(names, d[0])
	}
	st, err := s3store.New(s3store.Options{
		Client: client, Bucket: f.bucket, Prefix: f.prefix, KMSKeyID: f.KMSKeyID,
		Local: local, Instance: id, Names: names, LeaseTTL: f.LeaseTTL,
		Logger: log.With("component", "fleet"),
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	log.Info("fleet.enabled", "bucket", f.bucket, "prefix", f.prefix, "instance", id,
		"sync_interval", f.SyncInterval.String(), "lease_ttl", f.LeaseTTL.String())
	return st, nil
}

// issuerStore is what the issuer orders through: the fleet store when
// there is one, else the local store.
func issuerStore(local *certstore.Store, fleet *s3store.Store) issuer.Store {
	if fleet != nil {
		return fleet
	}
	return local
}

// startFleet installs the shared certificates once (bounded), so a new
// host serves them without contacting the CA, then keeps syncing until
// ctx ends. A failed first sync is logged; the host serves what it has.
func startFleet(ctx context.Context, fleet *s3store.Store, interval time.Duration, log *slog.Logger, goFn func(func())) {
	if fleet == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, fleetStartSync)
	err := fleet.Sync(sctx)
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("fleet.start_sync_failed", "error", err)
	}
	goFn(func() { fleet.Run(ctx, interval) })
}

// fleetView is the fleet part of a certificate's status.
type fleetView struct {
	SharedGeneration  uint64    `json:"shared_generation"`
	ServingGeneration uint64    `json:"serving_generation"`
	LeaseHolder       string    `json:"lease_holder,omitempty"`
	LeaseSince        time.Time `json:"lease_since,omitzero"`
	LeaseHeld         bool      `json:"lease_held"`
	LastEvent         string    `json:"last_event,omitempty"`
	LastEventAt       time.Time `json:"last_event_at,omitzero"`
}

// addFleetViews adds the fleet state to views (in place).
func addFleetViews(views []certView, fleet *s3store.Store) []certView {
	if fleet == nil {
		return views
	}
	byName := map[string]s3store.CertStatus{}
	for _, st := range fleet.Status() {
		byName[st.Name] = st
	}
	for i := range views {
		st, ok := byName[views[i].Name]
		if !ok {
			continue
		}
		views[i].Fleet = &fleetView{
			SharedGeneration: st.SharedGeneration, ServingGeneration: st.ServingGeneration,
			LeaseHolder: st.Holder, LeaseSince: st.HolderSince, LeaseHeld: st.Held,
			LastEvent: st.LastEvent, LastEventAt: st.LastEventAt,
		}
	}
	return views
}

// writeFleetStatus adds the fleet table to `edgecert status` when the
// daemon is in a fleet: per certificate the shared and serving
// generation, the lease holder and its age, and the last fleet event.
func writeFleetStatus(w io.Writer, views []certView, now time.Time) {
	var fleet []certView
	for _, v := range views {
		if v.Fleet != nil {
			fleet = append(fleet, v)
		}
	}
	if len(fleet) == 0 {
		return
	}
	ago := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return fmt.Sprintf(" (%s ago)", now.Sub(t).Round(time.Second))
	}
	fmt.Fprintln(w, "\nfleet:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSHARED GEN\tSERVING GEN\tLEASE HOLDER\tLAST EVENT")
	for _, v := range fleet {
		f := v.Fleet
		holder := "-"
		if f.LeaseHolder != "" {
			holder = f.LeaseHolder + ago(f.LeaseSince)
			if f.LeaseHeld {
				holder += ", this host"
			}
		}
		serving := fmt.Sprint(f.ServingGeneration)
		if f.ServingGeneration != f.SharedGeneration {
			serving += " (differs from the fleet)"
		}
		event := "-"
		if f.LastEvent != "" {
			event = f.LastEvent + ago(f.LastEventAt)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", v.Name, f.SharedGeneration, serving, holder, event)
	}
	tw.Flush()
}
