package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	alksftp "github.com/alkdev/alknet/sftp"
	"github.com/pkg/sftp"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// The "alknet sftp" commands speak SFTP on the alknet/sftp ALPN, authenticated by the
// client key in TLS: no SSH layer in between.

// sftpPartSuffix ends the name of a download in progress; an interrupted get resumes
// from it.
const sftpPartSuffix = ".alknet-part"

// sftpMaxData is the read and write size the client asks for: what the alknet server
// (and OpenSSH's sftp-server) accepts.
const sftpMaxData = 255 << 10

type sftpFlags struct {
	clientFlags
	requests int
	progress string
}

func (f *sftpFlags) register(cmd *cobra.Command) {
	f.clientFlags.register(cmd.Flags())
	cmd.Flags().IntVar(&f.requests, "requests", 64, "SFTP requests in flight at once per file")
	cmd.Flags().StringVar(&f.progress, "progress", "auto", `progress bar on stderr: "auto" (only on a terminal), "always" or "never"`)
}

func newSFTPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sftp",
		Short: "Copy files to and from a node over SFTP (ALPN alknet/sftp)",
		Long: `Copy files to and from a node's SFTP folder over the alknet/sftp ALPN. The client
key (--identity) must hold sftp:read to read and sftp:write to write.

  alknet sftp ls  <node-id>@host:4433 /
  alknet sftp get <node-id>@host:4433 /remote/file local-file
  alknet sftp put <node-id>@host:4433 local-file /remote/file

A get writes to LOCAL.alknet-part and renames it when complete; run the same get
again after an interruption and it resumes where it stopped. A put replaces the
remote file only once it is complete.

Stock OpenSSH clients reach the same folder through SSH (scope ssh:sftp):
  sftp -o ProxyCommand='alknet connect ADDR --alpn alknet/ssh' alknet`,
	}
	cmd.AddCommand(newSFTPGetCmd(), newSFTPPutCmd(), newSFTPLsCmd())
	return cmd
}

func newSFTPGetCmd() *cobra.Command {
	var f sftpFlags
	var noResume bool
	cmd := &cobra.Command{
		Use:   "get ADDR REMOTE LOCAL",
		Short: "Download REMOTE to LOCAL (resuming an interrupted download)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := f.connect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			return sftpGet(c, args[1], args[2], !noResume, f.bar(cmd))
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&noResume, "no-resume", false, "start over instead of resuming from LOCAL"+sftpPartSuffix)
	return cmd
}

func newSFTPPutCmd() *cobra.Command {
	var f sftpFlags
	cmd := &cobra.Command{
		Use:   "put ADDR LOCAL REMOTE",
		Short: "Upload LOCAL to REMOTE",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := f.connect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			return sftpPut(c, args[1], args[2], f.bar(cmd))
		},
	}
	f.register(cmd)
	return cmd
}

func newSFTPLsCmd() *cobra.Command {
	var f sftpFlags
	cmd := &cobra.Command{
		Use:   "ls ADDR [PATH]",
		Short: "List a remote folder (or describe a file)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			c, done, err := f.connect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			return sftpLs(c, p, cmd.OutOrStdout())
		},
	}
	f.register(cmd)
	return cmd
}

// connect opens an SFTP session on the alknet/sftp ALPN.
func (f *sftpFlags) connect(ctx context.Context, addr string) (*sftp.Client, func(), error) {
	if f.requests < 1 {
		return nil, nil, fmt.Errorf("--requests %d: want at least 1", f.requests)
	}
	switch f.progress {
	case "auto", "always", "never":
	default:
		return nil, nil, fmt.Errorf("--progress %q: want auto, always or never", f.progress)
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := f.dial(dctx, addr, alksftp.ALPN)
	if err != nil {
		return nil, nil, err
	}
	st, err := conn.OpenStream(dctx)
	if err != nil {
		conn.Close(0, "")
		return nil, nil, err
	}
	c, err := sftp.NewClientPipe(st, st,
		sftp.UseConcurrentReads(true),
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(f.requests),
		sftp.MaxPacketUnchecked(sftpMaxData),
	)
	if err != nil {
		st.Close()
		conn.Close(0, "")
		return nil, nil, fmt.Errorf("sftp session refused (the key needs the scope sftp:read or sftp:write): %w", err)
	}
	return c, func() {
		c.Close()
		st.Close()
		conn.Close(0, "")
	}, nil
}

// bar returns a function making a progress bar, or nil when none is wanted: by
// default only when stderr is a terminal.
func (f *sftpFlags) bar(cmd *cobra.Command) func(total int64, desc string) *progressbar.ProgressBar {
	show := f.progress == "always"
	if f.progress == "auto" {
		show = term.IsTerminal(int(os.Stderr.Fd()))
	}
	if !show {
		return nil
	}
	return func(total int64, desc string) *progressbar.ProgressBar {
		return progressbar.DefaultBytes(total, desc)
	}
}

type barFunc = func(total int64, desc string) *progressbar.ProgressBar

// sftpGet downloads remote to local through local+".alknet-part", resuming from the
// part file when resume is set and the part is no longer than the remote file.
func sftpGet(c *sftp.Client, remote, local string, resume bool, newBar barFunc) error {
	rf, err := c.Open(remote)
	if err != nil {
		return fmt.Errorf("remote %s: %w", remote, err)
	}
	defer rf.Close()
	st, err := rf.Stat()
	if err != nil {
		return fmt.Errorf("remote %s: %w", remote, err)
	}
	if st.IsDir() {
		return fmt.Errorf("remote %s is a folder", remote)
	}
	if lst, err := os.Stat(local); err == nil && lst.IsDir() {
		local = filepath.Join(local, path.Base(remote))
	}
	part := local + sftpPartSuffix
	var off int64
	if pst, err := os.Stat(part); err == nil && resume && pst.Mode().IsRegular() && pst.Size() <= st.Size() {
		off = pst.Size()
	}
	lf, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := lf.Truncate(off); err != nil {
		return err
	}
	if _, err := lf.Seek(off, io.SeekStart); err != nil {
		return err
	}
	if _, err := rf.Seek(off, io.SeekStart); err != nil {
		return err
	}
	var w io.Writer = lf
	if newBar != nil {
		bar := newBar(st.Size(), "get "+path.Base(remote))
		bar.Set64(off)
		defer bar.Finish()
		w = io.MultiWriter(lf, bar)
	} else if off > 0 {
		fmt.Fprintf(os.Stderr, "resuming %s at byte %d of %d\n", remote, off, st.Size())
	}
	n, err := rf.WriteTo(w)
	if err != nil {
		return fmt.Errorf("get %s: %w (run the same command again to resume)", remote, err)
	}
	if off+n != st.Size() {
		return fmt.Errorf("get %s: got %d of %d bytes (the file changed? run again with --no-resume)", remote, off+n, st.Size())
	}
	if err := lf.Sync(); err != nil {
		return err
	}
	if err := lf.Close(); err != nil {
		return err
	}
	os.Chtimes(part, st.ModTime(), st.ModTime())
	return os.Rename(part, local)
}

// sftpPut uploads local to remote; the server replaces remote only once complete.
func sftpPut(c *sftp.Client, local, remote string, newBar barFunc) error {
	lf, err := os.Open(local)
	if err != nil {
		return err
	}
	defer lf.Close()
	lst, err := lf.Stat()
	if err != nil {
		return err
	}
	if !lst.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", local)
	}
	if rst, err := c.Stat(remote); err == nil && rst.IsDir() {
		remote = path.Join(remote, filepath.Base(local))
	}
	rf, err := c.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("remote %s: %w", remote, err)
	}
	src := &sizedReader{r: lf, size: lst.Size()}
	if newBar != nil {
		bar := newBar(lst.Size(), "put "+filepath.Base(local))
		defer bar.Finish()
		src.r = io.TeeReader(lf, bar)
	}
	if _, err := rf.ReadFrom(src); err != nil {
		rf.Close()
		return fmt.Errorf("put %s: %w", remote, err)
	}
	if err := rf.Close(); err != nil {
		return fmt.Errorf("put %s: %w", remote, err)
	}
	if err := c.Chtimes(remote, lst.ModTime(), lst.ModTime()); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("put %s: setting the time: %w", remote, err)
	}
	return nil
}

// sizedReader tells pkg/sftp how much is left, so that it writes concurrently.
type sizedReader struct {
	r    io.Reader
	size int64
	read int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.read += int64(n)
	return n, err
}

func (s *sizedReader) Size() int64 { return s.size - s.read }

// sftpLs prints a folder's entries, or a file's, one per line as "ls -l" does.
func sftpLs(c *sftp.Client, p string, out io.Writer) error {
	st, err := c.Stat(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	entries := []fs.FileInfo{st}
	if st.IsDir() {
		if entries, err = c.ReadDir(p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	for _, e := range entries {
		name := e.Name()
		if e.Mode()&fs.ModeSymlink != 0 {
			if dest, err := c.ReadLink(path.Join(p, e.Name())); err == nil {
				name += " -> " + dest
			}
		}
		fmt.Fprintf(out, "%s %12d %s %s\n", e.Mode(), e.Size(), e.ModTime().UTC().Format("2006-01-02 15:04"), name)
	}
	return nil
}
