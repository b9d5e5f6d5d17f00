package sftp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
)

// ErrReadOnly is the error behind every write operation refused to a peer that holds
// sftp:read but not sftp:write. Clients see "permission denied".
var ErrReadOnly = fmt.Errorf("sftp: read-only: the peer lacks the scope sftp:write: %w", sftp.ErrSSHFxPermissionDenied)

// ErrOutside is the error behind a path that leaves the served folder (through "..",
// or a symbolic link pointing outside it). Clients see "permission denied".
var ErrOutside = fmt.Errorf("sftp: path leads outside the served folder: %w", sftp.ErrSSHFxPermissionDenied)

// ErrUnsafeLink is the error behind a symbolic link the server will not create, move
// to another folder or hard-link, and behind a folder it will not move to another
// folder because a link inside climbs out of it: only links whose target is relative
// and has no ".." element (a sibling, something in a subfolder) may be placed
// anywhere, because only they lead inside the served folder wherever they end up.
// Renames within one folder are never refused for links (see "Symbolic links" in the
// package documentation). Clients see "permission denied"; the server logs the rule.
// It wraps [ErrOutside].
var ErrUnsafeLink = fmt.Errorf("sftp: a symbolic link may only point down from its own folder (a relative target without \"..\"): %w", ErrOutside)

// Why a link operation is refused: each refusal is logged (at info) with its rule.
const (
	ruleAbsolute    = "absolute target (it names the server's files, not the folder's)"
	ruleDotDot      = `target with ".." (a link made, moved to another folder or hard-linked may only point down from its own folder)`
	ruleThroughLink = "target resolves outside through a link already there"
	ruleClimbsOut   = `cross-folder move of a folder holding a link that climbs out of it (an absolute target, a ".." after a name, or more ".." than the link's depth below the folder)`
)

// unsafeLinkError is a refused link operation's reason: the link concerned, its
// target and the rule it breaks. It wraps [ErrUnsafeLink].
type unsafeLinkError struct {
	link, target, rule string // link relative to the root
}

func (e *unsafeLinkError) Error() string {
	return fmt.Sprintf("/%s -> %s: %s: %v", e.link, e.target, e.rule, ErrUnsafeLink)
}

func (e *unsafeLinkError) Unwrap() error { return ErrUnsafeLink }

// treeMu serialises, across every session of every server in the process, the
// operations that give a path a new meaning (rename, posix-rename, hardlink,
// symlink) with the checks that decide them. A rename within one folder is allowed
// without a look inside the moved folder, and so may carry a link that climbs out of
// it; without this lock another session could slip such a folder, or a link, under a
// path between a check and the operation it decided (see "Symbolic links" in the
// package documentation).
var treeMu sync.Mutex

// tempSuffix ends the name of an upload's temporary file.
const tempSuffix = ".alknet-part"

// fsys serves one session's requests from a folder opened as an [os.Root], so that no
// path, however spelt, reaches outside it. It implements pkg/sftp's handler
// interfaces.
type fsys struct {
	root     *os.Root
	writable bool
	log      *slog.Logger

	mu      sync.Mutex
	uploads map[string]map[*upload]struct{} // by the path being written
}

func newFsys(root *os.Root, writable bool, log *slog.Logger) *fsys {
	return &fsys{root: root, writable: writable, log: log, uploads: map[string]map[*upload]struct{}{}}
}

func (f *fsys) handlers() sftp.Handlers {
	return sftp.Handlers{FileGet: f, FilePut: f, FileCmd: f, FileList: f}
}

var (
	_ sftp.FileReader           = (*fsys)(nil)
	_ sftp.OpenFileWriter       = (*fsys)(nil)
	_ sftp.PosixRenameFileCmder = (*fsys)(nil)
	_ sftp.StatVFSFileCmder     = (*fsys)(nil)
	_ sftp.LstatFileLister      = (*fsys)(nil)
	_ sftp.ReadlinkFileLister   = (*fsys)(nil)
)

// rel turns a client path into a path relative to the root: the client sees the
// served folder as "/", and ".." at the top stays at the top.
func rel(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// mapErr turns an [os.Root] error into one pkg/sftp reports with the right status.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if isEscape(err) {
		var pe *fs.PathError
		var le *os.LinkError
		switch {
		case errors.As(err, &pe):
			return fmt.Errorf("%s %s: %w", pe.Op, pe.Path, ErrOutside)
		case errors.As(err, &le):
			return fmt.Errorf("%s %s %s: %w", le.Op, le.Old, le.New, ErrOutside)
		}
		return ErrOutside
	}
	return err
}

// isEscape reports whether err is os.Root refusing a path that leaves the root. The
// standard library exports no value for it, so the message is matched; a test pins it.
func isEscape(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	var inner error
	switch {
	case errors.As(err, &pe):
		inner = pe.Err
	case errors.As(err, &le):
		inner = le.Err
	default:
		return false
	}
	var errno syscall.Errno
	if inner == nil || errors.As(inner, &errno) {
		return false
	}
	return inner.Error() == "path escapes from parent"
}

// Fileread opens a file for reading.
func (f *fsys) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	p := rel(r.Filepath)
	if ups := f.openUploads(p); len(ups) > 0 {
		// Read what this session wrote (sshfs reopens a file it has just closed before
		// its close reached the server).
		if file, err := f.root.Open(ups[0].tmpName); err == nil {
			return file, nil
		}
	}
	file, err := f.root.Open(p)
	if err != nil {
		return nil, mapErr(err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if st.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: r.Filepath, Err: syscall.EISDIR}
	}
	return file, nil
}

// Filewrite opens a file for writing.
func (f *fsys) Filewrite(r *sftp.Request) (io.WriterAt, error) { return f.openUpload(r) }

// OpenFile opens a file for reading and writing.
func (f *fsys) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) { return f.openUpload(r) }

// openUpload starts a write: the client writes into a temporary file beside the
// target, which replaces the target only when the client closes the handle.
func (f *fsys) openUpload(r *sftp.Request) (*upload, error) {
	if !f.writable {
		return nil, ErrReadOnly
	}
	flags := r.Pflags()
	target, err := f.resolveLinks(rel(r.Filepath))
	if err != nil {
		return nil, err
	}
	old, err := f.root.Stat(target)
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, mapErr(err)
	case exists && flags.Excl && flags.Creat:
		return nil, &fs.PathError{Op: "open", Path: r.Filepath, Err: syscall.EEXIST}
	case !exists && !flags.Creat:
		return nil, &fs.PathError{Op: "open", Path: r.Filepath, Err: syscall.ENOENT}
	case exists && old.IsDir():
		return nil, &fs.PathError{Op: "open", Path: r.Filepath, Err: syscall.EISDIR}
	case exists && !old.Mode().IsRegular():
		return nil, &fs.PathError{Op: "open", Path: r.Filepath, Err: syscall.EINVAL}
	}
	perm := fs.FileMode(0o644)
	if exists {
		perm = old.Mode().Perm()
	} else if a := r.AttrFlags(); a.Permissions {
		attrs, err := attributes(r)
		if err != nil {
			return nil, err
		}
		perm = safePerm(attrs.FileMode())
	}
	tmpName, tmp, err := f.createTemp(target)
	if err != nil {
		return nil, err
	}
	u := &upload{fs: f, target: target, tmpName: tmpName, tmp: tmp, excl: flags.Excl}
	if u.tmpInfo, err = tmp.Stat(); err != nil {
		u.discard()
		return nil, err
	}
	if err := tmp.Chmod(perm); err != nil {
		u.discard()
		return nil, err
	}
	if exists && !flags.Trunc {
		// The client may write only part of the file (resume, random access): start
		// from a copy (copy_file_range on Linux, a reflink where the file system can).
		src, err := f.root.Open(target)
		if err == nil {
			_, err = io.Copy(tmp, src)
			src.Close()
		}
		if err != nil {
			u.discard()
			return nil, mapErr(err)
		}
	}
	f.mu.Lock()
	set := f.uploads[target]
	if set == nil {
		set = map[*upload]struct{}{}
		f.uploads[target] = set
	}
	set[u] = struct{}{}
	f.mu.Unlock()
	return u, nil
}

// resolveLinks follows symbolic links at the end of p (within the root), so that an
// upload to a link replaces the file it points to, not the link.
func (f *fsys) resolveLinks(p string) (string, error) {
	for range 16 {
		st, err := f.root.Lstat(p)
		if err != nil || st.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		dest, err := f.root.Readlink(p)
		if err != nil {
			return "", mapErr(err)
		}
		if path.IsAbs(dest) {
			return "", fmt.Errorf("%s: %w", p, ErrOutside)
		}
		next := path.Join(path.Dir(p), dest)
		if next == ".." || strings.HasPrefix(next, "../") {
			return "", fmt.Errorf("%s: %w", p, ErrOutside)
		}
		p = next
	}
	return "", &fs.PathError{Op: "open", Path: p, Err: syscall.ELOOP}
}

// createTemp creates the temporary file of an upload to target, in the same folder.
func (f *fsys) createTemp(target string) (string, *os.File, error) {
	dir, base := path.Split(target)
	if len(base) > 100 {
		base = base[:100] // the temporary name must stay within NAME_MAX (255)
	}
	var rnd [6]byte
	for range 10 {
		rand.Read(rnd[:])
		name := dir + "." + base + "." + hex.EncodeToString(rnd[:]) + tempSuffix
		file, err := f.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, mapErr(err)
		}
		return name, file, nil
	}
	return "", nil, fmt.Errorf("sftp: no free temporary name beside %s", target)
}

// commitUploads puts this session's uploads to p in place now.
func (f *fsys) commitUploads(p string) error {
	for _, u := range f.openUploads(p) {
		if err := u.commit(); err != nil {
			return err
		}
	}
	return nil
}

// openUploads returns the uploads this session has open on p.
func (f *fsys) openUploads(p string) []*upload {
	f.mu.Lock()
	defer f.mu.Unlock()
	var list []*upload
	for u := range f.uploads[p] {
		list = append(list, u)
	}
	return list
}

func (f *fsys) forget(u *upload) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.uploads[u.target], u)
	if len(f.uploads[u.target]) == 0 {
		delete(f.uploads, u.target)
	}
}

// ErrBadAttributes reports attributes that do not parse; the client gets
// SSH_FX_BAD_MESSAGE.
var ErrBadAttributes = fmt.Errorf("sftp: malformed file attributes: %w", sftp.ErrSSHFxBadMessage)

// attributes parses a request's attributes. pkg/sftp's Request.Attributes returns nil
// when they are malformed.
func attributes(r *sftp.Request) (*sftp.FileStat, error) {
	a := r.Attributes()
	if a == nil {
		return nil, ErrBadAttributes
	}
	return a, nil
}

// safePerm keeps the permission bits and the sticky bit, never set-user-ID or
// set-group-ID.
func safePerm(m fs.FileMode) fs.FileMode { return m & (fs.ModePerm | fs.ModeSticky) }

// Filecmd runs the commands that change the tree.
func (f *fsys) Filecmd(r *sftp.Request) error {
	if r.Method == "Setstat" && isFsyncMarker(r.Flags, r.Attrs) {
		return f.fsync(rel(r.Filepath))
	}
	if !f.writable {
		return ErrReadOnly
	}
	p := rel(r.Filepath)
	switch r.Method {
	case "Setstat":
		return f.setstat(p, r)
	case "Rename":
		return f.rename(p, rel(r.Target))
	case "Rmdir":
		st, err := f.root.Lstat(p)
		if err != nil {
			return mapErr(err)
		}
		if !st.IsDir() {
			return &fs.PathError{Op: "rmdir", Path: r.Filepath, Err: syscall.ENOTDIR}
		}
		return mapErr(f.root.Remove(p))
	case "Mkdir":
		perm := fs.FileMode(0o755)
		if r.AttrFlags().Permissions {
			attrs, err := attributes(r)
			if err != nil {
				return err
			}
			perm = safePerm(attrs.FileMode())
		}
		return mapErr(f.root.Mkdir(p, perm))
	case "Link":
		// link(2) does not follow a final symbolic link: hard-linking a link puts a
		// second name on it, elsewhere, just like a rename.
		to := rel(r.Target)
		treeMu.Lock()
		defer treeMu.Unlock()
		if err := f.checkMove(p, to, false); err != nil {
			return f.refused("hardlink", r.Filepath, r.Target, err)
		}
		return mapErr(f.root.Link(p, to))
	case "Symlink":
		// pkg/sftp (like OpenSSH) puts the link's contents in Filepath and its name
		// in Target. os.Root never follows a link out of the folder, but the link
		// stays on disk for other programs (and for the per-peer folders, should the
		// configuration change), so only links that lead inside from anywhere are made.
		link := rel(r.Target)
		treeMu.Lock()
		defer treeMu.Unlock()
		if err := f.checkLinkAt(link, r.Filepath); err != nil {
			return f.refused("symlink", r.Target, r.Filepath, fmt.Errorf("symlink %s -> %s: %w", r.Target, r.Filepath, err))
		}
		return mapErr(f.root.Symlink(r.Filepath, link))
	case "Remove":
		ups := f.openUploads(p)
		for _, u := range ups {
			u.abandon()
		}
		st, err := f.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) && len(ups) > 0 {
			return nil // only this session's upload held the name
		}
		if err != nil {
			return mapErr(err)
		}
		if st.IsDir() {
			return &fs.PathError{Op: "remove", Path: r.Filepath, Err: syscall.EISDIR}
		}
		return mapErr(f.root.Remove(p))
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename renames, replacing the target if it exists (posix-rename@openssh.com).
func (f *fsys) PosixRename(r *sftp.Request) error {
	if !f.writable {
		return ErrReadOnly
	}
	from, to := rel(r.Filepath), rel(r.Target)
	if err := f.commitUploads(from); err != nil {
		return err
	}
	treeMu.Lock()
	defer treeMu.Unlock()
	if err := f.checkMove(from, to, true); err != nil {
		return f.refused("posix-rename", r.Filepath, r.Target, err)
	}
	return mapErr(f.root.Rename(from, to))
}

// rename is SFTP v3's rename, which fails if the target exists. A file is renamed with
// link and unlink, so the check and the rename are one atomic step.
func (f *fsys) rename(from, to string) error {
	if err := f.commitUploads(from); err != nil {
		return err
	}
	treeMu.Lock()
	defer treeMu.Unlock()
	st, err := f.root.Lstat(from)
	if err != nil {
		return mapErr(err)
	}
	if _, err := f.root.Lstat(to); err == nil {
		return &fs.PathError{Op: "rename", Path: "/" + to, Err: syscall.EEXIST}
	}
	if err := f.checkMove(from, to, true); err != nil {
		return f.refused("rename", "/"+from, "/"+to, err)
	}
	if st.Mode().IsRegular() {
		if err := f.root.Link(from, to); err == nil {
			return mapErr(f.root.Remove(from))
		} else if errors.Is(err, fs.ErrExist) || isEscape(err) {
			return mapErr(err)
		}
	}
	return mapErr(f.root.Rename(from, to))
}

// climb reads a symbolic link's contents dest as k leading ".." elements followed by
// names only ("", "." elements aside): such a link, in a real folder, resolves k
// folders up from its own and then down. ok is false for anything else: an absolute
// target, an empty one, or a ".." after a name (which climbs from wherever that name
// leads, should it be a link).
func climb(dest string) (k int, ok bool) {
	if dest == "" || path.IsAbs(dest) {
		return 0, false
	}
	down := false
	for _, elem := range strings.Split(dest, "/") {
		switch elem {
		case "", ".":
		case "..":
			if down {
				return 0, false
			}
			k++
		default:
			down = true
		}
	}
	return k, true
}

// safeLinkTarget reports whether a symbolic link with contents dest leads inside the
// served folder wherever the link is placed: dest is relative and has no ".."
// element, so it names something at or below the link's own folder.
func safeLinkTarget(dest string) bool {
	k, ok := climb(dest)
	return ok && k == 0
}

// checkLinkAt checks a symbolic link with contents dest about to exist at link (a
// path relative to the root): its target must be safe ([safeLinkTarget]) and, if it
// resolves now, must not resolve outside through a link already there (one made on
// the server side).
func (f *fsys) checkLinkAt(link, dest string) error {
	switch {
	case dest == "" || path.IsAbs(dest):
		return &unsafeLinkError{link, dest, ruleAbsolute}
	case !safeLinkTarget(dest):
		return &unsafeLinkError{link, dest, ruleDotDot}
	}
	if _, err := f.root.Stat(path.Join(path.Dir(link), dest)); isEscape(err) {
		return &unsafeLinkError{link, dest, ruleThroughLink}
	}
	return nil
}

// depth counts the elements of p, a clean path relative to the root ("." has none).
func depth(p string) int {
	if p == "." {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// checkMove checks that giving the entry at from the name to (a rename when rename
// is set, else a hard link) leaves no symbolic link pointing outside. The caller
// holds treeMu.
//
//   - A rename within one folder is allowed as it is: the moved entry keeps its
//     parent, so every link in it, and the entry itself if it is a link, resolves
//     exactly as before (a link inside climbs out of the moved folder only through that
//     same parent).
//   - A link moved or hard-linked elsewhere must pass [fsys.checkLinkAt] at its new
//     place.
//   - A folder moved elsewhere may hold only links whose target climbs no higher than
//     the folder itself (a link at depth d below it, counting from the folder
//     holding the link, with k leading ".." and no other, k <= d): those resolve
//     inside the folder wherever it goes. Any other link (k > d, absolute, ".."
//     after a name) would change meaning or point outside, and can only have been
//     made on the server side.
func (f *fsys) checkMove(from, to string, rename bool) error {
	if rename && path.Dir(from) == path.Dir(to) {
		return nil
	}
	st, err := f.root.Lstat(from)
	if err != nil {
		return mapErr(err)
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		dest, err := f.root.Readlink(from)
		if err != nil {
			return mapErr(err)
		}
		if err := f.checkLinkAt(to, dest); err != nil {
			return fmt.Errorf("move /%s -> %s to /%s: %w", from, dest, to, err)
		}
	case st.IsDir() && rename:
		// Walked through os.Root's fs.FS: links are listed, never followed, so the
		// folders above each link are real ones and its ".." are their parents.
		top := depth(from)
		err := fs.WalkDir(f.root.FS(), from, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return err
			}
			dest, err := f.root.Readlink(p)
			if err != nil {
				return err
			}
			if k, ok := climb(dest); !ok || k > depth(path.Dir(p))-top {
				return fmt.Errorf("move /%s to /%s: it holds the symbolic link %w", from, to, &unsafeLinkError{p, dest, ruleClimbsOut})
			}
			return nil
		})
		if err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// refused logs why a link operation op on name (with target: the new name, or the
// link's contents) was refused, if err is such a refusal, and returns err: the client
// sees only "permission denied".
func (f *fsys) refused(op, name, target string, err error) error {
	var ue *unsafeLinkError
	if errors.As(err, &ue) {
		f.log.Info("sftp: link operation refused", "op", op, "path", name, "target", target,
			"link", "/"+ue.link, "link_target", ue.target, "rule", ue.rule)
	}
	return err
}

// setstat applies attributes; on a path this session is uploading, to the upload.
func (f *fsys) setstat(p string, r *sftp.Request) error {
	flags := r.AttrFlags()
	attrs, err := attributes(r)
	if err != nil {
		return err
	}
	if ups := f.openUploads(p); len(ups) > 0 {
		for _, u := range ups {
			if err := u.setstat(flags, attrs); err != nil {
				return err
			}
		}
		return nil
	}
	if flags.UidGid {
		st, err := f.root.Stat(p)
		if err != nil {
			return mapErr(err)
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); !ok || sys.Uid != attrs.UID || sys.Gid != attrs.GID {
			return &fs.PathError{Op: "chown", Path: r.Filepath, Err: syscall.EPERM}
		}
	}
	if flags.Permissions {
		if err := f.root.Chmod(p, safePerm(attrs.FileMode())); err != nil {
			return mapErr(err)
		}
	}
	if flags.Acmodtime {
		if err := f.root.Chtimes(p, time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0)); err != nil {
			return mapErr(err)
		}
	}
	if flags.Size {
		file, err := f.root.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return mapErr(err)
		}
		err = file.Truncate(int64(attrs.Size))
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return nil
}

// fsync flushes this session's uploads to p to disk, or p itself if none is open.
func (f *fsys) fsync(p string) error {
	if ups := f.openUploads(p); len(ups) > 0 {
		for _, u := range ups {
			if err := u.tmp.Sync(); err != nil {
				return err
			}
		}
		return nil
	}
	file, err := f.root.Open(p)
	if err != nil {
		return mapErr(err)
	}
	defer file.Close()
	return file.Sync()
}

// StatVFS reports the file system holding the served folder (statvfs@openssh.com).
func (f *fsys) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	file, err := f.root.Open(rel(r.Filepath))
	if err != nil {
		return nil, mapErr(err)
	}
	defer file.Close()
	return statVFS(file)
}

// Filelist serves directory listings and stat.
func (f *fsys) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	p := rel(r.Filepath)
	switch r.Method {
	case "List":
		dir, err := f.root.Open(p)
		if err != nil {
			return nil, mapErr(err)
		}
		st, err := dir.Stat()
		if err != nil {
			dir.Close()
			return nil, err
		}
		if !st.IsDir() {
			dir.Close()
			return nil, &fs.PathError{Op: "opendir", Path: r.Filepath, Err: syscall.ENOTDIR}
		}
		return &dirLister{dir: dir}, nil
	case "Stat":
		if l, ok := f.uploadStat(p, r.Filepath); ok {
			return l, nil
		}
		st, err := f.root.Stat(p)
		if err != nil {
			return nil, mapErr(err)
		}
		return listOne{st}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// uploadStat describes p as this session's open upload to it sees it, if there is
// one: a client that created a file expects to find it before it closes it.
func (f *fsys) uploadStat(p, name string) (sftp.ListerAt, bool) {
	ups := f.openUploads(p)
	if len(ups) == 0 {
		return nil, false
	}
	st, err := ups[0].tmp.Stat()
	if err != nil {
		return nil, false
	}
	return listOne{renamed{st, path.Base(name)}}, true
}

// Lstat is stat without following a final symbolic link.
func (f *fsys) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	p := rel(r.Filepath)
	if l, ok := f.uploadStat(p, r.Filepath); ok {
		return l, nil
	}
	st, err := f.root.Lstat(p)
	if err != nil {
		return nil, mapErr(err)
	}
	return listOne{st}, nil
}

// Readlink returns a symbolic link's contents.
func (f *fsys) Readlink(p string) (string, error) {
	dest, err := f.root.Readlink(rel(p))
	return dest, mapErr(err)
}

// listOne lists a single entry (stat replies).
type listOne []fs.FileInfo

func (l listOne) ListAt(ls []fs.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(ls, l[off:])
	if n < len(ls) {
		return n, io.EOF
	}
	return n, nil
}

// renamed is a FileInfo under another name.
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string { return r.name }

// dirLister reads a directory as the client asks for more, never whole.
type dirLister struct {
	dir  *os.File
	next int64
	buf  []fs.FileInfo
	eof  bool
}

func (d *dirLister) ListAt(ls []fs.FileInfo, off int64) (int, error) {
	if off != d.next {
		return 0, fmt.Errorf("sftp: directory read out of order (offset %d, expected %d)", off, d.next)
	}
	for len(d.buf) < len(ls) && !d.eof {
		more, err := d.dir.Readdir(len(ls) - len(d.buf))
		d.buf = append(d.buf, more...)
		if err == io.EOF || len(more) == 0 {
			d.eof = true
		} else if err != nil {
			return 0, err
		}
	}
	n := copy(ls, d.buf)
	d.buf = d.buf[n:]
	d.next += int64(n)
	if n == 0 && d.eof {
		return 0, io.EOF
	}
	return n, nil
}

func (d *dirLister) Close() error { return d.dir.Close() }

// upload is one handle open for writing: a temporary file that replaces the target
// on a clean close, and is removed if the session ends with it still open.
type upload struct {
	fs      *fsys
	target  string
	tmpName string
	tmp     *os.File
	tmpInfo fs.FileInfo // to tell that tmpName still names tmp
	excl    bool

	mu        sync.Mutex
	failed    error
	closed    bool
	committed bool // already in place; writes go to the target itself
}

// WriteAt writes at the offset the client gave, also for SSH_FXF_APPEND: clients send
// the end of the file as the offset (OpenSSH's reput, sshfs), and pkg/sftp runs writes
// in parallel, so "append wherever the end is now" would reorder them.
func (u *upload) WriteAt(p []byte, off int64) (int, error) { return u.tmp.WriteAt(p, off) }
func (u *upload) ReadAt(p []byte, off int64) (int, error)  { return u.tmp.ReadAt(p, off) }

// TransferError is called by pkg/sftp when the session ends with the handle open: the
// upload is then abandoned.
func (u *upload) TransferError(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.failed == nil {
		u.failed = err
	}
}

func (u *upload) setstat(flags sftp.FileAttrFlags, attrs *sftp.FileStat) error {
	if flags.UidGid {
		return &fs.PathError{Op: "chown", Path: "/" + u.target, Err: syscall.EPERM}
	}
	if flags.Size {
		if err := u.tmp.Truncate(int64(attrs.Size)); err != nil {
			return err
		}
	}
	if flags.Permissions {
		if err := u.tmp.Chmod(safePerm(attrs.FileMode())); err != nil {
			return err
		}
	}
	if flags.Acmodtime {
		if err := u.fs.root.Chtimes(u.tmpName, time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0)); err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// Close ends the upload: the temporary file replaces the target, unless the session
// failed first, in which case it is removed and the target left as it was.
func (u *upload) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	u.closed = true
	if u.committed {
		return u.tmp.Close()
	}
	u.fs.forget(u)
	if u.failed != nil {
		u.fs.log.Debug("sftp: upload abandoned", "path", u.target, "err", u.failed)
		u.discard()
		return nil
	}
	if err := u.tmp.Close(); err != nil {
		u.fs.root.Remove(u.tmpName)
		return err
	}
	return u.place()
}

// commit puts the upload in place before its handle closes, because the client
// renames the file meanwhile (sshfs closes handles asynchronously, after a following
// rename). The handle stays open and writes on in place.
func (u *upload) commit() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || u.committed {
		return nil
	}
	u.fs.forget(u)
	if err := u.place(); err != nil {
		return err
	}
	u.committed = true
	return nil
}

// abandon makes the upload leave no trace when it closes (its target was removed).
func (u *upload) abandon() {
	u.TransferError(fs.ErrNotExist)
	u.fs.forget(u)
}

// ErrUploadReplaced is returned when a handle for writing closes and its temporary
// file's name no longer names the file written (the client renamed or replaced it):
// nothing is moved onto the target, which is left as it was.
var ErrUploadReplaced = errors.New("sftp: the upload's temporary file was renamed or replaced; the target is left as it was")

// place moves the temporary file onto the target.
func (u *upload) place() error {
	// The temporary name is visible to the client, which may have put something else
	// there (a folder, a symbolic link): only ever move the file this handle wrote.
	if st, err := u.fs.root.Lstat(u.tmpName); err != nil || !os.SameFile(st, u.tmpInfo) {
		return fmt.Errorf("%s: %w", "/"+u.target, ErrUploadReplaced)
	}
	var err error
	if u.excl {
		// O_EXCL: never replace a file that appeared meanwhile.
		if err = u.fs.root.Link(u.tmpName, u.target); err == nil {
			u.fs.root.Remove(u.tmpName)
		}
	} else {
		err = u.fs.root.Rename(u.tmpName, u.target)
	}
	if err != nil {
		u.fs.root.Remove(u.tmpName)
		return mapErr(err)
	}
	return nil
}

func (u *upload) discard() {
	u.tmp.Close()
	u.fs.root.Remove(u.tmpName)
}
