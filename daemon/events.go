package daemon

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// event is one log record as the admin listener streams it to `edgecert
// renew` and `edgecert revoke`: the journal line's message and attributes.
type event map[string]any

// eventHub fans the daemon's log records out to admin streams. With no
// subscriber a record costs one atomic load.
type eventHub struct {
	n    atomic.Int32
	mu   sync.Mutex // guards subs
	subs map[*eventSub]struct{}
}

// eventSub receives the events whose "name" attribute is in names (every
// event with a name when names is empty). Events are dropped, not waited
// for, when its buffer is full: a slow client never blocks the daemon.
type eventSub struct {
	ch    chan event
	names map[string]bool
}

func newEventHub() *eventHub { return &eventHub{subs: map[*eventSub]struct{}{}} }

func (h *eventHub) subscribe(names []string) *eventSub {
	s := &eventSub{ch: make(chan event, 256), names: map[string]bool{}}
	for _, n := range names {
		s.names[n] = true
	}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.n.Add(1)
	return s
}

func (h *eventHub) unsubscribe(s *eventSub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	h.n.Add(-1)
}

func (h *eventHub) publish(ev event) {
	name, _ := ev["name"].(string)
	if name == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if len(s.names) > 0 && !s.names[name] {
			continue
		}
		select {
		case s.ch <- ev:
		default:
		}
	}
}

// teeHandler passes records to base and, at info level and above while
// anyone subscribes, to the hub.
type teeHandler struct {
	base  slog.Handler
	hub   *eventHub
	attrs []slog.Attr
}

func (h *eventHub) tee(base slog.Handler) slog.Handler { return &teeHandler{base: base, hub: h} }

func (t *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.base.Enabled(ctx, l) || (l >= slog.LevelInfo && t.hub.n.Load() > 0)
}

func (t *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.base.Enabled(ctx, r.Level) {
		err = t.base.Handle(ctx, r)
	}
	if r.Level >= slog.LevelInfo && t.hub.n.Load() > 0 {
		ev := event{"time": r.Time.UTC().Format(time.RFC3339Nano), "level": r.Level.String(), "msg": r.Message}
		add := func(a slog.Attr) bool {
			ev[a.Key] = a.Value.Resolve().Any()
			if e, ok := ev[a.Key].(error); ok {
				ev[a.Key] = e.Error()
			}
			return true
		}
		for _, a := range t.attrs {
			add(a)
		}
		r.Attrs(add)
		t.hub.publish(ev)
	}
	return err
}

func (t *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{base: t.base.WithAttrs(as), hub: t.hub, attrs: append(t.attrs[:len(t.attrs):len(t.attrs)], as...)}
}

// WithGroup groups the journal's attributes; streamed events keep them
// flat (the daemon's event attributes are not grouped).
func (t *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{base: t.base.WithGroup(name), hub: t.hub, attrs: t.attrs}
}
