package routes

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAPIBody(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		target string
		header http.Header
		host   string
		remote string
		want   string
	}{
		{
			name:   "all fields",
			opts:   Options{Name: "edge-1"},
			target: "/api?x=1&y=%3C",
			header: http.Header{"Accept": {"*/*"}, "X-Multi": {"a", "b"}, "X-Html": {"<b>&\"q\""}},
			host:   "example.com",
			remote: "192.0.2.7:51234",
			want: `{"hostname":"test-host","ip":["127.0.0.1","::1","fe80::1"],` +
				`"headers":{"Accept":["*/*"],"X-Html":["\u003cb\u003e\u0026\"q\""],"X-Multi":["a","b"]},` +
				`"url":"/api?x=1\u0026y=%3C","host":"example.com","method":"GET","name":"edge-1","remoteAddr":"192.0.2.7:51234"}` + "\n",
		},
		{
			name:   "empty values omitted",
			opts:   Options{Addrs: func() ([]string, error) { return nil, nil }},
			target: "/api",
			header: http.Header{},
			want:   `{"hostname":"test-host","url":"/api","method":"GET"}` + "\n",
		},
		{
			name:   "env ignored unless allowed",
			target: "/api?env=true",
			header: http.Header{"X": {""}},
			host:   "h",
			remote: "[::1]:1",
			want: `{"hostname":"test-host","ip":["127.0.0.1","::1","fe80::1"],"headers":{"X":[""]},` +
				`"url":"/api?env=true","host":"h","method":"GET","remoteAddr":"[::1]:1"}` + "\n",
		},
		{
			name:   "wait not honoured and echoed as url",
			target: "/api?wait=1h",
			host:   "h",
			want: `{"hostname":"test-host","ip":["127.0.0.1","::1","fe80::1"],` +
				`"url":"/api?wait=1h","host":"h","method":"GET"}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, tt.opts)
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			r.Header = tt.header
			r.Host = tt.host
			r.RemoteAddr = tt.remote
			rec := serve(h, r)
			if got := rec.Body.String(); rec.Code != 200 || got != tt.want {
				t.Errorf("= %d\n%s\nwant 200\n%s", rec.Code, got, tt.want)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
		})
	}
}

func TestAPIEnv(t *testing.T) {
	t.Setenv("EDGECERT_ROUTES_TEST", "a<b")
	h := newTestHandler(t, Options{AllowEnv: true})
	rec := get(h, "/api?env=1")
	var got whoamiData
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decoding %q: %v", rec.Body.String(), err)
	}
	if got.Environ["EDGECERT_ROUTES_TEST"] != "a<b" {
		t.Errorf("environ[EDGECERT_ROUTES_TEST] = %q, want %q", got.Environ["EDGECERT_ROUTES_TEST"], "a<b")
	}
	if len(got.Environ) != len(whoamiEnviron()) {
		t.Errorf("environ has %d entries, want %d", len(got.Environ), len(whoamiEnviron()))
	}
	if !bytes.Contains(rec.Body.Bytes(), []byte(`"EDGECERT_ROUTES_TEST":"a\u003cb"`)) {
		t.Errorf("body %s does not HTML-escape the environment value", rec.Body.String())
	}
}

// whoamiData mirrors the struct whoami encodes with encoding/json: the
// reference for TestAPIMatchesEncodingJSON.
type whoamiData struct {
	Hostname   string            `json:"hostname,omitempty"`
	IP         []string          `json:"ip,omitempty"`
	Headers    http.Header       `json:"headers,omitempty"`
	URL        string            `json:"url,omitempty"`
	Host       string            `json:"host,omitempty"`
	Method     string            `json:"method,omitempty"`
	Name       string            `json:"name,omitempty"`
	RemoteAddr string            `json:"remoteAddr,omitempty"`
	Environ    map[string]string `json:"environ,omitempty"`
}

func whoamiEnviron() map[string]string {
	m := map[string]string{}
	for _, kv := range printedEnviron() { // whoami prints them unredacted

		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// encodeWhoami is what whoami writes for r.
func encodeWhoami(t *testing.T, hostname, name string, ips []string, r *http.Request, env bool) string {
	t.Helper()
	d := whoamiData{
		Hostname: hostname, IP: ips, Headers: r.Header, URL: r.URL.RequestURI(), Host: r.Host,
		Method: r.Method, Name: name, RemoteAddr: r.RemoteAddr,
	}
	if env {
		d.Environ = whoamiEnviron()
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(d); err != nil {
		t.Fatalf("encoding reference: %v", err)
	}
	return buf.String()
}

// TestAPIMatchesEncodingJSON compares /api with encoding/json's rendering
// of whoami's struct, including awkward strings.
func TestAPIMatchesEncodingJSON(t *testing.T) {
	t.Setenv("EDGECERT_ROUTES_TEST", "\u2028\x01\"")
	odd := []string{"", "plain", "<script>&amp;", "tab\there", "nl\nx", "\x00\x1f\x7f", "bad\xffutf8\xc3", "\u2028\u2029",
		"quote\"back\\slash", "é日本🙂", "\b\f\r"}
	names := []string{"", "name <&>", "bad\xfe"}
	hosts := []string{"h", "bad\x80host", "ünïcode"}
	ipLists := [][]string{nil, {"127.0.0.1"}, {"fe80::1%eth0", "10.0.0.1"}}
	for i, v := range odd {
		name := names[i%len(names)]
		host := hosts[i%len(hosts)]
		ips := ipLists[i%len(ipLists)]
		env := i%2 == 0
		h := newTestHandler(t, Options{Name: name, Hostname: host, AllowEnv: true,
			Addrs: func() ([]string, error) { return ips, nil }})
		target := "/api?v=%22" + string(rune('a'+i))
		if env {
			target += "&env=true"
		}
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Header = http.Header{"X-Odd": {v, v + v}, "Nil": nil, "Empty": {}, v: {"key"}}
		r.Host = v
		r.RemoteAddr = v
		r.Method = strings.ToUpper(v)
		wantHost := host
		rec := serve(h, r)
		want := encodeWhoami(t, wantHost, name, ips, r, env)
		if got := rec.Body.String(); got != want {
			t.Errorf("case %d (%q):\n got %s\nwant %s", i, v, got, want)
		}
	}
}

func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	var cases []string
	for b := 0; b < 256; b++ {
		cases = append(cases, string([]byte{byte(b)}), "a"+string([]byte{byte(b)})+"z")
	}
	cases = append(cases, "", "\u2028", "x\u2029y", "\U0001F600", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3", "日本語<>&")
	for _, s := range cases {
		checkJSONString(t, s)
	}
}

func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "<&>", "\u2028", "\xff", "\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, s string) {
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json.Marshal(%q): %v", s, err)
	}
	if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
		t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
	}
	if !utf8.Valid(appendJSONString(nil, s)) {
		t.Errorf("appendJSONString(%q) is not valid UTF-8", s)
	}
}
