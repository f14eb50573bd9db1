package port

import (
	"io"
	"os"
)

// DefaultPath is where udev links the port on Linux.
const DefaultPath = "/dev/virtio-ports/" + Name

// Device opens the character device at path read-write. Go registers it with the runtime poller
// (virtio_console supports poll), so a write blocked while the host side is closed returns as soon
// as the file is closed.
func Device(path string) Opener {
	return func() (io.ReadWriteCloser, error) {
		return os.OpenFile(path, os.O_RDWR, 0)
	}
}
