package commands

import (
	"encoding/json"
	"strings"
	"testing"

	"vmflow.local/guest-agent/internal/protocol"
)

func TestValidateKill(t *testing.T) {
	cases := []struct {
		args string
		pid  int
		kill bool
		code string
	}{
		{`{"pid":1234}`, 1234, false, ""},
		{`{"pid":1234,"signal":"TERM"}`, 1234, false, ""},
		{`{"pid":1234,"signal":"KILL"}`, 1234, true, ""},
		{`{"pid":1}`, 0, false, protocol.CodeDenied},
		{`{"pid":777}`, 0, false, protocol.CodeDenied}, // the agent itself
		{`{"pid":0}`, 0, false, protocol.CodeInvalid},
		{`{"pid":-1}`, 0, false, protocol.CodeInvalid}, // kill(-1) would signal every process
		{`{"pid":-42}`, 0, false, protocol.CodeInvalid},
		{`{"pid":99999999999}`, 0, false, protocol.CodeInvalid},
		{`{"pid":1.5}`, 0, false, protocol.CodeInvalid},
		{`{"pid":"12"}`, 0, false, protocol.CodeInvalid},
		{`{}`, 0, false, protocol.CodeInvalid},
		{`{"pid":12,"signal":"HUP"}`, 0, false, protocol.CodeInvalid},
		{`{"pid":12,"signal":"kill"}`, 0, false, protocol.CodeInvalid},
		{`{"pid":12,"sig":"KILL"}`, 0, false, protocol.CodeInvalid},
		{`[12]`, 0, false, protocol.CodeInvalid},
	}
	for _, c := range cases {
		pid, kill, e := ValidateKill(json.RawMessage(c.args), 777)
		code := ""
		if e != nil {
			code = e.Code
		}
		if code != c.code || pid != c.pid || kill != c.kill {
			t.Errorf("%s: got pid %d kill %v err %v; want %d %v %q", c.args, pid, kill, e, c.pid, c.kill, c.code)
		}
	}
}

func TestValidateUnitName(t *testing.T) {
	good := map[string]string{
		"ssh.service":        "ssh.service",
		"ssh":                "ssh.service",
		"getty@tty1.service": "getty@tty1.service",
		"getty@tty1":         "getty@tty1.service",
		`systemd-fsck@dev-disk-by\x2duuid-1.service`: `systemd-fsck@dev-disk-by\x2duuid-1.service`,
		"cloud-init-local.service":                   "cloud-init-local.service",
	}
	for in, want := range good {
		args, _ := json.Marshal(ServiceArgs{Name: in})
		got, e := ValidateUnitName(args)
		if e != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, e, want)
		}
	}
	bad := []string{"", "-ssh.service", "--now", "ssh.socket", "ssh service", "ssh;reboot", "$(reboot)",
		"../../etc/passwd", "getty@.service", ".service", "ssh.service\n", strings.Repeat("a", 250) + ".service",
		"tëst.service", "a/b.service"}
	for _, in := range bad {
		args, _ := json.Marshal(ServiceArgs{Name: in})
		if got, e := ValidateUnitName(args); e == nil || e.Code != protocol.CodeInvalid {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
	if _, e := ValidateUnitName(json.RawMessage(`{"name":"ssh","now":true}`)); e == nil {
		t.Error("unknown argument accepted")
	}
}

func TestValidateWindowsServiceName(t *testing.T) {
	for _, in := range []string{"wuauserv", "vmflow-agent", "MSSQL$SQLEXPRESS", "Spooler"} {
		args, _ := json.Marshal(ServiceArgs{Name: in})
		if _, e := ValidateWindowsServiceName(args); e != nil {
			t.Errorf("%q refused: %v", in, e)
		}
	}
	for _, in := range []string{"", "-x", `a\b`, "a/b", " lead", "trail ", "a\"b", "a&b"} {
		args, _ := json.Marshal(ServiceArgs{Name: in})
		if _, e := ValidateWindowsServiceName(args); e == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestValidateEmpty(t *testing.T) {
	for _, ok := range []string{``, `null`, `{}`, ` { } `} {
		if e := ValidateEmpty(json.RawMessage(ok)); e != nil {
			t.Errorf("%q refused: %v", ok, e)
		}
	}
	for _, bad := range []string{`{"all":true}`, `[]`, `"x"`} {
		if e := ValidateEmpty(json.RawMessage(bad)); e == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFitCutsToTheLineCap(t *testing.T) {
	items := make([]string, 5000)
	for i := range items {
		items[i] = strings.Repeat("x", 40)
	}
	type res struct {
		Items     []string `json:"items"`
		Truncated bool     `json:"truncated,omitempty"`
	}
	out := fit(items, func(s []string, cut bool) any { return res{s, cut} }).(res)
	if !out.Truncated || len(out.Items) == 0 || len(out.Items) == len(items) {
		t.Fatalf("kept %d of %d, truncated %v", len(out.Items), len(items), out.Truncated)
	}
	line, err := protocol.Marshal(protocol.OKResponse(strings.Repeat("i", 64), out))
	if err != nil {
		t.Fatalf("fitted result does not fit a line: %v", err)
	}
	// The cut is as late as possible: one more item would not fit the budget.
	more, _ := json.Marshal(res{items[:len(out.Items)+1], true})
	if len(more) <= budget || len(line) > protocol.MaxLine {
		t.Fatalf("cut too early: %d items, one more is %d bytes", len(out.Items), len(more))
	}
	small := fit(items[:3], func(s []string, cut bool) any { return res{s, cut} }).(res)
	if small.Truncated || len(small.Items) != 3 {
		t.Fatalf("small list changed: %+v", small)
	}
}
