package fs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"lukechampine.com/blake3/bao"
)

// VerifyError reports data that does not match its hash. Offset is the first byte
// that could not be verified (the start of the failing 16 KiB group, or of the range);
// nothing from Offset on reached the output.
type VerifyError struct {
	Hash   Hash
	Offset uint64
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("fs: blob %s failed verification at byte offset %d (chunk group %d): the data is corrupt, on disk or in transit",
		e.Hash, e.Offset, e.Offset/GroupSize)
}

// ErrVerify is wrapped by every *VerifyError, for errors.Is.
var ErrVerify = errors.New("fs: verification failed")

// Is makes errors.Is(err, ErrVerify) true.
func (e *VerifyError) Is(target error) bool { return target == ErrVerify }

// ErrCorrupt is wrapped by the error about a blob whose files in the store do not fit
// together: a missing or mismatched outboard, or a data file whose size differs from
// the size its outboard records. It is found before any byte of the blob is sent; a
// server reports it as a [*RemoteError] with [StatusError] naming the blob and the
// problem.
var ErrCorrupt = errors.New("fs: corrupt blob in store")

// needsProof reports whether the ranges, clamped to size, leave out the last byte: then
// the encoding starts with a proof of the last group, which authenticates the size.
func needsProof(rs RangeSet, size uint64) bool {
	return size > 0 && !rs.Clamp(size).Contains(size-1)
}

// blobFiles is a blob's data file and, for a blob over GroupSize, its outboard,
// checked to fit together.
type blobFiles struct {
	data *os.File
	ob   *os.File // nil for a blob of at most GroupSize bytes
	size uint64
}

func (b *blobFiles) Close() {
	b.data.Close()
	if b.ob != nil {
		b.ob.Close()
	}
}

// outboard returns a reader of the outboard from its start: the file, or for a small
// blob just the 8-byte size header (the whole outboard of a single group).
func (b *blobFiles) outboard() io.Reader {
	if b.ob == nil {
		var hdr [8]byte
		binary.LittleEndian.PutUint64(hdr[:], b.size)
		return bytes.NewReader(hdr[:])
	}
	return io.NewSectionReader(b.ob, 0, int64(bao.EncodedSize(int(b.size), groupLog, true)))
}

// openBlob opens blob h and checks, before anything is sent, that its files fit
// together: a blob over GroupSize has an outboard, the outboard records the data
// file's size and is as long as that size needs. A mismatch is an error wrapping
// ErrCorrupt that names the blob and the problem; a missing blob, ErrNotFound.
func (s *Store) openBlob(h Hash) (*blobFiles, error) {
	data, err := s.Open(h)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*blobFiles, error) {
		data.Close()
		return nil, err
	}
	corrupt := func(format string, args ...any) (*blobFiles, error) {
		return fail(fmt.Errorf("%w: blob %s: %s", ErrCorrupt, h, fmt.Sprintf(format, args...)))
	}
	fi, err := data.Stat()
	if err != nil {
		return fail(fmt.Errorf("fs: blob %s: %w", h, err))
	}
	size := fi.Size()
	ob, err := os.Open(s.outboardPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		if size <= GroupSize {
			return &blobFiles{data: data, size: uint64(size)}, nil
		}
		if !s.Has(h) {
			// GC removed the blob (data, then outboard) since it was opened.
			return fail(fmt.Errorf("%w: blob %s", ErrNotFound, h))
		}
		return corrupt("its data file is %d bytes but its outboard file is missing (every blob over %d bytes has one)", size, GroupSize)
	}
	if err != nil {
		return fail(fmt.Errorf("fs: outboard of blob %s: %w", h, err))
	}
	b := &blobFiles{data: data, ob: ob, size: uint64(size)}
	ofi, err := ob.Stat()
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("fs: outboard of blob %s: %w", h, err)
	}
	var hdr [8]byte
	if _, err := ob.ReadAt(hdr[:], 0); err != nil {
		b.Close()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: blob %s: its outboard file is %d bytes, too short to record a size", ErrCorrupt, h, ofi.Size())
		}
		return nil, fmt.Errorf("fs: outboard of blob %s: %w", h, err)
	}
	recorded := binary.LittleEndian.Uint64(hdr[:])
	var problem string
	switch want := int64(bao.EncodedSize(int(min(recorded, 1<<62)), groupLog, true)); {
	case recorded != uint64(size):
		problem = fmt.Sprintf("its data file is %d bytes but its outboard records %d", size, recorded)
	case size <= GroupSize:
		problem = fmt.Sprintf("it has an outboard file though its data file is only %d bytes", size)
	case ofi.Size() != want:
		problem = fmt.Sprintf("its outboard file is %d bytes, not the %d a blob of %d bytes needs", ofi.Size(), want, size)
	default:
		return b, nil
	}
	b.Close()
	return nil, fmt.Errorf("%w: blob %s: %s", ErrCorrupt, h, problem)
}

// writeEncoded opens blob h and writes its encoding for ranges rs (see encodeBlob).
func (s *Store) writeEncoded(w io.Writer, h Hash, rs RangeSet) error {
	b, err := s.openBlob(h)
	if err != nil {
		return err
	}
	defer b.Close()
	return encodeBlob(w, b, rs)
}

// encodeBlob writes the verified-streaming response body for blob b and ranges rs
// (after the status byte): the size as 8 bytes little-endian, then, if the ranges do
// not reach the last byte, the bao slice of the last byte, then the bao slice of each
// range (clamped to the size). Every slice uses 16 KiB groups.
func encodeBlob(w io.Writer, b *blobFiles, rs RangeSet) error {
	size := b.size
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], size)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	extract := func(off, n uint64) error {
		start := off / GroupSize * GroupSize
		dr := bufio.NewReaderSize(io.NewSectionReader(b.data, int64(start), int64(size-start)), 256<<10)
		return bao.ExtractSlice(w, dr, bufio.NewReaderSize(b.outboard(), 64<<10), groupLog, off, n)
	}
	if needsProof(rs, size) {
		if err := extract(size-1, 1); err != nil {
			return err
		}
	}
	for _, r := range rs.Clamp(size) {
		if err := extract(r.Start, r.Len()); err != nil {
			return err
		}
	}
	return nil
}

// offsetWriter hands verified bytes to a callback with their offset in the blob.
type offsetWriter struct {
	off uint64
	fn  func(off uint64, p []byte) error
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	if err := o.fn(o.off, p); err != nil {
		return 0, err
	}
	o.off += uint64(len(p))
	return len(p), nil
}

// errCallback marks errors returned by the output callback, so they are not mistaken
// for corrupt data.
type errCallback struct{ err error }

func (e errCallback) Error() string { return e.err.Error() }

// readEncoded reads what encodeBlob wrote for blob h and ranges rs, verifies every
// group against h before handing it to out, and returns the blob's size. out sees the
// verified bytes of each range in order, with their offsets. A mismatch returns a
// *VerifyError; out never sees a byte that was not verified.
func readEncoded(br *bufio.Reader, h Hash, rs RangeSet, out func(off uint64, p []byte) error) (uint64, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, fmt.Errorf("fs: read blob %s: %w", h, unexpected(err))
	}
	size := binary.LittleEndian.Uint64(hdr[:])
	if size == 0 {
		if h != EmptyHash {
			return 0, &VerifyError{Hash: h}
		}
		return 0, nil
	}
	decode := func(off, n uint64, dst io.Writer, counted *offsetWriter) error {
		// Every slice repeats the size; it must agree.
		if p, err := br.Peek(8); err != nil {
			return fmt.Errorf("fs: read blob %s: %w", h, unexpected(err))
		} else if binary.LittleEndian.Uint64(p) != size {
			return &VerifyError{Hash: h, Offset: off}
		}
		ok, err := bao.DecodeSlice(dst, br, groupLog, off, n, h)
		var cb errCallback
		if errors.As(err, &cb) {
			return cb.err
		}
		if err != nil {
			if counted != nil {
				off = counted.off
			}
			return fmt.Errorf("fs: read blob %s at byte offset %d: %w", h, off, unexpected(err))
		}
		if !ok {
			if counted != nil {
				off = counted.off
			}
			return &VerifyError{Hash: h, Offset: off}
		}
		return nil
	}
	if needsProof(rs, size) {
		if err := decode(size-1, 1, io.Discard, nil); err != nil {
			return 0, err
		}
	}
	for _, r := range rs.Clamp(size) {
		ow := &offsetWriter{off: r.Start, fn: func(off uint64, p []byte) error {
			if err := out(off, p); err != nil {
				return errCallback{err}
			}
			return nil
		}}
		if err := decode(r.Start, r.Len(), ow, ow); err != nil {
			return size, err
		}
	}
	return size, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Verify reads blob h through the same verification a client does and reports the
// first corrupt byte, as a *VerifyError.
func (s *Store) Verify(h Hash) error {
	_, err := s.getLocal(h, All(), func(uint64, []byte) error { return nil })
	return err
}

// getLocal streams blob h from the store through the verifier.
func (s *Store) getLocal(h Hash, rs RangeSet, out func(off uint64, p []byte) error) (uint64, error) {
	if err := s.checkOpen("read blob " + h.String()); err != nil {
		return 0, err
	}
	b, err := s.openBlob(h)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		err := encodeBlob(bw, b, rs)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	size, err := readEncoded(bufio.NewReaderSize(pr, 256<<10), h, rs, out)
	pr.CloseWithError(errors.New("fs: reader done"))
	werr := <-done
	if err == nil && werr != nil {
		err = werr
	}
	return size, err
}

// Get writes the verified bytes of blob h selected by rs to w, and returns the blob's
// size. Corrupt data on disk stops it with a *VerifyError before the corrupt group.
func (s *Store) Get(h Hash, rs RangeSet, w io.Writer) (uint64, error) {
	return s.getLocal(h, rs, func(_ uint64, p []byte) error {
		_, err := w.Write(p)
		return err
	})
}
