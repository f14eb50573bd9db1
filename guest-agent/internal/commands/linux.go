//go:build linux

package commands

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"vmflow.local/guest-agent/internal/collect"
	"vmflow.local/guest-agent/internal/protocol"
)

// OwnUnit is the systemd unit the agent runs as; the host may not stop or restart it through the
// agent (the answer could never arrive).
const OwnUnit = "vmflow-agent.service"

// Linux runs requests on a Linux guest: processes from /proc, services through systemctl, packages
// through dpkg-query (or rpm).
type Linux struct {
	Procs *collect.ProcessSampler
	Run   Runner
	Kill  func(pid int, sig syscall.Signal) error
	Self  int
	// Timeout bounds a systemctl start/stop/restart.
	Timeout time.Duration
}

// Capabilities lists the commands.
func (l *Linux) Capabilities() []string {
	return []string{ProcessesList, ProcessKill, ServicesList, ServiceStart, ServiceStop, ServiceRestart, PackagesList}
}

// Handle dispatches one request.
func (l *Linux) Handle(ctx context.Context, command string, args json.RawMessage) (any, *Error) {
	switch command {
	case ProcessesList:
		if e := ValidateEmpty(args); e != nil {
			return nil, e
		}
		return l.processes(ctx)
	case ProcessKill:
		pid, kill, e := ValidateKill(args, l.Self)
		if e != nil {
			return nil, e
		}
		return l.kill(pid, kill)
	case ServicesList:
		if e := ValidateEmpty(args); e != nil {
			return nil, e
		}
		return l.services(ctx)
	case ServiceStart, ServiceStop, ServiceRestart:
		name, e := ValidateUnitName(args)
		if e != nil {
			return nil, e
		}
		return l.service(ctx, strings.TrimPrefix(command, "service."), name)
	case PackagesList:
		if e := ValidateEmpty(args); e != nil {
			return nil, e
		}
		return l.packages(ctx)
	default:
		return nil, errorf(protocol.CodeUnsupported, "unknown command %q", command)
	}
}

// MaxProcesses bounds processes.list.
const MaxProcesses = 1000

type processesResult struct {
	Processes []collect.Process `json:"processes"`
	Truncated bool              `json:"truncated,omitempty"`
}

func (l *Linux) processes(ctx context.Context) (any, *Error) {
	// CPU percentages need two samples; reuse the metrics loop's last one when it is recent.
	if l.Procs.LastSampleAge() > 30*time.Second {
		if _, err := l.Procs.Sample(); err != nil {
			return nil, errorf(protocol.CodeFailed, "reading /proc: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil, errorf(protocol.CodeFailed, "cancelled")
		case <-time.After(500 * time.Millisecond):
		}
	}
	ps, err := l.Procs.Sample()
	if err != nil {
		return nil, errorf(protocol.CodeFailed, "reading /proc: %v", err)
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].CPUPct != ps[j].CPUPct {
			return ps[i].CPUPct > ps[j].CPUPct
		}
		if ps[i].RSSBytes != ps[j].RSSBytes {
			return ps[i].RSSBytes > ps[j].RSSBytes
		}
		return ps[i].PID < ps[j].PID
	})
	truncated := len(ps) > MaxProcesses
	if truncated {
		ps = ps[:MaxProcesses]
	}
	return fit(ps, func(p []collect.Process, cut bool) any {
		return processesResult{Processes: p, Truncated: truncated || cut}
	}), nil
}

func (l *Linux) kill(pid int, kill bool) (any, *Error) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	switch err := l.Kill(pid, sig); {
	case err == nil:
		return struct{}{}, nil
	case errors.Is(err, syscall.ESRCH):
		return nil, errorf(protocol.CodeNotFound, "no process %d", pid)
	case errors.Is(err, syscall.EPERM):
		return nil, errorf(protocol.CodeDenied, "not permitted to signal %d", pid)
	default:
		return nil, errorf(protocol.CodeFailed, "kill %d: %v", pid, err)
	}
}

// Service is one entry of services.list.
type Service struct {
	Name         string `json:"name"`
	Description  string `json:"description"`
	State        string `json:"state"`
	Enabled      bool   `json:"enabled"`
	EnabledState string `json:"enabledState,omitempty"`
}

type servicesResult struct {
	Services  []Service `json:"services"`
	Truncated bool      `json:"truncated,omitempty"`
}

func (l *Linux) services(ctx context.Context) (any, *Error) {
	units, err := l.Run.Run(ctx, "systemctl", "list-units", "--type=service", "--all", "--no-legend", "--plain", "--no-pager")
	if err != nil {
		return nil, l.systemctlError("systemctl list-units", err)
	}
	files, err := l.Run.Run(ctx, "systemctl", "list-unit-files", "--type=service", "--no-legend", "--no-pager")
	if err != nil {
		return nil, l.systemctlError("systemctl list-unit-files", err)
	}
	svcs := ParseServices(units, files)
	return fit(svcs, func(s []Service, cut bool) any { return servicesResult{Services: s, Truncated: cut} }), nil
}

func (l *Linux) systemctlError(what string, err error) *Error {
	if errors.Is(err, exec.ErrNotFound) {
		return errorf(protocol.CodeUnsupported, "systemctl is not installed (no systemd)")
	}
	return failed(what, err)
}

// ParseServices merges `systemctl list-units --plain` (loaded units and their state) with
// `systemctl list-unit-files` (installed units, also those not loaded, and whether each is enabled).
// Template units (name@.service) are left out: they are not services until instantiated.
func ParseServices(units, files []byte) []Service {
	byName := map[string]*Service{}
	var order []string
	for _, line := range strings.Split(string(units), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[0], ".service") {
			continue
		}
		name, load, active, sub := f[0], f[1], f[2], f[3]
		if load == "not-found" && active == "inactive" {
			continue // referenced by another unit, installed nowhere
		}
		s := &Service{Name: name, Description: strings.Join(f[4:], " "), State: ServiceState(active, sub)}
		byName[name] = s
		order = append(order, name)
	}
	for _, line := range strings.Split(string(files), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasSuffix(f[0], ".service") || strings.HasSuffix(f[0], "@.service") {
			continue
		}
		s, ok := byName[f[0]]
		if !ok {
			s = &Service{Name: f[0], State: "stopped"}
			byName[f[0]] = s
			order = append(order, f[0])
		}
		s.EnabledState = f[1]
		s.Enabled = f[1] == "enabled" || f[1] == "enabled-runtime"
	}
	sort.Strings(order)
	out := make([]Service, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out
}

// ServiceState maps systemd's ActiveState/SubState to the protocol's state words: running, stopped,
// failed, exited (a oneshot that ran), starting, stopping, reloading.
func ServiceState(active, sub string) string {
	switch active {
	case "active":
		if sub == "exited" {
			return "exited"
		}
		return "running"
	case "inactive":
		return "stopped"
	case "failed":
		return "failed"
	case "activating":
		return "starting"
	case "deactivating":
		return "stopping"
	case "reloading":
		return "reloading"
	default:
		return active
	}
}

type serviceResult struct {
	State string `json:"state"`
}

func (l *Linux) unitState(ctx context.Context, name string) (load, state string, e *Error) {
	out, err := l.Run.Run(ctx, "systemctl", "show", "--property=LoadState,ActiveState,SubState", "--no-pager", "--", name)
	if err != nil {
		return "", "", l.systemctlError("systemctl show", err)
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = strings.TrimSpace(v)
		}
	}
	return props["LoadState"], ServiceState(props["ActiveState"], props["SubState"]), nil
}

func (l *Linux) service(ctx context.Context, verb, name string) (any, *Error) {
	if name == OwnUnit && verb != "start" {
		return nil, errorf(protocol.CodeDenied, "refusing to %s the agent's own unit", verb)
	}
	load, _, e := l.unitState(ctx, name)
	if e != nil {
		return nil, e
	}
	if load == "not-found" || load == "" {
		return nil, errorf(protocol.CodeNotFound, "no service %s", name)
	}
	timeout := l.Timeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := l.Run.Run(runCtx, "systemctl", verb, "--no-ask-password", "--", name); err != nil {
		return nil, failed("systemctl "+verb+" "+name, err)
	}
	_, state, e := l.unitState(ctx, name)
	if e != nil {
		return nil, e
	}
	return serviceResult{State: state}, nil
}

func (l *Linux) packages(ctx context.Context) (any, *Error) {
	out, err := l.Run.Run(ctx, "dpkg-query", "-W", "-f=${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n")
	var pkgs []Package
	switch {
	case err == nil:
		pkgs = ParseDpkg(out)
	case errors.Is(err, exec.ErrNotFound):
		out, err = l.Run.Run(ctx, "rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\t%{ARCH}\n")
		if errors.Is(err, exec.ErrNotFound) {
			return nil, errorf(protocol.CodeUnsupported, "neither dpkg-query nor rpm is installed")
		}
		if err != nil {
			return nil, failed("rpm -qa", err)
		}
		pkgs = ParseRpm(out)
	default:
		return nil, failed("dpkg-query", err)
	}
	return fit(pkgs, func(p []Package, cut bool) any { return packagesResult{Packages: p, Truncated: cut} }), nil
}

// ParseDpkg reads dpkg-query lines "<status>\t<name>\t<version>\t<arch>", keeping installed packages
// (status abbreviation with 'i' second: installed, whatever was asked of it).
func ParseDpkg(b []byte) []Package {
	out := []Package{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || len(f[0]) < 2 || f[0][1] != 'i' || f[1] == "" {
			continue
		}
		out = append(out, Package{Name: f[1], Version: f[2], Arch: f[3]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ParseRpm reads rpm -qa lines "<name>\t<version-release>\t<arch>".
func ParseRpm(b []byte) []Package {
	out := []Package{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[0] == "" {
			continue
		}
		out = append(out, Package{Name: f[0], Version: f[1], Arch: f[2]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
