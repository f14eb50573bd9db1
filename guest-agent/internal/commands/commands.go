// Package commands runs the host's requests inside the guest. The host is trusted to ask, the
// request's content is not: every argument is validated, external programs get an argv (never a
// shell), and results are bounded to fit the protocol's line cap.
package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"vmflow.local/guest-agent/internal/protocol"
)

// Command names.
const (
	ProcessesList  = "processes.list"
	ProcessKill    = "process.kill"
	ServicesList   = "services.list"
	ServiceStart   = "service.start"
	ServiceStop    = "service.stop"
	ServiceRestart = "service.restart"
	PackagesList   = "packages.list"
)

// Error is a failed request: one of the protocol's codes and a message for people.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// Handler runs requests. Handle returns the response's result or an *Error.
type Handler interface {
	Capabilities() []string
	Handle(ctx context.Context, command string, args json.RawMessage) (any, *Error)
}

// Unsupported answers every command with "unsupported".
type Unsupported struct{}

// Capabilities is empty.
func (Unsupported) Capabilities() []string { return nil }

// Handle refuses.
func (Unsupported) Handle(_ context.Context, command string, _ json.RawMessage) (any, *Error) {
	return nil, errorf(protocol.CodeUnsupported, "unknown command %q", command)
}

// decodeArgs reads a request's args object strictly: unknown fields are refused, so a typo is not
// silently ignored. Absent args mean {}.
func decodeArgs(raw json.RawMessage, v any) *Error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(protocol.CodeInvalid, "args: %v", err)
	}
	return nil
}

// KillArgs are process.kill's arguments.
type KillArgs struct {
	PID    *int64 `json:"pid"`
	Signal string `json:"signal"`
}

// ValidateKill checks process.kill's arguments: a positive pid other than 1 and self, and a signal
// of TERM (default) or KILL. It returns the pid and whether the signal is KILL.
func ValidateKill(raw json.RawMessage, self int) (pid int, kill bool, e *Error) {
	var a KillArgs
	if e := decodeArgs(raw, &a); e != nil {
		return 0, false, e
	}
	if a.PID == nil {
		return 0, false, errorf(protocol.CodeInvalid, "pid is required")
	}
	// 0 and negative pids would signal process groups (or everything): never.
	if *a.PID <= 0 || *a.PID > 1<<22 {
		return 0, false, errorf(protocol.CodeInvalid, "pid must be a positive process id")
	}
	pid = int(*a.PID)
	if pid == 1 {
		return 0, false, errorf(protocol.CodeDenied, "refusing to signal pid 1 (init)")
	}
	if pid == self {
		return 0, false, errorf(protocol.CodeDenied, "refusing to signal the agent itself")
	}
	switch a.Signal {
	case "", "TERM":
		return pid, false, nil
	case "KILL":
		return pid, true, nil
	default:
		return 0, false, errorf(protocol.CodeInvalid, "signal must be TERM or KILL")
	}
}

// ServiceArgs are service.start|stop|restart's arguments.
type ServiceArgs struct {
	Name string `json:"name"`
}

// systemd unit name characters (systemd.unit(5)): ASCII letters, digits, ":-_.\" and "@" for
// template instances; at most 256 characters.
var unitName = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]+$`)

// ValidateUnitName checks a service name and returns it with ".service" added when it has no suffix.
// A leading '-' is refused so the name can never be read as an option.
func ValidateUnitName(raw json.RawMessage) (string, *Error) {
	var a ServiceArgs
	if e := decodeArgs(raw, &a); e != nil {
		return "", e
	}
	name := a.Name
	if name == "" {
		return "", errorf(protocol.CodeInvalid, "name is required")
	}
	if !strings.HasSuffix(name, ".service") {
		if strings.Contains(name, ".") && !strings.Contains(name, "@") {
			return "", errorf(protocol.CodeInvalid, "only service units may be named")
		}
		name += ".service"
	}
	if len(name) > 256 || !unitName.MatchString(name) || strings.HasPrefix(name, "-") ||
		strings.HasPrefix(name, ".") || strings.HasSuffix(name, "@.service") {
		return "", errorf(protocol.CodeInvalid, "not a valid service unit name")
	}
	return name, nil
}

// ValidateEmpty checks that a command without arguments got none.
func ValidateEmpty(raw json.RawMessage) *Error {
	var a struct{}
	return decodeArgs(raw, &a)
}

// Runner runs a program with an argument vector and returns its standard output.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecError is a program that ran and failed.
type ExecError struct {
	Name   string
	Err    error
	Stderr string
}

func (e *ExecError) Error() string {
	msg := e.Name + ": " + e.Err.Error()
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *ExecError) Unwrap() error { return e.Err }

// ExecRunner runs programs with os/exec, a fixed environment and bounded output.
type ExecRunner struct{}

// MaxOutput bounds a program's captured standard output.
const MaxOutput = 16 << 20

// Run runs name with args (no shell).
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
		"SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "SYSTEMD_LESS="}
	var stdout limitedBuffer
	var stderr limitedBuffer
	stdout.max, stderr.max = MaxOutput, 4096
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &ExecError{Name: name, Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// limitedBuffer keeps the first max bytes and drops the rest (the program is not blocked).
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// budget is what a result may take of a line, leaving room for the response envelope.
const budget = protocol.MaxLine - 1024

// fit returns wrap(items) cut to the longest prefix whose JSON fits the line budget; the bool says
// whether anything was cut.
func fit[T any](items []T, wrap func([]T, bool) any) any {
	size := func(n int) int {
		b, err := json.Marshal(wrap(items[:n], n < len(items)))
		if err != nil {
			return budget + 1
		}
		return len(b)
	}
	if size(len(items)) <= budget {
		return wrap(items, false)
	}
	lo, hi := 0, len(items) // size(lo) fits, size(hi) does not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if size(mid) <= budget {
			lo = mid
		} else {
			hi = mid
		}
	}
	return wrap(items[:lo], true)
}

// failed turns an error from a program into a "failed" error.
func failed(what string, err error) *Error {
	var ee *ExecError
	if errors.As(err, &ee) && ee.Stderr != "" {
		return errorf(protocol.CodeFailed, "%s: %s", what, truncate(ee.Stderr, 1024))
	}
	return errorf(protocol.CodeFailed, "%s: %v", what, err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// windowsServiceName: SCM key names (no slashes or backslashes), as the names of Windows' own
// services look; at most 256 characters.
var windowsServiceName = regexp.MustCompile(`^[A-Za-z0-9_.$@ -]+$`)

// ValidateWindowsServiceName checks a service.* name for the Windows service manager.
func ValidateWindowsServiceName(raw json.RawMessage) (string, *Error) {
	var a ServiceArgs
	if e := decodeArgs(raw, &a); e != nil {
		return "", e
	}
	if a.Name == "" || len(a.Name) > 256 || !windowsServiceName.MatchString(a.Name) ||
		strings.HasPrefix(a.Name, "-") || strings.TrimSpace(a.Name) != a.Name {
		return "", errorf(protocol.CodeInvalid, "not a valid service name")
	}
	return a.Name, nil
}

// Package is one entry of packages.list.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

type packagesResult struct {
	Packages  []Package `json:"packages"`
	Truncated bool      `json:"truncated,omitempty"`
}
