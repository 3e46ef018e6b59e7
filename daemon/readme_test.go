package daemon

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryFlag keeps the README's configuration table in
// step with the flags: every flag and its EDGECERT_* variable must appear.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	newFlagSet(&Config{}, io.Discard).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(readme, "`-"+f.Name+"`") || !strings.Contains(readme, envName(f.Name)) {
			t.Errorf("README.md does not document -%s / %s", f.Name, envName(f.Name))
		}
	})
}
