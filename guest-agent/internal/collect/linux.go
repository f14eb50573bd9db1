package collect

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"vmflow.local/guest-agent/internal/protocol"
)

// StatfsFunc returns a file system's total and used bytes.
type StatfsFunc func(path string) (total, used uint64, err error)

// Linux collects from procfs and sysfs under Root ("/" on a guest).
type Linux struct {
	Root     string
	Statfs   StatfsFunc // default: syscall.Statfs (linux only)
	PageSize uint64     // default: os.Getpagesize()
	ClkTck   float64    // USER_HZ, 100 on every Linux architecture vmflow runs
	Now      func() time.Time

	mu      sync.Mutex
	prevCPU []cpuTimes // [0] is the total, then per core
	procs   *ProcessSampler
}

// NewLinux returns a collector over root with the real statfs.
func NewLinux(root string) *Linux {
	l := &Linux{Root: root, Statfs: defaultStatfs, PageSize: uint64(os.Getpagesize()), ClkTck: 100, Now: time.Now}
	l.procs = &ProcessSampler{Root: root, PageSize: l.PageSize, ClkTck: l.ClkTck, Now: l.now}
	// Prime the CPU counters so the first sample covers the first interval.
	if cpu, err := l.readCPU(); err == nil {
		l.prevCPU = cpu
	}
	return l
}

// Processes is the sampler shared with processes.list.
func (l *Linux) Processes() *ProcessSampler { return l.procs }

func (l *Linux) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Linux) path(p string) string { return filepath.Join(l.Root, p) }

func (l *Linux) readFile(p string) ([]byte, error) { return os.ReadFile(l.path(p)) }

// Identity reads the SMBIOS serial, os-release, kernel release and hostname.
func (l *Linux) Identity() Identity {
	id := Identity{OS: protocol.OS{Family: "linux", Name: "Linux", Arch: runtime.GOARCH}}
	if b, err := l.readFile("sys/class/dmi/id/product_serial"); err == nil {
		id.MachineID = strings.TrimSpace(string(b))
	}
	if b, err := l.readFile("etc/os-release"); err == nil {
		kv := parseOSRelease(b)
		if v := kv["NAME"]; v != "" {
			id.OS.Name = v
		}
		id.OS.Version = kv["VERSION_ID"]
	}
	if b, err := l.readFile("proc/sys/kernel/osrelease"); err == nil {
		id.OS.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := l.readFile("proc/sys/kernel/hostname"); err == nil {
		id.Hostname = strings.TrimSpace(string(b))
	}
	return id
}

func parseOSRelease(b []byte) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		kv[k] = v
	}
	return kv
}

// Metrics reads one sample. A source that cannot be read leaves its part empty; only a missing
// /proc/stat (no CPU counters at all) is an error.
func (l *Linux) Metrics() (*protocol.Metrics, error) {
	m := &protocol.Metrics{
		Load: []float64{}, Filesystems: []protocol.Filesystem{}, NICs: []protocol.NIC{},
		Disks: []protocol.Disk{}, Users: []protocol.User{}, TopCPU: []protocol.TopProcess{},
		TopMemory: []protocol.TopProcess{}, CPU: protocol.CPU{PerCorePct: []float64{}},
	}
	cpu, err := l.readCPU()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	m.CPU = cpuPercent(l.prevCPU, cpu)
	l.prevCPU = cpu
	l.mu.Unlock()

	if b, err := l.readFile("proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.UptimeS, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if b, err := l.readFile("proc/loadavg"); err == nil {
		m.Load = parseLoadavg(b)
	}
	if b, err := l.readFile("proc/meminfo"); err == nil {
		m.Memory = parseMeminfo(b)
	}
	if b, err := l.readFile("proc/mounts"); err == nil {
		m.Filesystems = l.filesystems(parseMounts(b))
	}
	if b, err := l.readFile("proc/net/dev"); err == nil {
		m.NICs = parseNetDev(b)
	}
	if b, err := l.readFile("proc/diskstats"); err == nil {
		m.Disks = parseDiskstats(b, l.isWholeDisk)
	}
	if b, err := l.readFile("var/run/utmp"); err == nil {
		m.Users = ParseUtmp(b)
	}
	if procs, err := l.procs.Sample(); err == nil {
		m.TopCPU, m.TopMemory = Top(procs, MaxTop)
	}
	return m, nil
}

// cpuTimes are one /proc/stat cpu line's jiffies: all of them, and the idle part (idle + iowait).
type cpuTimes struct{ total, idle uint64 }

func (l *Linux) readCPU() ([]cpuTimes, error) {
	b, err := l.readFile("proc/stat")
	if err != nil {
		return nil, err
	}
	return parseStat(b)
}

// parseStat reads the "cpu" and "cpuN" lines. guest and guest_nice are already counted in user and
// nice, so only the first eight fields are summed.
func parseStat(b []byte) ([]cpuTimes, error) {
	var out []cpuTimes
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		var t cpuTimes
		for i := 1; i < len(f) && i <= 8; i++ {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
			t.total += v
			if i == 4 || i == 5 {
				t.idle += v
			}
		}
		if f[0] == "cpu" {
			out = append([]cpuTimes{t}, out...)
		} else {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("/proc/stat has no cpu line")
	}
	return out, nil
}

func cpuPercent(prev, cur []cpuTimes) protocol.CPU {
	pct := func(i int) float64 {
		if i >= len(prev) || i >= len(cur) || cur[i].total <= prev[i].total {
			return 0
		}
		dt := float64(cur[i].total - prev[i].total)
		di := float64(0)
		if cur[i].idle > prev[i].idle {
			di = float64(cur[i].idle - prev[i].idle)
		}
		return clampPct(round2(100 * (dt - di) / dt))
	}
	c := protocol.CPU{TotalPct: pct(0), PerCorePct: make([]float64, 0, len(cur)-1)}
	for i := 1; i < len(cur); i++ {
		c.PerCorePct = append(c.PerCorePct, pct(i))
	}
	return c
}

func clampPct(v float64) float64 {
	if v < 0 {
		return 0
	}
	if v > 100 {
		return 100
	}
	return v
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

func parseLoadavg(b []byte) []float64 {
	f := strings.Fields(string(b))
	out := []float64{}
	for i := 0; i < 3 && i < len(f); i++ {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return []float64{}
		}
		out = append(out, v)
	}
	return out
}

func parseMeminfo(b []byte) protocol.Memory {
	kv := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		kv[k] = v
	}
	m := protocol.Memory{TotalBytes: kv["MemTotal"], SwapTotalBytes: kv["SwapTotal"]}
	if avail, ok := kv["MemAvailable"]; ok {
		m.AvailableBytes = avail
	} else { // kernels before 3.14
		m.AvailableBytes = kv["MemFree"] + kv["Buffers"] + kv["Cached"]
	}
	if m.AvailableBytes > m.TotalBytes {
		m.AvailableBytes = m.TotalBytes
	}
	m.UsedBytes = m.TotalBytes - m.AvailableBytes
	if free := kv["SwapFree"]; free <= m.SwapTotalBytes {
		m.SwapUsedBytes = m.SwapTotalBytes - free
	}
	return m
}

// mount is one /proc/mounts line.
type mount struct{ source, target, fsType string }

// pseudoFS are file systems with no storage of their own to report.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true,
	"securityfs": true, "cgroup": true, "cgroup2": true, "pstore": true, "bpf": true, "debugfs": true,
	"tracefs": true, "configfs": true, "fusectl": true, "mqueue": true, "hugetlbfs": true, "autofs": true,
	"binfmt_misc": true, "efivarfs": true, "rpc_pipefs": true, "nsfs": true, "selinuxfs": true,
	"squashfs": true, "nfsd": true, "fuse.gvfsd-fuse": true, "fuse.portal": true,
}

func parseMounts(b []byte) []mount {
	var out []mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		out = append(out, mount{source: unescapeOctal(f[0]), target: unescapeOctal(f[1]), fsType: f[2]})
	}
	return out
}

// unescapeOctal undoes /proc/mounts' \040-style escapes (space, tab, newline, backslash).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// filesystems keeps real file systems, one entry per mount point (the last mount wins, as it hides
// the others) and per device (bind mounts of the same file system count once), then asks statfs.
func (l *Linux) filesystems(mounts []mount) []protocol.Filesystem {
	byTarget := map[string]int{}
	var kept []mount
	for _, m := range mounts {
		if pseudoFS[m.fsType] {
			continue
		}
		if i, ok := byTarget[m.target]; ok {
			kept[i] = m
			continue
		}
		byTarget[m.target] = len(kept)
		kept = append(kept, m)
	}
	seenSource := map[string]bool{}
	out := []protocol.Filesystem{}
	for _, m := range kept {
		if strings.HasPrefix(m.source, "/") {
			if seenSource[m.source] {
				continue
			}
			seenSource[m.source] = true
		}
		if len(out) == MaxFilesystems {
			break
		}
		if l.Statfs == nil {
			continue
		}
		total, used, err := l.Statfs(l.path(m.target))
		if err != nil || total == 0 {
			continue
		}
		out = append(out, protocol.Filesystem{Mount: m.target, FsType: m.fsType, TotalBytes: total, UsedBytes: used})
	}
	return out
}

// parseNetDev reads /proc/net/dev, leaving out the loopback.
func parseNetDev(b []byte) []protocol.NIC {
	out := []protocol.NIC{}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "lo" || len(f) < 16 {
			continue
		}
		n := protocol.NIC{Name: name}
		n.RxBytes, _ = strconv.ParseUint(f[0], 10, 64)
		n.RxPackets, _ = strconv.ParseUint(f[1], 10, 64)
		n.TxBytes, _ = strconv.ParseUint(f[8], 10, 64)
		n.TxPackets, _ = strconv.ParseUint(f[9], 10, 64)
		out = append(out, n)
		if len(out) == MaxNICs {
			break
		}
	}
	return out
}

// isWholeDisk: a whole disk has its own /sys/block entry (partitions do not); loop and ram devices
// are left out.
func (l *Linux) isWholeDisk(name string) bool {
	if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.Contains(name, "/") {
		return false
	}
	_, err := os.Stat(l.path(filepath.Join("sys/block", name)))
	return err == nil
}

// parseDiskstats reads /proc/diskstats; sectors there are always 512 bytes.
func parseDiskstats(b []byte, whole func(string) bool) []protocol.Disk {
	out := []protocol.Disk{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 14 || !whole(f[2]) {
			continue
		}
		d := protocol.Disk{Name: f[2]}
		d.Reads, _ = strconv.ParseUint(f[3], 10, 64)
		rs, _ := strconv.ParseUint(f[5], 10, 64)
		d.Writes, _ = strconv.ParseUint(f[7], 10, 64)
		ws, _ := strconv.ParseUint(f[9], 10, 64)
		d.ReadBytes, d.WriteBytes = rs*512, ws*512
		out = append(out, d)
		if len(out) == MaxDisks {
			break
		}
	}
	return out
}

// utmp records (glibc, x86_64 and every 64-bit Linux with the 32-bit time compatibility layout):
// 384 bytes; ut_type int16 at 0, ut_line[32] at 8, ut_user[32] at 44, ut_tv.tv_sec int32 at 340.
const (
	utmpSize        = 384
	utmpUserProcess = 7
)

// ParseUtmp returns the USER_PROCESS records: the logged-in sessions.
func ParseUtmp(b []byte) []protocol.User {
	out := []protocol.User{}
	for off := 0; off+utmpSize <= len(b) && len(out) < MaxUsers; off += utmpSize {
		r := b[off : off+utmpSize]
		typ := int16(uint16(r[0]) | uint16(r[1])<<8)
		if typ != utmpUserProcess {
			continue
		}
		user := cString(r[44 : 44+32])
		if user == "" {
			continue
		}
		sec := int64(int32(uint32(r[340]) | uint32(r[341])<<8 | uint32(r[342])<<16 | uint32(r[343])<<24))
		out = append(out, protocol.User{
			Name:  user,
			TTY:   cString(r[8 : 8+32]),
			Since: time.Unix(sec, 0).UTC().Format(time.RFC3339),
		})
	}
	return out
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// Top returns the n processes using the most CPU and the n with the largest RSS.
func Top(procs []Process, n int) (byCPU, byMem []protocol.TopProcess) {
	cp := append([]Process(nil), procs...)
	sort.SliceStable(cp, func(i, j int) bool {
		if cp[i].CPUPct != cp[j].CPUPct {
			return cp[i].CPUPct > cp[j].CPUPct
		}
		return cp[i].PID < cp[j].PID
	})
	byCPU = topOf(cp, n)
	sort.SliceStable(cp, func(i, j int) bool {
		if cp[i].RSSBytes != cp[j].RSSBytes {
			return cp[i].RSSBytes > cp[j].RSSBytes
		}
		return cp[i].PID < cp[j].PID
	})
	byMem = topOf(cp, n)
	return byCPU, byMem
}

func topOf(ps []Process, n int) []protocol.TopProcess {
	out := []protocol.TopProcess{}
	for i := 0; i < n && i < len(ps); i++ {
		out = append(out, protocol.TopProcess{PID: ps[i].PID, Name: ps[i].Name, CPUPct: ps[i].CPUPct, RSSBytes: ps[i].RSSBytes})
	}
	return out
}
