//go:build !unix

package fs

import (
	"fmt"
	"os"
)

// lockFile opens path; without flock the store relies on one process per folder.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fs: open store: %w", err)
	}
	return f, nil
}
