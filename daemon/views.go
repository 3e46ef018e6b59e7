package daemon

import (
	"fmt"
	"sort"

	"github.com/edgecert/edgecert/certstore"
	"github.com/edgecert/edgecert/daemon/issuer"
)

// certViews merges what the store serves with what the scheduler plans.
func certViews(store *certstore.Store, mgr *issuer.Manager) []certView {
	byName := map[string]*certView{}
	for _, e := range store.Entries() {
		v := &certView{Name: e.Name, Source: e.Source, Profile: e.Meta.Profile}
		if leaf := e.Cert.Leaf; leaf != nil {
			v.Names = leaf.DNSNames
			v.Issuer = leaf.Issuer.CommonName
			v.Serial = fmt.Sprintf("%x", leaf.SerialNumber)
			v.NotBefore, v.NotAfter = leaf.NotBefore, leaf.NotAfter
		}
		byName[e.Name] = v
	}
	for name, reason := range store.Rejected() {
		v := byName[name]
		if v == nil {
			v = &certView{Name: name, Source: certstore.SourceFile}
			byName[name] = v
		}
		v.Rejected = reason
	}
	if mgr != nil {
		for _, s := range mgr.Status() {
			v := byName[s.Name]
			if v == nil {
				v = &certView{Name: s.Name}
				byName[s.Name] = v
			}
			v.Managed = true
			v.NextRenewal, v.Reason, v.PlannedRenewal = s.NextRenewal, s.Reason, s.Planned
			v.ARIStart, v.ARIEnd = s.ARIStart, s.ARIEnd
			v.LastSuccess, v.LastFailure, v.LastError, v.Failures = s.LastSuccess, s.LastFailure, s.LastError, s.Failures
		}
	}
	out := make([]certView, 0, len(byName))
	for _, v := range byName {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
