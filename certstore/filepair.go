package certstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// filePair is an operator-managed certificate and key file.
type filePair struct {
	name, certFile, keyFile string // paths are absolute
}

// AddFilePair serves the operator-managed PEM files certFile (leaf first,
// then intermediates) and keyFile as certificate name. The files are read in
// place, never copied into the store, and reloaded like store versions by
// Reload and Watch (which watches their directories, so atomic renames are
// seen). While the two files are inconsistent (for example the certificate
// was replaced and the key not yet), the pair is rejected and the previous
// good pair keeps serving.
//
// The pair must be valid now: otherwise AddFilePair returns an error and
// registers nothing. It also fails if name is invalid, already a file pair,
// or already served from the store directory. A store directory of the same
// name created later is ignored while the pair is registered, and PutCert to
// that name fails.
func (s *Store) AddFilePair(name, certFile, keyFile string) error {
	if err := checkName("certificate name", name); err != nil {
		return err
	}
	var p filePair
	var err error
	p.name = name
	if p.certFile, err = filepath.Abs(certFile); err != nil {
		return fmt.Errorf("certstore: file pair %q: %w", name, err)
	}
	if p.keyFile, err = filepath.Abs(keyFile); err != nil {
		return fmt.Errorf("certstore: file pair %q: %w", name, err)
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if _, ok := s.pairs[name]; ok {
		return fmt.Errorf("certstore: file pair %q already added", name)
	}
	if e, ok := s.Current(name); ok {
		return fmt.Errorf("certstore: file pair %q: name already served from the %s", name, e.Source)
	}
	e, err := s.readPair(p)
	if err != nil {
		return fmt.Errorf("certstore: file pair %q: %w", name, err)
	}
	s.pairs[name] = p
	if err := s.reloadLocked(context.Background(), map[string]*Entry{name: e}); err != nil {
		return err
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// readPair reads and validates a file pair.
func (s *Store) readPair(p filePair) (*Entry, error) {
	chain, key, err := readPairFiles(p)
	if err != nil {
		return nil, err
	}
	return s.entryFromPair(p, chain, key, nil)
}

func readPairFiles(p filePair) (chain, key []byte, err error) {
	if chain, err = os.ReadFile(p.certFile); err != nil {
		return nil, nil, err
	}
	if key, err = os.ReadFile(p.keyFile); err != nil {
		return nil, nil, err
	}
	return chain, key, nil
}

func (s *Store) entryFromPair(p filePair, chain, key []byte, known []*Entry) (*Entry, error) {
	sum := contentSum(chain, key, nil)
	for _, e := range known {
		if e != nil && e.sum == sum {
			return e, nil
		}
	}
	pp, err := validate(chain, key, nil, s.now(), s.intern)
	if err != nil {
		return nil, err
	}
	return &Entry{
		Name:    p.name,
		Version: hex.EncodeToString(sum[:6]),
		Cert:    pp.cert,
		Meta:    Meta{Names: pp.cert.Leaf.DNSNames, Source: SourceFile},
		Source:  SourceFile,
		keyType: pp.keyType,
		keyDER:  pp.keyDER,
		sum:     sum,
	}, nil
}

// loadPair returns the entry to serve for file pair p: the files' content if
// valid, else prev (the last good pair), else nil.
func (s *Store) loadPair(p filePair, prev, hint *Entry, rj *rejects) *Entry {
	chain, key, err := readPairFiles(p)
	var e *Entry
	if err == nil {
		e, err = s.entryFromPair(p, chain, key, []*Entry{hint, prev})
	}
	if err == nil {
		return e
	}
	reason := err.Error()
	if s.pairReasons != nil {
		s.pairReasons[p.name] = reason
	}
	rj.add("\x00file/"+p.name, contentSum(chain, key, []byte(reason)),
		slog.String("name", p.name), slog.String("source", SourceFile),
		slog.String("cert_file", p.certFile), slog.String("key_file", p.keyFile),
		slog.String("reason", reason))
	return prev
}
