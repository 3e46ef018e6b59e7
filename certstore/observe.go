package certstore

import (
	"log/slog"
	"strings"
)

// Reason classes of rejected versions (RejectClass): a small fixed set, so
// a metric labelled by it stays bounded.
const (
	RejectUnreadable  = "unreadable"   // a file is missing or cannot be read
	RejectMeta        = "meta"         // meta.json is not valid JSON
	RejectChain       = "chain"        // the chain does not parse (PEM or X.509)
	RejectKey         = "key"          // the key does not parse
	RejectKeyMismatch = "key_mismatch" // the key is not the leaf's
	RejectExpired     = "expired"      // the leaf has expired (or has no validity window)
	RejectNotYetValid = "not_yet_valid"
	RejectNames       = "names" // the leaf does not cover the names it was ordered for
	RejectOther       = "other"
)

// RejectClass maps a cert.rejected reason (the text of the validation
// error) to one of the Reject* classes.
func RejectClass(reason string) string {
	for _, c := range []struct{ prefix, class string }{
		{"meta.json:", RejectMeta},
		{"chain:", RejectChain},
		{"key:", RejectKey},
		{"private key does not match", RejectKeyMismatch},
		{"leaf expired", RejectExpired},
		{"leaf validity window is empty", RejectExpired},
		{"leaf not valid before", RejectNotYetValid},
		{"leaf does not cover", RejectNames},
		{"open ", RejectUnreadable},
		{"read ", RejectUnreadable},
	} {
		if strings.HasPrefix(reason, c.prefix) {
			return c.class
		}
	}
	if strings.Contains(reason, "no such file") || strings.Contains(reason, "permission denied") {
		return RejectUnreadable
	}
	return RejectOther
}

func (s *Store) observeLoaded() {
	if s.obs != nil {
		s.obs.StoreLoaded()
	}
}

// observeRejected reports a rejection whose cert.rejected attributes are
// attrs (slog.Attr values, one of them "reason").
func (s *Store) observeRejected(attrs []any) {
	if s.obs == nil {
		return
	}
	reason := ""
	for _, a := range attrs {
		if a, ok := a.(slog.Attr); ok && a.Key == "reason" {
			reason = a.Value.String()
		}
	}
	s.obs.StoreRejected(RejectClass(reason))
}
