package attack

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Process figures come from /proc (Linux). A server is a set of PIDs
// (nginx: its master and workers); WithChildren finds them from one.

// WithChildren returns pid followed by its direct children (of all its
// threads), e.g. nginx's master and its workers.
func WithChildren(pid int) ([]int, error) {
	pids := []int{pid}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, fmt.Errorf("attack: process %d: %w", pid, err)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				pids = append(pids, c)
			}
		}
	}
	return pids, nil
}

// RSSKiB is the resident set size of the processes, summed (VmRSS).
func RSSKiB(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, fmt.Errorf("attack: RSS of %d: %w", pid, err)
		}
		v, ok := statusField(string(b), "VmRSS")
		if !ok {
			return 0, fmt.Errorf("attack: RSS of %d: no VmRSS in /proc/%d/status", pid, pid)
		}
		total += v
	}
	return total, nil
}

// statusField is the number of a /proc/PID/status line "name: N kB".
func statusField(status, name string) (int64, bool) {
	for line := range strings.Lines(status) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Sockets is the number of sockets the processes hold open (file
// descriptors that are sockets, the listeners included): what the
// server still holds of connections a client can no longer see, e.g.
// one whose unread response fills both ends' buffers.
func Sockets(pids []int) (int, error) {
	n := 0
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			return 0, fmt.Errorf("attack: sockets of %d: %w", pid, err)
		}
		for _, fd := range fds {
			if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:") {
				n++
			}
		}
	}
	return n, nil
}

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100
// on every Linux architecture Go supports).
const userHZ = 100

// CPUTime is the CPU the processes have used (user plus system, all
// their threads), to the kernel's 10 ms tick.
func CPUTime(pids []int) (time.Duration, error) {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("attack: CPU time of %d: %w", pid, err)
		}
		// The command name (field 2) may hold spaces: count from its ")".
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0, fmt.Errorf("attack: CPU time of %d: short /proc/%d/stat", pid, pid)
		}
		for _, v := range f[11:13] { // utime, stime: fields 14 and 15
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("attack: CPU time of %d: %w", pid, err)
			}
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
