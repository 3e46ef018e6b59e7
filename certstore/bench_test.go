package certstore

import (
	"crypto/tls"
	"fmt"
	"testing"

	"github.com/edgecert/edgecert/certstore/certstoretest"
)

// BenchmarkGetCertificate measures the handshake path with 100 exact names
// and 100 wildcard names in the index, from parallel goroutines.
func BenchmarkGetCertificate(b *testing.B) {
	ca := certstoretest.NewCA(b)
	s, _, _ := openStore(b, Options{})
	for i := range 100 {
		chain, key := ca.Valid(b, fmt.Sprintf("host%d.example.com", i), fmt.Sprintf("*.zone%d.example.com", i))
		mustPut(b, s, fmt.Sprintf("cert%d", i), chain, key, Meta{})
	}
	for _, bc := range []struct{ name, sni string }{
		{"exact", "host42.example.com"},
		{"wildcard", "www.zone42.example.com"},
		{"mixed-case", "Host42.Example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: bc.sni}); err != nil {
				b.Fatalf("GetCertificate(%q) = %v", bc.sni, err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				hello := &tls.ClientHelloInfo{ServerName: bc.sni}
				for pb.Next() {
					if c, err := s.GetCertificate(hello); c == nil || err != nil {
						b.Errorf("GetCertificate(%q) = %v, %v", bc.sni, c, err)
						return
					}
				}
			})
		})
	}
}
