package fs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

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

// needsProof reports whether the ranges, clamped to size, leave out the last byte: then
// the encoding starts with a proof of the last group, which authenticates the size.
func needsProof(rs RangeSet, size uint64) bool {
	return size > 0 && !rs.Clamp(size).Contains(size-1)
}

// writeEncoded writes the verified-streaming response body for blob h and ranges rs
// (after the status byte): the size as 8 bytes little-endian, then, if the ranges do
// not reach the last byte, the bao slice of the last byte, then the bao slice of each
// range (clamped to the size). Every slice uses 16 KiB groups.
func (s *Store) writeEncoded(w io.Writer, h Hash, rs RangeSet) error {
	data, err := s.Open(h)
	if err != nil {
		return err
	}
	defer data.Close()
	fi, err := data.Stat()
	if err != nil {
		return err
	}
	size := uint64(fi.Size())
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], size)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	extract := func(off, n uint64) error {
		ob, err := s.outboard(h, int64(size))
		if err != nil {
			return err
		}
		defer ob.Close()
		start := off / GroupSize * GroupSize
		dr := bufio.NewReaderSize(io.NewSectionReader(data, int64(start), int64(size-start)), 256<<10)
		return bao.ExtractSlice(w, dr, bufio.NewReaderSize(ob, 64<<10), groupLog, off, n)
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

// readEncoded reads what writeEncoded wrote for blob h and ranges rs, verifies every
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
	if !s.Has(h) {
		return 0, fmt.Errorf("%w: blob %s", ErrNotFound, h)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		err := s.writeEncoded(bw, h, rs)
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
