// Command vmflow-agent is vmflow's in-guest agent: it reports the guest's identity and metrics and
// answers the host's requests over the virtio-serial port org.vmflow.agent.0 (docs/guest-agent.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"vmflow.local/guest-agent/internal/agent"
	"vmflow.local/guest-agent/internal/port"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vmflow-agent:", err)
		os.Exit(2)
	}
}

// options are the command line.
type options struct {
	port     string
	interval int
	log      bool
	version  bool
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("vmflow-agent", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.port, "port", envOr("VMFLOW_AGENT_PORT", port.DefaultPath), "the virtio-serial port's device path (env VMFLOW_AGENT_PORT)")
	fs.IntVar(&o.interval, "interval", envInt("VMFLOW_AGENT_INTERVAL", 10), "seconds between metrics messages, 1..300 (env VMFLOW_AGENT_INTERVAL)")
	fs.BoolVar(&o.log, "log", envOr("VMFLOW_AGENT_LOG", "") != "", "log to stderr (env VMFLOW_AGENT_LOG=1)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.interval < 1 || o.interval > 300 {
		return nil, fmt.Errorf("-interval must be 1..300 seconds, not %d", o.interval)
	}
	return o, nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	var n int
	if v, ok := os.LookupEnv(key); ok {
		if _, err := fmt.Sscan(v, &n); err == nil {
			return n
		}
		return -1 // reported as out of range
	}
	return def
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Println(agent.Version)
		return nil
	}
	logger := log.New(io.Discard, "", 0)
	if o.log {
		logger = log.New(os.Stderr, "", 0) // journald adds the time
	}
	coll, handler := platform()
	a := agent.New(agent.Config{
		Open:      port.Device(o.port),
		Collector: coll,
		Handler:   handler,
		Interval:  time.Duration(o.interval) * time.Second,
		Log:       logger,
	})
	logger.Printf("vmflow-agent %s on %s, metrics every %d s", agent.Version, o.port, o.interval)
	return serve(func(ctx context.Context) error { return a.Run(ctx) }, logger)
}
