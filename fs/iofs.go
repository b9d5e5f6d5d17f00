package fs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// BlobReader is an open blob: what [FS] needs to serve a file's content.
type BlobReader interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
}

// FS is a read-only [io/fs.FS] view of a [Collection], so other servers (HTTP, SFTP) can
// serve a snapshot. Open follows symlinks that stay inside the collection; ReadLink and
// Lstat (the [io/fs.ReadLinkFS] methods) see them as links. Files report the time the
// FS was made as their modification time.
type FS struct {
	entries  map[string]*Entry
	children map[string][]string // folder -> sorted child names
	open     func(Hash) (BlobReader, error)
	modTime  time.Time
}

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// NewFS returns a view of c whose files open through open.
func NewFS(c *Collection, open func(Hash) (BlobReader, error)) *FS {
	f := &FS{entries: map[string]*Entry{}, children: map[string][]string{".": nil}, open: open, modTime: time.Now()}
	for i := range c.Entries {
		e := &c.Entries[i]
		f.entries[e.Path] = e
		dir := path.Dir(e.Path)
		f.children[dir] = append(f.children[dir], path.Base(e.Path))
		if e.Kind == KindDir {
			if _, ok := f.children[e.Path]; !ok {
				f.children[e.Path] = nil
			}
		}
	}
	for _, names := range f.children {
		slices.Sort(names)
	}
	return f
}

// FS returns an [io/fs.FS] view of collection h in the store.
func (s *Store) FS(h Hash) (*FS, error) {
	b, err := s.readAll(h, maxMetaSize)
	if err != nil {
		return nil, err
	}
	c, err := ParseCollection(b)
	if err != nil {
		return nil, err
	}
	return NewFS(c, func(h Hash) (BlobReader, error) { return s.Open(h) }), nil
}

// readAll reads a whole (small) blob from disk, verified.
func (s *Store) readAll(h Hash, limit int) ([]byte, error) {
	var buf []byte
	_, err := s.getLocal(h, All(), func(_ uint64, p []byte) error {
		if len(buf)+len(p) > limit {
			return errors.New("fs: blob too large")
		}
		buf = append(buf, p...)
		return nil
	})
	return buf, err
}

// resolve follows symlinks in every element of name (the last too, if follow).
func (f *FS) resolve(op, name string, follow bool) (string, *Entry, error) {
	if !fs.ValidPath(name) {
		return "", nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return ".", nil, nil
	}
	hops := 0
	parts := strings.Split(name, "/")
	cur := "."
	for i := 0; i < len(parts); i++ {
		next := parts[i]
		if cur != "." {
			next = cur + "/" + parts[i]
		}
		e, ok := f.entries[next]
		if !ok {
			return "", nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		last := i == len(parts)-1
		if e.Kind == KindSymlink && (!last || follow) {
			if hops++; hops > 40 || SymlinkEscapes(next, e.Target) {
				return "", nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			target := path.Join(path.Dir(next), e.Target)
			rest := append(strings.Split(target, "/"), parts[i+1:]...)
			if target == "." {
				rest = parts[i+1:]
			}
			if len(rest) == 0 {
				return ".", nil, nil
			}
			parts, i, cur = rest, -1, "."
			continue
		}
		if !last && e.Kind != KindDir {
			return "", nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		cur = next
		if last {
			return cur, e, nil
		}
	}
	return cur, f.entries[cur], nil
}

// Open opens name, following symlinks.
func (f *FS) Open(name string) (fs.File, error) {
	p, e, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	info := f.info(p, e)
	if e == nil || e.Kind == KindDir {
		return &dirFile{fs: f, path: p, info: info}, nil
	}
	r, err := f.open(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &blobFile{BlobReader: r, info: info}, nil
}

// Stat describes name, following symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	p, e, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return f.info(p, e), nil
}

// Lstat describes name without following a final symlink.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	p, e, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return f.info(p, e), nil
}

// ReadLink returns a symlink's target.
func (f *FS) ReadLink(name string) (string, error) {
	_, e, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e == nil || e.Kind != KindSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.Target, nil
}

// ReadDir lists a folder, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, e, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if e != nil && e.Kind != KindDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	var out []fs.DirEntry
	for _, child := range f.children[p] {
		cp := child
		if p != "." {
			cp = p + "/" + child
		}
		out = append(out, fs.FileInfoToDirEntry(f.info(cp, f.entries[cp])))
	}
	return out, nil
}

func (f *FS) info(p string, e *Entry) fs.FileInfo {
	fi := &fileInfo{name: path.Base(p), mod: f.modTime}
	switch {
	case e == nil:
		fi.mode = fs.ModeDir | 0o755
	case e.Kind == KindDir:
		fi.mode = fs.ModeDir | e.Mode
	case e.Kind == KindSymlink:
		fi.mode = fs.ModeSymlink | 0o777
		fi.size = int64(len(e.Target))
	default:
		fi.mode, fi.size = e.Mode, int64(e.Size)
	}
	return fi
}

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
	mod  time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.mod }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return nil }

type blobFile struct {
	BlobReader
	info fs.FileInfo
}

func (b *blobFile) Stat() (fs.FileInfo, error) { return b.info, nil }

type dirFile struct {
	fs   *FS
	path string
	info fs.FileInfo
	pos  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	all, err := d.fs.ReadDir(d.path)
	if err != nil {
		return nil, err
	}
	rest := all[d.pos:]
	if n <= 0 {
		d.pos = len(all)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.pos += len(rest)
	return rest, nil
}
