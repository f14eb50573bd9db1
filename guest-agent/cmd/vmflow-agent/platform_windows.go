package main

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"

	"golang.org/x/sys/windows/svc"

	"vmflow.local/guest-agent/internal/collect"
	"vmflow.local/guest-agent/internal/commands"
)

func platform() (collect.Collector, commands.Handler) {
	return collect.NewWindows(), commands.Windows{}
}

// serve runs as a Windows service when the service manager started the process (sc.exe create …),
// else as a console program until Ctrl+C.
func serve(run func(context.Context) error, logger *log.Logger) error {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return err
	}
	if isService {
		return svc.Run("vmflow-agent", &service{run: run, log: logger})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

type service struct {
	run func(context.Context) error
	log *log.Logger
}

// Execute is the service's control loop: running until the manager asks it to stop.
func (s *service) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
				<-done
				return false, 0
			}
		case err := <-done:
			cancel()
			s.log.Printf("agent stopped: %v", err)
			return false, 1
		}
	}
}
