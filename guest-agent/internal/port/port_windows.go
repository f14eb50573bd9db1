package port

import (
	"io"
	"os"
)

// DefaultPath is the virtio-serial driver's device for the port on Windows (virtio-win's vioser).
const DefaultPath = `\\.\Global\` + Name

// Device opens the port's device path read-write.
func Device(path string) Opener {
	return func() (io.ReadWriteCloser, error) {
		return os.OpenFile(path, os.O_RDWR, 0)
	}
}
