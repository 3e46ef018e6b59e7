package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCheckStateDir(t *testing.T) {
	mk := func(t *testing.T, mode os.FileMode) string {
		d := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("private", func(t *testing.T) {
		if err := checkStateDir(mk(t, 0o700)); err != nil {
			t.Errorf("0700: %v; want accepted", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if err := checkStateDir(filepath.Join(t.TempDir(), "new")); err != nil {
			t.Errorf("missing dir: %v; want accepted (certstore creates it 0700)", err)
		}
	})
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (dir, bad string)
		want  string
	}{
		{"world-writable", func(t *testing.T) (string, string) { d := mk(t, 0o777); return d, d }, "world-writable (mode 0777)"},
		{"group-writable", func(t *testing.T) (string, string) { d := mk(t, 0o770); return d, d }, "group-writable"},
		{"certs world-writable", func(t *testing.T) (string, string) {
			d := mk(t, 0o700)
			c := filepath.Join(d, "certs")
			os.Mkdir(c, 0o700)
			os.Chmod(c, 0o757)
			return d, c
		}, "world-writable"},
		{"symlinked state dir", func(t *testing.T) (string, string) {
			real := mk(t, 0o700)
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			return link, link
		}, "is a symlink to "},
		{"symlinked data", func(t *testing.T) (string, string) {
			d := mk(t, 0o700)
			if err := os.Symlink(t.TempDir(), filepath.Join(d, "data")); err != nil {
				t.Fatal(err)
			}
			return d, filepath.Join(d, "data")
		}, "is a symlink to "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, bad := tc.setup(t)
			err := checkStateDir(dir)
			var ce *configError
			if !errors.As(err, &ce) || ce.flag != "state-dir" {
				t.Fatalf("checkStateDir = %v; want a -state-dir configuration error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, bad) || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "-insecure-state-dir") || strings.Contains(msg, "\n") {
				t.Errorf("error %q; want one line naming %s, %q and the opt-out", msg, bad, tc.want)
			}
		})
	}
}

// TestStartupConfigErrorsExit78 checks that start-up failures that are
// configuration exit 78 with one line naming the flag: an address in use,
// an unusable or unsafe -state-dir.
func TestStartupConfigErrorsExit78(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	base := []string{"run", "-domains", "a.example.com", "-http-addr", "", "-admin-addr", ""}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-https-addr", ln.Addr().String(), "-state-dir", t.TempDir()}, "-https-addr"},
		{[]string{"-https-addr", "127.0.0.1:0", "-admin-addr", ln.Addr().String(), "-state-dir", t.TempDir()}, "-admin-addr"},
		{[]string{"-https-addr", "127.0.0.1:0", "-state-dir", filepath.Join(file, "sub")}, "-state-dir"},
		{[]string{"-https-addr", "127.0.0.1:0", "-state-dir", open}, "-state-dir: " + open + " is world-writable"},
	} {
		var out, errb strings.Builder
		code := Main(append(slices.Clone(base), tc.args...), &out, &errb)
		lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
		if last := lines[len(lines)-1]; code != exitBadConfig || !strings.HasPrefix(last, "edgecert: "+tc.flag) || strings.Contains(errb.String(), "daemon.failed") {
			t.Errorf("%q: exit %d, stderr %q; want %d and a last line naming %s", tc.args, code, errb.String(), exitBadConfig, tc.flag)
		}
	}
}
