//go:build windows

package collect

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"vmflow.local/guest-agent/internal/protocol"
)

// Windows collects through kernel32 and ntdll, loaded by the standard library's syscall package.
// What needs WMI, the IP helper API or WTS (NICs, disk I/O, users, load, top processes) is left empty.
type Windows struct {
	mu      sync.Mutex
	prevCPU []cpuTimes
}

var (
	kernel32                   = syscall.NewLazyDLL("kernel32.dll")
	ntdll                      = syscall.NewLazyDLL("ntdll.dll")
	procGetTickCount64         = kernel32.NewProc("GetTickCount64")
	procGlobalMemoryStatusEx   = kernel32.NewProc("GlobalMemoryStatusEx")
	procGetLogicalDriveStrings = kernel32.NewProc("GetLogicalDriveStringsW")
	procGetDriveType           = kernel32.NewProc("GetDriveTypeW")
	procGetDiskFreeSpaceEx     = kernel32.NewProc("GetDiskFreeSpaceExW")
	procGetVolumeInformation   = kernel32.NewProc("GetVolumeInformationW")
	procGetSystemFirmwareTable = kernel32.NewProc("GetSystemFirmwareTable")
	procRtlGetVersion          = ntdll.NewProc("RtlGetVersion")
	procNtQuerySystemInfo      = ntdll.NewProc("NtQuerySystemInformation")
)

// NewWindows returns the collector, its CPU counters primed.
func NewWindows() *Windows {
	w := &Windows{}
	w.prevCPU, _ = readCPUWindows()
	return w
}

// Identity: the SMBIOS system serial (the same table Win32_BIOS.SerialNumber reads), the version
// from RtlGetVersion, the computer name.
func (w *Windows) Identity() Identity {
	id := Identity{OS: protocol.OS{Family: "windows", Name: "Windows", Arch: runtime.GOARCH}}
	id.Hostname, _ = os.Hostname()
	const rsmb = 'R'<<24 | 'S'<<16 | 'M'<<8 | 'B'
	if n, _, _ := procGetSystemFirmwareTable.Call(rsmb, 0, 0, 0); n > 0 && n < 1<<24 {
		buf := make([]byte, n)
		if got, _, _ := procGetSystemFirmwareTable.Call(rsmb, 0, uintptr(unsafe.Pointer(&buf[0])), n); got == n {
			id.MachineID = SMBIOSSystemSerial(SMBIOSTableFromRSMB(buf))
		}
	}
	var v struct {
		Size                     uint32
		Major, Minor, Build, Plt uint32
		CSD                      [128]uint16
	}
	v.Size = uint32(unsafe.Sizeof(v))
	if r, _, _ := procRtlGetVersion.Call(uintptr(unsafe.Pointer(&v))); r == 0 {
		id.OS.Version = fmt.Sprintf("%d.%d", v.Major, v.Minor)
		id.OS.Kernel = fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Build)
	}
	return id
}

// Metrics: uptime, CPU (total and per core), memory and page file, fixed drives.
func (w *Windows) Metrics() (*protocol.Metrics, error) {
	m := &protocol.Metrics{
		Load: []float64{}, Filesystems: []protocol.Filesystem{}, NICs: []protocol.NIC{},
		Disks: []protocol.Disk{}, Users: []protocol.User{}, TopCPU: []protocol.TopProcess{},
		TopMemory: []protocol.TopProcess{}, CPU: protocol.CPU{PerCorePct: []float64{}},
	}
	ms, _, _ := procGetTickCount64.Call()
	m.UptimeS = float64(ms) / 1000
	cpu, err := readCPUWindows()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	m.CPU = cpuPercent(w.prevCPU, cpu)
	w.prevCPU = cpu
	w.mu.Unlock()

	var ms2 struct {
		Length, MemoryLoad                  uint32
		TotalPhys, AvailPhys                uint64
		TotalPageFile, AvailPageFile        uint64
		TotalVirtual, AvailVirtual, AvailEx uint64
	}
	ms2.Length = uint32(unsafe.Sizeof(ms2))
	if r, _, _ := procGlobalMemoryStatusEx.Call(uintptr(unsafe.Pointer(&ms2))); r != 0 {
		m.Memory.TotalBytes, m.Memory.AvailableBytes = ms2.TotalPhys, ms2.AvailPhys
		m.Memory.UsedBytes = ms2.TotalPhys - ms2.AvailPhys
		// The commit limit includes RAM; what is beyond it is the page file ("swap").
		if ms2.TotalPageFile > ms2.TotalPhys {
			m.Memory.SwapTotalBytes = ms2.TotalPageFile - ms2.TotalPhys
			usedCommit := ms2.TotalPageFile - ms2.AvailPageFile
			usedRAM := ms2.TotalPhys - ms2.AvailPhys
			if usedCommit > usedRAM {
				m.Memory.SwapUsedBytes = min(usedCommit-usedRAM, m.Memory.SwapTotalBytes)
			}
		}
	}
	m.Filesystems = windowsDrives()
	return m, nil
}

func windowsDrives() []protocol.Filesystem {
	out := []protocol.Filesystem{}
	buf := make([]uint16, 512)
	n, _, _ := procGetLogicalDriveStrings.Call(uintptr(len(buf)), uintptr(unsafe.Pointer(&buf[0])))
	if n == 0 || int(n) > len(buf) {
		return out
	}
	start := 0
	for i := 0; i < int(n) && len(out) < MaxFilesystems; i++ {
		if buf[i] != 0 {
			continue
		}
		root := buf[start : i+1]
		start = i + 1
		if len(root) < 2 {
			continue
		}
		const driveFixed = 3
		if t, _, _ := procGetDriveType.Call(uintptr(unsafe.Pointer(&root[0]))); t != driveFixed {
			continue
		}
		var free, total, totalFree uint64
		if r, _, _ := procGetDiskFreeSpaceEx.Call(uintptr(unsafe.Pointer(&root[0])),
			uintptr(unsafe.Pointer(&free)), uintptr(unsafe.Pointer(&total)), uintptr(unsafe.Pointer(&totalFree))); r == 0 {
			continue
		}
		fsName := make([]uint16, 64)
		procGetVolumeInformation.Call(uintptr(unsafe.Pointer(&root[0])), 0, 0, 0, 0, 0,
			uintptr(unsafe.Pointer(&fsName[0])), uintptr(len(fsName)))
		out = append(out, protocol.Filesystem{
			Mount: syscall.UTF16ToString(root), FsType: syscall.UTF16ToString(fsName),
			TotalBytes: total, UsedBytes: total - totalFree,
		})
	}
	return out
}

// readCPUWindows reads SystemProcessorPerformanceInformation (class 8): per processor idle, kernel
// (which includes idle) and user time in 100 ns units. [0] is the sum.
func readCPUWindows() ([]cpuTimes, error) {
	type sppi struct {
		Idle, Kernel, User, DPC, Interrupt int64
		InterruptCount                     uint32
		_                                  uint32
	}
	n := runtime.NumCPU()
	buf := make([]sppi, n)
	var ret uint32
	r, _, _ := procNtQuerySystemInfo.Call(8, uintptr(unsafe.Pointer(&buf[0])),
		uintptr(n)*unsafe.Sizeof(buf[0]), uintptr(unsafe.Pointer(&ret)))
	if r != 0 {
		return nil, errors.New("NtQuerySystemInformation failed")
	}
	count := int(uintptr(ret) / unsafe.Sizeof(buf[0]))
	out := make([]cpuTimes, count+1)
	for i := 0; i < count; i++ {
		t := cpuTimes{total: uint64(buf[i].Kernel + buf[i].User), idle: uint64(buf[i].Idle)}
		out[i+1] = t
		out[0].total += t.total
		out[0].idle += t.idle
	}
	return out, nil
}
