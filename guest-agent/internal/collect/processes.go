package collect

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process is one entry of processes.list (and the source of topCpu / topMemory).
type Process struct {
	PID      int     `json:"pid"`
	PPID     int     `json:"ppid"`
	User     string  `json:"user"`
	Name     string  `json:"name"`
	Cmdline  string  `json:"cmdline"`
	CPUPct   float64 `json:"cpuPct"`
	RSSBytes uint64  `json:"rssBytes"`
	State    string  `json:"state"`
}

// MaxCmdline bounds one process's command line in processes.list.
const MaxCmdline = 512

// ProcessSampler reads /proc/<pid>/{stat,statm,status,cmdline}. CPU percentages are of one core
// (like top: a process busy on two cores shows 200) over the time since the previous sample.
type ProcessSampler struct {
	Root     string
	PageSize uint64
	ClkTck   float64
	Now      func() time.Time

	mu      sync.Mutex
	prev    map[procKey]uint64 // utime+stime in ticks
	prevAt  time.Time
	users   map[int]string
	usersAt time.Time
}

// procKey tells a pid apart from a later process that reuses it (start time in ticks since boot).
type procKey struct {
	pid   int
	start uint64
}

// LastSampleAge is the time since the previous sample (a long duration when there was none).
func (s *ProcessSampler) LastSampleAge() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prevAt.IsZero() {
		return 24 * time.Hour
	}
	return s.now().Sub(s.prevAt)
}

func (s *ProcessSampler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Sample reads every process. Processes that exit while being read are skipped.
func (s *ProcessSampler) Sample() ([]Process, error) {
	proc := filepath.Join(s.Root, "proc")
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	elapsed := now.Sub(s.prevAt).Seconds()
	if s.prevAt.IsZero() {
		elapsed = 0
	}
	users := s.userNames(now)
	cur := make(map[procKey]uint64, len(entries))
	out := make([]Process, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		p, ticks, start, ok := s.readProcess(dir, pid, users)
		if !ok {
			continue
		}
		key := procKey{pid, start}
		cur[key] = ticks
		if before, ok := s.prev[key]; ok && elapsed > 0 && ticks >= before {
			p.CPUPct = round2(100 * float64(ticks-before) / s.ClkTck / elapsed)
		}
		out = append(out, p)
	}
	s.prev, s.prevAt = cur, now
	return out, nil
}

func (s *ProcessSampler) readProcess(dir string, pid int, users map[int]string) (p Process, ticks, start uint64, ok bool) {
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, 0, 0, false
	}
	st, ok := ParseProcStat(stat)
	if !ok {
		return p, 0, 0, false
	}
	p = Process{PID: pid, PPID: st.PPID, Name: st.Comm, State: st.State}
	if statm, err := os.ReadFile(filepath.Join(dir, "statm")); err == nil {
		if f := strings.Fields(string(statm)); len(f) >= 2 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			p.RSSBytes = pages * s.PageSize
		}
	}
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		if uid, ok := statusUID(status); ok {
			if name, ok := users[uid]; ok {
				p.User = name
			} else {
				p.User = strconv.Itoa(uid)
			}
		}
	}
	if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Cmdline = cmdline(cmd)
	}
	return p, st.UTime + st.STime, st.StartTime, true
}

// ProcStat is what the agent uses of /proc/<pid>/stat.
type ProcStat struct {
	Comm         string
	State        string
	PPID         int
	UTime, STime uint64
	StartTime    uint64
}

// ParseProcStat parses /proc/<pid>/stat. The command name is in parentheses and may itself contain
// spaces and parentheses, so the fields start after the last ')'.
func ParseProcStat(b []byte) (ProcStat, bool) {
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return ProcStat{}, false
	}
	st := ProcStat{Comm: strings.ToValidUTF8(string(b[open+1:close]), "?")}
	f := strings.Fields(string(b[close+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return ProcStat{}, false
	}
	st.State = f[0]
	st.PPID, _ = strconv.Atoi(f[1])
	st.UTime, _ = strconv.ParseUint(f[11], 10, 64)
	st.STime, _ = strconv.ParseUint(f[12], 10, 64)
	st.StartTime, _ = strconv.ParseUint(f[19], 10, 64)
	return st, true
}

func statusUID(b []byte) (int, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			uid, err := strconv.Atoi(f[0])
			return uid, err == nil
		}
	}
	return 0, false
}

// cmdline joins the NUL-separated arguments with spaces, bounded to MaxCmdline bytes.
func cmdline(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	s := strings.ToValidUTF8(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})), "?")
	if len(s) > MaxCmdline {
		s = strings.ToValidUTF8(s[:MaxCmdline], "")
	}
	return s
}

// userNames maps uids to names from etc/passwd, re-read at most once a minute.
func (s *ProcessSampler) userNames(now time.Time) map[int]string {
	if s.users != nil && now.Sub(s.usersAt) < time.Minute {
		return s.users
	}
	users := map[int]string{}
	if b, err := os.ReadFile(filepath.Join(s.Root, "etc/passwd")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) < 3 {
				continue
			}
			if uid, err := strconv.Atoi(f[2]); err == nil {
				if _, dup := users[uid]; !dup {
					users[uid] = f[0]
				}
			}
		}
	}
	s.users, s.usersAt = users, now
	return users
}
