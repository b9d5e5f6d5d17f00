package fs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"lukechampine.com/blake3"
)

// Progress is told how many bytes moved so far, and how many there are in all (0 if
// not known yet). It may be nil.
type Progress func(done, total uint64)

func (p Progress) report(done, total uint64) {
	if p != nil {
		p(done, total)
	}
}

// countingReader reports progress while reading.
type countingReader struct {
	r     io.Reader
	n     *uint64
	total uint64
	p     Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	*c.n += uint64(n)
	c.p.report(*c.n, c.total)
	return n, err
}

// PutPath adds the file or folder at path to sink and returns what to tag: a raw blob
// for a file, a [Collection] for a folder (every file, subfolder and symlink under it;
// symlinks are stored, never followed). Other file types are an error.
func PutPath(ctx context.Context, sink Sink, path string, progress Progress) (HashAndFormat, error) {
	// A symlink named on the command line is followed; symlinks inside a folder are not.
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return HashAndFormat{}, err
	}
	if fi.Mode().IsRegular() {
		var done uint64
		h, err := putFile(sink, path, &done, uint64(fi.Size()), progress)
		return HashAndFormat{Hash: h}, err
	}
	if !fi.IsDir() {
		return HashAndFormat{}, fmt.Errorf("fs: put %s: not a file or folder", path)
	}
	var entries []Entry
	var total uint64
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == path {
			return nil
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		e := Entry{Path: filepath.ToSlash(rel)}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			e.Kind, e.Mode = KindDir, info.Mode().Perm()
		case d.Type()&fs.ModeSymlink != 0:
			e.Kind = KindSymlink
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
			e.Target = filepath.ToSlash(e.Target)
		case info.Mode().IsRegular():
			e.Kind, e.Mode, e.Size = KindFile, info.Mode().Perm(), uint64(info.Size())
			total += e.Size
		default:
			return fmt.Errorf("fs: put %s: %s is not a file, folder or symlink", path, rel)
		}
		if err := ValidEntryPath(e.Path); err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return HashAndFormat{}, err
	}
	var done uint64
	for i := range entries {
		e := &entries[i]
		if e.Kind != KindFile {
			continue
		}
		if e.Hash, err = putFile(sink, filepath.Join(path, filepath.FromSlash(e.Path)), &done, total, progress); err != nil {
			return HashAndFormat{}, err
		}
	}
	c, err := NewCollection(entries)
	if err != nil {
		return HashAndFormat{}, err
	}
	b, err := c.MarshalBinary()
	if err != nil {
		return HashAndFormat{}, err
	}
	h, err := sink.Add(bytes.NewReader(b), int64(len(b)), FormatCollection)
	return HashAndFormat{Hash: h, Format: FormatCollection}, err
}

func putFile(sink Sink, path string, done *uint64, total uint64, progress Progress) (Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return Hash{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Hash{}, err
	}
	h, err := sink.Add(&countingReader{r: f, n: done, total: total, p: progress}, fi.Size(), FormatRaw)
	if err != nil {
		return Hash{}, fmt.Errorf("fs: put %s: %w", path, err)
	}
	return h, nil
}

// Cat writes the verified bytes of blob h to w.
func Cat(ctx context.Context, src Source, h Hash, w io.Writer) error {
	_, err := src.Fetch(ctx, h, All(), func(_ uint64, p []byte) error {
		_, err := w.Write(p)
		return err
	})
	return err
}

// ReadBlob returns the whole verified blob h; it refuses blobs over limit bytes.
func ReadBlob(ctx context.Context, src Source, h Hash, limit int) ([]byte, error) {
	var buf bytes.Buffer
	_, err := src.Fetch(ctx, h, All(), func(_ uint64, p []byte) error {
		if buf.Len()+len(p) > limit {
			return fmt.Errorf("fs: blob %s is larger than %d bytes", h, limit)
		}
		buf.Write(p)
		return nil
	})
	return buf.Bytes(), err
}

// FetchCollection fetches and parses collection h.
func FetchCollection(ctx context.Context, src Source, h Hash) (*Collection, error) {
	b, err := ReadBlob(ctx, src, h, maxMetaSize)
	if err != nil {
		return nil, err
	}
	return ParseCollection(b)
}

// DetectFormat fetches the first bytes of h and reports FormatCollection if it is a
// well-formed collection, else FormatRaw.
func DetectFormat(ctx context.Context, src Source, h Hash) (Format, error) {
	var head []byte
	size, err := src.Fetch(ctx, h, RangeSet{{0, uint64(len(collectionMagic))}}, func(_ uint64, p []byte) error {
		head = append(head, p...)
		return nil
	})
	if err != nil {
		return FormatRaw, err
	}
	if !IsCollection(head) || size > maxMetaSize {
		return FormatRaw, nil
	}
	if _, err := FetchCollection(ctx, src, h); err != nil {
		return FormatRaw, nil
	}
	return FormatCollection, nil
}

// partialState is the sidecar of a download in progress: which blob, and how many
// leading bytes of the partial file are verified and on disk.
type partialState struct {
	Hash     Hash   `json:"hash"`
	Verified uint64 `json:"verified"`
}

// A download records its verified prefix (flush, fsync, sidecar) every checkpointEvery
// bytes or checkpointInterval, whichever comes first.
const (
	checkpointEvery    = 64 << 20
	checkpointInterval = 2 * time.Second
)

// GetFile downloads blob h to the file out. Only verified bytes are written. While it
// runs, data goes to out+".part" and a sidecar out+".part.json" records the verified,
// synced prefix; if the download stops (error, signal, crash), calling GetFile again
// resumes after that prefix. On success out is renamed into place. It returns how many
// bytes were already present from an earlier attempt.
func GetFile(ctx context.Context, src Source, h Hash, out string, progress Progress) (resumed uint64, err error) {
	part, side := out+".part", out+".part.json"
	var st partialState
	if b, err := os.ReadFile(side); err == nil && json.Unmarshal(b, &st) == nil && st.Hash == h {
		if fi, err := os.Stat(part); err == nil && uint64(fi.Size()) >= st.Verified {
			resumed = st.Verified
		}
	}
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(int64(resumed)); err != nil {
		return 0, err
	}
	if _, err := f.Seek(int64(resumed), io.SeekStart); err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	verified := resumed
	checkpoint := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return writeFileAtomic(side, mustJSON(partialState{Hash: h, Verified: verified}))
	}
	if err := checkpoint(); err != nil {
		return resumed, err
	}
	lastCheck, lastTime := verified, time.Now()
	total := sizeHint(ctx, src, h)
	size, err := src.Fetch(ctx, h, RangeSet{{resumed, ToEnd}}, func(off uint64, p []byte) error {
		if off != verified {
			return fmt.Errorf("fs: get: data at offset %d, expected %d", off, verified)
		}
		if _, err := bw.Write(p); err != nil {
			return err
		}
		verified += uint64(len(p))
		progress.report(verified, total)
		if verified-lastCheck >= checkpointEvery || (verified-lastCheck >= GroupSize && time.Since(lastTime) >= checkpointInterval) {
			lastCheck, lastTime = verified, time.Now()
			return checkpoint()
		}
		return nil
	})
	if err != nil {
		checkpoint()
		return resumed, err
	}
	if verified != size {
		checkpoint()
		return resumed, fmt.Errorf("fs: get %s: got %d of %d bytes", h, verified, size)
	}
	if err := bw.Flush(); err != nil {
		return resumed, err
	}
	if err := f.Sync(); err != nil {
		return resumed, err
	}
	if err := f.Close(); err != nil {
		return resumed, err
	}
	if err := os.Rename(part, out); err != nil {
		return resumed, err
	}
	os.Remove(side)
	progress.report(size, size)
	return resumed, nil
}

// sizeHint asks src for the size of h, for progress only (0 if unknown).
func sizeHint(ctx context.Context, src Source, h Hash) uint64 {
	switch s := src.(type) {
	case *Client:
		if n, ok, err := s.Stat(ctx, h); err == nil && ok {
			return uint64(n)
		}
	case *Store:
		if n, err := s.Size(h); err == nil {
			return uint64(n)
		}
	}
	return 0
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// GetTree restores collection h into the folder dir (created if needed). Every path is
// checked before anything is written: entries that would leave dir, and symlinks that
// point outside it, are refused. Writes go through an [os.Root], so nothing can escape
// even through a symlink placed by someone else. Files already present with the right
// content are kept, so an interrupted GetTree resumes file by file.
func GetTree(ctx context.Context, src Source, h Hash, dir string, progress Progress) error {
	c, err := FetchCollection(ctx, src, h)
	if err != nil {
		return err
	}
	for _, e := range c.Entries {
		if err := ValidEntryPath(e.Path); err != nil {
			return err
		}
		if e.Kind == KindSymlink && SymlinkEscapes(e.Path, e.Target) {
			return fmt.Errorf("%w: symlink %s points to %q", ErrUnsafePath, e.Path, e.Target)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	total := c.TotalSize()
	var done uint64
	for _, e := range c.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.FromSlash(e.Path)
		switch e.Kind {
		case KindDir:
			if err := root.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if fi, err := root.Lstat(p); err != nil || !fi.IsDir() {
				return fmt.Errorf("fs: get: %s exists and is not a folder", e.Path)
			}
		case KindSymlink:
			if t, err := root.Readlink(p); err == nil && t == e.Target {
				continue
			}
			if err := root.Symlink(filepath.FromSlash(e.Target), p); err != nil {
				return err
			}
		case KindFile:
			if sameFile(root, p, e) {
				done += e.Size
				progress.report(done, total)
				if err := root.Chmod(p, e.Mode); err != nil {
					return err
				}
				continue
			}
			if err := fetchInto(ctx, src, root, p, e, &done, total, progress); err != nil {
				return err
			}
		}
	}
	// Folder modes last, so read-only folders do not block their own filling.
	for _, e := range c.Entries {
		if e.Kind == KindDir {
			if err := root.Chmod(filepath.FromSlash(e.Path), e.Mode); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameFile reports whether p already holds exactly e's content.
func sameFile(root *os.Root, p string, e Entry) bool {
	fi, err := root.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || uint64(fi.Size()) != e.Size {
		return false
	}
	f, err := root.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	hasher := blake3.New(32, nil)
	if _, err := io.Copy(hasher, f); err != nil {
		return false
	}
	return Hash(hasher.Sum(nil)) == e.Hash
}

// fetchInto downloads e into p (through a temporary name in the same folder).
func fetchInto(ctx context.Context, src Source, root *os.Root, p string, e Entry, done *uint64, total uint64, progress Progress) error {
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".alknet-part")
	f, err := root.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	_, err = src.Fetch(ctx, e.Hash, All(), func(_ uint64, b []byte) error {
		if _, err := bw.Write(b); err != nil {
			return err
		}
		*done += uint64(len(b))
		progress.report(*done, total)
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("fs: get %s: %w", e.Path, err)
	}
	if err := root.Chmod(tmp, e.Mode); err != nil {
		return err
	}
	return root.Rename(tmp, p)
}
