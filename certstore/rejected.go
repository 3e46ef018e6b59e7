package certstore

// Rejected returns, for every operator file pair whose files failed
// validation on the last reload, the reason (as logged with cert.rejected);
// the last good pair, if any, keeps serving meanwhile. It does no I/O and
// never waits for a reload. The map is the caller's.
func (s *Store) Rejected() map[string]string {
	out := make(map[string]string)
	if p := s.pairRejected.Load(); p != nil {
		for k, v := range *p {
			out[k] = v
		}
	}
	return out
}
