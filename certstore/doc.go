// Package certstore is the persistent, crash-safe, hot-reloading certificate
// store of edgecert. It keeps certificates on local disk, validates every
// version before serving it, and serves them to crypto/tls through
// GetCertificate from an immutable in-memory index. It contains no network
// code.
//
// # Disk layout
//
//	<dir>/                          0700
//	<dir>/certs/<name>/             0700, one directory per certificate name
//	<dir>/certs/<name>/<version>/   0700: chain.pem, key.pem, meta.json (0600)
//	<dir>/certs/<name>/current      symlink -> <version> (a bare name, never a path)
//	<dir>/data/<key>                0600 opaque blobs (autocert.Cache data)
//	<dir>/certs.validated           0600 content sums of validated versions (a cache)
//
// Version names are zero-padded decimal sequence numbers ("0000000007"), so
// lexical order is creation order. Other tools may write versions too, if
// they follow the same protocol as PutCert: write the three files into a
// temporary directory whose name starts with ".", fsync them and the
// directory, rename it to the next version name, then replace "current" by
// renaming a temporary symlink over it. Entries whose names start with "."
// are temporary; Open removes them.
//
// A reader that follows "current" therefore only ever sees a complete version
// whose certificate and key were written together: a certificate and a key
// from different versions can never be observed, even after SIGKILL at any
// instant (tested), or power loss (files and directories are fsynced before
// each rename).
//
// # Validation
//
// A version (or an operator file pair) is served only if: every PEM block of
// the chain is a CERTIFICATE that parses and nothing else is in the file; the
// key parses and matches the leaf's public key; the leaf is not expired and
// its NotBefore is not more than an hour in the future; every name in
// Meta.Names is literally one of the leaf's SANs (wildcards are compared as
// text). A version that fails is logged as cert.rejected and ignored: the
// last good entry for that name keeps serving. When no good entry is in
// memory yet (Open, or a name seen for the first time) and "current" is bad,
// the newest valid older version is served instead.
//
// The validation of a version whose exact bytes (chain, key and meta) this
// build validated before is shorter at Open: certs.validated lists their
// SHA-256 content sums, and for a listed version the leaf is still parsed
// and checked against the clock and Meta.Names, but the key is parsed (and
// matched with the leaf once more) on its first signature instead of at
// start-up. The file is replaced atomically, carries the Go version and a
// checksum of itself, and anything wrong with it (torn, edited, written by
// another toolchain) makes every version a miss, validated in full: changed
// bytes never match a listed sum, so a bad version is rejected whatever the
// cache says.
//
// # autocert.Cache mapping
//
// Store implements autocert.Cache:
//
//   - Put(key, data) where data is autocert's certificate format (one PEM
//     private key block followed by CERTIFICATE blocks) stores a validated
//     version of certificate key, exactly like PutCert with Meta.Source
//     "acme". Keys ending in "+token" (tls-alpn-01 challenge certificates)
//     are never treated as certificates.
//   - Get(key) of such a certificate returns key PEM followed by the chain
//     PEM, the same format, from the entry being served.
//   - Any other data (ACME account key, ARI state, JSON) is an opaque blob
//     written atomically to data/<key> with mode 0600.
//   - Delete(key) removes the blob and the certificate (all versions); a
//     deleted certificate stops being served.
//   - Get returns autocert.ErrCacheMiss when the key has neither.
//   - Keys that are empty, contain "/", "\", "..", NUL or other control
//     characters, start with ".", or are longer than 200 bytes are rejected
//     with an error; they could escape the directory or collide with
//     temporary files.
//
// # Log events
//
// Every event is logged with a stable message and the attributes name,
// serial (hex), not_after (RFC 3339), version and source where they apply:
//
//	cert.loaded       a name is served for the first time
//	cert.reloaded     the entry served for a name changed (attrs old_serial,
//	                  old_version)
//	cert.removed      a name is no longer served (its directory is gone)
//	cert.rejected     a version or file pair failed validation (attr reason);
//	                  logged once per distinct content, not on every rescan
//	cert.fallback     "current" was bad and nothing was served for the name
//	                  yet, so an older valid version is served (attr
//	                  fallback_from: the bad version)
//	cert.pruned       an old version directory was removed
//	store.cleaned     a temporary entry left by a crash was removed (attr path)
//	store.prune_error an old version could not be removed (attr error)
//	store.cache_error certs.validated could not be written (attrs path,
//	                  error); the next Open validates everything in full
//	store.watch_error the watcher failed, reported an error, or a reload in
//	                  Watch failed (attr error; attr fallback=true when Watch
//	                  switches to periodic rescans)
package certstore
