package routes

import (
	"net/url"
	"os"
	"strings"
)

// redacted replaces the value of a secret-looking variable in the
// environment / and /api print.
const redacted = "[redacted]"

// secretWords mark a variable name (compared upper-case) as holding a
// secret: keys, secrets, tokens, passwords, session credentials, and the
// vocabulary around them. Over-redaction is the intended failure mode.
var secretWords = []string{
	"KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "PASSPHRASE", "SESSION",
	"CREDENTIAL", "AUTH", "COOKIE", "PRIVATE", "HMAC", "SIGNATURE", "DSN",
	"CONNECTION_STRING",
}

// printedEnviron returns os.Environ() as / and /api print it: the value of
// every variable whose name looks secret (see secretWords), and of every
// variable holding a URL with a password (scheme://user:pass@host), is
// replaced by [redacted]. The names stay, so an operator can see what is
// set.
func printedEnviron() []string {
	env := os.Environ()
	out := make([]string, len(env))
	for i, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if secretName(name) || urlWithPassword(value) {
			kv = name + "=" + redacted
		}
		out[i] = kv
	}
	return out
}

// secretName reports whether the variable name looks like it holds a
// secret.
func secretName(name string) bool {
	up := strings.ToUpper(name)
	if up == "PWD" || up == "OLDPWD" { // working directories, not passwords
		return false
	}
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	return strings.HasSuffix(up, "_PW") || strings.HasSuffix(up, "PASS")
}

// urlWithPassword reports whether v is a URL carrying a password.
func urlWithPassword(v string) bool {
	if !strings.Contains(v, "://") || !strings.Contains(v, "@") {
		return false
	}
	u, err := url.Parse(v)
	if err != nil {
		return true // unparsable but shaped like one: do not risk it
	}
	_, has := u.User.Password()
	return has
}
