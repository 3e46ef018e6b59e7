package daemon

import (
	"io"
	"log/slog"
	"os"
	"time"
)

// newLogger returns the daemon's logger. Under journald (JOURNAL_STREAM set)
// the time attribute is dropped, because the journal stamps every line.
// Every duration attribute is rounded (roundDuration) so lines read at a
// glance. Messages are stable event names (cert.loaded, server.listening, …)
// so that operators can grep and alert on them.
func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	journal := os.Getenv("JOURNAL_STREAM") != ""
	opts := &slog.HandlerOptions{Level: cfg.LogLevel, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if journal && len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.StringValue(roundDuration(a.Value.Duration()))
		}
		return a
	}}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// roundDuration renders d with about three significant figures and no
// zero units: 688ms, 1.24s, 2m3s, 3m, 1h30m, 412µs.
func roundDuration(d time.Duration) string {
	var unit time.Duration
	switch a := d.Abs(); {
	case a >= time.Hour:
		unit = time.Minute
	case a >= time.Minute:
		unit = time.Second
	case a >= 10*time.Second:
		unit = 100 * time.Millisecond
	case a >= time.Second:
		unit = 10 * time.Millisecond
	case a >= 10*time.Millisecond:
		unit = time.Millisecond
	case a >= 10*time.Microsecond:
		unit = time.Microsecond
	default:
		return d.String()
	}
	return shortDuration(d.Round(unit))
}
