package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vmflow.local/guest-agent/internal/collect"
	"vmflow.local/guest-agent/internal/commands"
	"vmflow.local/guest-agent/internal/protocol"
)

type fakeCollector struct{ calls atomic.Int64 }

func (f *fakeCollector) Identity() collect.Identity {
	return collect.Identity{MachineID: "m-123", Hostname: "web-1", OS: protocol.OS{Family: "linux", Name: "Test", Version: "1", Kernel: "6.1", Arch: "amd64"}}
}

func (f *fakeCollector) Metrics() (*protocol.Metrics, error) {
	f.calls.Add(1)
	return &protocol.Metrics{UptimeS: 42, Load: []float64{0.1, 0.2, 0.3}}, nil
}

// fakeHandler: "echo" answers its args; "block" waits until released; others unsupported.
type fakeHandler struct {
	release chan struct{}
	started chan struct{}
}

func (h *fakeHandler) Capabilities() []string { return []string{"echo"} }

func (h *fakeHandler) Handle(ctx context.Context, command string, args json.RawMessage) (any, *commands.Error) {
	switch command {
	case "echo":
		return map[string]json.RawMessage{"args": args}, nil
	case "block":
		h.started <- struct{}{}
		select {
		case <-h.release:
		case <-ctx.Done():
		}
		return map[string]string{"done": "yes"}, nil
	case "panic":
		panic("boom")
	}
	return commands.Unsupported{}.Handle(ctx, command, args)
}

// host is the test's side of one opening of the port.
type host struct {
	t    *testing.T
	conn net.Conn
	rd   *bufio.Reader
}

func (h *host) send(line string) {
	h.t.Helper()
	if _, err := h.conn.Write([]byte(line + "\n")); err != nil {
		h.t.Fatalf("host write: %v", err)
	}
}

// next returns the next message from the agent, failing after a deadline.
func (h *host) next() map[string]any {
	h.t.Helper()
	_ = h.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := h.rd.ReadBytes('\n')
	if err != nil {
		h.t.Fatalf("host read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		h.t.Fatalf("agent sent invalid JSON %q: %v", line, err)
	}
	if m["v"] != float64(1) {
		h.t.Fatalf("message without v=1: %s", line)
	}
	return m
}

// nextOf skips messages of other types (metrics arrive at any time).
func (h *host) nextOf(typ string) map[string]any {
	h.t.Helper()
	for {
		m := h.next()
		if m["type"] == typ {
			return m
		}
	}
}

// harness runs an agent whose opener hands out net.Pipe ends; the test gets the host ends.
func harness(t *testing.T, interval time.Duration, h commands.Handler) (*fakeCollector, chan *host, *atomic.Int64) {
	t.Helper()
	hosts := make(chan *host, 4)
	var opens atomic.Int64
	coll := &fakeCollector{}
	a := New(Config{
		Open: func() (io.ReadWriteCloser, error) {
			opens.Add(1)
			agentEnd, hostEnd := net.Pipe()
			hosts <- &host{t: t, conn: hostEnd, rd: bufio.NewReader(hostEnd)}
			return agentEnd, nil
		},
		Collector: coll, Handler: h, Interval: interval,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return coll, hosts, &opens
}

func nextHost(t *testing.T, hosts chan *host) *host {
	t.Helper()
	select {
	case h := <-hosts:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("the agent did not open the port")
		return nil
	}
}

func TestHelloSyncAndMetrics(t *testing.T) {
	_, hosts, _ := harness(t, 100*time.Millisecond, &fakeHandler{})
	h := nextHost(t, hosts)
	hello := h.next()
	if hello["type"] != "hello" || hello["machineId"] != "m-123" || hello["hostname"] != "web-1" || hello["agentVersion"] != Version {
		t.Fatalf("first message is not the hello: %v", hello)
	}
	if _, has := hello["sync"]; has {
		t.Fatalf("unsolicited hello carries a sync id: %v", hello)
	}
	if caps := fmt.Sprint(hello["capabilities"]); caps != "[metrics echo]" {
		t.Fatalf("capabilities %s", caps)
	}
	if hello["intervalS"] != float64(0) { // 100 ms rounds down to 0 whole seconds
		t.Fatalf("intervalS %v", hello["intervalS"])
	}
	h.send(`{"v":1,"type":"sync","id":"s-1"}`)
	if m := h.nextOf("hello"); m["sync"] != "s-1" {
		t.Fatalf("sync answered with %v", m)
	}
	m1 := h.nextOf("metrics")
	m2 := h.nextOf("metrics")
	if m2["seq"].(float64) != m1["seq"].(float64)+1 || m1["uptimeS"] != float64(42) {
		t.Fatalf("metrics %v then %v", m1, m2)
	}
}

func TestRequestsUnknownAndGarbage(t *testing.T) {
	_, hosts, _ := harness(t, time.Hour, &fakeHandler{})
	h := nextHost(t, hosts)
	h.nextOf("hello")
	// Garbage, an over-long line, an unknown type and a later version are all skipped.
	h.send(`this is not json`)
	h.send(`{"v":1,"type":"request","id":"big","command":"echo","args":{"x":"` + strings.Repeat("a", protocol.MaxLine) + `"}}`)
	h.send(`{"v":1,"type":"reboot-now","id":"x"}`)
	h.send(`{"v":2,"type":"request","id":"v2","command":"echo"}`)
	h.send(`{"v":1,"type":"request","id":"r1","command":"echo","args":{"a":1},"extra":true}`)
	r := h.nextOf("response")
	if r["id"] != "r1" || r["ok"] != true || fmt.Sprint(r["result"]) != "map[args:map[a:1]]" {
		t.Fatalf("response %v", r)
	}
	h.send(`{"v":1,"type":"request","id":"r2","command":"format.disk"}`)
	r = h.nextOf("response")
	if r["id"] != "r2" || r["ok"] != false || r["error"].(map[string]any)["code"] != "unsupported" {
		t.Fatalf("unknown command answered %v", r)
	}
	h.send(`{"v":1,"type":"request","id":"r3","command":"panic"}`)
	r = h.nextOf("response")
	if r["id"] != "r3" || r["error"].(map[string]any)["code"] != "failed" {
		t.Fatalf("panicking command answered %v", r)
	}
	// A request id over 64 characters gets no answer; the next request still does.
	h.send(`{"v":1,"type":"request","id":"` + strings.Repeat("i", 65) + `","command":"echo"}`)
	h.send(`{"v":1,"type":"request","id":"r4","command":"echo"}`)
	if r = h.nextOf("response"); r["id"] != "r4" {
		t.Fatalf("expected r4, got %v", r)
	}
}

func TestAtMostFourRequestsAtOnce(t *testing.T) {
	fh := &fakeHandler{release: make(chan struct{}), started: make(chan struct{}, 8)}
	_, hosts, _ := harness(t, time.Hour, fh)
	h := nextHost(t, hosts)
	h.nextOf("hello")
	for i := 0; i < 4; i++ {
		h.send(fmt.Sprintf(`{"v":1,"type":"request","id":"b%d","command":"block"}`, i))
	}
	for i := 0; i < 4; i++ {
		select {
		case <-fh.started:
		case <-time.After(5 * time.Second):
			t.Fatal("blocking requests did not start")
		}
	}
	h.send(`{"v":1,"type":"request","id":"b5","command":"block"}`)
	r := h.nextOf("response")
	if r["id"] != "b5" || r["ok"] != false || r["error"].(map[string]any)["message"] != "busy" {
		t.Fatalf("fifth request answered %v", r)
	}
	close(fh.release)
	seen := map[any]bool{}
	for i := 0; i < 4; i++ {
		r := h.nextOf("response")
		if r["ok"] != true {
			t.Fatalf("blocked request answered %v", r)
		}
		seen[r["id"]] = true
	}
	if len(seen) != 4 {
		t.Fatalf("responses %v", seen)
	}
}

func TestReopensAfterHostDisconnects(t *testing.T) {
	_, hosts, opens := harness(t, time.Hour, &fakeHandler{})
	h := nextHost(t, hosts)
	h.nextOf("hello")
	_ = h.conn.Close() // the host goes away: the agent's read ends
	h2 := nextHost(t, hosts)
	if m := h2.next(); m["type"] != "hello" {
		t.Fatalf("after reopening: %v", m)
	}
	h2.send(`{"v":1,"type":"sync","id":"again"}`)
	if m := h2.nextOf("hello"); m["sync"] != "again" {
		t.Fatalf("sync after reopen: %v", m)
	}
	if opens.Load() != 2 {
		t.Fatalf("opened %d times", opens.Load())
	}
}

// A host that connects but never reads: the agent's writes block; when the host goes away the
// agent must come back (not hang in a write).
func TestWriteBlockedThenHostGone(t *testing.T) {
	_, hosts, _ := harness(t, 10*time.Millisecond, &fakeHandler{})
	h := nextHost(t, hosts)
	time.Sleep(50 * time.Millisecond) // metrics pile up behind the unread hello
	_ = h.conn.Close()
	h2 := nextHost(t, hosts)
	if m := h2.next(); m["type"] != "hello" {
		t.Fatalf("after reopening: %v", m)
	}
}

type flakyOpener struct {
	mu    sync.Mutex
	fails int
}

func TestOpenFailuresBackOff(t *testing.T) {
	hosts := make(chan *host, 1)
	fo := &flakyOpener{}
	var attempts []time.Time
	a := New(Config{
		Open: func() (io.ReadWriteCloser, error) {
			fo.mu.Lock()
			defer fo.mu.Unlock()
			attempts = append(attempts, time.Now())
			if fo.fails < 4 {
				fo.fails++
				return nil, errors.New("no such device")
			}
			agentEnd, hostEnd := net.Pipe()
			hosts <- &host{t: t, conn: hostEnd, rd: bufio.NewReader(hostEnd)}
			return agentEnd, nil
		},
		Collector: &fakeCollector{}, Interval: time.Hour,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Run(ctx) }()
	h := nextHost(t, hosts)
	if m := h.next(); m["type"] != "hello" {
		t.Fatalf("got %v", m)
	}
	fo.mu.Lock()
	defer fo.mu.Unlock()
	// Waits of 10, 20, 40, 40 ms (the cap) between the five attempts.
	want := []time.Duration{10, 20, 40, 40}
	for i, w := range want {
		gap := attempts[i+1].Sub(attempts[i])
		if gap < w*time.Millisecond || gap > w*time.Millisecond+500*time.Millisecond {
			t.Fatalf("wait %d was %v, want about %v ms", i, gap, w)
		}
	}
}

// absentHost behaves like Linux's virtio_console while no host client is connected: reads end at
// once, writes block until the file is closed.
type absentHost struct{ closed chan struct{} }

func (p *absentHost) Read([]byte) (int, error) { return 0, io.EOF }

func (p *absentHost) Write([]byte) (int, error) {
	<-p.closed
	return 0, errors.New("file already closed")
}

func (p *absentHost) Close() error {
	close(p.closed)
	return nil
}

// While nobody is connected the agent reopens at AbsentRetry's pace (not the growing backoff), so a
// host that connects gets a hello soon; and it never hangs in the blocked write.
func TestHostAbsentRetriesAtAFixedPace(t *testing.T) {
	hosts := make(chan *host, 1)
	var mu sync.Mutex
	var attempts []time.Time
	a := New(Config{
		Open: func() (io.ReadWriteCloser, error) {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, time.Now())
			if len(attempts) <= 6 {
				return &absentHost{closed: make(chan struct{})}, nil
			}
			agentEnd, hostEnd := net.Pipe()
			hosts <- &host{t: t, conn: hostEnd, rd: bufio.NewReader(hostEnd)}
			return agentEnd, nil
		},
		Collector: &fakeCollector{}, Interval: time.Hour,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 5 * time.Second, AbsentRetry: 30 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Run(ctx) }()
	h := nextHost(t, hosts)
	if m := h.next(); m["type"] != "hello" {
		t.Fatalf("got %v", m)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < 30*time.Millisecond || gap > 1*time.Second {
			t.Fatalf("reopen %d after %v, want about 30 ms", i, gap)
		}
	}
}
