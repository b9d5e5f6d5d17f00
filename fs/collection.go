package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

// A named collection is a directory snapshot: every file, folder and symlink under a
// root, with its path, permission bits and (for files) hash and size. Its encoding is
// canonical (entries sorted by path, minimal varints, nothing optional), so the same
// tree always encodes to the same bytes and so to the same hash:
//
//	magic     "alknet-collection/1\n"
//	count     uvarint
//	entries   count times:
//	  kind    byte: 0 file, 1 folder, 2 symlink
//	  path    uvarint length, then UTF-8 bytes: relative, "/"-separated
//	  mode    uvarint: permission bits (at most 0o777; 0 for a symlink)
//	  file:   hash (32 bytes), size (uvarint)
//	  symlink: target (uvarint length, then bytes)
//
// Timestamps and owners are not recorded. Every path's parent folder must be listed
// before it, so no entry can sit below a symlink.
const collectionMagic = "alknet-collection/1\n"

// EntryKind is the type of a collection entry.
type EntryKind uint8

// Entry kinds.
const (
	KindFile    EntryKind = 0
	KindDir     EntryKind = 1
	KindSymlink EntryKind = 2
)

func (k EntryKind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one path in a [Collection].
type Entry struct {
	Path   string      `json:"path"`
	Kind   EntryKind   `json:"kind"`
	Mode   fs.FileMode `json:"mode"`             // permission bits; 0 for a symlink
	Hash   Hash        `json:"hash,omitzero"`    // file
	Size   uint64      `json:"size,omitempty"`   // file
	Target string      `json:"target,omitempty"` // symlink
}

// Collection is a named collection: a directory tree by content.
type Collection struct {
	Entries []Entry
}

// Limits of a collection.
const (
	MaxCollectionEntries = 1 << 22
	maxPathLen           = 4096
)

// ErrBadCollection is wrapped by every error about a malformed collection.
var ErrBadCollection = errors.New("fs: bad collection")

// ErrUnsafePath is wrapped when a path or symlink would leave the target folder.
var ErrUnsafePath = errors.New("fs: path escapes the target folder")

// ValidEntryPath checks that p is a clean relative path that stays inside its root:
// no leading "/", no empty, "." or ".." element, no backslash or NUL, valid UTF-8.
func ValidEntryPath(p string) error {
	if p == "" || len(p) > maxPathLen {
		return fmt.Errorf("%w: path of %d bytes", ErrUnsafePath, len(p))
	}
	if !utf8.ValidString(p) || strings.ContainsAny(p, "\x00\\") {
		return fmt.Errorf("%w: %q holds a NUL, a backslash or bad UTF-8", ErrUnsafePath, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: %q", ErrUnsafePath, p)
		}
	}
	return nil
}

// SymlinkEscapes reports whether a symlink at linkPath with target would point outside
// the root (an absolute target, or one climbing above the root).
func SymlinkEscapes(linkPath, target string) bool {
	if target == "" || path.IsAbs(target) || strings.ContainsAny(target, "\x00\\") {
		return true
	}
	j := path.Join(path.Dir(linkPath), target)
	return j == ".." || strings.HasPrefix(j, "../")
}

// sortEntries orders entries canonically (by path bytes).
func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
}

// NewCollection sorts entries canonically and validates them.
func NewCollection(entries []Entry) (*Collection, error) {
	c := &Collection{Entries: slices.Clone(entries)}
	sortEntries(c.Entries)
	if _, err := c.MarshalBinary(); err != nil {
		return nil, err
	}
	return c, nil
}

// MarshalBinary returns the canonical encoding. Entries must already be sorted and
// valid (as NewCollection and ParseCollection leave them).
func (c *Collection) MarshalBinary() ([]byte, error) {
	v := newCollectionValidator()
	b := append([]byte(nil), collectionMagic...)
	b = appendUvarint(b, uint64(len(c.Entries)))
	for i := range c.Entries {
		e := &c.Entries[i]
		if err := v.check(e); err != nil {
			return nil, err
		}
		b = append(b, byte(e.Kind))
		b = appendString(b, e.Path)
		b = appendUvarint(b, uint64(e.Mode))
		switch e.Kind {
		case KindFile:
			b = append(b, e.Hash[:]...)
			b = appendUvarint(b, e.Size)
		case KindSymlink:
			b = appendString(b, e.Target)
		}
	}
	return b, nil
}

// Hash is the hash of the canonical encoding.
func (c *Collection) Hash() (Hash, error) {
	b, err := c.MarshalBinary()
	if err != nil {
		return Hash{}, err
	}
	return Sum(b), nil
}

// Children lists the files' hashes, once each, in entry order.
func (c *Collection) Children() []Hash {
	seen := map[Hash]bool{}
	var out []Hash
	for _, e := range c.Entries {
		if e.Kind == KindFile && !seen[e.Hash] {
			seen[e.Hash] = true
			out = append(out, e.Hash)
		}
	}
	return out
}

// TotalSize is the sum of the file sizes.
func (c *Collection) TotalSize() uint64 {
	var n uint64
	for _, e := range c.Entries {
		n += e.Size
	}
	return n
}

type collectionValidator struct {
	prev string
	dirs map[string]bool
	n    int
}

func newCollectionValidator() *collectionValidator {
	return &collectionValidator{dirs: map[string]bool{}}
}

func (v *collectionValidator) check(e *Entry) error {
	if err := ValidEntryPath(e.Path); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCollection, err)
	}
	if v.n > 0 && e.Path <= v.prev {
		return fmt.Errorf("%w: %q is out of order or repeated", ErrBadCollection, e.Path)
	}
	v.n++
	v.prev = e.Path
	if dir := path.Dir(e.Path); dir != "." && !v.dirs[dir] {
		return fmt.Errorf("%w: %q: its folder %q is not listed before it", ErrBadCollection, e.Path, dir)
	}
	switch e.Kind {
	case KindFile:
		if e.Mode&^0o777 != 0 {
			return fmt.Errorf("%w: %q: mode %o", ErrBadCollection, e.Path, e.Mode)
		}
	case KindDir:
		if e.Mode&^0o777 != 0 {
			return fmt.Errorf("%w: %q: mode %o", ErrBadCollection, e.Path, e.Mode)
		}
		v.dirs[e.Path] = true
	case KindSymlink:
		if e.Mode != 0 {
			return fmt.Errorf("%w: %q: a symlink's mode must be 0", ErrBadCollection, e.Path)
		}
		if e.Target == "" || len(e.Target) > maxPathLen || strings.ContainsRune(e.Target, 0) {
			return fmt.Errorf("%w: %q: bad symlink target", ErrBadCollection, e.Path)
		}
	default:
		return fmt.Errorf("%w: %q: unknown kind %d", ErrBadCollection, e.Path, e.Kind)
	}
	if e.Kind != KindFile && (e.Hash != Hash{} || e.Size != 0) {
		return fmt.Errorf("%w: %q: only files have a hash and size", ErrBadCollection, e.Path)
	}
	if e.Kind != KindSymlink && e.Target != "" {
		return fmt.Errorf("%w: %q: only symlinks have a target", ErrBadCollection, e.Path)
	}
	return nil
}

// ParseCollection decodes and validates a collection. It accepts only the canonical
// encoding, so equal collections have equal bytes.
func ParseCollection(b []byte) (*Collection, error) {
	c := &Collection{}
	r := bytes.NewReader(b)
	if err := readCollection(r, func(e Entry) error {
		c.Entries = append(c.Entries, e)
		return nil
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// IsCollection reports whether b starts like a collection.
func IsCollection(b []byte) bool { return bytes.HasPrefix(b, []byte(collectionMagic)) }

// readCollection decodes a collection from r entry by entry, calling f for each, and
// fails on trailing bytes.
func readCollection(r io.ByteReader, f func(Entry) error) error {
	w := &wireReader{r: r}
	bad := func(err error) error {
		if errors.Is(err, ErrBadCollection) {
			return err
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: %w", ErrBadCollection, err)
	}
	magic := make([]byte, len(collectionMagic))
	if err := w.full(magic); err != nil || string(magic) != collectionMagic {
		return fmt.Errorf("%w: no %q header", ErrBadCollection, strings.TrimSpace(collectionMagic))
	}
	n, err := w.uvarint()
	if err != nil {
		return bad(err)
	}
	if n > MaxCollectionEntries {
		return bad(fmt.Errorf("%d entries, at most %d", n, MaxCollectionEntries))
	}
	v := newCollectionValidator()
	for range n {
		var e Entry
		k, err := w.byte()
		if err != nil {
			return bad(err)
		}
		e.Kind = EntryKind(k)
		if e.Path, err = w.str(maxPathLen); err != nil {
			return bad(err)
		}
		mode, err := w.uvarint()
		if err != nil {
			return bad(err)
		}
		if mode > 0o777 {
			return bad(fmt.Errorf("%q: mode %o", e.Path, mode))
		}
		e.Mode = fs.FileMode(mode)
		switch e.Kind {
		case KindFile:
			if e.Hash, err = w.hash(); err != nil {
				return bad(err)
			}
			if e.Size, err = w.uvarint(); err != nil {
				return bad(err)
			}
		case KindSymlink:
			if e.Target, err = w.str(maxPathLen); err != nil {
				return bad(err)
			}
		}
		if err := v.check(&e); err != nil {
			return err
		}
		if err := f(e); err != nil {
			return err
		}
	}
	if _, err := r.ReadByte(); err == nil {
		return bad(errors.New("trailing bytes"))
	}
	return nil
}

// HashSeq is a hash sequence: a blob of concatenated 32-byte hashes.
type HashSeq []Hash

// Bytes is the encoding: the hashes, concatenated.
func (s HashSeq) Bytes() []byte {
	b := make([]byte, 0, 32*len(s))
	for _, h := range s {
		b = append(b, h[:]...)
	}
	return b
}

// ParseHashSeq decodes a hash sequence; its length must be a multiple of 32.
func ParseHashSeq(b []byte) (HashSeq, error) {
	if len(b)%32 != 0 {
		return nil, fmt.Errorf("fs: hash sequence of %d bytes is not a multiple of 32", len(b))
	}
	s := make(HashSeq, len(b)/32)
	for i := range s {
		copy(s[i][:], b[32*i:])
	}
	return s, nil
}
