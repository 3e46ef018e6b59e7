package routes

import (
	"strings"
	"testing"
)

// TestEnvRedactsSecrets: with AllowEnv, / and /api print every variable's
// name but never the value of one that looks secret.
func TestEnvRedactsSecrets(t *testing.T) {
	secrets := map[string]string{
		"AWS_SECRET_ACCESS_KEY":  "s3cr3t-aws-key-value",
		"AWS_SESSION_TOKEN":      "s3cr3t-session-token",
		"AWS_ACCESS_KEY_ID":      "AKIDs3cr3tID",
		"EDGECERT_HEALTH_TOKEN":  "s3cr3t-health",
		"EDGECERT_ACME_EAB_HMAC": "s3cr3t-hmac",
		"DB_PASSWORD":            "s3cr3t-pw",
		"GITHUB_API_KEY":         "s3cr3t-gh",
		"MYSQL_PWD_FILE_X_PASS":  "s3cr3t-pass",
		"DATABASE_URL":           "postgres://app:s3cr3t-url@db:5432/app",
		"ClientSecret":           "s3cr3t-mixed-case",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv("EDGECERT_ROUTES_PLAIN", "visible-value")
	t.Setenv("HOME_URL", "https://example.com/")
	h := newTestHandler(t, Options{AllowEnv: true})
	for _, target := range []string{"/?env=true", "/api?env=true"} {
		body := get(h, target).Body.String()
		if strings.Contains(body, "s3cr3t") {
			t.Errorf("GET %s leaks a secret:\n%s", target, body)
		}
		for k := range secrets {
			if !strings.Contains(body, k) {
				t.Errorf("GET %s does not name %s (names stay visible)", target, k)
			}
		}
		for _, want := range []string{"visible-value", "https://example.com/", redacted} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s lacks %q", target, want)
			}
		}
	}
	for _, name := range []string{"PWD", "OLDPWD", "PATH", "HOME", "LANG"} {
		if secretName(name) {
			t.Errorf("secretName(%q) = true; it is not a secret", name)
		}
	}
}
