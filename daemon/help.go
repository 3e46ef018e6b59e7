package daemon

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// flagSection is one group of flags in -h.
type flagSection struct {
	title string
	names []string // in the order -h lists them
}

// runExamples end `edgecert run -h`.
const runExamples = `Examples:
  # a certificate for the apex and its wildcard from Let's Encrypt
  edgecert run -domains 'example.com,*.example.com' -email ops@example.com -accept-tos

  # two certificates, trying Let's Encrypt's staging CA first
  edgecert run -staging -accept-tos -domains example.com,www.example.com -domains api.example.com

  # the same through the environment, as the systemd unit passes it
  EDGECERT_DOMAINS='example.com,www.example.com;api.example.com' EDGECERT_ACCEPT_TOS=true edgecert run

  # an operator-supplied certificate only, no ACME
  edgecert run -cert-file /etc/edgecert/cert.pem -key-file /etc/edgecert/key.pem
`

// writeUsage prints the usage of fs: its flags by section, each default
// once, then the examples.
func writeUsage(w io.Writer, fs *flag.FlagSet, sections []flagSection) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "Usage: %s [flags]\n\n", fs.Name())
	fmt.Fprintf(w, "Every flag also reads EDGECERT_<FLAG> (-https-addr: EDGECERT_HTTPS_ADDR); the command line wins.\n")
	for _, s := range sections {
		if len(s.names) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", s.title)
		for _, name := range s.names {
			writeFlag(w, fs.Lookup(name))
		}
	}
	if strings.HasSuffix(fs.Name(), " run") {
		fmt.Fprintf(w, "\n%s", runExamples)
	}
}

func writeFlag(w io.Writer, f *flag.Flag) {
	typ, usage := flag.UnquoteUsage(f)
	if typ == "value" { // checkedValue hides the type from UnquoteUsage
		typ = valueType(f.Value)
	}
	line := "  -" + f.Name
	if typ != "" {
		line += " " + typ
	}
	fmt.Fprintf(w, "%s\n        %s", line, usage)
	def := f.DefValue
	if d, err := time.ParseDuration(def); err == nil && valueType(f.Value) == "duration" {
		def = shortDuration(d)
	}
	switch def {
	case "", "false", "0", "0s":
	default:
		if !strings.Contains(usage, "(default") {
			fmt.Fprintf(w, " (default %s)", def)
		}
	}
	fmt.Fprintln(w)
}

// valueType is the word -h shows after a flag: what its value is.
func valueType(v flag.Value) string {
	if cv, ok := v.(checkedValue); ok {
		v = cv.Value
	}
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	switch v.(type) {
	case domainsFlag, listFlag:
		return "list"
	case sizeFlag:
		return "size"
	}
	var got any
	if g, ok := v.(flag.Getter); ok {
		got = g.Get()
	}
	switch got.(type) {
	case time.Duration:
		return "duration"
	case int, int64:
		return "int"
	case string:
		return "string"
	case *slog.Level:
		return "level"
	}
	return "value"
}

// shortDuration renders d without zero units: 3m, 1h30m, 45s, 1.5s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
