package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logEvery is the least interval between two lines of one rate-limited
// event (conn.limit_reached per cap, http.write_stalled,
// http.header_timeout, http.handshake_timeout, http.body_timeout).
const logEvery = 10 * time.Second

// rateLog writes at most one line per key every interval; the line after a
// quiet spell carries "suppressed", the number of lines dropped since the
// previous one. Safe for concurrent use.
type rateLog struct {
	log      *slog.Logger
	interval time.Duration

	mu   sync.Mutex // guards keys
	keys map[string]*rateState
}

type rateState struct {
	last       time.Time
	suppressed int
}

func newRateLog(log *slog.Logger, interval time.Duration) *rateLog {
	return &rateLog{log: log, interval: interval, keys: make(map[string]*rateState)}
}

// warn logs event at warn level with attrs unless key was logged less than
// interval ago.
func (r *rateLog) warn(key, event string, attrs ...slog.Attr) {
	r.logAt(slog.LevelWarn, key, event, attrs...)
}

// info is warn at info level, for what clients do routinely on the
// internet (a scanner's half-open handshake, a slow request head).
func (r *rateLog) info(key, event string, attrs ...slog.Attr) {
	r.logAt(slog.LevelInfo, key, event, attrs...)
}

func (r *rateLog) logAt(level slog.Level, key, event string, attrs ...slog.Attr) {
	now := time.Now()
	r.mu.Lock()
	st := r.keys[key]
	if st == nil {
		st = &rateState{}
		r.keys[key] = st
	}
	if !st.last.IsZero() && now.Sub(st.last) < r.interval {
		st.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	r.mu.Unlock()
	r.log.LogAttrs(context.Background(), level, event, append(attrs, slog.Int("suppressed", suppressed))...)
}
