package sftp

import (
	"os"
	"syscall"

	"github.com/pkg/sftp"
)

// statVFS describes the file system holding file, in statvfs@openssh.com's terms.
func statVFS(file *os.File) (*sftp.StatVFS, error) {
	var st syscall.Statfs_t
	rc, err := file.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstatfs(int(fd), &st) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, &os.PathError{Op: "statvfs", Path: file.Name(), Err: serr}
	}
	return &sftp.StatVFS{
		Bsize:   uint64(st.Bsize),
		Frsize:  uint64(st.Frsize),
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		Favail:  st.Ffree,
		Fsid:    uint64(uint32(st.Fsid.X__val[0]))<<32 | uint64(uint32(st.Fsid.X__val[1])),
		Flag:    uint64(st.Flags),
		Namemax: uint64(st.Namelen),
	}, nil
}
