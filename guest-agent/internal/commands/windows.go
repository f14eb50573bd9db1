//go:build windows

package commands

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sort"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"vmflow.local/guest-agent/internal/collect"
	"vmflow.local/guest-agent/internal/protocol"
)

// OwnService is the agent's service name on Windows.
const OwnService = "vmflow-agent"

// Windows runs requests on a Windows guest: processes from a toolhelp snapshot (pid, parent, image
// name, working set), services through the service control manager, applications from the
// uninstall registry keys.
type Windows struct{}

// Capabilities lists the commands.
func (Windows) Capabilities() []string {
	return []string{ProcessesList, ProcessKill, ServicesList, ServiceStart, ServiceStop, ServiceRestart, PackagesList}
}

// Handle dispatches one request.
func (w Windows) Handle(ctx context.Context, command string, args json.RawMessage) (any, *Error) {
	switch command {
	case ProcessesList:
		if e := ValidateEmpty(args); e != nil {
			return nil, e
		}
		return processesWindows()
	case ProcessKill:
		pid, _, e := ValidateKill(args, os.Getpid())
		if e != nil {
			return nil, e
		}
		if pid == 4 {
			return nil, errorf(protocol.CodeDenied, "refusing to terminate the System process")
		}
		return killWindows(pid)
	case ServicesList:
		if e := ValidateEmpty(args); e != nil {
			return nil, e
		}
		return servicesWindows()
	case ServiceStart, ServiceStop, ServiceRestart:
		name, e := ValidateWindowsServiceName(args)
		if e != nil {
			return nil, e
		}
		return serviceWindows(ctx, strings.TrimPrefix(command, "service."), name)
	case PackagesList:
		if e := ValidateEmpty(args); e != nil {
			return nil, e
		}
		return packagesWindows(), nil
	default:
		return nil, errorf(protocol.CodeUnsupported, "unknown command %q", command)
	}
}

type processMemoryCounters struct {
	CB                                                                              uint32
	PageFaultCount                                                                  uint32
	PeakWorkingSetSize, WorkingSetSize                                              uintptr
	QuotaPeakPagedPoolUsage, QuotaPagedPoolUsage                                    uintptr
	QuotaPeakNonPagedPoolUsage, QuotaNonPagedPoolUsage, PagefileUsage, PeakPagefile uintptr
}

var procGetProcessMemoryInfo = windows.NewLazySystemDLL("psapi.dll").NewProc("GetProcessMemoryInfo")

// processesWindows: CPU percentages and users are not reported on Windows (0 and "").
func processesWindows() (any, *Error) {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		return nil, errorf(protocol.CodeFailed, "process snapshot: %v", err)
	}
	defer windows.CloseHandle(snap)
	var e windows.ProcessEntry32
	e.Size = uint32(unsafe.Sizeof(e))
	ps := []collect.Process{}
	for err = windows.Process32First(snap, &e); err == nil && len(ps) < 1000; err = windows.Process32Next(snap, &e) {
		p := collect.Process{PID: int(e.ProcessID), PPID: int(e.ParentProcessID), Name: windows.UTF16ToString(e.ExeFile[:]), State: "R"}
		if h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, e.ProcessID); err == nil {
			var pmc processMemoryCounters
			pmc.CB = uint32(unsafe.Sizeof(pmc))
			if r, _, _ := procGetProcessMemoryInfo.Call(uintptr(h), uintptr(unsafe.Pointer(&pmc)), uintptr(pmc.CB)); r != 0 {
				p.RSSBytes = uint64(pmc.WorkingSetSize)
			}
			windows.CloseHandle(h)
		}
		ps = append(ps, p)
	}
	return fit(ps, func(p []collect.Process, cut bool) any {
		return struct {
			Processes []collect.Process `json:"processes"`
			Truncated bool              `json:"truncated,omitempty"`
		}{p, cut}
	}), nil
}

func killWindows(pid int) (any, *Error) {
	h, err := windows.OpenProcess(windows.PROCESS_TERMINATE, false, uint32(pid))
	if err != nil {
		if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
			return nil, errorf(protocol.CodeNotFound, "no process %d", pid)
		}
		return nil, errorf(protocol.CodeDenied, "cannot open process %d: %v", pid, err)
	}
	defer windows.CloseHandle(h)
	// Windows has no TERM: both signals terminate.
	if err := windows.TerminateProcess(h, 1); err != nil {
		return nil, errorf(protocol.CodeFailed, "terminate %d: %v", pid, err)
	}
	return struct{}{}, nil
}

type winService struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	State       string `json:"state"`
	Enabled     bool   `json:"enabled"`
}

func stateWord(s svc.State) string {
	switch s {
	case svc.Running:
		return "running"
	case svc.Stopped:
		return "stopped"
	case svc.StartPending:
		return "starting"
	case svc.StopPending:
		return "stopping"
	case svc.Paused:
		return "paused"
	default:
		return "unknown"
	}
}

func servicesWindows() (any, *Error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, errorf(protocol.CodeFailed, "service manager: %v", err)
	}
	defer m.Disconnect()
	names, err := m.ListServices()
	if err != nil {
		return nil, errorf(protocol.CodeFailed, "listing services: %v", err)
	}
	sort.Strings(names)
	out := []winService{}
	for _, n := range names {
		s, err := m.OpenService(n)
		if err != nil {
			continue
		}
		ws := winService{Name: n, State: "unknown"}
		if st, err := s.Query(); err == nil {
			ws.State = stateWord(st.State)
		}
		if c, err := s.Config(); err == nil {
			ws.Description = c.DisplayName
			ws.Enabled = c.StartType == mgr.StartAutomatic
		}
		s.Close()
		out = append(out, ws)
	}
	return fit(out, func(s []winService, cut bool) any {
		return struct {
			Services  []winService `json:"services"`
			Truncated bool         `json:"truncated,omitempty"`
		}{s, cut}
	}), nil
}

func waitState(ctx context.Context, s *mgr.Service, want svc.State) (svc.State, *Error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := s.Query()
		if err != nil {
			return 0, errorf(protocol.CodeFailed, "query: %v", err)
		}
		if st.State == want || time.Now().After(deadline) {
			return st.State, nil
		}
		select {
		case <-ctx.Done():
			return st.State, nil
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func serviceWindows(ctx context.Context, verb, name string) (any, *Error) {
	if strings.EqualFold(name, OwnService) && verb != "start" {
		return nil, errorf(protocol.CodeDenied, "refusing to %s the agent's own service", verb)
	}
	m, err := mgr.Connect()
	if err != nil {
		return nil, errorf(protocol.CodeFailed, "service manager: %v", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
			return nil, errorf(protocol.CodeNotFound, "no service %s", name)
		}
		return nil, errorf(protocol.CodeFailed, "open %s: %v", name, err)
	}
	defer s.Close()
	if verb == "stop" || verb == "restart" {
		if _, err := s.Control(svc.Stop); err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
			return nil, errorf(protocol.CodeFailed, "stop %s: %v", name, err)
		}
		if st, e := waitState(ctx, s, svc.Stopped); e != nil || verb == "stop" {
			return map[string]string{"state": stateWord(st)}, e
		}
	}
	if err := s.Start(); err != nil && !errors.Is(err, windows.ERROR_SERVICE_ALREADY_RUNNING) {
		return nil, errorf(protocol.CodeFailed, "start %s: %v", name, err)
	}
	st, e := waitState(ctx, s, svc.Running)
	return map[string]string{"state": stateWord(st)}, e
}

// packagesWindows reads the installed applications from the uninstall keys (64-bit and 32-bit
// views), as Programs and Features shows them: entries with a DisplayName that are not system
// components or updates.
func packagesWindows() any {
	seen := map[string]bool{}
	out := []Package{}
	for _, view := range []struct {
		path string
		arch string
	}{
		{`SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`, "amd64"},
		{`SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall`, "386"},
	} {
		k, err := registry.OpenKey(registry.LOCAL_MACHINE, view.path, registry.ENUMERATE_SUB_KEYS|registry.READ)
		if err != nil {
			continue
		}
		subs, _ := k.ReadSubKeyNames(-1)
		k.Close()
		for _, sub := range subs {
			sk, err := registry.OpenKey(registry.LOCAL_MACHINE, view.path+`\`+sub, registry.QUERY_VALUE)
			if err != nil {
				continue
			}
			name, _, _ := sk.GetStringValue("DisplayName")
			version, _, _ := sk.GetStringValue("DisplayVersion")
			sysComp, _, _ := sk.GetIntegerValue("SystemComponent")
			parent, _, _ := sk.GetStringValue("ParentKeyName")
			sk.Close()
			if name == "" || sysComp == 1 || parent != "" || seen[name+"\x00"+version] {
				continue
			}
			seen[name+"\x00"+version] = true
			out = append(out, Package{Name: name, Version: version, Arch: view.arch})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return fit(out, func(p []Package, cut bool) any { return packagesResult{Packages: p, Truncated: cut} })
}
