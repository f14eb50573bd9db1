// Package agent is the agent's main loop: open the port, say hello, answer sync and requests, send
// metrics every interval, and start again whenever the host side goes away.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"vmflow.local/guest-agent/internal/collect"
	"vmflow.local/guest-agent/internal/commands"
	"vmflow.local/guest-agent/internal/port"
	"vmflow.local/guest-agent/internal/protocol"
)

// Version is the agent's version in its hello.
const Version = "1.0.0"

// Config is what an Agent needs.
type Config struct {
	Open      port.Opener
	Collector collect.Collector
	Handler   commands.Handler
	// Interval between metrics messages (1 s..300 s).
	Interval time.Duration
	// MaxConcurrent requests run at once; more are answered "busy". Default 4.
	MaxConcurrent int
	// Backoff between reopenings: from MinBackoff, doubling, up to MaxBackoff (defaults 250 ms, 5 s).
	MinBackoff, MaxBackoff time.Duration
	// AbsentRetry is the wait after a session the host side ended at once without a word: Linux's
	// virtio_console answers reads with end-of-file while no host client is connected, so the agent
	// opens the port again at this pace (default 1 s) and says hello soon after a host connects.
	AbsentRetry time.Duration
	Log         *log.Logger
}

// Agent runs the protocol over the port. Create with New, then Run.
type Agent struct {
	cfg Config
	seq atomic.Uint64
	// lastErr keeps repeated identical errors (the port missing while the host is away) out of the log.
	lastErr string
}

// New fills in defaults.
func New(cfg Config) *Agent {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 4
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.AbsentRetry <= 0 {
		cfg.AbsentRetry = time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	if cfg.Handler == nil {
		cfg.Handler = commands.Unsupported{}
	}
	return &Agent{cfg: cfg}
}

// Run opens the port and serves it until ctx ends. It never gives up on the port: an open that
// fails, a read that ends or a write that fails closes the port, waits (backoff up to MaxBackoff;
// AbsentRetry when the host side simply is not there) and opens it again.
func (a *Agent) Run(ctx context.Context) error {
	backoff := a.cfg.MinBackoff
	for ctx.Err() == nil {
		wait := backoff
		conn, err := a.cfg.Open()
		if err != nil {
			a.logOnce("opening the port: %v", err)
			backoff = min(backoff*2, a.cfg.MaxBackoff)
		} else {
			started := time.Now()
			heard, reason := a.session(ctx, conn)
			switch {
			case heard || time.Since(started) > 10*time.Second:
				backoff, wait = a.cfg.MinBackoff, a.cfg.MinBackoff
				a.lastErr = ""
			case errors.Is(reason, io.EOF):
				wait = min(a.cfg.AbsentRetry, a.cfg.MaxBackoff) // nobody on the host side yet
			default:
				backoff = min(backoff*2, a.cfg.MaxBackoff)
			}
			if ctx.Err() == nil {
				a.logOnce("port closed: %v", reason)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return ctx.Err()
}

func (a *Agent) logOnce(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if msg == a.lastErr {
		return
	}
	a.lastErr = msg
	a.cfg.Log.Print(msg)
}

func (a *Agent) hello(syncID string) *protocol.Hello {
	id := a.cfg.Collector.Identity()
	caps := append([]string{"metrics"}, a.cfg.Handler.Capabilities()...)
	return &protocol.Hello{
		V: protocol.Version, Type: protocol.TypeHello, Sync: syncID, MachineID: id.MachineID,
		AgentVersion: Version, OS: id.OS, Hostname: id.Hostname, Capabilities: caps,
		IntervalS: int(a.cfg.Interval / time.Second),
	}
}

// session serves one opening of the port until it fails or ctx ends, then closes it and waits for
// every goroutine it started. heard says whether the host sent anything.
func (a *Agent) session(ctx context.Context, conn io.ReadWriteCloser) (heard bool, reason error) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var heardFlag atomic.Bool
	done := make(chan error, 2)
	fail := func(err error) {
		select {
		case done <- err:
		default:
		}
	}
	defer func() {
		cancel()
		_ = conn.Close() // unblocks the reader and a writer blocked on an absent host
		wg.Wait()
		heard = heardFlag.Load()
	}()

	// One writer: a line is written whole, and a write blocked while the host is away holds up
	// nobody but the queue.
	out := make(chan []byte, 32)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-sctx.Done():
				return
			case line := <-out:
				if _, err := conn.Write(line); err != nil {
					fail(err)
					return
				}
			}
		}
	}()
	// send queues a message, waiting for room; drop (metrics) gives up at once when the queue is full.
	send := func(msg any, drop bool) {
		line, err := protocol.Marshal(msg)
		if err != nil {
			a.cfg.Log.Printf("not sending a %T: %v", msg, err)
			return
		}
		if drop {
			select {
			case out <- line:
			default:
			}
			return
		}
		select {
		case out <- line:
		case <-sctx.Done():
		}
	}

	send(a.hello(""), false)

	sem := make(chan struct{}, a.cfg.MaxConcurrent)
	wg.Add(1)
	go func() {
		defer wg.Done()
		dec := protocol.NewDecoder(conn)
		for {
			msg, err := dec.Decode()
			var malformed *protocol.MalformedError
			switch {
			case errors.Is(err, protocol.ErrLineTooLong) || errors.As(err, &malformed):
				a.cfg.Log.Printf("skipping a line from the host: %v", err)
				continue
			case err != nil:
				fail(err)
				return
			}
			heardFlag.Store(true)
			if msg.V != protocol.Version {
				continue // a later protocol version: may mean something else
			}
			switch msg.Type {
			case protocol.TypeSync:
				if len(msg.ID) <= protocol.MaxRequestID {
					send(a.hello(msg.ID), false)
				}
			case protocol.TypeRequest:
				if msg.ID == "" || len(msg.ID) > protocol.MaxRequestID {
					a.cfg.Log.Printf("ignoring a request without a valid id (%d chars)", len(msg.ID))
					continue
				}
				select {
				case sem <- struct{}{}:
				default:
					send(protocol.ErrResponse(msg.ID, protocol.CodeFailed, "busy"), false)
					continue
				}
				wg.Add(1)
				go func(m *protocol.Incoming) {
					defer wg.Done()
					defer func() { <-sem }()
					send(a.handle(sctx, m), false)
				}(msg)
			default:
				// Unknown types are ignored (forward compatibility).
			}
		}
	}()

	ticker := time.NewTicker(a.cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-done:
			return false, err
		case <-ticker.C:
			m, err := a.cfg.Collector.Metrics()
			if err != nil {
				a.cfg.Log.Printf("collecting metrics: %v", err)
				continue
			}
			m.V, m.Type, m.Seq = protocol.Version, protocol.TypeMetrics, a.seq.Add(1)
			send(m, true)
		}
	}
}

// handle runs one request; a panic in a command becomes a "failed" response, not a dead agent.
func (a *Agent) handle(ctx context.Context, m *protocol.Incoming) (resp *protocol.Response) {
	defer func() {
		if r := recover(); r != nil {
			a.cfg.Log.Printf("command %q panicked: %v", m.Command, r)
			resp = protocol.ErrResponse(m.ID, protocol.CodeFailed, "internal error")
		}
	}()
	result, e := a.cfg.Handler.Handle(ctx, m.Command, m.Args)
	if e != nil {
		return protocol.ErrResponse(m.ID, e.Code, e.Message)
	}
	resp = protocol.OKResponse(m.ID, result)
	if _, err := protocol.Marshal(resp); err != nil {
		return protocol.ErrResponse(m.ID, protocol.CodeFailed, "result too large for one line")
	}
	return resp
}
