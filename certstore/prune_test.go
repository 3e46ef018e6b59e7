package certstore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgecert/edgecert/internal/logtest"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

func TestPruneKeepsN(t *testing.T) {
	ca := certstoretest.NewCA(t)
	for _, tt := range []struct {
		name      string
		keep, put int
		want      []string // versions left, oldest first
	}{
		{"keep 1", 1, 5, []string{"0000000005"}},
		{"keep 2", 2, 5, []string{"0000000004", "0000000005"}},
		{"default 3", 0, 5, []string{"0000000003", "0000000004", "0000000005"}},
		{"keep more than written", 10, 4, []string{"0000000001", "0000000002", "0000000003", "0000000004"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, rec, dir := openStore(t, Options{Keep: tt.keep})
			var last *Entry
			for range tt.put {
				chain, key := ca.Valid(t, "example.com")
				last = mustPut(t, s, "site", chain, key, Meta{})
			}
			nameDir := filepath.Join(dir, "certs", "site")
			got, err := listVersions(nameDir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("versions after %d puts with Keep %d = %v; want %v", tt.put, tt.keep, got, tt.want)
			}
			if cur, err := readCurrent(nameDir); err != nil || cur != last.Version {
				t.Errorf("current = %q, %v; want %q", cur, err, last.Version)
			}
			if n := len(rec.Find("cert.pruned", map[string]string{"name": "site"})); n != tt.put-len(tt.want) {
				t.Errorf("cert.pruned logged %d times; want %d", n, tt.put-len(tt.want))
			}
			assertNoTemp(t, nameDir)
		})
	}
}

// TestPruneNeverCurrent rolls "current" back to the oldest version by hand;
// reopening with Keep 1 must keep that version and drop the newer ones.
func TestPruneNeverCurrent(t *testing.T) {
	ca := certstoretest.NewCA(t)
	dir := t.TempDir()
	s, err := Open(t.Context(), dir, Options{Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	var first *Entry
	for i := range 4 {
		chain, key := ca.Valid(t, "example.com")
		e := mustPut(t, s, "site", chain, key, Meta{})
		if i == 0 {
			first = e
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	nameDir := filepath.Join(dir, "certs", "site")
	if err := flipCurrent(nameDir, first.Version); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(context.Background(), dir, Options{Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := listVersions(nameDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{first.Version}; !slices.Equal(got, want) {
		t.Errorf("versions after reopening with Keep 1 = %v; want %v (current)", got, want)
	}
	if e, ok := s2.Current("site"); !ok || e.Serial() != first.Serial() {
		t.Errorf("Current(site) = %v, %v; want serial %s", e, ok, first.Serial())
	}
}

// TestOpenCleansTemp plants the leftovers of crashes at each step and checks
// that Open removes them and serves the committed version.
func TestOpenCleansTemp(t *testing.T) {
	ca := certstoretest.NewCA(t)
	dir := t.TempDir()
	s, err := Open(t.Context(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	chain, key := ca.Valid(t, "example.com")
	e := mustPut(t, s, "site", chain, key, Meta{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	nameDir := filepath.Join(dir, "certs", "site")
	// A half-written version, a temporary symlink, a half-deleted version,
	// a half-written blob and a name directory whose first write never
	// committed.
	half := filepath.Join(nameDir, ".tmp-123")
	must(t, os.Mkdir(half, 0o700))
	must(t, os.WriteFile(filepath.Join(half, "chain.pem"), chain[:100], 0o600))
	must(t, os.Symlink(half, filepath.Join(nameDir, ".current-xyz")))
	must(t, os.Mkdir(filepath.Join(nameDir, ".del-abc"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "data", ".tmp-acme-1"), []byte("x"), 0o600))
	must(t, os.Mkdir(filepath.Join(dir, "certs", "empty"), 0o700))
	must(t, os.Mkdir(filepath.Join(dir, "certs", ".del-old"), 0o700))

	rec := logtest.New()
	s2, err := Open(t.Context(), dir, Options{Logger: newLogger(rec)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, d := range []string{nameDir, filepath.Join(dir, "data"), filepath.Join(dir, "certs")} {
		assertNoTemp(t, d)
	}
	if _, err := os.Stat(filepath.Join(dir, "certs", "empty")); !os.IsNotExist(err) {
		t.Errorf("empty certificate directory survived Open: stat = %v", err)
	}
	if n := len(rec.Find("store.cleaned", nil)); n != 6 {
		t.Errorf("store.cleaned logged %d times; want 6", n)
	}
	if got, ok := s2.Current("site"); !ok || got.Serial() != e.Serial() {
		t.Errorf("Current(site) = %v, %v; want serial %s", got, ok, e.Serial())
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
