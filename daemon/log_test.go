package daemon

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRoundDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		688123456 * time.Nanosecond:            "688ms",
		1236 * time.Millisecond:                "1.24s",
		123*time.Second + 400*time.Millisecond: "2m3s",
		3 * time.Minute:                        "3m",
		90*time.Minute + 20*time.Second:        "1h30m",
		412345 * time.Nanosecond:               "412µs",
		5 * time.Nanosecond:                    "5ns",
		0:                                      "0s",
	} {
		if got := roundDuration(d); got != want {
			t.Errorf("roundDuration(%v) = %q; want %q", d, got, want)
		}
	}
}

// TestLoggerRoundsDurations: a duration attribute from any layer is
// logged rounded (elapsed=688ms, not 688.123456ms).
func TestLoggerRoundsDurations(t *testing.T) {
	var b bytes.Buffer
	newLogger(&Config{LogFormat: "text"}, &b).Info("dns.insync", "elapsed", 688123456*time.Nanosecond)
	if !strings.Contains(b.String(), "elapsed=688ms") {
		t.Errorf("log line %q; want elapsed=688ms", b.String())
	}
}
