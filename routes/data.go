package routes

import (
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// patternCharset is whoami's /data alphabet: byte i of a body (other than
// the first and the last, which are '|') is patternCharset[i%27].
const patternCharset = "-ABCDEFGHIJKLMNOPQRSTUVWXYZ"

const (
	patternPeriod = len(patternCharset)
	patternChunk  = 32 << 10 // bytes handed to one Write
)

// pattern is patternCharset repeated, long enough that pattern[i%27:] holds
// patternChunk bytes of body starting at offset i. It is never written
// after initialisation.
var pattern = func() []byte {
	b := make([]byte, patternChunk+patternPeriod)
	for i := range b {
		b[i] = patternCharset[i%patternPeriod]
	}
	return b
}()

var (
	pipe          = []byte("|")
	hdrAttachment = []string{"Attachment"}[:1:1]
)

// patternReader is an io.ReadSeeker (and io.WriterTo) over a generated
// /data body of size bytes. It holds no buffer of its own: Read copies from
// pattern and WriteTo writes slices of it, so memory does not grow with
// size.
type patternReader struct {
	size int64
	off  int64
}

// Read fills p with the body bytes at the current offset.
func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.size-p.off))
	fillPattern(b[:n], p.off, p.size)
	p.off += int64(n)
	return n, nil
}

// fillPattern writes the bytes [off, off+len(dst)) of a body of size bytes
// into dst.
func fillPattern(dst []byte, off, size int64) {
	for i := 0; i < len(dst); {
		start := (off + int64(i)) % int64(patternPeriod)
		i += copy(dst[i:], pattern[start:])
	}
	if len(dst) == 0 {
		return
	}
	if off == 0 {
		dst[0] = '|'
	}
	if off+int64(len(dst)) == size {
		dst[len(dst)-1] = '|'
	}
}

// Seek implements io.Seeker; the offset may not become negative but may
// pass the end (Read then reports io.EOF).
func (p *patternReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += p.off
	case io.SeekEnd:
		offset += p.size
	default:
		return 0, errors.New("routes: seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("routes: seek: negative position")
	}
	p.off = offset
	return offset, nil
}

// WriteTo writes the rest of the body to w straight from pattern.
func (p *patternReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for p.off < p.size {
		var chunk []byte
		if p.off == 0 || p.off == p.size-1 {
			chunk = pipe
		} else {
			start := p.off % int64(patternPeriod)
			n := min(int64(patternChunk), p.size-1-p.off)
			chunk = pattern[start : start+n]
		}
		n, err := w.Write(chunk)
		total += int64(n)
		p.off += int64(n)
		if err != nil {
			return total, err
		}
		if n < len(chunk) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// serveData answers /data?size=N[&unit=U][&attachment=true] with exactly N
// units of generated body (see patternCharset). A missing or empty size is
// an empty 200. Bad input is a 400 with a one-line reason (see
// dataSize). With attachment=true (any strconv.ParseBool true value) the
// body is served by http.ServeContent with Content-Disposition: Attachment
// and range support; otherwise it is streamed with a Content-Length.
func (h *Handler) serveData(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, err := h.dataSize(q.Get("size"), q.Get("unit"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	attach, _ := strconv.ParseBool(q.Get("attachment"))
	body := &patternReader{size: size}
	hd := w.Header()
	hd["Content-Type"] = hdrTextPlainUTF8
	if attach {
		if rg := r.Header.Get("Range"); rg != "" {
			if err := checkRanges(rg); err != nil {
				hd["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
				http.Error(w, err.Error(), http.StatusRequestedRangeNotSatisfiable)
				return
			}
		}
		hd["Content-Disposition"] = hdrAttachment
		http.ServeContent(w, r, "data.txt", time.Now(), body)
		return
	}
	hd["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	if r.Method == http.MethodHead {
		return
	}
	if _, err := body.WriteTo(w); err != nil {
		h.log.Debug("routes.data.write_failed", "remote", r.RemoteAddr, "size", size, "err", err)
	}
}

// Reasons for a 400 from /data.
var (
	errDataSize     = errors.New("data: size must be a non-negative decimal integer")
	errDataNegative = errors.New("data: size must not be negative")
	errDataOverflow = errors.New("data: size overflows 64 bits")
	errDataUnit     = errors.New("data: unit must be kb, mb, gb or tb (or absent for bytes)")
)

// dataSize returns the body length in bytes for the size and unit query
// values. unit is "" (bytes) or kb, mb, gb, tb in any case (binary
// multiples; ASCII case only, so the Kelvin sign is not a k). An empty size
// means 0. The result is at most dataMax.
func (h *Handler) dataSize(size, unit string) (int64, error) {
	mult := int64(1)
	switch {
	case unit == "":
	case asciiEqualFold(unit, "kb"):
		mult = 1 << 10
	case asciiEqualFold(unit, "mb"):
		mult = 1 << 20
	case asciiEqualFold(unit, "gb"):
		mult = 1 << 30
	case asciiEqualFold(unit, "tb"):
		mult = 1 << 40
	default:
		return 0, errDataUnit
	}
	if size == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(size, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && size[0] == '-':
		return 0, errDataNegative
	case errors.Is(err, strconv.ErrRange):
		return 0, errDataOverflow
	case err != nil:
		return 0, errDataSize
	case n < 0:
		return 0, errDataNegative
	case n > math.MaxInt64/mult:
		return 0, errDataOverflow
	case n*mult > h.dataMax:
		return 0, errors.New("data: size exceeds the limit of " + strconv.FormatInt(h.dataMax, 10) + " bytes")
	}
	return n * mult, nil
}

// asciiEqualFold reports whether s equals the lower-case ASCII word lower,
// ignoring ASCII case.
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// maxRanges is the most byte ranges one /data request may ask for; more
// would make the multipart answer many times the size of the request.
const maxRanges = 16

// checkRanges refuses what http.ServeContent gets wrong or amplifies: more
// than maxRanges ranges (a 60 KB Range header got a 36x larger answer), and
// a zero-length suffix "-0", which RFC 9110 §14.1.2 makes unsatisfiable
// (ServeContent answered it 206 with an invalid Content-Range). Everything
// else is left to ServeContent.
func checkRanges(h string) error {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return nil // not a byte range: ServeContent ignores it
	}
	n := 0
	for r := range strings.SplitSeq(spec, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if n++; n > maxRanges {
			return errRangeCount
		}
		if suffix, ok := strings.CutPrefix(r, "-"); ok && strings.TrimLeft(suffix, "0") == "" && suffix != "" {
			return errRangeEmptySuffix
		}
	}
	return nil
}

var (
	errRangeCount       = errors.New("data: at most " + strconv.Itoa(maxRanges) + " byte ranges per request")
	errRangeEmptySuffix = errors.New("data: the suffix range -0 selects no bytes")
)
