// Package collect gathers what the agent reports: the identity in a hello and the metrics sample.
// The Linux collector reads /proc, /sys, /etc and utmp under a root directory, so tests point it at
// fixture trees (testdata/).
package collect

import "vmflow.local/guest-agent/internal/protocol"

// Identity is what a hello says about the guest.
type Identity struct {
	MachineID string
	OS        protocol.OS
	Hostname  string
}

// Collector is one platform's source of identity and metrics. Metrics fills everything but the
// envelope (v, type, seq); rates (CPU) are over the time since the previous call.
type Collector interface {
	Identity() Identity
	Metrics() (*protocol.Metrics, error)
}

// List bounds from the protocol.
const (
	MaxFilesystems = 64
	MaxNICs        = 64
	MaxDisks       = 64
	MaxUsers       = 64
	MaxTop         = 5
)
