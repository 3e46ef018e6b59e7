package fakeroute53

import (
	"errors"
	"slices"
	"strings"
)

// canonical returns name in lower case with exactly one trailing dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// inZone reports whether the canonical name is zone or below it.
func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// compareNames orders canonical names the way Route 53 lists them: by labels
// from the root down ("com.example.www").
func compareNames(a, b string) int {
	return slices.Compare(reversedLabels(a), reversedLabels(b))
}

func reversedLabels(name string) []string {
	l := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(l)
	return l
}

// quoteTXT renders s as one or more quoted character-strings of at most 255
// bytes each, escaping '"' and '\'.
func quoteTXT(s string) string {
	var b strings.Builder
	for first := true; first || len(s) > 0; first = false {
		chunk := s
		if len(chunk) > 255 {
			chunk = chunk[:255]
		}
		s = s[len(chunk):]
		if !first {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for i := 0; i < len(chunk); i++ {
			if chunk[i] == '"' || chunk[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(chunk[i])
		}
		b.WriteByte('"')
	}
	return b.String()
}

var errUnquoted = errors.New("value should be enclosed in quotation marks")

// The fake keeps its own TXT parser on purpose, although route53dns has one
// of the same shape: a fake that shared the client's parsing code would hide
// any bug the two had in common.
//
// unquoteTXT parses a Route 53 TXT value: one or more quoted
// character-strings separated by spaces, with \" \\ and \ddd (octal) escapes.
// The strings are concatenated.
func unquoteTXT(v string) (string, error) {
	var b strings.Builder
	i, n := 0, 0
	for {
		for i < len(v) && v[i] == ' ' {
			i++
		}
		if i == len(v) {
			break
		}
		if v[i] != '"' {
			return "", errUnquoted
		}
		i++
		start := b.Len()
		closed := false
		for i < len(v) {
			c := v[i]
			i++
			if c == '"' {
				closed = true
				break
			}
			if c == '\\' && i < len(v) {
				if i+2 < len(v) && isOctal(v[i]) && isOctal(v[i+1]) && isOctal(v[i+2]) {
					b.WriteByte((v[i]-'0')<<6 | (v[i+1]-'0')<<3 | (v[i+2] - '0'))
					i += 3
					continue
				}
				c = v[i]
				i++
			}
			b.WriteByte(c)
		}
		if !closed {
			return "", errors.New("unterminated quoted string")
		}
		if b.Len()-start > 255 {
			return "", errors.New("character-string longer than 255 bytes")
		}
		n++
	}
	if n == 0 {
		return "", errUnquoted
	}
	return b.String(), nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
