package routes

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// healthReq builds a /health request from remote with an optional
// Authorization header.
func healthReq(method, body, remote, auth string) *http.Request {
	r := httptest.NewRequest(method, "/health", strings.NewReader(body))
	r.RemoteAddr = remote
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func TestHealthStateMachine(t *testing.T) {
	h := newTestHandler(t, Options{})
	const local = "127.0.0.1:40000"
	steps := []struct {
		method   string
		body     string
		wantCode int
		wantBody string
	}{
		{http.MethodGet, "", 200, ""},
		{http.MethodPost, "503", 200, ""},
		{http.MethodGet, "", 503, ""},
		{http.MethodHead, "", 503, ""},
		{http.MethodPut, "200", 503, ""}, // only POST sets
		{http.MethodDelete, "", 503, ""},
		{http.MethodPost, `{"statusCode":"200"}`, 400, "health: body must be a JSON integer, e.g. 503\n"},
		{http.MethodGet, "", 503, ""},
		{http.MethodPost, "101", 400, "health: status code must be between 200 and 599\n"},
		{http.MethodPost, "0", 400, "health: status code must be between 200 and 599\n"},
		{http.MethodPost, "-1", 400, "health: status code must be between 200 and 599\n"},
		{http.MethodPost, "99", 400, "health: status code must be between 200 and 599\n"},
		{http.MethodPost, "600", 400, "health: status code must be between 200 and 599\n"},
		{http.MethodPost, "1000", 400, "health: status code must be between 200 and 599\n"},
		{http.MethodPost, "", 400, "health: body must be a JSON integer, e.g. 503\n"},
		{http.MethodGet, "", 503, ""},
		{http.MethodPost, " 204\n", 200, ""},
		{http.MethodGet, "", 204, ""},
		{http.MethodPost, "599", 200, ""},
		{http.MethodGet, "", 599, ""},
		{http.MethodPost, "200", 200, ""},
		{http.MethodGet, "", 200, ""},
	}
	for i, s := range steps {
		rec := serve(h, healthReq(s.method, s.body, local, ""))
		if rec.Code != s.wantCode || rec.Body.String() != s.wantBody {
			t.Fatalf("step %d: %s %q = %d %q, want %d %q", i, s.method, s.body, rec.Code, rec.Body.String(), s.wantCode, s.wantBody)
		}
	}
}

func TestHealthAuthorization(t *testing.T) {
	tests := []struct {
		name   string
		token  string
		remote string
		auth   string
		want   int
	}{
		{"IPv4 loopback", "", "127.0.0.1:1", "", 200},
		{"other 127/8", "", "127.1.2.3:1", "", 200},
		{"IPv6 loopback", "", "[::1]:1", "", 200},
		{"mapped loopback", "", "[::ffff:127.0.0.1]:1", "", 200},
		{"remote, no token configured", "", "192.0.2.1:1", "", 403},
		{"remote, token configured but absent", "s3cret", "192.0.2.1:1", "", 403},
		{"remote, bearer sent but none configured", "", "192.0.2.1:1", "Bearer ", 403},
		{"remote, right token", "s3cret", "192.0.2.1:1", "Bearer s3cret", 200},
		{"remote, scheme case-insensitive", "s3cret", "[2001:db8::1]:1", "bearer s3cret", 200},
		{"remote, wrong token", "s3cret", "192.0.2.1:1", "Bearer s3cre", 403},
		{"remote, longer token", "s3cret", "192.0.2.1:1", "Bearer s3cretX", 403},
		{"remote, basic scheme", "s3cret", "192.0.2.1:1", "Basic s3cret", 403},
		{"remote, token only", "s3cret", "192.0.2.1:1", "s3cret", 403},
		{"remote, empty", "s3cret", "192.0.2.1:1", "Bearer", 403},
		{"forwarded header is not trusted", "", "192.0.2.1:1", "", 403},
		{"unparsable remote", "", "localhost:1", "", 403},
		{"empty remote", "", "", "", 403},
		{"unix socket remote", "", "@", "", 403},
		{"loopback with wrong token", "s3cret", "127.0.0.1:1", "Bearer nope", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, Options{HealthToken: tt.token})
			r := healthReq(http.MethodPost, "418", tt.remote, tt.auth)
			r.Header.Set("X-Forwarded-For", "127.0.0.1")
			rec := serve(h, r)
			if rec.Code != tt.want {
				t.Errorf("POST from %q with %q = %d %q, want %d", tt.remote, tt.auth, rec.Code, rec.Body.String(), tt.want)
			}
			wantState := 200
			if tt.want == 200 {
				wantState = 418
			}
			if got := serve(h, healthReq(http.MethodGet, "", "192.0.2.9:1", "")).Code; got != wantState {
				t.Errorf("GET after the POST = %d, want %d", got, wantState)
			}
			// Reading /health needs no authorisation.
		})
	}
}

func TestParseHealthCode(t *testing.T) {
	tests := []struct {
		body string
		want int // 0: not an integer; -1: out of range
	}{
		{"200", 200}, {"599", 599}, {"503", 503}, {" \t\r\n404 \n", 404},
		{"199", -1}, {"600", -1}, {"0", -1}, {"-0", -1}, {"-200", -1}, {"1000", -1}, {"99999999999999999999999", -1},
		{"", 0}, {" ", 0}, {"-", 0}, {"0200", 0}, {"00", 0}, {"200.0", 0}, {"2e2", 0}, {"+200", 0}, {"\"200\"", 0},
		{"200 300", 0}, {"200x", 0}, {"null", 0}, {"true", 0}, {"[200]", 0}, {"{\"statusCode\":200}", 0}, {"\v200", 0},
		{"\u00a0200", 0}, {"２００", 0},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.body), func(t *testing.T) {
			got, err := parseHealthCode([]byte(tt.body))
			switch {
			case tt.want > 0 && (err != nil || got != tt.want):
				t.Errorf("parseHealthCode(%q) = %d, %v; want %d", tt.body, got, err, tt.want)
			case tt.want == 0 && err != errHealthNotInt:
				t.Errorf("parseHealthCode(%q) = %d, %v; want %v", tt.body, got, err, errHealthNotInt)
			case tt.want == -1 && err != errHealthRange:
				t.Errorf("parseHealthCode(%q) = %d, %v; want %v", tt.body, got, err, errHealthRange)
			}
		})
	}
}

func TestHealthBodyLimit(t *testing.T) {
	h := newTestHandler(t, Options{})
	ok := strings.Repeat(" ", maxHealthBody-3) + "500"
	if rec := serve(h, healthReq(http.MethodPost, ok, "127.0.0.1:1", "")); rec.Code != 200 {
		t.Errorf("POST of %d bytes = %d, want 200", len(ok), rec.Code)
	}
	big := strings.Repeat(" ", 1<<20) + "200"
	rec := serve(h, healthReq(http.MethodPost, big, "127.0.0.1:1", ""))
	if rec.Code != 400 || rec.Body.String() != "health: body too large\n" {
		t.Errorf("POST of 1 MiB = %d %q, want 400 %q", rec.Code, rec.Body.String(), "health: body too large\n")
	}
	if got := serve(h, healthReq(http.MethodGet, "", "127.0.0.1:1", "")).Code; got != 500 {
		t.Errorf("state after the rejected POST = %d, want 500", got)
	}
	r := healthReq(http.MethodPost, "", "127.0.0.1:1", "")
	r.Body = errReadCloser{}
	if rec := serve(h, r); rec.Code != 400 {
		t.Errorf("POST with a failing body = %d, want 400", rec.Code)
	}
}

type errReadCloser struct{ errReader }

func (errReadCloser) Close() error { return nil }

// validHealthBody is the oracle for bodies POST /health must accept.
var validHealthBody = regexp.MustCompile(`^[ \t\r\n]*[2-5][0-9][0-9][ \t\r\n]*$`)

func FuzzHealth(f *testing.F) {
	seeds := []struct {
		body, remote, auth string
	}{
		{"500", "127.0.0.1:1", ""}, {"200", "192.0.2.1:1", "Bearer tok"}, {"200", "192.0.2.1:1", "Bearer bad"},
		{`{"statusCode":"200"}`, "[::1]:2", ""}, {"101", "127.0.0.1:1", ""}, {"-1", "127.0.0.1:1", ""},
		{"1e3", "127.0.0.1:1", ""}, {"", "", ""}, {" 204 ", "[::ffff:127.0.0.1]:3", ""}, {"\x00", "x", "Bearer"},
		{"99999999999999999999", "127.0.0.1:1", ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.remote, s.auth)
	}
	f.Fuzz(func(t *testing.T, body []byte, remote, auth string) {
		h := newTestHandler(t, Options{HealthToken: "tok"})
		if got := h.health.Load(); got != 200 {
			t.Fatalf("initial state %d", got)
		}
		r := httptest.NewRequest(http.MethodPost, "/health", strings.NewReader(string(body)))
		r.RemoteAddr = remote
		r.Header["Authorization"] = []string{auth}
		rec := serve(h, r)
		after := serve(h, httptest.NewRequest(http.MethodGet, "/health", nil)).Code
		if auth == "Bearer tok" && len(body) <= maxHealthBody && validHealthBody.Match(body) && rec.Code != 200 {
			t.Fatalf("authorised POST %q = %d, want 200", body, rec.Code)
		}
		switch rec.Code {
		case 200:
			if rec.Body.Len() != 0 {
				t.Fatalf("200 with body %q", rec.Body.String())
			}
			want, err := strconv.Atoi(strings.Trim(string(body), " \t\r\n"))
			if err != nil || want < 200 || want > 599 || after != want {
				t.Fatalf("body %q accepted; state %d", body, after)
			}
		case 400, 403:
			if after != 200 {
				t.Fatalf("rejected POST (%d) changed the state to %d", rec.Code, after)
			}
			if strings.Count(rec.Body.String(), "\n") != 1 {
				t.Fatalf("%d body %q is not one line", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("POST %q from %q with %q = %d", body, remote, auth, rec.Code)
		}
	})
}
