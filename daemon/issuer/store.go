package issuer

import (
	"context"

	"golang.org/x/crypto/acme/autocert"

	"github.com/edgecert/edgecert/certstore"
)

// Store is the storage contract of the issuer. *certstore.Store implements
// it for one host (an in-process lease); certstore/s3store implements it
// for a fleet sharing an S3 bucket. The issuer does not know which one it
// has. Implementations must be safe for concurrent use.
//
// It has three parts, modelled on certmagic's Storage and Locker, plus
// what Locker lacks: a fencing token and a loss signal.
//
//   - Blobs (autocert.Cache plus CreateBlob): opaque state such as the
//     account key, the account URL and ARI windows. Get returns
//     autocert.ErrCacheMiss for a missing key.
//   - Certificates: Current returns what this host serves, without I/O.
//     PublishCert stores a certificate ordered under a lease; it refuses
//     one whose lease has ended, and a shared store refuses a generation
//     older than the one it has (the certificate is then not served).
//   - Leases: Lock grants the exclusive right to order one certificate. Its
//     Context is cancelled when the lease is lost, and every order runs
//     under it. Before Lock returns, the store re-reads the shared copy of
//     the certificate and installs a newer one a peer published, so the
//     caller checks Current again before ordering. Lock errors wrapping
//     certstore.ErrUnavailable mean the shared store cannot be reached;
//     certstore.ErrSuperseded means a peer published while Lock waited and
//     its certificate is served now (no lease was taken).
type Store interface {
	autocert.Cache
	// CreateBlob stores data under key unless the key exists, and returns
	// the blob stored under key afterwards (data, or the existing one), so
	// every process sharing the store uses the same account key.
	CreateBlob(ctx context.Context, key string, data []byte) ([]byte, error)
	// Current returns the entry served for name. It must not do I/O.
	Current(name string) (*certstore.Entry, bool)
	// Lock waits for and grants the lease for certificate name, until ctx
	// is done.
	Lock(ctx context.Context, name string) (*certstore.Lease, error)
	// PublishCert validates and stores a new certificate version for name,
	// ordered under lease (nil: ordered without one, in an emergency), and
	// serves it when it returns.
	PublishCert(ctx context.Context, lease *certstore.Lease, name string, chainPEM, keyPEM []byte, meta certstore.Meta) (*certstore.Entry, error)
}

var _ Store = (*certstore.Store)(nil)
