//go:build !linux

package sftp

import (
	"os"

	"github.com/pkg/sftp"
)

// statVFS is only implemented on Linux; elsewhere statvfs@openssh.com answers
// OP_UNSUPPORTED.
func statVFS(file *os.File) (*sftp.StatVFS, error) { return nil, sftp.ErrSSHFxOpUnsupported }
