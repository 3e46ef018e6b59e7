package logtest

import "testing"

func TestRecorderFindsEventsWithInheritedAttrs(t *testing.T) {
	r := New()
	log := r.Logger().With("component", "acme")
	log.Info("cert.issued", "name", "a.example", "serial", "01")
	log.Warn("cert.renewal_failed", "name", "a.example")
	r.Logger().Info("cert.issued", "name", "b.example")

	if got := r.Find("cert.issued", map[string]string{"component": "acme"}); len(got) != 1 || got[0].Attrs["name"] != "a.example" {
		t.Errorf("Find(cert.issued, component=acme) = %+v; want the a.example record", got)
	}
	if got := r.Find("cert.issued", nil); len(got) != 2 {
		t.Errorf("Find(cert.issued) = %d records; want 2", len(got))
	}
	if got := r.Find("", map[string]string{"name": "a.example"}); len(got) != 2 {
		t.Errorf("Find(\"\", name=a.example) = %d records; want 2", len(got))
	}
	if got := r.Find("nothing", nil); len(got) != 0 {
		t.Errorf("Find(nothing) = %+v; want none", got)
	}
}
