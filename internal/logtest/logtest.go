// Package logtest provides a slog.Handler that records every log record, for
// tests that assert on edgecert's stable event names and attributes.
package logtest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// Record is one logged event: its message (the event name) and its
// attributes, including those added with Logger.With, rendered as strings.
type Record struct {
	Msg   string
	Level slog.Level
	Attrs map[string]string
}

// Recorder is a slog.Handler that keeps every record at every level. It is
// safe for concurrent use; loggers derived with With share its records.
type Recorder struct {
	store *store
	attrs []slog.Attr
}

type store struct {
	mu      sync.Mutex // guards records
	records []Record
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{store: &store{}} }

// Logger returns a logger writing to r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &Recorder{store: r.store, attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

// WithGroup is not used by edgecert; groups are flattened.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	out := Record{Msg: rec.Message, Level: rec.Level, Attrs: make(map[string]string, len(r.attrs)+rec.NumAttrs())}
	for _, a := range r.attrs {
		out.Attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		out.Attrs[a.Key] = a.Value.String()
		return true
	})
	r.store.mu.Lock()
	r.store.records = append(r.store.records, out)
	r.store.mu.Unlock()
	return nil
}

// Find returns, in order, the records with message msg ("" matches every
// message) whose attributes include every key and value of want.
func (r *Recorder) Find(msg string, want map[string]string) []Record {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	var out []Record
next:
	for _, rec := range r.store.records {
		if msg != "" && rec.Msg != msg {
			continue
		}
		for k, v := range want {
			if rec.Attrs[k] != v {
				continue next
			}
		}
		out = append(out, rec)
	}
	return out
}

// Dump logs every record to t, for failure diagnosis.
func (r *Recorder) Dump(t testing.TB) {
	t.Helper()
	for _, rec := range r.Find("", nil) {
		t.Logf("log: %s %v", rec.Msg, rec.Attrs)
	}
}
