package main

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"vmflow.local/guest-agent/internal/collect"
	"vmflow.local/guest-agent/internal/commands"
)

func platform() (collect.Collector, commands.Handler) {
	c := collect.NewLinux("/")
	return c, &commands.Linux{
		Procs: c.Processes(), Run: commands.ExecRunner{}, Kill: syscall.Kill, Self: os.Getpid(),
		Timeout: 90 * time.Second,
	}
}

// serve runs until SIGTERM or SIGINT (systemd stops the unit with SIGTERM).
func serve(run func(context.Context) error, _ *log.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
