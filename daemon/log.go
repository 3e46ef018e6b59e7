package daemon

import (
	"io"
	"log/slog"
	"os"
)

// newLogger returns the daemon's logger. Under journald (JOURNAL_STREAM set)
// the time attribute is dropped, because the journal stamps every line.
// Messages are stable event names (cert.loaded, server.listening, …) so that
// operators can grep and alert on them.
func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
