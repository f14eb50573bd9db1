package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestMarshalOneLine(t *testing.T) {
	line, err := Marshal(ErrResponse("r1", CodeDenied, "no <way> & \"never\"\nagain"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	want := `{"v":1,"type":"response","id":"r1","ok":false,"error":{"code":"denied","message":"no <way> & \"never\"\nagain"}}` + "\n"
	if string(line) != want {
		t.Fatalf("got  %s\nwant %s", line, want)
	}
	ok, _ := Marshal(OKResponse("r2", nil))
	if string(ok) != `{"v":1,"type":"response","id":"r2","ok":true,"result":{}}`+"\n" {
		t.Fatalf("ok response %s", ok)
	}
}

func TestMarshalLineCap(t *testing.T) {
	overhead := len(`{"v":1,"type":"response","id":"x","ok":true,"result":""}` + "\n")
	fits := OKResponse("x", strings.Repeat("a", MaxLine-overhead))
	line, err := Marshal(fits)
	if err != nil || len(line) != MaxLine {
		t.Fatalf("a line of exactly %d bytes: len %d, %v", MaxLine, len(line), err)
	}
	if _, err := Marshal(OKResponse("x", strings.Repeat("a", MaxLine-overhead+1))); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("one byte more: %v", err)
	}
}

func TestDecoder(t *testing.T) {
	long := `{"v":1,"type":"sync","id":"` + strings.Repeat("z", MaxLine) + `"}`
	exact := `{"v":1,"type":"sync","id":"` + strings.Repeat("e", MaxLine-len(`{"v":1,"type":"sync","id":""}`)-1) + `"}`
	in := strings.Join([]string{
		`{"v":1,"type":"sync","id":"a"}`,
		long,
		`not json`,
		`{"v":1}`,
		`{"type":"sync"}`,
		exact,
		`{"v":1,"type":"request","id":"r","command":"processes.list","args":{"x":[1,2]},"future":"field"}` + "\r",
		`{"v":3,"type":"whatever"}`,
		`{"v":1,"type":"sync","id":"partial"`, // no newline before EOF: dropped
	}, "\n")
	d := NewDecoder(strings.NewReader(in))
	m, err := d.Decode()
	if err != nil || m.Type != TypeSync || m.ID != "a" {
		t.Fatalf("first: %+v %v", m, err)
	}
	if _, err := d.Decode(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	var mal *MalformedError
	for i := 0; i < 3; i++ {
		if _, err := d.Decode(); !errors.As(err, &mal) {
			t.Fatalf("malformed %d: %v", i, err)
		}
	}
	if m, err := d.Decode(); err != nil || len(m.ID) != MaxLine-len(`{"v":1,"type":"sync","id":""}`)-1 {
		t.Fatalf("a line of exactly MaxLine bytes must pass: %v", err)
	}
	m, err = d.Decode()
	if err != nil || m.Command != "processes.list" || string(m.Args) != `{"x":[1,2]}` {
		t.Fatalf("request: %+v %v", m, err)
	}
	if m, err = d.Decode(); err != nil || m.V != 3 {
		t.Fatalf("later version is decoded (the agent decides): %+v %v", m, err)
	}
	if _, err := d.Decode(); !errors.Is(err, io.EOF) {
		t.Fatalf("partial last line: %v", err)
	}
}

func TestHelloShape(t *testing.T) {
	h := Hello{V: 1, Type: TypeHello, MachineID: "m", AgentVersion: "1.0.0", OS: OS{Family: "linux"}, Capabilities: []string{"metrics"}, IntervalS: 10}
	line, _ := Marshal(h)
	var back map[string]any
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatal(err)
	}
	if _, has := back["sync"]; has {
		t.Fatal("an unsolicited hello must not carry sync")
	}
	for _, k := range []string{"v", "type", "machineId", "agentVersion", "os", "hostname", "capabilities", "intervalS"} {
		if _, has := back[k]; !has {
			t.Errorf("hello lacks %s", k)
		}
	}
}
