//go:build linux

package commands

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"vmflow.local/guest-agent/internal/collect"
	"vmflow.local/guest-agent/internal/protocol"
)

// fakeRunner answers by argv and records every call.
type fakeRunner struct {
	calls   [][]string
	answers map[string]func() ([]byte, error)
}

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	f.calls = append(f.calls, argv)
	key := strings.Join(argv, " ")
	for prefix, answer := range f.answers {
		if strings.HasPrefix(key, prefix) {
			return answer()
		}
	}
	return nil, exec.ErrNotFound
}

func out(s string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(s), nil } }

func TestServicesList(t *testing.T) {
	units := `cron.service loaded active running Regular background program processing daemon
cloud-final.service loaded active exited Execute cloud user/final scripts
ssh.service loaded active running OpenBSD Secure Shell server
nfs-server.service not-found inactive dead nfs-server.service
broken.service loaded failed failed A broken service
`
	files := `cron.service enabled enabled
getty@.service enabled enabled
ssh.service enabled enabled
cloud-final.service enabled enabled
rsync.service disabled enabled
broken.service static -
`
	r := &fakeRunner{answers: map[string]func() ([]byte, error){
		"systemctl list-units":      out(units),
		"systemctl list-unit-files": out(files),
	}}
	l := &Linux{Run: r}
	res, e := l.Handle(context.Background(), ServicesList, nil)
	if e != nil {
		t.Fatal(e)
	}
	got := res.(servicesResult).Services
	want := []Service{
		{Name: "broken.service", Description: "A broken service", State: "failed", EnabledState: "static"},
		{Name: "cloud-final.service", Description: "Execute cloud user/final scripts", State: "exited", Enabled: true, EnabledState: "enabled"},
		{Name: "cron.service", Description: "Regular background program processing daemon", State: "running", Enabled: true, EnabledState: "enabled"},
		{Name: "rsync.service", State: "stopped", EnabledState: "disabled"},
		{Name: "ssh.service", Description: "OpenBSD Secure Shell server", State: "running", Enabled: true, EnabledState: "enabled"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("services\n got %+v\nwant %+v", got, want)
	}
	if _, e := l.Handle(context.Background(), ServicesList, json.RawMessage(`{"x":1}`)); e == nil || e.Code != protocol.CodeInvalid {
		t.Fatalf("args accepted: %v", e)
	}
	if _, e := (&Linux{Run: &fakeRunner{}}).Handle(context.Background(), ServicesList, nil); e == nil || e.Code != protocol.CodeUnsupported {
		t.Fatalf("without systemctl: %v", e)
	}
}

func TestServiceStartUsesArgvAndReportsState(t *testing.T) {
	shows := 0
	r := &fakeRunner{answers: map[string]func() ([]byte, error){
		"systemctl show": func() ([]byte, error) {
			shows++
			if shows == 1 {
				return []byte("LoadState=loaded\nActiveState=inactive\nSubState=dead\n"), nil
			}
			return []byte("ActiveState=active\nSubState=running\nLoadState=loaded\n"), nil
		},
		"systemctl restart": out(""),
	}}
	l := &Linux{Run: r}
	res, e := l.Handle(context.Background(), ServiceRestart, json.RawMessage(`{"name":"ssh"}`))
	if e != nil {
		t.Fatal(e)
	}
	if res.(serviceResult).State != "running" {
		t.Fatalf("state %+v", res)
	}
	want := [][]string{
		{"systemctl", "show", "--property=LoadState,ActiveState,SubState", "--no-pager", "--", "ssh.service"},
		{"systemctl", "restart", "--no-ask-password", "--", "ssh.service"},
		{"systemctl", "show", "--property=LoadState,ActiveState,SubState", "--no-pager", "--", "ssh.service"},
	}
	if !reflect.DeepEqual(r.calls, want) {
		t.Fatalf("calls %v", r.calls)
	}
}

func TestServiceErrors(t *testing.T) {
	notFound := &fakeRunner{answers: map[string]func() ([]byte, error){
		"systemctl show": out("LoadState=not-found\nActiveState=inactive\nSubState=dead\n"),
	}}
	if _, e := (&Linux{Run: notFound}).Handle(context.Background(), ServiceStart, json.RawMessage(`{"name":"nope.service"}`)); e == nil || e.Code != protocol.CodeNotFound {
		t.Fatalf("missing unit: %v", e)
	}
	if len(notFound.calls) != 1 {
		t.Fatalf("a missing unit must not be started: %v", notFound.calls)
	}
	failing := &fakeRunner{answers: map[string]func() ([]byte, error){
		"systemctl show": out("LoadState=loaded\n"),
		"systemctl start": func() ([]byte, error) {
			return nil, &ExecError{Name: "systemctl", Err: errors.New("exit status 1"), Stderr: "Job for x.service failed."}
		},
	}}
	_, e := (&Linux{Run: failing}).Handle(context.Background(), ServiceStart, json.RawMessage(`{"name":"x.service"}`))
	if e == nil || e.Code != protocol.CodeFailed || !strings.Contains(e.Message, "Job for x.service failed.") {
		t.Fatalf("failing start: %v", e)
	}
	for _, verb := range []string{ServiceStop, ServiceRestart} {
		r := &fakeRunner{}
		if _, e := (&Linux{Run: r}).Handle(context.Background(), verb, json.RawMessage(`{"name":"vmflow-agent"}`)); e == nil || e.Code != protocol.CodeDenied || len(r.calls) != 0 {
			t.Fatalf("%s of the agent's own unit: %v %v", verb, e, r.calls)
		}
	}
	r := &fakeRunner{}
	if _, e := (&Linux{Run: r}).Handle(context.Background(), ServiceStop, json.RawMessage(`{"name":"--force"}`)); e == nil || e.Code != protocol.CodeInvalid || len(r.calls) != 0 {
		t.Fatalf("option as a name: %v %v", e, r.calls)
	}
}

func TestPackagesList(t *testing.T) {
	dpkg := "ii \tzlib1g\t1:1.2.13.dfsg-1\tamd64\nrc \told-thing\t1.0\tamd64\nii \tbash\t5.2.15-2+b7\tamd64\nhi \tpinned\t2\tall\n"
	r := &fakeRunner{answers: map[string]func() ([]byte, error){"dpkg-query -W": out(dpkg)}}
	res, e := (&Linux{Run: r}).Handle(context.Background(), PackagesList, nil)
	if e != nil {
		t.Fatal(e)
	}
	want := []Package{{"bash", "5.2.15-2+b7", "amd64"}, {"pinned", "2", "all"}, {"zlib1g", "1:1.2.13.dfsg-1", "amd64"}}
	if got := res.(packagesResult).Packages; !reflect.DeepEqual(got, want) {
		t.Fatalf("packages %+v", got)
	}
	rpm := &fakeRunner{answers: map[string]func() ([]byte, error){"rpm -qa": out("bash\t5.1.8-9.el9\tx86_64\n")}}
	res, e = (&Linux{Run: rpm}).Handle(context.Background(), PackagesList, nil)
	if e != nil || res.(packagesResult).Packages[0] != (Package{"bash", "5.1.8-9.el9", "x86_64"}) {
		t.Fatalf("rpm: %+v %v", res, e)
	}
	if _, e := (&Linux{Run: &fakeRunner{}}).Handle(context.Background(), PackagesList, nil); e == nil || e.Code != protocol.CodeUnsupported {
		t.Fatalf("no package manager: %v", e)
	}
}

func TestProcessKill(t *testing.T) {
	var sent []string
	l := &Linux{Self: 500, Kill: func(pid int, sig syscall.Signal) error {
		sent = append(sent, syscall.Signal(sig).String())
		if pid == 404 {
			return syscall.ESRCH
		}
		if pid == 403 {
			return syscall.EPERM
		}
		return nil
	}}
	ctx := context.Background()
	if _, e := l.Handle(ctx, ProcessKill, json.RawMessage(`{"pid":42,"signal":"KILL"}`)); e != nil {
		t.Fatal(e)
	}
	if _, e := l.Handle(ctx, ProcessKill, json.RawMessage(`{"pid":42}`)); e != nil {
		t.Fatal(e)
	}
	if _, e := l.Handle(ctx, ProcessKill, json.RawMessage(`{"pid":404}`)); e == nil || e.Code != protocol.CodeNotFound {
		t.Fatalf("ESRCH: %v", e)
	}
	if _, e := l.Handle(ctx, ProcessKill, json.RawMessage(`{"pid":403}`)); e == nil || e.Code != protocol.CodeDenied {
		t.Fatalf("EPERM: %v", e)
	}
	for _, pid := range []string{"1", "500", "-1", "0"} {
		if _, e := l.Handle(ctx, ProcessKill, json.RawMessage(`{"pid":`+pid+`}`)); e == nil {
			t.Fatalf("pid %s signalled", pid)
		}
	}
	if want := []string{"killed", "terminated", "terminated", "terminated"}; !reflect.DeepEqual(sent, want) {
		t.Fatalf("signals %v", sent)
	}
}

func TestProcessesListFromProc(t *testing.T) {
	s := &collect.ProcessSampler{Root: "../collect/testdata/guest", PageSize: 4096, ClkTck: 100, Now: time.Now}
	l := &Linux{Procs: s}
	res, e := l.Handle(context.Background(), ProcessesList, nil)
	if e != nil {
		t.Fatal(e)
	}
	ps := res.(processesResult).Processes
	if len(ps) != 3 || ps[0].PID != 321 || ps[0].User != "daemon" || ps[0].RSSBytes != 25000*4096 {
		t.Fatalf("processes %+v", ps)
	}
}

func TestUnknownCommand(t *testing.T) {
	if _, e := (&Linux{}).Handle(context.Background(), "exec", json.RawMessage(`{"cmd":"reboot"}`)); e == nil || e.Code != protocol.CodeUnsupported {
		t.Fatalf("unknown command: %v", e)
	}
}
