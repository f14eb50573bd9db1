package collect

import (
	"runtime"
	"testing"
	"time"
)

// The collector on the machine running the tests: real /proc and statfs.
func TestLiveSystem(t *testing.T) {
	l := NewLinux("/")
	time.Sleep(200 * time.Millisecond)
	m, err := l.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.Memory.TotalBytes == 0 || m.UptimeS <= 0 || len(m.Load) != 3 {
		t.Fatalf("implausible sample: %+v", m)
	}
	if len(m.CPU.PerCorePct) < 1 || len(m.CPU.PerCorePct) > runtime.NumCPU()*8 {
		t.Fatalf("per-core %v", m.CPU.PerCorePct)
	}
	if len(m.TopMemory) == 0 || m.TopMemory[0].RSSBytes == 0 {
		t.Fatalf("topMemory %+v", m.TopMemory)
	}
	found := false
	for _, f := range m.Filesystems {
		if f.TotalBytes < f.UsedBytes {
			t.Fatalf("filesystem %+v", f)
		}
		found = found || f.Mount == "/"
	}
	if !found {
		t.Logf("no / among %+v (containers may mount it as overlay)", m.Filesystems)
	}
}
