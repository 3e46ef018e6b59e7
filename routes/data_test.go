package routes

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// refPattern is an independent, byte-by-byte rendering of a /data body of
// n bytes, the oracle for the generator.
func refPattern(n int) []byte {
	const charset = "-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	for i := range b {
		switch {
		case i == 0 || i == n-1:
			b[i] = '|'
		default:
			b[i] = charset[i%27]
		}
	}
	return b
}

func TestDataBodies(t *testing.T) {
	h := newTestHandler(t, Options{})
	tests := []struct {
		target string
		want   string // exact body, or "" with wantLen
		len    int
	}{
		{"/data", "", 0},
		{"/data?size=", "", 0},
		{"/data?unit=kb", "", 0},
		{"/data?size=0", "", 0},
		{"/data?size=1", "|", 1},
		{"/data?size=2", "||", 2},
		{"/data?size=3", "|A|", 3},
		{"/data?size=10", "|ABCDEFGH|", 10},
		{"/data?size=28", "|ABCDEFGHIJKLMNOPQRSTUVWXYZ|", 28},
		{"/data?size=30", "|ABCDEFGHIJKLMNOPQRSTUVWXYZ-A|", 30},
		{"/data?size=%2B5", "|ABC|", 5},
		{"/data?size=007", "|ABCDE|", 7},
		{"/data?size=1&unit=kb", "", 1024},
		{"/data?size=1&unit=KB", "", 1024},
		{"/data?size=1&unit=Kb", "", 1024},
		{"/data?size=3&unit=kB", "", 3 << 10},
		{"/data?size=1&unit=mb", "", 1 << 20},
		{"/data?size=2&unit=MB", "", 2 << 20},
		{"/data?size=100000", "", 100000},
		{"/data?size=10&attachment=false", "|ABCDEFGH|", 10},
		{"/data?size=10&attachment=nonsense", "|ABCDEFGH|", 10},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := get(h, tt.target)
			body := rec.Body.Bytes()
			if rec.Code != 200 {
				t.Fatalf("status %d (%q), want 200", rec.Code, body)
			}
			if tt.want != "" && string(body) != tt.want {
				t.Errorf("body %q, want %q", body, tt.want)
			}
			if !bytes.Equal(body, refPattern(tt.len)) {
				t.Errorf("body of %d bytes does not match the %d-byte pattern", len(body), tt.len)
			}
			if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(tt.len) {
				t.Errorf("Content-Length %q, want %d", got, tt.len)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q, want text/plain; charset=utf-8", got)
			}
			if got := rec.Header().Get("Content-Disposition"); got != "" {
				t.Errorf("Content-Disposition %q without attachment", got)
			}
		})
	}

	t.Run("1 kb exact edges", func(t *testing.T) {
		body := get(h, "/data?size=1&unit=kb").Body.String()
		if !strings.HasPrefix(body, "|ABCDEFGHIJKLMNOPQRSTUVWXYZ-ABC") || !strings.HasSuffix(body, "TUVW|") || len(body) != 1024 {
			t.Errorf("1 kb body = %q…%q (%d bytes)", body[:min(31, len(body))], body[max(0, len(body)-5):], len(body))
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		rec := serve(h, httptest.NewRequest(http.MethodHead, "/data?size=1&unit=gb", nil))
		if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "1073741824" {
			t.Errorf("HEAD = %d, %d body bytes, Content-Length %q; want 200, 0, 1073741824",
				rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
		}
	})
}

func TestDataAttachment(t *testing.T) {
	h := newTestHandler(t, Options{})
	tests := []struct {
		name         string
		target       string
		rangeHdr     string
		wantCode     int
		wantBody     string
		wantRange    string
		wantLenBytes int // when wantBody is "", the body is the pattern of this length
	}{
		{"whole", "/data?size=10&attachment=true", "", 200, "|ABCDEFGH|", "", 10},
		{"ParseBool 1", "/data?size=10&attachment=1", "", 200, "|ABCDEFGH|", "", 10},
		{"one byte", "/data?size=1&attachment=true", "", 200, "|", "", 1},
		{"empty", "/data?size=0&attachment=true", "", 200, "", "", 0},
		{"missing size", "/data?attachment=true", "", 200, "", "", 0},
		{"1 kb", "/data?size=1&unit=kb&attachment=true", "", 200, "", "", 1024},
		{"first bytes", "/data?size=10&attachment=true", "bytes=0-4", 206, "|ABCD", "bytes 0-4/10", 0},
		{"open end", "/data?size=10&attachment=true", "bytes=5-", 206, "EFGH|", "bytes 5-9/10", 0},
		{"suffix", "/data?size=10&attachment=true", "bytes=-3", 206, "GH|", "bytes 7-9/10", 0},
		{"middle of 1 kb", "/data?size=1&unit=kb&attachment=true", "bytes=26-29", 206, "Z-AB", "bytes 26-29/1024", 0},
		{"end of 1 kb", "/data?size=1&unit=kb&attachment=true", "bytes=1020-1023", 206, "UVW|", "bytes 1020-1023/1024", 0},
		{"unsatisfiable", "/data?size=10&attachment=true", "bytes=100-200", 416, "", "bytes */10", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.rangeHdr != "" {
				r.Header.Set("Range", tt.rangeHdr)
			}
			rec := serve(h, r)
			body := rec.Body.String()
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d (%q), want %d", rec.Code, body, tt.wantCode)
			}
			switch {
			case tt.wantBody != "":
				if body != tt.wantBody {
					t.Errorf("body %q, want %q", body, tt.wantBody)
				}
			case tt.wantLenBytes >= 0:
				if !bytes.Equal([]byte(body), refPattern(tt.wantLenBytes)) {
					t.Errorf("body of %d bytes, want the %d-byte pattern", len(body), tt.wantLenBytes)
				}
			}
			if got := rec.Header().Get("Content-Range"); got != tt.wantRange {
				t.Errorf("Content-Range %q, want %q", got, tt.wantRange)
			}
			if rec.Code == 416 {
				return
			}
			if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q, body %d bytes", got, len(body))
			}
			want := map[string]string{
				"Content-Disposition": "Attachment",
				"Accept-Ranges":       "bytes",
				"Content-Type":        "text/plain; charset=utf-8",
			}
			for k, v := range want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s %q, want %q", k, got, v)
				}
			}
		})
	}

	t.Run("multiple ranges", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/data?size=10&attachment=true", nil)
		r.Header.Set("Range", "bytes=0-0,8-9")
		rec := serve(h, r)
		ct := rec.Header().Get("Content-Type")
		body := rec.Body.String()
		if rec.Code != 206 || !strings.HasPrefix(ct, "multipart/byteranges; boundary=") {
			t.Fatalf("= %d %q, want 206 multipart/byteranges", rec.Code, ct)
		}
		for _, part := range []string{
			"Content-Range: bytes 0-0/10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n|\r\n",
			"Content-Range: bytes 8-9/10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nH|\r\n",
		} {
			if !strings.Contains(body, part) {
				t.Errorf("multipart body %q lacks %q", body, part)
			}
		}
	})
}

func TestDataBadInput(t *testing.T) {
	h := newTestHandler(t, Options{})
	small := newTestHandler(t, Options{DataMax: 100})
	tests := []struct {
		h      *Handler
		target string
		reason string
	}{
		{h, "/data?size=abc", "size must be a non-negative decimal integer"},
		{h, "/data?size=1.5", "size must be a non-negative decimal integer"},
		{h, "/data?size=1e3", "size must be a non-negative decimal integer"},
		{h, "/data?size=0x10", "size must be a non-negative decimal integer"},
		{h, "/data?size=%2010", "size must be a non-negative decimal integer"},
		{h, "/data?size=1_000", "size must be a non-negative decimal integer"},
		{h, "/data?size=-", "size must be a non-negative decimal integer"},
		{h, "/data?size=-1", "size must not be negative"},
		{h, "/data?size=-99999999999999999999", "size must not be negative"},
		{h, "/data?size=99999999999999999999", "size overflows 64 bits"},
		{h, "/data?size=9223372036854775807&unit=kb", "size overflows 64 bits"},
		{h, "/data?size=8388608&unit=tb", "size overflows 64 bits"},
		{h, "/data?size=10&unit=b", "unit must be kb, mb, gb or tb"},
		{h, "/data?size=10&unit=bytes", "unit must be kb, mb, gb or tb"},
		{h, "/data?size=10&unit=kib", "unit must be kb, mb, gb or tb"},
		{h, "/data?size=10&unit=pb", "unit must be kb, mb, gb or tb"},
		{h, "/data?unit=xb", "unit must be kb, mb, gb or tb"},
		{h, "/data?size=1&unit=%E2%84%AAb", "unit must be kb, mb, gb or tb"}, // Kelvin sign, not k
		{h, "/data?size=2&unit=gb", "size exceeds the limit of 1073741824 bytes"},
		{h, "/data?size=1073741825", "size exceeds the limit of 1073741824 bytes"},
		{h, "/data?size=1&unit=tb&attachment=true", "size exceeds the limit of 1073741824 bytes"},
		{small, "/data?size=101", "size exceeds the limit of 100 bytes"},
		{small, "/data?size=1&unit=kb", "size exceeds the limit of 100 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := get(tt.h, tt.target)
			body := rec.Body.String()
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", rec.Code)
			}
			if !strings.HasPrefix(body, "data: ") || !strings.Contains(body, tt.reason) ||
				strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
				t.Errorf("body %q, want one line starting %q containing %q", body, "data: ", tt.reason)
			}
			if rec.Header().Get("Content-Disposition") != "" {
				t.Errorf("400 carries Content-Disposition")
			}
		})
	}

	// The cap itself is allowed.
	if rec := get(small, "/data?size=100"); rec.Code != 200 || rec.Body.Len() != 100 {
		t.Errorf("size=DataMax = %d with %d bytes, want 200 with 100", rec.Code, rec.Body.Len())
	}
}

// TestPatternReader checks Read, Seek and WriteTo against the reference at
// chunk boundaries.
func TestPatternReader(t *testing.T) {
	const size = 3*patternChunk + 100
	ref := refPattern(size)

	t.Run("Read in odd chunks", func(t *testing.T) {
		p := &patternReader{size: size}
		var got []byte
		buf := make([]byte, 12345)
		for {
			n, err := p.Read(buf)
			got = append(got, buf[:n]...)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, ref) {
			t.Errorf("Read produced %d bytes differing from the reference", len(got))
		}
	})
	t.Run("Seek then Read", func(t *testing.T) {
		for _, off := range []int64{0, 1, 26, 27, patternChunk - 1, patternChunk, size - 2, size - 1} {
			p := &patternReader{size: size}
			if n, err := p.Seek(off, io.SeekStart); n != off || err != nil {
				t.Fatalf("Seek(%d) = %d, %v", off, n, err)
			}
			got, err := io.ReadAll(io.LimitReader(p, 40))
			if err != nil {
				t.Fatal(err)
			}
			if want := ref[off:min(off+40, size)]; !bytes.Equal(got, want) {
				t.Errorf("at %d: %q, want %q", off, got, want)
			}
		}
		p := &patternReader{size: size}
		if n, err := p.Seek(0, io.SeekEnd); n != size || err != nil {
			t.Errorf("Seek(0, End) = %d, %v; want %d (exact size)", n, err, size)
		}
		if n, err := p.Seek(-5, io.SeekCurrent); n != size-5 || err != nil {
			t.Errorf("Seek(-5, Current) = %d, %v; want %d", n, err, size-5)
		}
		if _, err := p.Seek(-1, io.SeekStart); err == nil {
			t.Errorf("Seek(-1, Start) succeeded")
		}
		if _, err := p.Seek(0, 42); err == nil {
			t.Errorf("Seek with whence 42 succeeded")
		}
	})
	t.Run("WriteTo", func(t *testing.T) {
		for _, off := range []int64{0, 1, 5000} {
			p := &patternReader{size: size, off: off}
			var buf bytes.Buffer
			n, err := p.WriteTo(&buf)
			if err != nil || n != size-off || !bytes.Equal(buf.Bytes(), ref[off:]) {
				t.Errorf("WriteTo from %d = %d, %v; body equal: %v", off, n, err, bytes.Equal(buf.Bytes(), ref[off:]))
			}
		}
		p := &patternReader{size: size}
		if _, err := p.WriteTo(shortWriter{}); !errors.Is(err, io.ErrShortWrite) {
			t.Errorf("WriteTo a short writer: %v, want io.ErrShortWrite", err)
		}
	})
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

// TestDataStreamsInConstantMemory streams 1 GiB (and 1 GiB as an
// attachment) and checks the heap did not grow with it.
func TestDataStreamsInConstantMemory(t *testing.T) {
	h := newTestHandler(t, Options{})
	for _, target := range []string{"/data?size=1&unit=gb", "/data?size=1&unit=gb&attachment=true"} {
		t.Run(target, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			w := newDiscardWriter()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
			runtime.ReadMemStats(&after)
			if w.code != 200 || w.n != 1<<30 {
				t.Fatalf("= %d with %d bytes, want 200 with %d", w.code, w.n, 1<<30)
			}
			const limit = 8 << 20
			if d := int64(after.TotalAlloc) - int64(before.TotalAlloc); d > limit {
				t.Errorf("allocated %d bytes while streaming 1 GiB, want < %d", d, limit)
			}
			if d := int64(after.HeapInuse) - int64(before.HeapInuse); d > limit {
				t.Errorf("HeapInuse grew by %d bytes while streaming 1 GiB, want < %d", d, limit)
			}
		})
	}
}

// dataOracle independently computes the body length /data must serve for
// the query values, or ok=false when the answer must be a 400.
func dataOracle(size, unit string, max int64) (n int64, ok bool) {
	mult := map[string]int64{"": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
	m, known := mult[strings.ToLower(unit)]
	if !known || (unit != "" && len(unit) != 2) {
		return 0, false
	}
	if size == "" {
		return 0, true
	}
	v, err := strconv.ParseInt(size, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/m || v*m > max {
		return 0, false
	}
	return v * m, true
}

func FuzzData(f *testing.F) {
	seeds := []struct{ size, unit, attachment string }{
		{"", "", ""}, {"0", "", ""}, {"1", "", ""}, {"2", "", "true"}, {"10", "", ""}, {"28", "", "1"},
		{"1", "kb", ""}, {"1", "KB", "true"}, {"1", "mb", "false"}, {"-1", "", ""}, {"abc", "", ""},
		{"99999999999999999999", "", ""}, {"9223372036854775807", "tb", ""}, {"5", "xb", ""}, {"5", "K", ""},
		{"+3", "", "t"}, {"1", "gb", ""}, {" 1", "", ""}, {"1", "\u212ab", ""},
	}
	for _, s := range seeds {
		f.Add(s.size, s.unit, s.attachment)
	}
	const max = 1 << 20
	h := newTestHandler(f, Options{DataMax: max})
	f.Fuzz(func(t *testing.T, size, unit, attachment string) {
		q := url.Values{"size": {size}, "unit": {unit}, "attachment": {attachment}}
		rec := get(h, "/data?"+q.Encode())
		body := rec.Body.Bytes()
		want, ok := dataOracle(size, unit, max)
		switch rec.Code {
		case 200:
			if !ok {
				t.Fatalf("size=%q unit=%q: 200, want 400", size, unit)
			}
			if int64(len(body)) != want || !bytes.Equal(body, refPattern(int(want))) {
				t.Fatalf("size=%q unit=%q: %d bytes, want the %d-byte pattern", size, unit, len(body), want)
			}
		case 206:
			t.Fatalf("206 without a Range header")
		case 400:
			if ok {
				t.Fatalf("size=%q unit=%q: 400 %q, want 200 with %d bytes", size, unit, body, want)
			}
			if bytes.Count(body, []byte("\n")) != 1 || !bytes.HasSuffix(body, []byte("\n")) {
				t.Fatalf("400 body %q is not one line", body)
			}
		default:
			t.Fatalf("size=%q unit=%q attachment=%q: status %d", size, unit, attachment, rec.Code)
		}
	})
}

// TestDataRangeDecisions: a zero-length suffix range and an amplifying
// multi-range request get 416 with a reason and a valid Content-Range;
// ordinary ranges still work.
func TestDataRangeDecisions(t *testing.T) {
	h := newTestHandler(t, Options{})
	many := "bytes=" + strings.Repeat("0-0,", maxRanges) + "1-1"
	for _, tt := range []struct {
		rng  string
		code int
	}{
		{"bytes=-0", http.StatusRequestedRangeNotSatisfiable},
		{"bytes=0-1, -00", http.StatusRequestedRangeNotSatisfiable},
		{many, http.StatusRequestedRangeNotSatisfiable},
		{"bytes=-1", http.StatusPartialContent},
		{"bytes=0-1,4-5", http.StatusPartialContent},
		{"bytes=" + strings.Repeat("0-0,", maxRanges-1) + "1-1", http.StatusPartialContent},
	} {
		req := httptest.NewRequest("GET", "/data?size=100&attachment=true", nil)
		req.Header.Set("Range", tt.rng)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.code {
			t.Errorf("Range %.40q: %d; want %d", tt.rng, rec.Code, tt.code)
		}
		if tt.code == http.StatusRequestedRangeNotSatisfiable {
			if got := rec.Header().Get("Content-Range"); got != "bytes */100" {
				t.Errorf("Range %.40q: Content-Range %q; want bytes */100", tt.rng, got)
			}
			if strings.Count(strings.TrimSpace(rec.Body.String()), "\n") != 0 || !strings.HasPrefix(rec.Body.String(), "data: ") {
				t.Errorf("Range %.40q: body %q; want a one-line reason", tt.rng, rec.Body.String())
			}
		}
	}
}
