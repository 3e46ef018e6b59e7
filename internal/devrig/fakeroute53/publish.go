package fakeroute53

import (
	"time"

	"github.com/edgecert/edgecert/internal/devrig/authdns"
)

// afterLocked runs fn with s.mu held after d, unless Close stops it first.
// The caller holds s.mu.
func (s *Server) afterLocked(d time.Duration, fn func()) {
	if s.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.timers[t] {
			return // stopped by Close
		}
		delete(s.timers, t)
		fn()
	})
	s.timers[t] = true
}

// dueLocked is called when c's delay has passed: it makes c INSYNC unless
// INSYNC is being held back. The caller holds s.mu.
func (s *Server) dueLocked(c *change) {
	if s.neverInsync {
		c.due = true
		return
	}
	s.insyncLocked(c)
}

// insyncLocked marks c INSYNC and publishes the sets it touched to the
// primary server now and to each mirror after its lag. A set is published only
// if no later change to it has been published already. The caller holds s.mu.
func (s *Server) insyncLocked(c *change) {
	c.status = statusInsync
	c.insyncAt = time.Now()
	c.due = false
	s.log.Debug("fakeroute53.insync", "id", c.id)
	if c.private {
		return
	}
	for _, it := range c.after {
		pk := pubKey{c.zoneID, it.key}
		if c.seq > s.published[pk] {
			s.published[pk] = c.seq
			publish(s.opts.DNS, it)
		}
		for i, m := range s.opts.Mirrors {
			seen := s.mirrorSeq[i]
			pub := func() {
				if c.seq > seen[pk] {
					seen[pk] = c.seq
					publish(m.DNS, it)
				}
			}
			if m.Lag <= 0 {
				pub()
			} else {
				s.afterLocked(m.Lag, pub)
			}
		}
	}
}

// publish writes one set's state to dns; only TXT and CNAME are served.
func publish(dns *authdns.Server, it pubItem) {
	if dns == nil {
		return
	}
	switch it.key.rtype {
	case "TXT":
		if it.set == nil {
			dns.SetTXT(it.key.name, 0)
			return
		}
		vals := make([]string, 0, len(it.set.Values))
		for _, v := range it.set.Values {
			u, err := unquoteTXT(v)
			if err != nil {
				u = v // validated on the way in; keep the raw form if not
			}
			vals = append(vals, u)
		}
		dns.SetTXT(it.key.name, uint32(it.set.TTL), vals...)
	case "CNAME":
		if it.set == nil {
			dns.SetCNAME(it.key.name, 0, "")
			return
		}
		dns.SetCNAME(it.key.name, uint32(it.set.TTL), it.set.Values[0])
	}
}
