package collect

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"vmflow.local/guest-agent/internal/protocol"
)

// fixture copies testdata/guest to a temporary root the test may change.
func fixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/guest")); err != nil {
		t.Fatal(err)
	}
	return root
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newFixtureCollector(t *testing.T, root string) (*Linux, *clock, map[string]bool) {
	t.Helper()
	c := &clock{now: time.Unix(1764010000, 0)}
	asked := map[string]bool{}
	l := NewLinux(root)
	l.Now = c.Now
	l.PageSize = 4096
	l.procs.PageSize, l.procs.Now = 4096, c.Now
	l.Statfs = func(path string) (uint64, uint64, error) {
		rel := strings.TrimPrefix(path, root)
		asked[rel] = true
		switch rel {
		case "":
			return 3 << 30, 1 << 30, nil
		case "/srv/my data":
			return 10 << 30, 2 << 30, nil
		case "/media/cdrom":
			return 0, 0, nil // a full CD reports no blocks: left out
		}
		return 1, 1, nil
	}
	return l, c, asked
}

func TestIdentity(t *testing.T) {
	l, _, _ := newFixtureCollector(t, fixture(t))
	id := l.Identity()
	want := Identity{
		MachineID: "c0ffee00-1111-2222-3333-444455556666",
		Hostname:  "web-1",
		OS:        protocol.OS{Family: "linux", Name: "Debian GNU/Linux", Version: "12", Kernel: "6.1.0-27-cloud-amd64", Arch: "amd64"},
	}
	if id != want {
		t.Fatalf("identity %+v, want %+v", id, want)
	}
}

func TestCPUPercentOverInterval(t *testing.T) {
	before, err := parseStat(mustRead(t, "testdata/guest/proc/stat"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseStat(mustRead(t, "testdata/guest/proc/stat.later"))
	if err != nil {
		t.Fatal(err)
	}
	got := cpuPercent(before, after)
	// total: 1000 jiffies passed, 600 idle (idle+iowait) → 40 %; cpu0's counters went backwards
	// (a CPU taken offline and back) → 0; cpu1: 1100 passed, 600 idle → 45.45 %.
	want := protocol.CPU{TotalPct: 40, PerCorePct: []float64{0, 45.45}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cpu %+v, want %+v", got, want)
	}
	if _, err := parseStat([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("a /proc/stat without cpu lines must be an error")
	}
}

func TestMetricsFromFixtures(t *testing.T) {
	root := fixture(t)
	l, c, asked := newFixtureCollector(t, root)
	if _, err := l.Metrics(); err != nil { // first process sample
		t.Fatal(err)
	}
	// 10 s later: the fixture's pid 321 used 500 more ticks (5 s of CPU: 50 %), /proc/stat moved on.
	c.now = c.now.Add(10 * time.Second)
	rewrite(t, root, "proc/321/stat", "321 (my (odd) name) R 1 321 321 0 -1 4194560 10 0 0 0 200 100", "321 (my (odd) name) R 1 321 321 0 -1 4194560 10 0 0 0 600 200")
	copyFile(t, filepath.Join(root, "proc/stat.later"), filepath.Join(root, "proc/stat"))
	m, err := l.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.UptimeS != 1234.56 || !reflect.DeepEqual(m.Load, []float64{0.52, 0.38, 0.21}) {
		t.Fatalf("uptime %v load %v", m.UptimeS, m.Load)
	}
	if m.CPU.TotalPct != 40 || len(m.CPU.PerCorePct) != 2 {
		t.Fatalf("cpu %+v", m.CPU)
	}
	wantMem := protocol.Memory{TotalBytes: 1000000 * 1024, AvailableBytes: 600000 * 1024, UsedBytes: 400000 * 1024,
		SwapTotalBytes: 500000 * 1024, SwapUsedBytes: 100000 * 1024}
	if m.Memory != wantMem {
		t.Fatalf("memory %+v, want %+v", m.Memory, wantMem)
	}
	wantFS := []protocol.Filesystem{
		{Mount: "/", FsType: "ext4", TotalBytes: 3 << 30, UsedBytes: 1 << 30},
		{Mount: "/srv/my data", FsType: "xfs", TotalBytes: 10 << 30, UsedBytes: 2 << 30},
	}
	if !reflect.DeepEqual(m.Filesystems, wantFS) {
		t.Fatalf("filesystems %+v", m.Filesystems)
	}
	for _, pseudo := range []string{"/proc", "/sys", "/run", "/dev", "/sys/fs/cgroup", "/var/lib/bind-mounted"} {
		if asked[pseudo] {
			t.Errorf("statfs asked for %s", pseudo)
		}
	}
	wantNICs := []protocol.NIC{
		{Name: "eth0", RxBytes: 123456789, TxBytes: 987654321, RxPackets: 98765, TxPackets: 54321},
		{Name: "eth1"},
	}
	if !reflect.DeepEqual(m.NICs, wantNICs) {
		t.Fatalf("nics %+v", m.NICs)
	}
	wantDisks := []protocol.Disk{
		{Name: "vda", ReadBytes: 400000 * 512, WriteBytes: 160000 * 512, Reads: 5000, Writes: 3000},
		{Name: "sr0", ReadBytes: 80 * 512, Reads: 10},
	}
	if !reflect.DeepEqual(m.Disks, wantDisks) {
		t.Fatalf("disks %+v", m.Disks)
	}
	wantUsers := []protocol.User{
		{Name: "alice", TTY: "pts/0", Since: "2025-11-24T17:00:00Z"},
		{Name: "root", TTY: "tty1", Since: "2025-11-24T18:00:00Z"},
	}
	if !reflect.DeepEqual(m.Users, wantUsers) {
		t.Fatalf("users %+v", m.Users)
	}
	if len(m.TopCPU) != 3 || m.TopCPU[0] != (protocol.TopProcess{PID: 321, Name: "my (odd) name", CPUPct: 50, RSSBytes: 25000 * 4096}) {
		t.Fatalf("topCpu %+v", m.TopCPU)
	}
	if m.TopMemory[0].PID != 321 || m.TopMemory[1].PID != 1 || m.TopMemory[2].PID != 4000 {
		t.Fatalf("topMemory %+v", m.TopMemory)
	}
	// Every list is present (never null) so the host sees [] rather than a missing field.
	line, err := protocol.Marshal(m)
	if err != nil || strings.Contains(string(line), "null") {
		t.Fatalf("marshalled %s (%v)", line, err)
	}
}

func TestProcessSamplerPidReuse(t *testing.T) {
	root := fixture(t)
	c := &clock{now: time.Unix(0, 0)}
	s := &ProcessSampler{Root: root, PageSize: 4096, ClkTck: 100, Now: c.Now}
	if _, err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	c.now = c.now.Add(time.Second)
	// pid 4000 is now another process (a later start time) that has used 50 ticks: no CPU is
	// attributed from the old one's counters.
	if err := os.WriteFile(filepath.Join(root, "proc/4000/stat"),
		[]byte("4000 (cron) S 1 4000 4000 0 -1 4194560 10 0 0 0 40 10 0 0 20 0 1 0 9000 10000000 500 1 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int]Process{}
	for _, p := range ps {
		byPID[p.PID] = p
	}
	if p := byPID[4000]; p.Name != "cron" || p.CPUPct != 0 || p.User != "alice" || p.PPID != 1 {
		t.Fatalf("reused pid: %+v", p)
	}
	if p := byPID[1]; p.User != "root" || p.Cmdline != "/sbin/init splash" || p.State != "S" || p.RSSBytes != 3000*4096 {
		t.Fatalf("pid 1: %+v", p)
	}
	if p := byPID[321]; p.User != "daemon" || p.Cmdline != "odd --flag" {
		t.Fatalf("pid 321: %+v", p)
	}
}

func TestParseProcStatRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "123", "1 (x) S 0", "1 x) S 0 1 1 0 -1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15"} {
		if _, ok := ParseProcStat([]byte(in)); ok {
			t.Errorf("parsed %q", in)
		}
	}
}

func TestUtmpIgnoresPartialRecords(t *testing.T) {
	b := mustRead(t, "testdata/guest/var/run/utmp")
	if got := ParseUtmp(b[:len(b)-1]); len(got) != 1 || got[0].Name != "alice" {
		t.Fatalf("truncated utmp gave %+v", got)
	}
}

func TestMemoryWithoutMemAvailable(t *testing.T) {
	m := parseMeminfo([]byte("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n"))
	if m.AvailableBytes != 400*1024 || m.UsedBytes != 600*1024 {
		t.Fatalf("%+v", m)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rewrite(t *testing.T, root, rel, old, new string) {
	t.Helper()
	p := filepath.Join(root, rel)
	b := mustRead(t, p)
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, mustRead(t, from), 0o644); err != nil {
		t.Fatal(err)
	}
}
