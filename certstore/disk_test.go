package certstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// readSmallFile reads what os.ReadFile reads, empty and multi-buffer files
// included, without disturbing what it appended earlier, and fails as
// os.ReadFile fails.
func TestReadSmallFile(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16,000 bytes: four times the buffer
	files := map[string][]byte{"empty": {}, "small": []byte("chain"), "big": big}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 0, 4<<10)
	var got [][]byte
	for _, name := range []string{"small", "empty", "big", "small"} {
		var data []byte
		var err error
		data, buf, err = readSmallFile(filepath.Join(dir, name), buf)
		if err != nil {
			t.Fatalf("readSmallFile(%s): %v", name, err)
		}
		got = append(got, data)
	}
	for i, name := range []string{"small", "empty", "big", "small"} {
		if !bytes.Equal(got[i], files[name]) {
			t.Errorf("read %d (%s): %d bytes %.20q; want %d bytes %.20q", i, name, len(got[i]), got[i], len(files[name]), files[name])
		}
	}
	if cap(got[0]) != len(got[0]) {
		t.Errorf("cap of a returned file %d; want its length %d (an append must not overwrite the next)", cap(got[0]), len(got[0]))
	}

	missing := filepath.Join(dir, "missing")
	_, _, err := readSmallFile(missing, nil)
	_, want := os.ReadFile(missing)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != want.Error() {
		t.Errorf("missing file: %v; want %v (fs.ErrNotExist)", err, want)
	}
	_, _, err = readSmallFile(dir, nil)
	_, want = os.ReadFile(dir)
	if err == nil || err.Error() != want.Error() {
		t.Errorf("directory: %v; want %v", err, want)
	}
}
