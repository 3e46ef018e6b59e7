package routes

import (
	"net/http"
	"slices"
	"strings"
)

// apiBuf is a pooled scratch space for one /api response.
type apiBuf struct {
	b    []byte
	keys []string
}

// maxPooledAPIBuf keeps an unusually large response buffer out of the pool.
const maxPooledAPIBuf = 64 << 10

// serveAPI answers /api with whoami's JSON object followed by a newline.
// Keys, in order, each omitted when empty (encoding/json omitempty on
// whoami's struct): hostname, ip, headers, url, host, method, name,
// remoteAddr, environ. environ is present only with ?env=true and
// Options.AllowEnv. ?wait is not honoured (as in whoami).
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request) {
	env := r.URL.RawQuery != "" && h.envRequested(r.URL.Query())
	snap := h.addrs.get()

	ab, _ := h.bufPool.Get().(*apiBuf)
	if ab == nil {
		ab = &apiBuf{b: make([]byte, 0, 1024)}
	}
	b := ab.b[:0]

	// Every field is written with a leading comma; the first comma becomes
	// the opening brace.
	if len(h.apiHost) > 0 {
		b = append(b, ',')
		b = append(b, h.apiHost...)
	}
	if len(snap.ipJSON) > 0 {
		b = append(b, ',')
		b = append(b, snap.ipJSON...)
	}
	if len(r.Header) > 0 {
		b, ab.keys = appendJSONObject(b, `,"headers":{`, r.Header, ab.keys, appendJSONStrings)
	}
	if uri := r.URL.RequestURI(); uri != "" {
		b = append(b, ',')
		b = appendJSONField(b, "url", uri)
	}
	if r.Host != "" {
		b = append(b, ',')
		b = appendJSONField(b, "host", r.Host)
	}
	if r.Method != "" {
		b = append(b, ',')
		b = appendJSONField(b, "method", r.Method)
	}
	if len(h.apiName) > 0 {
		b = append(b, ',')
		b = append(b, h.apiName...)
	}
	if r.RemoteAddr != "" {
		b = append(b, ',')
		b = appendJSONField(b, "remoteAddr", r.RemoteAddr)
	}
	if env {
		b = appendEnviron(b, printedEnviron())
	}
	if len(b) == 0 {
		b = append(b, '{')
	} else {
		b[0] = '{'
	}
	b = append(b, '}', '\n')

	w.Header()["Content-Type"] = hdrJSON
	_, _ = w.Write(b)

	if cap(b) <= maxPooledAPIBuf {
		ab.b = b[:0]
		h.bufPool.Put(ab)
	}
}

// appendJSONStrings appends vs as encoding/json encodes a []string: null
// for a nil slice, otherwise an array.
func appendJSONStrings(b []byte, vs []string) []byte {
	if vs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

// appendEnviron appends `,"environ":{…}` for the KEY=value list env (later
// duplicates win, keys sorted), or nothing when env is empty.
func appendEnviron(b []byte, env []string) []byte {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	if len(m) == 0 {
		return b
	}
	b, _ = appendJSONObject(b, `,"environ":{`, m, nil, appendJSONString)
	return b
}

// appendJSONObject appends open (e.g. `,"headers":{`), then m's entries
// with keys sorted and values written by appendValue, then '}'. keys is
// scratch space for the sorted keys; it is returned empty (and cleared) for
// reuse, so a pooled buffer makes the call allocation-free.
func appendJSONObject[V any](b []byte, open string, m map[string]V, keys []string, appendValue func([]byte, V) []byte) ([]byte, []string) {
	keys = keys[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, open...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendValue(b, m[k])
	}
	clear(keys)
	return append(b, '}'), keys[:0]
}
