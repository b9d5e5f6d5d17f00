package fs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"lukechampine.com/blake3"
	"lukechampine.com/blake3/bao"
)

// GroupSize is the size of a chunk group: the unit the receiver verifies. Blobs of at
// most GroupSize bytes have no outboard.
const GroupSize = 16 << 10

// groupLog is GroupSize as the bao package's group parameter: 2^4 chunks of 1 KiB.
const groupLog = 4

// Store is a content-addressed blob store in a folder:
//
//	blobs/ab/ab01…ef          the blob, named by the hex of its BLAKE3 hash
//	blobs/ab/ab01…ef.obao     its outboard hash tree (bao, 16 KiB groups), if > 16 KiB
//	tags.json                 named tags
//	tmp/                      imports in progress; emptied at Open
//	lock                      held (flock) while a Store is open
//
// An import writes to tmp/ while it hashes, fsyncs, then renames the outboard and then
// the blob into place, so a crash at any point leaves either the whole blob or none.
// [Open] removes leftovers. Memory use is bounded whatever the blob size.
//
// A Store is safe for concurrent use. Only one Store (in any process) may have a
// folder open at a time. After [Store.Close] the folder belongs to whoever opens it
// next: every method that would read or change it fails with an error wrapping
// [ErrStoreClosed] (or, for Has and Pin, reports the blob absent).
type Store struct {
	dir string
	log *slog.Logger

	// closed is set (under mu) by Close. Every change to the folder happens under mu
	// after checking it, so none can land once Close has returned; reads check it
	// without mu.
	closed atomic.Bool

	mu   sync.Mutex
	lock io.Closer
	pins map[Hash]int
	tags map[string]HashAndFormat
}

// Errors of the store.
var (
	// ErrLocked is returned by Open when another Store holds the folder.
	ErrLocked = errors.New("fs: store is in use by another process")
	// ErrStoreClosed is wrapped by the error of every Store method that touches the
	// folder after Close, including a second Close and an import that was still
	// running when Close was called.
	ErrStoreClosed = errors.New("fs: store closed")
)

// Open opens (creating if needed) the store in dir and removes what an interrupted
// import left behind. log may be nil.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("fs: open store: %w", err)
		}
	}
	lock, err := lockFile(filepath.Join(dir, "lock"))
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, log: log, lock: lock, pins: map[Hash]int{}, tags: map[string]HashAndFormat{}}
	if err := s.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := s.loadTags(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// Close releases the store's folder. It waits for a change in progress (a tag
// update, an import's final rename, a GC) to finish; imports still reading their input
// stop and store nothing. Reads already streaming from an open blob file may finish.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return fmt.Errorf("%w: already closed", ErrStoreClosed)
	}
	s.closed.Store(true)
	err := s.lock.Close()
	s.lock = nil
	clear(s.tags)
	return err
}

// checkOpen returns an error wrapping ErrStoreClosed once Close has run; op says what
// was refused.
func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("%w: cannot %s", ErrStoreClosed, op)
	}
	return nil
}

func (s *Store) dataPath(h Hash) string {
	x := h.String()
	return filepath.Join(s.dir, "blobs", x[:2], x)
}

func (s *Store) outboardPath(h Hash) string { return s.dataPath(h) + ".obao" }

// recover empties tmp/ and removes outboards whose blob never landed.
func (s *Store) recover() error {
	tmp := filepath.Join(s.dir, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("fs: open store: %w", err)
	}
	for _, e := range ents {
		s.log.Info("fs: removing interrupted import", "file", e.Name())
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("fs: open store: %w", err)
		}
	}
	return s.walkBlobs(func(name, path string) error {
		hex, ok := strings.CutSuffix(name, ".obao")
		if !ok {
			return nil
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), hex)); errors.Is(err, fs.ErrNotExist) {
			s.log.Info("fs: removing orphan outboard", "file", name)
			return os.Remove(path)
		}
		return nil
	})
}

// walkBlobs calls f for each file in blobs/*/.
func (s *Store) walkBlobs(f func(name, path string) error) error {
	root := filepath.Join(s.dir, "blobs")
	dirs, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := f(e.Name(), filepath.Join(root, d.Name(), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// TempPin keeps a blob from garbage collection until Release. Imports return one, so
// a blob is safe between its import and the tag or collection that will reference it.
type TempPin struct {
	s    *Store
	h    Hash
	once sync.Once
}

// Hash is the pinned blob.
func (p *TempPin) Hash() Hash { return p.h }

// Release ends the pin. It is safe to call more than once.
func (p *TempPin) Release() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		p.s.mu.Lock()
		defer p.s.mu.Unlock()
		if p.s.pins[p.h]--; p.s.pins[p.h] <= 0 {
			delete(p.s.pins, p.h)
		}
	})
}

// pinLocked adds a temporary pin; s.mu is held.
func (s *Store) pinLocked(h Hash) *TempPin {
	s.pins[h]++
	return &TempPin{s: s, h: h}
}

// Pin pins a blob the store already has. It reports false (and pins nothing) if the
// blob is absent or the store is closed.
func (s *Store) Pin(h Hash) (*TempPin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil, false
	}
	if _, err := os.Stat(s.dataPath(h)); err != nil {
		return nil, false
	}
	return s.pinLocked(h), true
}

// Has reports whether the store holds blob h (false once the store is closed).
func (s *Store) Has(h Hash) bool {
	if s.closed.Load() {
		return false
	}
	_, err := os.Stat(s.dataPath(h))
	return err == nil
}

// Size returns the size of blob h, or an error wrapping ErrNotFound.
func (s *Store) Size(h Hash) (int64, error) {
	if err := s.checkOpen("stat blob " + h.String()); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.dataPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: blob %s", ErrNotFound, h)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Open opens blob h for reading. The caller closes it. Data read this way is not
// verified; [Store.Get] and [Store.Verify] verify.
func (s *Store) Open(h Hash) (*os.File, error) {
	if err := s.checkOpen("open blob " + h.String()); err != nil {
		return nil, err
	}
	f, err := os.Open(s.dataPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s", ErrNotFound, h)
	}
	return f, err
}

// ctxReader fails reads once ctx is done or the store is closed, so an import that
// cannot be committed stops reading.
type ctxReader struct {
	ctx context.Context
	s   *Store
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if err := c.s.checkOpen("import"); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Import stores the next size bytes of r (all of r when size is negative) and returns
// its hash and a pin that keeps it from garbage collection until released. If r ends
// early, ctx ends or the store is closed, nothing is stored.
func (s *Store) Import(ctx context.Context, r io.Reader, size int64) (Hash, *TempPin, error) {
	if r == nil {
		return Hash{}, nil, errors.New("fs: import: nil reader")
	}
	if err := s.checkOpen("import"); err != nil {
		return Hash{}, nil, err
	}
	h, pin, err := s.importData(ctx, r, size)
	if err != nil && s.closed.Load() && !errors.Is(err, ErrStoreClosed) {
		// Whatever broke the import, the reason it stored nothing is the Close.
		return Hash{}, nil, fmt.Errorf("%w: import interrupted: %v", ErrStoreClosed, err)
	}
	return h, pin, err
}

func (s *Store) importData(ctx context.Context, r io.Reader, size int64) (Hash, *TempPin, error) {
	tmp := filepath.Join(s.dir, "tmp")
	data, err := os.CreateTemp(tmp, "import-*")
	if err != nil {
		return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
	}
	var ob *os.File
	defer func() {
		data.Close()
		os.Remove(data.Name())
		if ob != nil {
			ob.Close()
			os.Remove(ob.Name())
		}
	}()
	r = ctxReader{ctx, s, r}
	var h Hash
	if size < 0 {
		// Unknown length: hash while copying, then build the outboard from the copy.
		hasher := blake3.New(32, nil)
		bw := bufio.NewWriterSize(io.MultiWriter(data, hasher), 256<<10)
		n, err := io.Copy(bw, r)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
		}
		size = n
		copy(h[:], hasher.Sum(nil))
		if size > GroupSize {
			if ob, err = os.CreateTemp(tmp, "outboard-*"); err != nil {
				return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
			}
			root, err := writeOutboard(ob, bufio.NewReaderSize(io.NewSectionReader(data, 0, size), 256<<10), size)
			if err != nil {
				return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
			}
			if root != h {
				return Hash{}, nil, errors.New("fs: import: the file changed while it was read")
			}
		}
	} else if size <= GroupSize {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
		}
		if _, err := data.Write(buf); err != nil {
			return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
		}
		h = Sum(buf)
	} else {
		// Known length: hash, build the outboard and write in one pass.
		if ob, err = os.CreateTemp(tmp, "outboard-*"); err != nil {
			return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
		}
		bw := bufio.NewWriterSize(data, 256<<10)
		h, err = writeOutboard(ob, io.TeeReader(r, bw), size)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
		}
	}
	if err := data.Sync(); err != nil {
		return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
	}
	if ob != nil {
		if err := ob.Sync(); err != nil {
			return Hash{}, nil, fmt.Errorf("fs: import: %w", err)
		}
	}
	pin, err := s.commit(h, data, ob)
	if err != nil {
		return Hash{}, nil, err
	}
	return h, pin, nil
}

// ImportFile imports the file at path.
func (s *Store) ImportFile(ctx context.Context, path string) (Hash, *TempPin, error) {
	f, err := os.Open(path)
	if err != nil {
		return Hash{}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Hash{}, nil, err
	}
	size := fi.Size()
	if !fi.Mode().IsRegular() {
		size = -1
	}
	return s.Import(ctx, f, size)
}

// writeOutboard writes the bao outboard of the size bytes of r into ob and returns the
// root hash.
func writeOutboard(ob *os.File, r io.Reader, size int64) (Hash, error) {
	total := int64(bao.EncodedSize(int(size), groupLog, true))
	pc := &pageCache{f: ob, size: total, pages: map[int64]*page{}, flushed: map[int64]bool{}}
	root, err := bao.Encode(pc, r, size, groupLog, true)
	if err != nil {
		return Hash{}, err
	}
	if err := pc.flush(); err != nil {
		return Hash{}, err
	}
	return Hash(root), nil
}

// pageCache collects bao.Encode's many 32-byte WriteAt calls into page writes, with a
// fixed number of pages in memory.
type pageCache struct {
	f       *os.File
	size    int64
	pages   map[int64]*page
	flushed map[int64]bool
	tick    int64
}

type page struct {
	b    [pageSize]byte
	used int64
}

const (
	pageSize  = 16 << 10
	pageLimit = 64
)

func (c *pageCache) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 {
		idx := off / pageSize
		pg, err := c.page(idx)
		if err != nil {
			return n, err
		}
		m := copy(pg.b[off%pageSize:], p)
		n += m
		p = p[m:]
		off += int64(m)
	}
	return n, nil
}

func (c *pageCache) page(idx int64) (*page, error) {
	c.tick++
	if pg, ok := c.pages[idx]; ok {
		pg.used = c.tick
		return pg, nil
	}
	if len(c.pages) >= pageLimit {
		oldest := int64(-1)
		for i, pg := range c.pages {
			if oldest < 0 || pg.used < c.pages[oldest].used {
				oldest = i
			}
		}
		if err := c.write(oldest); err != nil {
			return nil, err
		}
		delete(c.pages, oldest)
	}
	pg := &page{used: c.tick}
	if c.flushed[idx] {
		if _, err := c.f.ReadAt(pg.b[:c.extent(idx)], idx*pageSize); err != nil {
			return nil, err
		}
	}
	c.pages[idx] = pg
	return pg, nil
}

func (c *pageCache) extent(idx int64) int64 { return min(pageSize, c.size-idx*pageSize) }

func (c *pageCache) write(idx int64) error {
	c.flushed[idx] = true
	_, err := c.f.WriteAt(c.pages[idx].b[:c.extent(idx)], idx*pageSize)
	return err
}

func (c *pageCache) flush() error {
	idxs := make([]int64, 0, len(c.pages))
	for i := range c.pages {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	for _, i := range idxs {
		if err := c.write(i); err != nil {
			return err
		}
	}
	clear(c.pages)
	return nil
}

// commit moves an import's files into place and pins the blob.
func (s *Store) commit(h Hash, data, ob *os.File) (*TempPin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil, fmt.Errorf("%w: import not committed", ErrStoreClosed)
	}
	pin := s.pinLocked(h)
	dst := s.dataPath(h)
	fail := func(err error) (*TempPin, error) {
		if s.pins[h]--; s.pins[h] <= 0 {
			delete(s.pins, h)
		}
		return nil, fmt.Errorf("fs: import: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fail(err)
	}
	_, err := os.Stat(dst)
	exists := err == nil
	if ob != nil {
		if _, err := os.Stat(s.outboardPath(h)); err != nil || !exists {
			if err := os.Rename(ob.Name(), s.outboardPath(h)); err != nil {
				return fail(err)
			}
		}
	}
	if !exists {
		if err := os.Rename(data.Name(), dst); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fail(err)
	}
	return pin, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// --- tags ---

// Tag is a named pin: GC keeps what tags reach.
type Tag struct {
	Name string `json:"name"`
	HashAndFormat
}

func (s *Store) tagsPath() string { return filepath.Join(s.dir, "tags.json") }

func (s *Store) loadTags() error {
	b, err := os.ReadFile(s.tagsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fs: read tags: %w", err)
	}
	if err := json.Unmarshal(b, &s.tags); err != nil {
		return fmt.Errorf("fs: %s: %w", s.tagsPath(), err)
	}
	return nil
}

// saveTags writes tags.json atomically; s.mu is held.
func (s *Store) saveTags() error {
	b, err := json.MarshalIndent(s.tags, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "tags-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
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
	if err := os.Rename(f.Name(), s.tagsPath()); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// Tags lists the tags, sorted by name (none once the store is closed).
func (s *Store) Tags() []Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Tag, 0, len(s.tags))
	for name, hf := range s.tags {
		out = append(out, Tag{Name: name, HashAndFormat: hf})
	}
	slices.SortFunc(out, func(a, b Tag) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Tag returns the tag called name (none once the store is closed).
func (s *Store) Tag(name string) (HashAndFormat, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hf, ok := s.tags[name]
	return hf, ok
}

// SetTag points tag name at hf. The blob must be present.
func (s *Store) SetTag(name string, hf HashAndFormat) error {
	if err := ValidTagName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen("set tag " + name); err != nil {
		return err
	}
	if _, err := os.Stat(s.dataPath(hf.Hash)); err != nil {
		return fmt.Errorf("%w: blob %s", ErrNotFound, hf.Hash)
	}
	old, had := s.tags[name]
	s.tags[name] = hf
	if err := s.saveTags(); err != nil {
		if had {
			s.tags[name] = old
		} else {
			delete(s.tags, name)
		}
		return fmt.Errorf("fs: set tag: %w", err)
	}
	return nil
}

// DeleteTag removes tag name; it returns an error wrapping ErrNotFound if there is none.
func (s *Store) DeleteTag(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen("delete tag " + name); err != nil {
		return err
	}
	old, ok := s.tags[name]
	if !ok {
		return fmt.Errorf("%w: tag %q", ErrNotFound, name)
	}
	delete(s.tags, name)
	if err := s.saveTags(); err != nil {
		s.tags[name] = old
		return fmt.Errorf("fs: delete tag: %w", err)
	}
	return nil
}

// --- garbage collection ---

// GCStats says what a collection removed.
type GCStats struct {
	Kept    int   `json:"kept"`
	Removed int   `json:"removed"`
	Bytes   int64 `json:"bytes"`
}

// GC removes every blob that no tag reaches (following hash sequence and collection
// children) and no temporary pin holds. It is safe while imports run: an import pins
// its blob in the same step that makes it visible.
func (s *Store) GC(ctx context.Context) (GCStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st GCStats
	if err := s.checkOpen("collect garbage"); err != nil {
		return st, err
	}
	live := map[Hash]bool{}
	for h := range s.pins {
		live[h] = true
	}
	for _, hf := range s.tags {
		if err := s.mark(hf, live); err != nil {
			return st, err
		}
	}
	err := s.walkBlobs(func(name, path string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		hex, isOutboard := strings.CutSuffix(name, ".obao")
		h, err := ParseHash(hex)
		if err != nil {
			return nil // not ours
		}
		if live[h] {
			if !isOutboard {
				st.Kept++
			}
			return nil
		}
		if isOutboard {
			return nil // removed with its blob
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		if err := os.Remove(path + ".obao"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		st.Removed++
		st.Bytes += fi.Size()
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("fs: gc: %w", err)
	}
	return st, nil
}

// mark adds hf and its children to live.
func (s *Store) mark(hf HashAndFormat, live map[Hash]bool) error {
	live[hf.Hash] = true
	return s.children(hf, func(h Hash) error { live[h] = true; return nil })
}

// children calls f for each child of hf (none for raw blobs). A missing or malformed
// parent has no children.
func (s *Store) children(hf HashAndFormat, f func(Hash) error) error {
	if hf.Format == FormatRaw {
		return nil
	}
	file, err := os.Open(s.dataPath(hf.Hash))
	if err != nil {
		return nil
	}
	defer file.Close()
	br := bufio.NewReader(file)
	switch hf.Format {
	case FormatHashSeq:
		var h Hash
		for {
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return nil
			}
			if err := f(h); err != nil {
				return err
			}
		}
	case FormatCollection:
		err := readCollection(br, func(e Entry) error {
			if e.Kind == KindFile {
				return f(e.Hash)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrBadCollection) {
			return err
		}
	}
	return nil
}

// Children lists the children of hf: nothing for a raw blob, the hashes of a hash
// sequence, the file hashes of a collection.
func (s *Store) Children(hf HashAndFormat) ([]Hash, error) {
	if err := s.checkOpen("list children of " + hf.Hash.String()); err != nil {
		return nil, err
	}
	var out []Hash
	err := s.children(hf, func(h Hash) error { out = append(out, h); return nil })
	return out, err
}

// checkFormat checks that hf parses as its format and that every child is present. If
// pins is not nil, each child is pinned and the pin appended.
func (s *Store) checkFormat(hf HashAndFormat, pins *[]*TempPin) error {
	if hf.Format == FormatRaw {
		return nil
	}
	if hf.Format > FormatCollection {
		return fmt.Errorf("%w: unknown format %d", ErrBadRequest, hf.Format)
	}
	size, err := s.Size(hf.Hash)
	if err != nil {
		return err
	}
	if size > maxMetaSize {
		return fmt.Errorf("%w: %s of %d bytes is too large", ErrBadCollection, hf.Format, size)
	}
	if hf.Format == FormatHashSeq && size%32 != 0 {
		return fmt.Errorf("%w: hash sequence of %d bytes is not a multiple of 32", ErrBadCollection, size)
	}
	if hf.Format == FormatCollection {
		f, err := s.Open(hf.Hash)
		if err != nil {
			return err
		}
		err = readCollection(bufio.NewReader(f), func(Entry) error { return nil })
		f.Close()
		if err != nil {
			return err
		}
	}
	return s.children(hf, func(c Hash) error {
		if pins == nil {
			if !s.Has(c) {
				return fmt.Errorf("%w: child %s of %s", ErrNotFound, c, hf.Hash)
			}
			return nil
		}
		p, ok := s.Pin(c)
		if !ok {
			return fmt.Errorf("%w: child %s of %s", ErrNotFound, c, hf.Hash)
		}
		*pins = append(*pins, p)
		return nil
	})
}
