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

	ab, _ := h.bufPool.Get().(*apiBuf)
	if ab == nil {
		ab = &apiBuf{b: make([]byte, 0, 1024)}
	}
	var b []byte
	b, ab.keys = h.appendAPI(ab.b[:0], ab.keys, r, env)

	w.Header()["Content-Type"] = hdrJSON
	_, _ = w.Write(b)

	if cap(b) <= maxPooledAPIBuf {
		ab.b = b[:0]
		h.bufPool.Put(ab)
	}
}

// appendAPI appends serveAPI's JSON object for r and a newline (with
// environ when env). keys is scratch space, returned for reuse as by
// appendJSONObject.
func (h *Handler) appendAPI(b []byte, keys []string, r *http.Request, env bool) ([]byte, []string) {
	snap := h.addrs.get()
	start := len(b)
	// Every field is written with a leading comma; the first comma becomes
	// the opening brace.
	b = appendRaw(b, h.apiHost)
	b = appendRaw(b, snap.ipJSON)
	if len(r.Header) > 0 {
		b, keys = appendJSONObject(b, `,"headers":{`, r.Header, keys, appendJSONStrings)
	}
	b = appendField(b, "url", r.URL.RequestURI())
	b = appendField(b, "host", r.Host)
	b = appendField(b, "method", r.Method)
	b = appendRaw(b, h.apiName)
	b = appendField(b, "remoteAddr", r.RemoteAddr)
	if env {
		b = appendEnviron(b, printedEnviron())
	}
	if len(b) == start {
		b = append(b, '{')
	} else {
		b[start] = '{'
	}
	return append(b, '}', '\n'), keys
}

// appendRaw appends ',' and field, an encoded `"key":value`, unless field
// is empty.
func appendRaw(b, field []byte) []byte {
	if len(field) == 0 {
		return b
	}
	b = append(b, ',')
	return append(b, field...)
}

// appendField appends ',' and the field key: value, unless value is empty
// (omitempty).
func appendField(b []byte, key, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',')
	return appendJSONField(b, key, value)
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
