package fs

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/alkdev/alknet/core"
)

// Source gives verified blob data. [*Client] (a remote store) and [*Store] (a local
// one) are both Sources, so everything built on Fetch works on either.
type Source interface {
	// Fetch streams the bytes of blob h selected by rs to out, in order, each with its
	// offset, and returns the blob's size. Every byte is verified against h before out
	// sees it; corrupt data ends the fetch with a *VerifyError.
	Fetch(ctx context.Context, h Hash, rs RangeSet, out func(off uint64, p []byte) error) (uint64, error)
}

// Fetch implements [Source] over the local store, verifying the data on disk.
func (s *Store) Fetch(ctx context.Context, h Hash, rs RangeSet, out func(off uint64, p []byte) error) (uint64, error) {
	return s.getLocal(h, rs, func(off uint64, p []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return out(off, p)
	})
}

// Client talks to an fs server. It opens one stream per request: on QUIC all requests
// share one connection; on a single-stream transport (TLS over TCP) each request dials
// a new connection. A Client is safe for concurrent use.
type Client struct {
	dial func(ctx context.Context) (core.Conn, error) // nil for NewConnClient

	mu   sync.Mutex
	conn core.Conn
}

// NewClient returns a client that connects with dial, for example
//
//	fs.NewClient(func(ctx context.Context) (core.Conn, error) { return d.Dial(ctx, addr, fs.ALPN) })
//
// dial must not be nil (NewClient panics).
func NewClient(dial func(ctx context.Context) (core.Conn, error)) *Client {
	if dial == nil {
		panic("fs: NewClient: nil dial function")
	}
	return &Client{dial: dial}
}

// NewConnClient returns a client over an open connection; when the connection cannot
// open another stream, requests fail (the client never closes c except in
// [Client.Close]). c must not be nil (NewConnClient panics).
func NewConnClient(c core.Conn) *Client {
	if c == nil {
		panic("fs: NewConnClient: nil connection")
	}
	return &Client{conn: c}
}

// Close closes the client's connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close(core.CodeOK, "")
	c.conn = nil
	return err
}

// stream opens a stream for one request, on the current connection while it can
// open more (QUIC, pipes), else on a new one (a single-stream transport such as TLS
// over TCP, whose connection ends with its stream).
//
// A done ctx fails with ctx's error and changes nothing: the connection is only
// dropped (and redialed) when it fails on its own.
func (c *Client) stream(ctx context.Context) (core.Stream, error) {
	if err := ctx.Err(); err != nil {
		// Checked first: a single-stream connection would hand out its one stream
		// whatever ctx says.
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		s, err := c.conn.OpenStream(ctx)
		if err == nil {
			return s, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if c.dial == nil {
			// The caller's connection: report, never close or forget it.
			return nil, fmt.Errorf("fs: open stream: %w", err)
		}
		if !errors.Is(err, core.ErrSingleStream) {
			c.conn.Close(core.CodeOK, "")
		}
		c.conn = nil
	}
	if c.dial == nil {
		return nil, fmt.Errorf("fs: open stream: %w", core.ErrConnClosed)
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	s, err := conn.OpenStream(ctx)
	if err != nil {
		conn.Close(core.CodeOK, "")
		return nil, ctxErr(ctx, err)
	}
	c.conn = conn
	return s, nil
}

// call sends req and returns the stream and a reader for the response.
func (c *Client) call(ctx context.Context, req *Request) (core.Stream, *wireReader, *bufio.Reader, error) {
	s, err := c.stream(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	s = &callStream{Stream: s, stop: stop}
	if _, err := s.Write(AppendRequest(nil, req)); err != nil {
		s.Close()
		return nil, nil, nil, ctxErr(ctx, err)
	}
	if req.Op != OpPut {
		s.CloseWrite()
	}
	w, br := newWireReader(s)
	return s, w, br, nil
}

// callStream stops watching the request's context when it is closed.
type callStream struct {
	core.Stream
	stop func() bool
}

func (s *callStream) Close() error {
	s.stop()
	return s.Stream.Close()
}

// ctxErr prefers the context's error over the stream error it caused.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && err != nil {
		return cerr
	}
	return err
}

// Fetch implements [Source]: it gets blob h by ranges and verifies every group.
func (c *Client) Fetch(ctx context.Context, h Hash, rs RangeSet, out func(off uint64, p []byte) error) (uint64, error) {
	s, w, br, err := c.call(ctx, &Request{Op: OpGet, Hash: h, Ranges: rs})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if err := readStatus(w); err != nil {
		return 0, ctxErr(ctx, unexpected(err))
	}
	size, err := readEncoded(br, h, rs, func(off uint64, p []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return out(off, p)
	})
	return size, ctxErr(ctx, err)
}

// FetchMany gets several blobs, each by the same ranges, on one stream. out is told the
// index of the blob (in hashes) each verified piece belongs to. The first blob that is
// missing or refused ends it with an error.
func (c *Client) FetchMany(ctx context.Context, hashes []Hash, rs RangeSet, out func(i int, off uint64, p []byte) error) error {
	s, w, br, err := c.call(ctx, &Request{Op: OpGetMany, Hashes: hashes, Ranges: rs})
	if err != nil {
		return err
	}
	defer s.Close()
	for i, h := range hashes {
		if err := readStatus(w); err != nil {
			return ctxErr(ctx, fmt.Errorf("blob %s: %w", h, unexpected(err)))
		}
		_, err := readEncoded(br, h, rs, func(off uint64, p []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return out(i, off, p)
		})
		if err != nil {
			return ctxErr(ctx, err)
		}
	}
	return nil
}

// Stat reports whether the server has blob h, and its size. The size is the server's
// claim; [Client.Fetch] verifies it.
func (c *Client) Stat(ctx context.Context, h Hash) (size int64, ok bool, err error) {
	s, w, _, err := c.call(ctx, &Request{Op: OpStat, Hash: h})
	if err != nil {
		return 0, false, err
	}
	defer s.Close()
	if err := readStatus(w); err != nil {
		return 0, false, ctxErr(ctx, unexpected(err))
	}
	present, err := w.byte()
	if err != nil {
		return 0, false, ctxErr(ctx, unexpected(err))
	}
	n, err := w.u64()
	return int64(n), present == 1, ctxErr(ctx, unexpected(err))
}

// Has reports whether the server has blob h.
func (c *Client) Has(ctx context.Context, h Hash) (bool, error) {
	_, ok, err := c.Stat(ctx, h)
	return ok, err
}

// Tags lists the server's tags (only the public ones for a peer without fs:read).
func (c *Client) Tags(ctx context.Context) ([]Tag, error) {
	s, w, _, err := c.call(ctx, &Request{Op: OpTagList})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := readStatus(w); err != nil {
		return nil, ctxErr(ctx, unexpected(err))
	}
	n, err := w.uvarint()
	if err != nil {
		return nil, ctxErr(ctx, unexpected(err))
	}
	var tags []Tag
	for range n {
		var t Tag
		if t.Name, err = w.str(MaxTagName); err != nil {
			return nil, ctxErr(ctx, unexpected(err))
		}
		if t.Hash, err = w.hash(); err != nil {
			return nil, ctxErr(ctx, unexpected(err))
		}
		f, err := w.byte()
		if err != nil {
			return nil, ctxErr(ctx, unexpected(err))
		}
		t.Format = Format(f)
		tags = append(tags, t)
	}
	return tags, nil
}

func (c *Client) simple(ctx context.Context, req *Request) error {
	s, w, _, err := c.call(ctx, req)
	if err != nil {
		return err
	}
	defer s.Close()
	return ctxErr(ctx, unexpected(readStatus(w)))
}

// SetTag points tag name at hf on the server (scopes fs:write and fs:read: a tag names a
// stored blob, and a public tag publishes it; a peer with only fs:write tags what it
// uploads with [Client.NewUpload]).
func (c *Client) SetTag(ctx context.Context, name string, hf HashAndFormat) error {
	if err := ValidTagName(name); err != nil {
		return err
	}
	return c.simple(ctx, &Request{Op: OpTagSet, Tag: name, Hash: hf.Hash, Format: hf.Format})
}

// DeleteTag removes a tag on the server (scope fs:write, also for a public tag).
func (c *Client) DeleteTag(ctx context.Context, name string) error {
	if err := ValidTagName(name); err != nil {
		return err
	}
	return c.simple(ctx, &Request{Op: OpTagDelete, Tag: name})
}

// GC runs garbage collection on the server (scope admin).
func (c *Client) GC(ctx context.Context) (GCStats, error) {
	var st GCStats
	s, w, _, err := c.call(ctx, &Request{Op: OpGC})
	if err != nil {
		return st, err
	}
	defer s.Close()
	if err := readStatus(w); err != nil {
		return st, ctxErr(ctx, unexpected(err))
	}
	var v [3]uint64
	for i := range v {
		if v[i], err = w.uvarint(); err != nil {
			return st, ctxErr(ctx, unexpected(err))
		}
	}
	return GCStats{Kept: int(v[0]), Removed: int(v[1]), Bytes: int64(v[2])}, nil
}

// Sink receives uploads: an [*Upload] to a server or a [*Batch] into a local store.
// What it receives stays pinned until it is committed or closed.
type Sink interface {
	// Have pins blob h if the other side already has it, and reports whether it did. A
	// server answers false to a peer without fs:read, which then sends the blob.
	Have(h Hash) (bool, error)
	// Add stores the next size bytes of r as a blob of the given format.
	Add(r io.Reader, size int64, format Format) (Hash, error)
}

// Upload is one put request: blobs and collections go up on one stream and stay pinned
// on the server until Commit, which can tag the last one.
type Upload struct {
	ctx context.Context
	s   core.Stream
	w   *bufio.Writer
	r   *wireReader
	err error
}

// NewUpload starts a put (scope fs:write). If tag is not empty, Commit points it at the
// last blob added; a public tag needs fs:read as well (it publishes the upload). Without
// fs:read, [Upload.Have] is always false and a hash sequence or collection may list only
// blobs added to the same upload.
func (c *Client) NewUpload(ctx context.Context, tag string) (*Upload, error) {
	if tag != "" {
		if err := ValidTagName(tag); err != nil {
			return nil, err
		}
	}
	s, w, _, err := c.call(ctx, &Request{Op: OpPut, Tag: tag})
	if err != nil {
		return nil, err
	}
	if err := readStatus(w); err != nil {
		s.Close()
		return nil, ctxErr(ctx, unexpected(err))
	}
	return &Upload{ctx: ctx, s: s, w: bufio.NewWriterSize(s, 256<<10), r: w}, nil
}

func (u *Upload) fail(err error) error {
	err = ctxErr(u.ctx, unexpected(err))
	if u.err == nil {
		u.err = err
		u.s.Close()
	}
	return err
}

// Have implements [Sink]. It is always false for a peer without fs:read, so the
// answer does not tell such a peer what the server holds.
func (u *Upload) Have(h Hash) (bool, error) {
	if u.err != nil {
		return false, u.err
	}
	u.w.WriteByte(itemPin)
	u.w.Write(h[:])
	if err := u.w.Flush(); err != nil {
		return false, u.fail(err)
	}
	if err := readStatus(u.r); err != nil {
		return false, u.fail(err)
	}
	b, err := u.r.byte()
	if err != nil {
		return false, u.fail(err)
	}
	return b == 1, nil
}

// Add implements [Sink]: it sends exactly size bytes of r.
func (u *Upload) Add(r io.Reader, size int64, format Format) (Hash, error) {
	if u.err != nil {
		return Hash{}, u.err
	}
	if size < 0 {
		return Hash{}, errors.New("fs: upload needs the size up front")
	}
	if r == nil {
		return Hash{}, errors.New("fs: upload: nil reader")
	}
	var hdr [10]byte
	hdr[0] = itemBlob
	hdr[1] = byte(format)
	binary.LittleEndian.PutUint64(hdr[2:], uint64(size))
	u.w.Write(hdr[:])
	n, err := io.Copy(u.w, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("fs: upload: source ended after %d of %d bytes", n, size)
	}
	if err != nil {
		return Hash{}, u.fail(err)
	}
	if err := u.w.Flush(); err != nil {
		return Hash{}, u.fail(err)
	}
	if err := readStatus(u.r); err != nil {
		return Hash{}, u.fail(err)
	}
	h, err := u.r.hash()
	if err != nil {
		return Hash{}, u.fail(err)
	}
	return h, nil
}

// Commit ends the upload, setting its tag if it has one, and releases the server's
// pins.
func (u *Upload) Commit() error {
	if u.err != nil {
		return u.err
	}
	defer u.s.Close()
	u.w.WriteByte(itemEnd)
	if err := u.w.Flush(); err != nil {
		return u.fail(err)
	}
	u.s.CloseWrite()
	if err := readStatus(u.r); err != nil {
		return u.fail(err)
	}
	u.err = errors.New("fs: upload committed")
	return nil
}

// Close abandons the upload if it was not committed; the server drops its pins.
func (u *Upload) Close() error {
	if u.err == nil {
		u.err = errors.New("fs: upload closed")
	}
	return u.s.Close()
}

// Batch is a local [Sink]: imports into a store, pinned until Close.
type Batch struct {
	ctx  context.Context
	s    *Store
	pins []*TempPin
}

// NewBatch starts a batch of imports.
func (s *Store) NewBatch(ctx context.Context) *Batch { return &Batch{ctx: ctx, s: s} }

// Have implements [Sink].
func (b *Batch) Have(h Hash) (bool, error) {
	p, ok := b.s.Pin(h)
	if ok {
		b.pins = append(b.pins, p)
	}
	return ok, nil
}

// Add implements [Sink].
func (b *Batch) Add(r io.Reader, size int64, format Format) (Hash, error) {
	h, pin, err := b.s.Import(b.ctx, r, size)
	if err != nil {
		return Hash{}, err
	}
	b.pins = append(b.pins, pin)
	if err := b.s.checkFormat(HashAndFormat{h, format}, &b.pins); err != nil {
		return Hash{}, err
	}
	return h, nil
}

// Close releases the batch's pins.
func (b *Batch) Close() error {
	for _, p := range b.pins {
		p.Release()
	}
	b.pins = nil
	return nil
}
