package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkStateDir refuses a state directory that another user could write or
// that leads somewhere else, as OpenSSH's StrictModes refuses such a home:
// dir and its certs and data subdirectories (where private keys live) must
// not be symlinks, must be owned by this process's user or root, and must not
// be group- or world-writable. Missing ones are fine: certstore creates them
// 0700. -insecure-state-dir skips the check. Errors name the flag, the path
// and the problem.
func checkStateDir(dir string) error {
	uid := os.Geteuid()
	for _, p := range []string{dir, filepath.Join(dir, "certs"), filepath.Join(dir, "data")} {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return badFlag("state-dir", "%v", err)
		}
		if err := strictMode(p, fi, uid); err != nil {
			return badFlag("state-dir", "%v (or set -insecure-state-dir)", err)
		}
	}
	return nil
}

// strictMode is the check of one path of checkStateDir.
func strictMode(p string, fi fs.FileInfo, uid int) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(p) // best effort: only for the message
		return fmt.Errorf("%s is a symlink to %s: point -state-dir at the real directory", p, target)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid && st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not by this user (uid %d) or root", p, st.Uid, uid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		who := "group"
		if perm&0o002 != 0 {
			who = "world"
		}
		return fmt.Errorf("%s is %s-writable (mode %04o): chmod go-w %s", p, who, perm, p)
	}
	return nil
}
