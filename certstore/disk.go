package certstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// File and directory names inside the store.
const (
	certsDirName = "certs"
	dataDirName  = "data"
	currentName  = "current"
	chainFile    = "chain.pem"
	keyFile      = "key.pem"
	metaFile     = "meta.json"

	tmpPrefix     = ".tmp-"     // version being written, blob being written
	linkTmpPrefix = ".current-" // symlink about to replace "current"
	delPrefix     = ".del-"     // directory being removed

	dirPerm  = 0o700
	filePerm = 0o600

	versionWidth = 10 // digits in a version name
)

// writeFileSync creates path (which must not exist), writes data and fsyncs.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeBlob atomically replaces dir/name with data (mode 0600): temp file,
// fsync, rename, fsync dir. If ctx is cancelled before the rename nothing
// changes.
func writeBlob(ctx context.Context, dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, tmpPrefix+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err = f.Chmod(filePerm); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return err
	}
	return syncDir(dir)
}

// listVersions returns the version directory names in nameDir in ascending
// (creation) order, skipping temporary entries and "current".
func listVersions(nameDir string) ([]string, error) {
	des, err := os.ReadDir(nameDir) // sorted by name
	if err != nil {
		return nil, err
	}
	var vs []string
	for _, de := range des {
		n := de.Name()
		if n == currentName || strings.HasPrefix(n, ".") || !de.IsDir() {
			continue
		}
		vs = append(vs, n)
	}
	return vs, nil
}

// nextVersion returns the version name after the highest numeric one in vs.
func nextVersion(vs []string) string {
	var max uint64
	for _, v := range vs {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > max {
			max = n
		}
	}
	return formatVersion(max + 1)
}

func formatVersion(n uint64) string { return fmt.Sprintf("%0*d", versionWidth, n) }

// readCurrent returns the version "current" points to in nameDir. The
// target must be a bare version name; anything else is an error.
func readCurrent(nameDir string) (string, error) {
	v, err := os.Readlink(filepath.Join(nameDir, currentName))
	if err != nil {
		return "", err
	}
	if err := checkName("version", v); err != nil {
		return "", fmt.Errorf("current symlink target: %w", err)
	}
	return v, nil
}

// versionFiles is the content of one version directory.
type versionFiles struct {
	chain, key, meta []byte
}

// readVersion reads the three files of versionDir, into one buffer.
func readVersion(versionDir string) (versionFiles, error) {
	var vf versionFiles
	buf := make([]byte, 0, 4<<10)
	var err error
	if vf.chain, buf, err = readSmallFile(filepath.Join(versionDir, chainFile), buf); err != nil {
		return vf, err
	}
	if vf.key, buf, err = readSmallFile(filepath.Join(versionDir, keyFile), buf); err != nil {
		return vf, err
	}
	vf.meta, _, err = readSmallFile(filepath.Join(versionDir, metaFile), buf)
	return vf, err
}

// readSmallFile appends the content of the file at path to buf and returns
// it (a full slice of its own) and buf grown past it, with os.ReadFile's
// errors (*fs.PathError). It costs three or four system calls (open, read
// until EOF, close) where os.ReadFile's os.File costs six (it also fstats
// the file twice: to learn it cannot be polled, and for its size), which was
// a tenth of the CPU of opening a store of 10,000 certificates.
func readSmallFile(path string, buf []byte) (data, rest []byte, err error) {
	var fd int
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, buf, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	start := len(buf)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, buf, &fs.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return buf[start:len(buf):len(buf)], buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// writeVersion commits vf as a new version of nameDir and returns its name.
// The files are written and fsynced in a fresh temporary directory, the
// directory is fsynced and renamed to the next free version name, and
// nameDir is fsynced. It does not touch "current". On error, or if ctx is
// cancelled before the rename, nothing is left behind.
func writeVersion(ctx context.Context, nameDir string, vf versionFiles) (string, error) {
	tmp, err := os.MkdirTemp(nameDir, tmpPrefix)
	if err != nil {
		return "", err
	}
	version, err := func() (string, error) {
		for _, f := range []struct {
			name string
			data []byte
		}{{chainFile, vf.chain}, {keyFile, vf.key}, {metaFile, vf.meta}} {
			if err := writeFileSync(filepath.Join(tmp, f.name), f.data); err != nil {
				return "", err
			}
		}
		if err := syncDir(tmp); err != nil {
			return "", err
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		vs, err := listVersions(nameDir)
		if err != nil {
			return "", err
		}
		v := nextVersion(vs)
		// Another process may take the same name; renaming onto a non-empty
		// directory fails, so move on to the next number.
		for range 100 {
			err = os.Rename(tmp, filepath.Join(nameDir, v))
			if err == nil || !(errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, fs.ErrExist)) {
				break
			}
			n, perr := strconv.ParseUint(v, 10, 64)
			if perr != nil {
				return "", perr
			}
			v = formatVersion(n + 1)
		}
		return v, err
	}()
	if err != nil {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", err
	}
	return version, syncDir(nameDir)
}

// flipCurrent atomically points nameDir/current at version: it creates a
// temporary symlink, renames it over "current" and fsyncs nameDir.
func flipCurrent(nameDir, version string) error {
	tmp := filepath.Join(nameDir, linkTmpPrefix+rand.Text())
	if err := os.Symlink(version, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(nameDir, currentName)); err != nil {
		if rerr := os.Remove(tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return err
	}
	return syncDir(nameDir)
}

// removeDir removes dir by first renaming it to a temporary name in its
// parent (atomic: a crash leaves either the whole directory or a temporary
// one that Open cleans), then deleting it.
func removeDir(dir string) error {
	parent := filepath.Dir(dir)
	trash := filepath.Join(parent, delPrefix+rand.Text())
	if err := os.Rename(dir, trash); err != nil {
		return err
	}
	if err := syncDir(parent); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// cleanTemp removes every entry of dir whose name starts with "." (temporary
// entries left by a crash) and returns the names removed and the number of
// entries dir held before.
func cleanTemp(dir string) ([]string, int, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var removed []string
	var errs []error
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, de.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, de.Name())
	}
	if len(removed) > 0 {
		errs = append(errs, syncDir(dir))
	}
	return removed, len(des), errors.Join(errs...)
}
