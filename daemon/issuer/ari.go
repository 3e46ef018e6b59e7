package issuer

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/edgecert/edgecert/daemon/metrics"
)

// ARI polling bounds: Retry-After is honoured within them; without one the
// window is re-checked after ariDefaultPoll.
const (
	ariMinPoll     = time.Minute
	ariMaxPoll     = 24 * time.Hour
	ariDefaultPoll = 6 * time.Hour
)

// CertID returns the RFC 9773 certificate identifier of leaf:
// base64url(AuthorityKeyIdentifier) "." base64url(serial number DER value
// bytes, with a leading zero byte when the high bit is set).
func CertID(leaf *x509.Certificate) (string, error) {
	if len(leaf.AuthorityKeyId) == 0 {
		return "", errors.New("issuer: certificate has no authority key identifier")
	}
	if leaf.SerialNumber == nil || leaf.SerialNumber.Sign() <= 0 {
		return "", errors.New("issuer: certificate serial number is not positive")
	}
	serial := leaf.SerialNumber.Bytes()
	if serial[0]&0x80 != 0 {
		serial = append([]byte{0}, serial...)
	}
	b64 := base64.RawURLEncoding
	return b64.EncodeToString(leaf.AuthorityKeyId) + "." + b64.EncodeToString(serial), nil
}

// ariState is what is known about one certificate's ARI window; persisted
// under cacheARIPrefix+name so restarts do not re-poll early.
type ariState struct {
	Serial   string    `json:"serial"` // hex serial the window is for
	Window   Window    `json:"window"`
	NextPoll time.Time `json:"next_poll"`
}

// fetchARI asks the CA's renewalInfo endpoint for leaf's window. The poll
// interval is the answer's Retry-After clamped to [1 min, 24 h] (6 h when
// absent).
func (m *Manager) fetchARI(ctx context.Context, renewalInfo string, leaf *x509.Certificate) (Window, time.Duration, error) {
	id, err := CertID(leaf)
	if err != nil {
		return Window{}, 0, err
	}
	var body struct {
		SuggestedWindow struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"suggestedWindow"`
	}
	hdr, err := m.getJSON(metrics.WithACMEAction(ctx, metrics.ActionRenewalInfo), strings.TrimSuffix(renewalInfo, "/")+"/"+id, &body)
	if err != nil {
		return Window{}, 0, fmt.Errorf("issuer: renewalInfo: %w", err)
	}
	w := Window{Start: body.SuggestedWindow.Start, End: body.SuggestedWindow.End}
	if !w.End.After(w.Start) {
		return Window{}, 0, fmt.Errorf("issuer: renewalInfo: invalid window %s .. %s", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	}
	return w, pollInterval(parseRetryAfter(hdr.Get("Retry-After"), time.Now())), nil
}

// pollInterval clamps an ARI Retry-After to the polling bounds.
func pollInterval(retryAfter time.Duration) time.Duration {
	if retryAfter <= 0 {
		return ariDefaultPoll
	}
	return min(max(retryAfter, ariMinPoll), ariMaxPoll)
}

func (m *Manager) loadARI(ctx context.Context, name string) (*ariState, bool) {
	b, err := m.cfg.Store.Get(ctx, cacheARIPrefix+name)
	if err != nil {
		if !errors.Is(err, autocert.ErrCacheMiss) {
			m.log.Warn("ari.state_unreadable", "name", name, "error", err)
		}
		return nil, false
	}
	var st ariState
	if err := json.Unmarshal(b, &st); err != nil {
		m.log.Warn("ari.state_unreadable", "name", name, "error", err)
		return nil, false
	}
	if st.Serial == "" {
		m.log.Warn("ari.state_unreadable", "name", name, "error", "no serial")
		return nil, false
	}
	return &st, true
}

func (m *Manager) saveARI(ctx context.Context, name string, st ariState) {
	b, err := json.Marshal(st)
	if err == nil {
		err = m.cfg.Store.Put(ctx, cacheARIPrefix+name, b)
	}
	if err != nil {
		m.log.Warn("ari.state_save_failed", "name", name, "error", err)
	}
}
