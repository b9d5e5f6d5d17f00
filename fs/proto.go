package fs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// ALPN is the protocol name the fs service is served on.
const ALPN = "alknet/fs"

// Op is a request type; each stream carries exactly one request.
type Op uint8

// Request types. The framing is documented in docs/fs-protocol.md.
const (
	OpGet       Op = 1 // one blob, by ranges
	OpGetMany   Op = 2 // several blobs, each by the same ranges
	OpStat      Op = 3 // whether a blob is present, and its size
	OpPut       Op = 4 // upload blobs and collections (scope fs:write)
	OpTagList   Op = 5 // list tags
	OpTagSet    Op = 6 // set a tag (scope fs:write)
	OpTagDelete Op = 7 // delete a tag (scope fs:write)
	OpGC        Op = 8 // collect garbage (scope admin)
)

func (o Op) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpGetMany:
		return "get-many"
	case OpStat:
		return "stat"
	case OpPut:
		return "put"
	case OpTagList:
		return "tag-list"
	case OpTagSet:
		return "tag-set"
	case OpTagDelete:
		return "tag-delete"
	case OpGC:
		return "gc"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Limits of a request.
const (
	// MaxGetMany bounds the hashes of one get-many request.
	MaxGetMany = 4096
	// MaxTagName bounds a tag name, in bytes.
	MaxTagName = 255
	// maxMessage bounds an error message on the wire.
	maxMessage = 1024
)

// Request is one decoded request. Which fields are set depends on Op.
type Request struct {
	Op     Op
	Hash   Hash     // get, stat, tag-set
	Hashes []Hash   // get-many
	Ranges RangeSet // get, get-many
	Tag    string   // put (optional), tag-set, tag-delete
	Format Format   // tag-set
}

// ErrBadRequest is wrapped by every request decoding error.
var ErrBadRequest = errors.New("fs: bad request")

// AppendRequest appends the wire form of req to b.
func AppendRequest(b []byte, req *Request) []byte {
	b = append(b, byte(req.Op))
	switch req.Op {
	case OpGet:
		b = append(b, req.Hash[:]...)
		b = appendRanges(b, req.Ranges)
	case OpGetMany:
		b = appendUvarint(b, uint64(len(req.Hashes)))
		for _, h := range req.Hashes {
			b = append(b, h[:]...)
		}
		b = appendRanges(b, req.Ranges)
	case OpStat:
		b = append(b, req.Hash[:]...)
	case OpPut, OpTagDelete:
		b = appendString(b, req.Tag)
	case OpTagSet:
		b = appendString(b, req.Tag)
		b = append(b, req.Hash[:]...)
		b = append(b, byte(req.Format))
	}
	return b
}

// ReadRequest decodes one request from r. It reads no byte past the request, so a put's
// items can follow on the same reader. Malformed input gives an error wrapping
// [ErrBadRequest]; it never panics.
func ReadRequest(r io.ByteReader) (*Request, error) {
	req, err := readRequest(&wireReader{r: r})
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return req, nil
}

func readRequest(w *wireReader) (*Request, error) {
	op, err := w.byte()
	if err != nil {
		return nil, err
	}
	req := &Request{Op: Op(op)}
	switch req.Op {
	case OpGet:
		if req.Hash, err = w.hash(); err != nil {
			return nil, err
		}
		req.Ranges, err = readRanges(w)
	case OpGetMany:
		var n uint64
		if n, err = w.uvarint(); err != nil {
			return nil, err
		}
		if n == 0 || n > MaxGetMany {
			return nil, fmt.Errorf("get-many of %d hashes: want 1 to %d", n, MaxGetMany)
		}
		req.Hashes = make([]Hash, n)
		for i := range req.Hashes {
			if req.Hashes[i], err = w.hash(); err != nil {
				return nil, err
			}
		}
		req.Ranges, err = readRanges(w)
	case OpStat:
		req.Hash, err = w.hash()
	case OpPut:
		req.Tag, err = w.tagName(true)
	case OpTagList, OpGC:
	case OpTagSet:
		if req.Tag, err = w.tagName(false); err != nil {
			return nil, err
		}
		if req.Hash, err = w.hash(); err != nil {
			return nil, err
		}
		var f byte
		if f, err = w.byte(); err != nil {
			return nil, err
		}
		req.Format = Format(f)
		if req.Format > FormatCollection {
			return nil, fmt.Errorf("unknown format %d", f)
		}
	case OpTagDelete:
		req.Tag, err = w.tagName(false)
	default:
		return nil, fmt.Errorf("unknown request type %d", op)
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// ValidTagName checks a tag name: 1 to 255 bytes of UTF-8 without control characters.
func ValidTagName(s string) error {
	if s == "" || len(s) > MaxTagName {
		return fmt.Errorf("fs: tag name must be 1 to %d bytes", MaxTagName)
	}
	if !utf8.ValidString(s) {
		return errors.New("fs: tag name is not UTF-8")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return errors.New("fs: tag name holds a control character")
		}
	}
	return nil
}

// Status is the first byte of every response.
type Status uint8

// Response statuses. Every status but StatusOK is followed by a message.
const (
	StatusOK         Status = 0
	StatusNotFound   Status = 1
	StatusForbidden  Status = 2
	StatusBadRequest Status = 3
	StatusError      Status = 4
)

// Errors a [Client] returns for the statuses a server sends. A [*RemoteError] wraps one.
var (
	ErrNotFound  = errors.New("fs: not found")
	ErrForbidden = errors.New("fs: forbidden")
	ErrRemote    = errors.New("fs: server error")
)

// RemoteError is a refusal or failure reported by the server.
type RemoteError struct {
	Status  Status
	Message string
}

func (e *RemoteError) Error() string { return "fs: server: " + e.Message }

// Unwrap maps the status onto ErrNotFound, ErrForbidden, ErrBadRequest or ErrRemote.
func (e *RemoteError) Unwrap() error {
	switch e.Status {
	case StatusNotFound:
		return ErrNotFound
	case StatusForbidden:
		return ErrForbidden
	case StatusBadRequest:
		return ErrBadRequest
	}
	return ErrRemote
}

// put items.
const (
	itemEnd  = 0 // commit: set the tag, if any, to the last item
	itemBlob = 1 // u64 size, then bytes; format given by the next byte
	itemPin  = 2 // hash: pin a blob the server already has
)

// --- wire helpers ---

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = appendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStatus(b []byte, st Status, msg string) []byte {
	b = append(b, byte(st))
	if st != StatusOK {
		if len(msg) > maxMessage {
			msg = msg[:maxMessage]
		}
		b = appendString(b, msg)
	}
	return b
}

// wireReader reads the primitives of the protocol.
type wireReader struct {
	r io.ByteReader
}

func (w *wireReader) byte() (byte, error) { return w.r.ReadByte() }

// uvarint reads a LEB128 varint and rejects overlong (non-minimal) encodings, so every
// value has exactly one wire form.
func (w *wireReader) uvarint() (uint64, error) {
	var x uint64
	var s uint
	for i := 0; ; i++ {
		b, err := w.r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, errors.New("varint overflows 64 bits")
		}
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, errors.New("varint is not minimally encoded")
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
}

func (w *wireReader) full(p []byte) error {
	if rd, ok := w.r.(io.Reader); ok {
		_, err := io.ReadFull(rd, p)
		return err
	}
	for i := range p {
		c, err := w.r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		p[i] = c
	}
	return nil
}

func (w *wireReader) hash() (Hash, error) {
	var h Hash
	err := w.full(h[:])
	return h, err
}

func (w *wireReader) u64() (uint64, error) {
	var b [8]byte
	if err := w.full(b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (w *wireReader) str(limit int) (string, error) {
	n, err := w.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		return "", fmt.Errorf("string of %d bytes, at most %d", n, limit)
	}
	b := make([]byte, n)
	if err := w.full(b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (w *wireReader) tagName(optional bool) (string, error) {
	s, err := w.str(MaxTagName)
	if err != nil {
		return "", err
	}
	if s == "" && optional {
		return "", nil
	}
	return s, ValidTagName(s)
}

// readStatus reads a status and, unless it is OK, its message, as a *RemoteError.
func readStatus(w *wireReader) error {
	st, err := w.byte()
	if err != nil {
		return err
	}
	if Status(st) == StatusOK {
		return nil
	}
	msg, err := w.str(maxMessage)
	if err != nil {
		return err
	}
	return &RemoteError{Status: Status(st), Message: msg}
}

// newWireReader wraps r for reading responses.
func newWireReader(r io.Reader) (*wireReader, *bufio.Reader) {
	br := bufio.NewReaderSize(r, 256<<10)
	return &wireReader{r: br}, br
}
