//go:build !linux

package collect

import "errors"

func defaultStatfs(string) (uint64, uint64, error) { return 0, 0, errors.New("statfs: linux only") }
