// Package monitoring holds the Prometheus alert rules (edgecert.rules.yml)
// and their promtool tests; this Go test runs them, so `make test` (which
// installs promtool) fails when a rule or its tests break.
package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const rulesFile = "edgecert.rules.yml"

var ruleTests = []string{"lifetime.rules.test.yml", "events.rules.test.yml"}

// promtool returns the path of promtool or fails the test: it is a
// dependency of the test suite, installed by make test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run `make test` (it installs it) or `sudo scripts/install-deps.sh monitoring` (Debian package prometheus)")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestRulesCheck(t *testing.T) {
	if out, err := runPromtool(t, ".", "check", "rules", rulesFile); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestRulesUnit runs the rule tests: each alert fires on a series made to
// fire it and stays silent on one that must not, and healthy 6-day and
// 45-day certificates never fire any certificate alert.
func TestRulesUnit(t *testing.T) {
	t.Parallel()
	for _, f := range ruleTests {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			if out, err := runPromtool(t, ".", "test", "rules", f); err != nil {
				t.Fatalf("promtool test rules %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestRuleTestsCatchBrokenRules weakens one rule at a time in a copy and
// checks that the rule tests then fail: they can fail, and they pin the
// thresholds that matter (a fixed-days-like threshold would fire on the
// healthy 45-day certificate, a 50 % one on the 6-day). With -short, the
// two slower lifetime mutations are left to the full run.
func TestRuleTestsCatchBrokenRules(t *testing.T) {
	t.Parallel()
	orig, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name, from, to, tests string
		long                  bool // not with -short
	}{
		{"warning at a third of the lifetime", "< 0.2\n", "< 0.34\n", ruleTests[0], false},
		{"critical at half the lifetime", "< 0.1\n", "< 0.51\n", ruleTests[0], true},
		{"overdue without margin", "> 6 * 3600", "> -3600", ruleTests[0], true},
		{"failing after 2 attempts", ">= 3", ">= 2", ruleTests[1], false},
		{"throttled at 1 %", "> 0.2\n", "> 0.01\n", ruleTests[1], false},
		{"not ready without for", "== 0\n        for: 15m", "== 0\n        for: 1m", ruleTests[1], false},
		{"access denied on any call", `outcome="access_denied"}[15m])) > 0`, `outcome="access_denied"}[15m])) >= 0`, ruleTests[1], false},
	} {
		if m.long && testing.Short() {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			if strings.Count(string(orig), m.from) != 1 {
				t.Fatalf("%q occurs %d times in %s, want once", m.from, strings.Count(string(orig), m.from), rulesFile)
			}
			dir := t.TempDir()
			mutated := strings.Replace(string(orig), m.from, m.to, 1)
			if err := os.WriteFile(filepath.Join(dir, rulesFile), []byte(mutated), 0o600); err != nil {
				t.Fatal(err)
			}
			tests, err := os.ReadFile(m.tests)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, m.tests), tests, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runPromtool(t, dir, "test", "rules", m.tests)
			if err == nil {
				t.Fatalf("the rule tests pass with %q replaced by %q; they must catch it\n%s", m.from, m.to, out)
			}
			if !strings.Contains(out, "FAILED") {
				t.Fatalf("promtool failed without a test failure: %v\n%s", err, out)
			}
		})
	}
}
