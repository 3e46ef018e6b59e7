package daemon

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// configError is a configuration problem: one line naming the flag (and
// the variable, when the value came from one). hint adds a pointer to the
// help, for mistakes in the command line itself.
type configError struct {
	flag string // without "-"; "" when no flag is involved
	env  string // EDGECERT_* variable the value came from, if any
	msg  string
	hint bool
}

func (e *configError) Error() string {
	var s string
	switch {
	case e.env != "":
		s = e.env + ": " + e.msg + " (-" + e.flag + ")"
	case e.flag != "":
		s = "-" + e.flag + ": " + e.msg
	default:
		s = e.msg
	}
	if e.hint {
		s += "; see 'edgecert run -h'"
	}
	return s
}

func badFlag(name, format string, args ...any) error {
	return &configError{flag: name, msg: fmt.Sprintf(format, args...)}
}

// envName is the environment variable that backs flag name.
func envName(name string) string {
	return "EDGECERT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// checkedValue wraps a flag's Value so that a bad value becomes a
// *configError naming the flag with a hint of what is expected.
type checkedValue struct {
	flag.Value
	name   string
	failed **configError // the FlagSet's first bad value (flag.Parse does not wrap errors)
}

func (v checkedValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		ce := &configError{flag: v.name, msg: valueProblem(v.Value, s, err)}
		if *v.failed == nil {
			*v.failed = ce
		}
		return ce
	}
	return nil
}

func (v checkedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (v checkedValue) Get() any {
	if g, ok := v.Value.(flag.Getter); ok {
		return g.Get()
	}
	return nil
}

// checkValues wraps every flag of fs in a checkedValue and returns where
// the first bad value is recorded.
func checkValues(fs *flag.FlagSet) **configError {
	failed := new(*configError)
	fs.VisitAll(func(f *flag.Flag) { f.Value = checkedValue{Value: f.Value, name: f.Name, failed: failed} })
	return failed
}

// valueProblem says what is wrong with s for v, with an example of a good
// value. The daemon's own Value types already say so in err.
func valueProblem(v flag.Value, s string, err error) string {
	var got any
	if g, ok := v.(flag.Getter); ok {
		got = g.Get()
	}
	switch got.(type) {
	case time.Duration:
		return fmt.Sprintf("%q is not a duration (e.g. 2m)", s)
	case bool:
		return fmt.Sprintf("%q is not true or false", s)
	case int, int64, uint, uint64:
		return fmt.Sprintf("%q is not a whole number", s)
	case *slog.Level:
		return fmt.Sprintf("%q is not debug, info, warn or error", s)
	}
	return err.Error()
}

// parseError turns an error of flag.FlagSet.Parse into a one-line
// *configError with a hint; failed is what checkValues returned.
func parseError(fs *flag.FlagSet, failed *configError, err error) error {
	if failed != nil {
		failed.hint = true
		return failed
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return &configError{flag: name, msg: "unknown flag" + didYouMean("-", name, flagNames(fs)), hint: true}
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return &configError{flag: name, msg: "needs a value", hint: true}
	}
	return &configError{msg: msg, hint: true}
}

func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// unknownEnv returns one warning per EDGECERT_* variable in environ
// ("K=V" strings) that backs no flag of `edgecert run`, with the closest
// known name.
func unknownEnv(environ []string) []string {
	known := map[string]bool{}
	var names []string
	newFlagSet(&Config{}, nil).VisitAll(func(f *flag.Flag) {
		known[envName(f.Name)] = true
		names = append(names, envName(f.Name))
	})
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "EDGECERT_") || known[k] {
			continue
		}
		out = append(out, k+" is not a known variable, ignored"+didYouMean("", k, names))
	}
	return out
}

// didYouMean returns " (did you mean PREFIX+NAME?)" for the known name
// closest to got, or "" when none is close.
func didYouMean(prefix, got string, known []string) string {
	// Separators count for little: HTTPSADDR is HTTPS_ADDR, not HTTP_ADDR.
	key := strings.NewReplacer("-", "", "_", "").Replace
	best, bestD, bestRaw := "", -1, 0
	for _, k := range known {
		d := editDistance(key(strings.ToLower(got)), key(strings.ToLower(k)))
		raw := editDistance(strings.ToLower(got), strings.ToLower(k))
		if bestD < 0 || d < bestD || d == bestD && raw < bestRaw {
			best, bestD, bestRaw = k, d, raw
		}
	}
	if bestD >= 0 && bestD <= max(2, len(got)/4) {
		return " (did you mean " + prefix + best + "?)"
	}
	var prefixed []string
	for _, k := range known {
		if strings.HasPrefix(k, got) {
			prefixed = append(prefixed, k)
		}
	}
	if len(prefixed) == 1 {
		return " (did you mean " + prefix + prefixed[0] + "?)"
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// domainsFlag collects one certificate per -domains occurrence.
type domainsFlag struct{ certs *[][]string }

func (d domainsFlag) String() string {
	if d.certs == nil {
		return ""
	}
	var parts []string
	for _, c := range *d.certs {
		parts = append(parts, strings.Join(c, ","))
	}
	return strings.Join(parts, ";")
}

func (d domainsFlag) Set(v string) error {
	var names []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, strings.ToLower(strings.TrimSuffix(n, ".")))
		}
	}
	if len(names) == 0 {
		return errors.New("empty domain list (e.g. example.com,*.example.com)")
	}
	*d.certs = append(*d.certs, names)
	return nil
}

// listFlag is a comma-separated list.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	*l.v = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// sizeFlag is a byte count with an optional binary unit (KiB, MiB, GiB, TiB;
// also K, M, G, T and KB/MB/GB/TB read as binary).
type sizeFlag struct{ v *int64 }

var sizeUnits = []struct {
	suffix string
	m      int64
}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10},
	{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}

// String renders the size in the largest binary unit that divides it
// (1GiB, not 1073741824).
func (s sizeFlag) String() string {
	if s.v == nil {
		return ""
	}
	n := *s.v
	for _, u := range []struct {
		name string
		m    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n > 0 && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (s sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s.v = n
	return nil
}

func parseSize(v string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a positive size (e.g. 1GiB)", v)
	}
	return n * mult, nil
}
