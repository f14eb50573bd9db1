// Package port opens the agent's virtio-serial port (org.vmflow.agent.0).
package port

import "io"

// Name is the virtio-serial port name shared with the host.
const Name = "org.vmflow.agent.0"

// Opener opens the port; the agent calls it again after every disconnect.
type Opener func() (io.ReadWriteCloser, error)
