package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// samples is everything one run.sh run recorded.
type samples struct {
	runs    map[string]map[string][]sample // metric -> server -> runs in order
	others  map[string]map[string][]float64
	servers []string // in order of first appearance
	rss     []rssSample
	conns   []connSample
}

type rssSample struct {
	proto      string
	idle, peak float64 // KiB
}

// connSample is the RSS growth of a server holding n idle connections of
// one kind (tls: TLS keep-alive after one request; ws: websocket).
type connSample struct {
	kind, server  string
	n             int
	before, after float64 // KiB
}

func parse(r io.Reader) (*samples, error) {
	s := &samples{runs: map[string]map[string][]sample{}, others: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Split(strings.TrimSpace(sc.Text()), "\t")
		if len(f) == 1 && f[0] == "" {
			continue
		}
		if err := s.add(f); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	return s, sc.Err()
}

func (s *samples) add(f []string) error {
	nums := func(from int) ([]float64, error) {
		out := make([]float64, 0, len(f)-from)
		for _, v := range f[from:] {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a number", v)
			}
			out = append(out, x)
		}
		return out, nil
	}
	want := map[string]int{"run": 6, "rss": 4, "conn": 6}[f[0]]
	if want == 0 {
		return fmt.Errorf("unknown record %q (want run, rss or conn)", f[0])
	}
	if len(f) != want {
		return fmt.Errorf("%s record has %d fields, want %d", f[0], len(f), want)
	}
	switch f[0] {
	case "run":
		v, err := nums(3)
		if err != nil {
			return err
		}
		metric, server := f[1], f[2]
		if s.runs[metric] == nil {
			s.runs[metric] = map[string][]sample{}
			s.others[metric] = map[string][]float64{}
		}
		s.runs[metric][server] = append(s.runs[metric][server], sample{value: v[0], cpu: v[1]})
		s.others[metric][server] = append(s.others[metric][server], v[2])
		s.addServer(server)
	case "rss":
		v, err := nums(2)
		if err != nil {
			return err
		}
		s.rss = append(s.rss, rssSample{proto: f[1], idle: v[0], peak: v[1]})
	case "conn":
		v, err := nums(3)
		if err != nil {
			return err
		}
		s.conns = append(s.conns, connSample{kind: f[1], server: f[2], n: int(v[0]), before: v[1], after: v[2]})
		s.addServer(f[2])
	}
	return nil
}

func (s *samples) addServer(name string) {
	if !slices.Contains(s.servers, name) {
		s.servers = append(s.servers, name)
	}
}
