package certstore

import (
	"fmt"
	"strings"
)

// maxNameLen bounds certificate names and blob keys; with the temporary
// prefixes added to them they stay below the usual 255-byte file name limit.
const maxNameLen = 200

// checkName reports whether s may be used as one path element under the
// store directory: a certificate name, a blob key, or a version name.
func checkName(kind, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("certstore: empty %s", kind)
	case len(s) > maxNameLen:
		return fmt.Errorf("certstore: %s longer than %d bytes", kind, maxNameLen)
	case s[0] == '.':
		return fmt.Errorf("certstore: %s %q starts with a dot", kind, s)
	case strings.Contains(s, ".."):
		return fmt.Errorf("certstore: %s %q contains \"..\"", kind, s)
	case strings.ContainsAny(s, `/\`):
		return fmt.Errorf("certstore: %s %q contains a path separator", kind, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return fmt.Errorf("certstore: %s %q contains a control character", kind, s)
		}
	}
	return nil
}
