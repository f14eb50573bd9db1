package main

import (
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"-port", "/tmp/p", "-interval", "300", "-log"})
	if err != nil || o.port != "/tmp/p" || o.interval != 300 || !o.log {
		t.Fatalf("%+v %v", o, err)
	}
	o, err = parseFlags(nil)
	if err != nil || o.interval != 10 || !strings.HasSuffix(o.port, "org.vmflow.agent.0") {
		t.Fatalf("defaults %+v %v", o, err)
	}
	for _, bad := range [][]string{{"-interval", "0"}, {"-interval", "301"}, {"-interval", "x"}, {"stray"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	t.Setenv("VMFLOW_AGENT_INTERVAL", "nonsense")
	if _, err := parseFlags(nil); err == nil {
		t.Error("a bad VMFLOW_AGENT_INTERVAL was accepted")
	}
}
