package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
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

// sftpMetaSuffix ends the name of the record beside a part file (LOCAL.alknet-part.meta):
// which remote file the part's bytes came from.
const sftpMetaSuffix = sftpPartSuffix + ".meta"

// sftpMetaVersion is the format of [sftpPartMeta]; a record of another version is
// no record.
const sftpMetaVersion = 1

// sftpVerifyTail is how many of the part's last bytes a resume compares with the
// remote file: it catches a file replaced by one of the same size and time, which
// the record alone cannot tell apart.
const sftpVerifyTail = 256 << 10

// sftpPartMeta is the record a get writes beside its part file before the first byte:
// the remote file the bytes come from. A later get resumes only when the remote file
// still matches it, as rsync's quick check and curl's If-Range do.
type sftpPartMeta struct {
	Version int    `json:"version"`
	Node    string `json:"node"`  // the server's node ID, proven in the TLS handshake
	Path    string `json:"path"`  // the remote path, cleaned
	Size    int64  `json:"size"`  // bytes
	MTime   int64  `json:"mtime"` // Unix seconds: SFTP version 3 carries no finer time
}

// sftpSource describes the remote file st at path remote on node.
func sftpSource(node, remote string, st fs.FileInfo) sftpPartMeta {
	return sftpPartMeta{Version: sftpMetaVersion, Node: node, Path: path.Clean("/" + remote),
		Size: st.Size(), MTime: st.ModTime().Unix()}
}

// mismatch says why a part recorded as m cannot continue with the file now, or ""
// when it can.
func (m sftpPartMeta) mismatch(now sftpPartMeta) string {
	switch {
	case m.Node != now.Node || m.Path != now.Path:
		return fmt.Sprintf("the partial download is of another file (%s on %s)", m.Path, m.Node)
	case m.Size != now.Size || m.MTime != now.MTime:
		return fmt.Sprintf("the remote file changed since the partial download (was %d bytes, modified %s; now %d bytes, modified %s)",
			m.Size, time.Unix(m.MTime, 0).UTC().Format(time.RFC3339), now.Size, time.Unix(now.MTime, 0).UTC().Format(time.RFC3339))
	}
	return ""
}

// writeSFTPPartMeta writes the record m to name, readable by the owner only.
func writeSFTPPartMeta(name string, m sftpPartMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o600)
}

// readSFTPPartMeta reads the record at name; a missing, unreadable or foreign record
// is an error.
func readSFTPPartMeta(name string) (sftpPartMeta, error) {
	var m sftpPartMeta
	b, err := os.ReadFile(name)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, err
	}
	if m.Version != sftpMetaVersion {
		return m, fmt.Errorf("version %d, want %d", m.Version, sftpMetaVersion)
	}
	return m, nil
}

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

A get writes to LOCAL.alknet-part (readable by you only) and renames it when
complete; run the same get again after an interruption and it resumes where it
stopped, if the remote file is still the one it was downloading (see "alknet sftp
get --help"). A put always sends the whole file, and the server replaces the remote
file only once it is complete: an interrupted put leaves the old file, never half
of the new one.

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
		Long: `Download REMOTE to LOCAL (or into LOCAL, a folder; "-" writes it to standard
output, without resuming).

The bytes go to LOCAL.alknet-part, readable by you only, which becomes LOCAL when
complete; LOCAL gets the remote file's modification time and its permission bits less
your umask, as scp and sftp give them. Before the first byte the
get records which file it is downloading in LOCAL.alknet-part.meta: the node's ID,
the remote path, the file's size and its modification time (whole seconds, as
SFTP carries it).

Run the same get again after an interruption and it resumes from the part only when
the remote file is still that one: the same node, path, size and modification time
(the check rsync makes), and the part's last 256 KiB equal to the remote file's at the
same offset. On any difference, or with no record (a part from an older alknet, a
damaged record), it discards the part, says "not resuming ...: why; starting over"
and downloads from the first byte. A file that changes while it downloads fails the
get and its part is dropped, so that the next run starts over. A different file of
the same size and modification time (to the second) whose bytes differ only before
the part's last 256 KiB cannot be told apart: use --no-resume when that may happen.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := f.connect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			if args[2] == "-" {
				return sftpCat(c.Client, args[1], cmd.OutOrStdout())
			}
			return sftpGet(c.Client, c.node, args[1], args[2], !noResume, cmd.ErrOrStderr(), f.bar(cmd))
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
		Long: `Upload LOCAL to REMOTE (or into REMOTE, a folder). LOCAL "-" reads standard input;
REMOTE must then name the file. The server writes to a temporary file and renames it
into place when the upload completes, so an interrupted put leaves the old file.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := f.connect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer done()
			if args[1] == "-" {
				return sftpPutStream(c.Client, cmd.InOrStdin(), args[2])
			}
			return sftpPut(c.Client, args[1], args[2], f.bar(cmd))
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
			return sftpLs(c.Client, p, cmd.OutOrStdout())
		},
	}
	f.register(cmd)
	return cmd
}

// sftpSession is an SFTP session on the alknet/sftp ALPN.
type sftpSession struct {
	*sftp.Client
	// node is the server's node ID, as its key proved in the TLS handshake.
	node string
}

// connect opens an SFTP session on the alknet/sftp ALPN.
func (f *sftpFlags) connect(ctx context.Context, addr string) (*sftpSession, func(), error) {
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
	var node string
	if pub, ok := conn.Peer().PublicKey.(ed25519.PublicKey); ok {
		node = string(core.NodeIDOf(pub))
	}
	return &sftpSession{Client: c, node: node}, func() {
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

// sftpGet downloads remote to local through local+".alknet-part". Before the first
// byte it records the remote file (node, path, size, modification time) in
// local+".alknet-part.meta". With resume set, an existing part continues only when that
// record matches the remote file now and the part's last bytes match the remote's;
// otherwise the part is discarded with a notice on notices, so that the result is
// never a mix of two files.
func sftpGet(c *sftp.Client, node, remote, local string, resume bool, notices io.Writer, newBar barFunc) error {
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
	part, metaName := local+sftpPartSuffix, local+sftpMetaSuffix
	src := sftpSource(node, remote, st)
	lf, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	// A part left by an older alknet may be 0644: the bytes are the remote file's,
	// which may be private.
	if err := lf.Chmod(0o600); err != nil {
		return err
	}
	var off int64
	if resume {
		why, err := sftpResumable(rf, lf, metaName, src)
		if err != nil {
			return err
		}
		if pst, err := lf.Stat(); err == nil && why == "" {
			off = pst.Size()
		} else if err == nil && pst.Size() > 0 {
			fmt.Fprintf(notices, "not resuming %s: %s; starting over\n", remote, why)
		}
	}
	if off == 0 {
		// Start over: the record first, so that no byte lands in a part without one.
		if err := lf.Truncate(0); err != nil {
			return err
		}
		if err := writeSFTPPartMeta(metaName, src); err != nil {
			return fmt.Errorf("recording the download's source: %w", err)
		}
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
		fmt.Fprintf(notices, "resuming %s at byte %d of %d\n", remote, off, st.Size())
	}
	n, err := rf.WriteTo(w)
	if err != nil {
		return fmt.Errorf("get %s: %w (run the same command again to resume)", remote, err)
	}
	// The remote file changed under the download (in place: an upload through SFTP
	// replaces it, and this handle keeps the old one): what arrived may be a mix.
	// Discard it so that the next run starts over.
	now, err := rf.Stat()
	if err != nil {
		return fmt.Errorf("get %s: %w (run the same command again to resume)", remote, err)
	}
	if off+n != st.Size() || src.mismatch(sftpSource(node, remote, now)) != "" {
		lf.Close()
		os.Remove(part)
		os.Remove(metaName)
		return fmt.Errorf("get %s: the remote file changed during the download (got %d bytes of %d); run again to start over", remote, off+n, st.Size())
	}
	// The part stayed private while incomplete; the finished file gets the remote
	// file's permission bits less the user's umask, as scp and sftp give it (so a
	// script stays executable).
	if err := lf.Chmod(st.Mode().Perm() &^ currentUmask()); err != nil {
		return err
	}
	if err := lf.Sync(); err != nil {
		return err
	}
	if err := lf.Close(); err != nil {
		return err
	}
	os.Chtimes(part, st.ModTime(), st.ModTime())
	if err := os.Rename(part, local); err != nil {
		return err
	}
	// After the rename: a crash between the two leaves a record without a part, which
	// the next get overwrites; the other order could strand a part without a record.
	if err := os.Remove(metaName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// sftpResumable says why the part lf cannot continue the download of the remote file
// rf described by src, or "" when it can: the record at metaName must match src, the
// part be no longer than the file, and its last bytes equal the file's.
func sftpResumable(rf *sftp.File, lf *os.File, metaName string, src sftpPartMeta) (string, error) {
	pst, err := lf.Stat()
	if err != nil {
		return "", err
	}
	if !pst.Mode().IsRegular() {
		return "the partial download is not a regular file", nil
	}
	m, err := readSFTPPartMeta(metaName)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Sprintf("no record of which file the partial download is (%s: %v)", filepath.Base(metaName), err), nil
	}
	if why := m.mismatch(src); why != "" {
		return why, nil
	}
	size := pst.Size()
	if size > src.Size {
		return "the partial download is longer than the remote file", nil
	}
	k := min(size, sftpVerifyTail)
	have, want := make([]byte, k), make([]byte, k)
	if _, err := lf.ReadAt(have, size-k); err != nil {
		return "", fmt.Errorf("reading %s: %w", lf.Name(), err)
	}
	if _, err := rf.ReadAt(want, size-k); err != nil {
		return "", fmt.Errorf("remote %s: %w", src.Path, err)
	}
	if !bytes.Equal(have, want) {
		return fmt.Sprintf("the partial download's last %d bytes differ from the remote file's", k), nil
	}
	return "", nil
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

// currentUmask is the process's file mode creation mask, read from /proc (Linux) so
// that it is not changed, even for a moment; elsewhere the common 022 is assumed.
func currentUmask() os.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(m) & os.ModePerm
				}
			}
		}
	}
	return 0o022
}

// sftpCat writes remote to w (for "get ADDR REMOTE -").
func sftpCat(c *sftp.Client, remote string, w io.Writer) error {
	rf, err := c.Open(remote)
	if err != nil {
		return fmt.Errorf("remote %s: %w", remote, err)
	}
	defer rf.Close()
	if _, err := rf.WriteTo(w); err != nil {
		return fmt.Errorf("get %s: %w", remote, err)
	}
	return nil
}

// sftpPutStream uploads everything read from r to remote (for "put ADDR - REMOTE").
func sftpPutStream(c *sftp.Client, r io.Reader, remote string) error {
	if rst, err := c.Stat(remote); err == nil && rst.IsDir() {
		return fmt.Errorf("remote %s is a folder: name the file to write standard input to", remote)
	}
	rf, err := c.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("remote %s: %w", remote, err)
	}
	if _, err := io.Copy(rf, r); err != nil {
		rf.Close()
		return fmt.Errorf("put %s: %w", remote, err)
	}
	if err := rf.Close(); err != nil {
		return fmt.Errorf("put %s: %w", remote, err)
	}
	return nil
}
