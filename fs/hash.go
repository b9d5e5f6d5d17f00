package fs

import (
	"encoding/hex"
	"errors"
	"fmt"

	"lukechampine.com/blake3"
)

// Hash is a BLAKE3-256 digest: the name of a blob.
type Hash [32]byte

// EmptyHash is the hash of the empty blob
// (af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262).
var EmptyHash = Hash(blake3.Sum256(nil))

// Sum returns the hash of b, as b3sum prints it.
func Sum(b []byte) Hash { return Hash(blake3.Sum256(b)) }

// String is the lower-case hex form, 64 characters, as b3sum prints it.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler (the hex form).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ErrBadHash is returned for text that is not 64 hex digits.
var ErrBadHash = errors.New("fs: a hash is 64 hex digits")

// ParseHash parses the 64-digit hex form of a hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("%w: got %d characters", ErrBadHash, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: %v", ErrBadHash, err)
	}
	return h, nil
}

// Format says how a blob is interpreted when following references (for garbage
// collection, public tags and fetching a tree).
type Format uint8

const (
	// FormatRaw is an opaque blob with no children.
	FormatRaw Format = 0
	// FormatHashSeq is a blob of concatenated 32-byte hashes, each a child.
	FormatHashSeq Format = 1
	// FormatCollection is a named collection (see [Collection]); its files are children.
	FormatCollection Format = 2
)

func (f Format) String() string {
	switch f {
	case FormatRaw:
		return "raw"
	case FormatHashSeq:
		return "hashseq"
	case FormatCollection:
		return "collection"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// MarshalText implements encoding.TextMarshaler.
func (f Format) MarshalText() ([]byte, error) {
	if f > FormatCollection {
		return nil, fmt.Errorf("fs: unknown format %d", f)
	}
	return []byte(f.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *Format) UnmarshalText(b []byte) error {
	p, err := ParseFormat(string(b))
	if err == nil {
		*f = p
	}
	return err
}

// ParseFormat parses "raw", "hashseq" or "collection".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "raw":
		return FormatRaw, nil
	case "hashseq":
		return FormatHashSeq, nil
	case "collection":
		return FormatCollection, nil
	}
	return 0, fmt.Errorf("fs: format %q: want raw, hashseq or collection", s)
}

// HashAndFormat names a blob and how to read it.
type HashAndFormat struct {
	Hash   Hash   `json:"hash"`
	Format Format `json:"format"`
}
