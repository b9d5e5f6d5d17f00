package fs

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/core"
)

// Config is the [fs] section of the node's config. Zero values mean the defaults.
type Config struct {
	// Store is the store's folder, relative to the data folder. Default "blobs".
	Store string `toml:"store"`
	// PublicTags names tags anyone may fetch (with their collection or hash sequence
	// children) without the fs:read scope. Default none.
	PublicTags []string `toml:"public_tags"`
}

// StoreDir returns the store folder, "blobs" by default.
func (c Config) StoreDir() string {
	if c.Store == "" {
		return "blobs"
	}
	return c.Store
}

// requestTimeout bounds how long a client may take to send its request.
const requestTimeout = 30 * time.Second

// Server serves a [Store] on the alknet/fs ALPN. It is a [core.Handler]: each stream of
// a connection carries one request, so it runs unchanged over QUIC (many streams per
// connection) and TLS over TCP (one).
//
// Access: get, get-many, stat and tag-list need scope fs:read, except for blobs a
// public tag reaches (anonymous peers see only public tags); put and tag-delete need
// fs:write; gc needs admin. Everything else is refused.
//
// No peer can grant what it does not hold. Naming a stored blob by its hash (tag-set,
// a put's pin item, a hash sequence or collection listing blobs not uploaded with it)
// needs fs:read as well as fs:write: otherwise a peer with only fs:write could point a
// public tag at any blob whose hash it knows and so publish it, or learn from the
// answers which blobs the store holds. A put whose tag is public (it publishes what it
// uploads) also needs fs:read. Deleting a tag, public or not, only takes away, so
// fs:write suffices. A peer without fs:read is answered "no" to every pin item, and
// its hash sequences and collections may list only blobs uploaded on the same stream.
type Server struct {
	store  *Store
	log    *slog.Logger
	public atomic.Pointer[[]string]

	mu    sync.Mutex
	reach map[HashAndFormat]map[Hash]bool // children of public tags

	// onRequest, if set (by tests), sees each request before it is served.
	onRequest func(*Request)
}

// NewServer returns a server for store. log may be nil; store may not (NewServer
// panics, so the mistake shows at startup rather than on the first request).
func NewServer(store *Store, cfg Config, log *slog.Logger) *Server {
	if store == nil {
		panic("fs: NewServer: nil store")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{store: store, log: log, reach: map[HashAndFormat]map[Hash]bool{}}
	s.SetPublicTags(cfg.PublicTags)
	return s
}

// SetPublicTags replaces the list of public tags (on a config reload).
func (s *Server) SetPublicTags(names []string) {
	names = slices.Clone(names)
	s.public.Store(&names)
}

// ServeConn serves each stream of c until c ends.
func (s *Server) ServeConn(ctx context.Context, c core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			// A panic here would kill the process: the endpoint recovers only the
			// handler's own goroutine. It ends just this stream (closed above).
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("fs: request panicked", "peer", c.Peer().Name(), "panic", r, "stack", string(debug.Stack()))
				}
			}()
			if err := s.serveStream(ctx, c, st); err != nil {
				s.log.Debug("fs: stream ended", "peer", c.Peer().Name(), "err", err)
			}
		}()
	}
}

// isPublic reports whether a public tag reaches h.
func (s *Server) isPublic(h Hash) bool {
	for _, name := range *s.public.Load() {
		hf, ok := s.store.Tag(name)
		if !ok {
			continue
		}
		if hf.Hash == h {
			return true
		}
		if hf.Format == FormatRaw {
			continue
		}
		s.mu.Lock()
		set, ok := s.reach[hf]
		s.mu.Unlock()
		if !ok {
			set = map[Hash]bool{}
			s.store.children(hf, func(c Hash) error { set[c] = true; return nil })
			s.mu.Lock()
			if len(s.reach) > 256 {
				clear(s.reach)
			}
			s.reach[hf] = set
			s.mu.Unlock()
		}
		if set[h] {
			return true
		}
	}
	return false
}

func (s *Server) publicTag(name string) bool {
	return slices.Contains(*s.public.Load(), name)
}

type streamWriter struct {
	*bufio.Writer
}

func (w streamWriter) status(st Status, msg string) error {
	_, err := w.Write(appendStatus(nil, st, msg))
	return err
}

// deny logs a refusal and returns its message, which names the missing scope. why, if
// not empty, says why the request needs it.
func (s *Server) deny(c core.Conn, op Op, scope, why string) string {
	p := c.Peer()
	s.log.Info("fs: request refused", "peer", p.Name(), "remote", p.RemoteAddr, "op", op.String(), "needs", scope)
	if why != "" {
		why = " (" + why + ")"
	}
	if p.Anonymous() {
		return fmt.Sprintf("%s needs scope %s%s; anonymous clients have none (connect with a listed key)", op, scope, why)
	}
	return fmt.Sprintf("%s needs scope %s%s, which peer %q does not hold", op, scope, why, p.Name())
}

func (s *Server) serveStream(ctx context.Context, c core.Conn, st core.Stream) error {
	st.SetReadDeadline(time.Now().Add(requestTimeout))
	br := bufio.NewReaderSize(st, 256<<10)
	w := streamWriter{bufio.NewWriterSize(st, 256<<10)}
	finish := func(err error) error {
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		st.CloseWrite()
		// Read what the client still sends (its end-of-file, on TLS its close_notify):
		// closing a TCP socket with unread data resets it, and the reset can destroy
		// response bytes the client has not read yet.
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, io.LimitReader(br, 1<<20))
		return err
	}
	req, err := ReadRequest(br)
	if err != nil {
		w.status(StatusBadRequest, err.Error())
		return finish(err)
	}
	if s.onRequest != nil {
		s.onRequest(req)
	}
	st.SetReadDeadline(time.Time{})
	peer := c.Peer()
	canRead := func(h Hash) bool { return peer.Allows(core.ScopeFSRead) || s.isPublic(h) }
	switch req.Op {
	case OpGet:
		if !canRead(req.Hash) {
			w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeFSRead, ""))
			return finish(nil)
		}
		return finish(s.sendBlob(w, req.Hash, req.Ranges))
	case OpGetMany:
		for _, h := range req.Hashes {
			if !canRead(h) {
				w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeFSRead, ""))
				continue
			}
			if err := s.sendBlob(w, h, req.Ranges); err != nil {
				return finish(err)
			}
		}
		return finish(nil)
	case OpStat:
		if !canRead(req.Hash) {
			w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeFSRead, ""))
			return finish(nil)
		}
		size, err := s.store.Size(req.Hash)
		w.status(StatusOK, "")
		var b [9]byte
		if err == nil {
			b[0] = 1
			binary.LittleEndian.PutUint64(b[1:], uint64(size))
		}
		w.Write(b[:])
		return finish(nil)
	case OpTagList:
		all := peer.Allows(core.ScopeFSRead)
		var tags []Tag
		for _, t := range s.store.Tags() {
			if all || s.publicTag(t.Name) {
				tags = append(tags, t)
			}
		}
		b := appendStatus(nil, StatusOK, "")
		b = appendUvarint(b, uint64(len(tags)))
		for _, t := range tags {
			b = appendString(b, t.Name)
			b = append(b, t.Hash[:]...)
			b = append(b, byte(t.Format))
		}
		w.Write(b)
		return finish(nil)
	case OpTagSet:
		if !peer.Allows(core.ScopeFSWrite) {
			w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeFSWrite, ""))
			return finish(nil)
		}
		// Checked before the blob is looked at, so a refusal says nothing about the
		// store. A public tag would publish the blob; a private one would still tell
		// (by NotFound) whether the store holds it.
		if !peer.Allows(core.ScopeFSRead) {
			why := "a tag names a stored blob, so only a peer that may read it may set one; tag an upload with put instead"
			if s.publicTag(req.Tag) {
				why = fmt.Sprintf("tag %q is public: setting it publishes the blob", req.Tag)
			}
			w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeFSRead, why))
			return finish(nil)
		}
		hf := HashAndFormat{req.Hash, req.Format}
		err = s.checkFormat(hf)
		if err == nil {
			err = s.store.SetTag(req.Tag, hf)
		}
		s.replyErr(w, err)
		return finish(nil)
	case OpTagDelete:
		// Deleting only takes away (a public tag's blobs stop being public), so
		// fs:write suffices even for a public tag.
		if !peer.Allows(core.ScopeFSWrite) {
			w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeFSWrite, ""))
			return finish(nil)
		}
		s.replyErr(w, s.store.DeleteTag(req.Tag))
		return finish(nil)
	case OpGC:
		if !peer.Allows(core.ScopeAdmin) {
			w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeAdmin, ""))
			return finish(nil)
		}
		stats, err := s.store.GC(ctx)
		if err != nil {
			s.replyErr(w, err)
			return finish(nil)
		}
		b := appendStatus(nil, StatusOK, "")
		b = appendUvarint(b, uint64(stats.Kept))
		b = appendUvarint(b, uint64(stats.Removed))
		b = appendUvarint(b, uint64(stats.Bytes))
		w.Write(b)
		return finish(nil)
	case OpPut:
		if !peer.Allows(core.ScopeFSWrite) {
			w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeFSWrite, ""))
			return finish(nil)
		}
		canRead := peer.Allows(core.ScopeFSRead)
		// Refused before any data goes up: the tag would publish the last item, which
		// may be a pinned blob or a collection of blobs the peer never sent.
		if req.Tag != "" && s.publicTag(req.Tag) && !canRead {
			why := fmt.Sprintf("tag %q is public: setting it publishes the upload", req.Tag)
			w.status(StatusForbidden, s.deny(c, req.Op, core.ScopeFSRead, why))
			return finish(nil)
		}
		return finish(s.servePut(ctx, req, br, w, canRead))
	}
	return finish(nil)
}

func (s *Server) replyErr(w streamWriter, err error) {
	switch {
	case err == nil:
		w.status(StatusOK, "")
	case errors.Is(err, ErrNotFound):
		w.status(StatusNotFound, err.Error())
	case errors.Is(err, ErrBadCollection), errors.Is(err, ErrBadRequest):
		w.status(StatusBadRequest, err.Error())
	default:
		s.log.Warn("fs: request failed", "err", err)
		w.status(StatusError, err.Error())
	}
}

// sendBlob writes one blob's response: a status, then the encoding.
func (s *Server) sendBlob(w streamWriter, h Hash, rs RangeSet) error {
	b, err := s.store.openBlob(h)
	switch {
	case errors.Is(err, ErrNotFound):
		return w.status(StatusNotFound, fmt.Sprintf("blob %s is not in the store", h))
	case errors.Is(err, ErrCorrupt):
		s.log.Error("fs: damaged blob in the store", "err", err)
		return w.status(StatusError, err.Error())
	case err != nil:
		s.log.Warn("fs: request failed", "err", err)
		return w.status(StatusError, err.Error())
	}
	defer b.Close()
	if err := w.status(StatusOK, ""); err != nil {
		return err
	}
	// After the status, a failure can only end the stream: the client sees a short
	// read and keeps what it verified.
	return encodeBlob(w, b, rs)
}

// checkFormat checks that a collection or hash sequence parses and that its children
// are present.
func (s *Server) checkFormat(hf HashAndFormat) error {
	return s.store.checkFormat(hf, nil)
}

// servePut reads put items until the end item. For a peer that may not read (canRead
// false) nothing it is told depends on blobs it did not send on this stream: pin items
// are answered "no", and a hash sequence or collection may list only blobs it sent.
func (s *Server) servePut(ctx context.Context, req *Request, br *bufio.Reader, w streamWriter, canRead bool) error {
	var pins []*TempPin
	sent := map[Hash]bool{} // blobs this stream uploaded, when !canRead
	defer func() {
		for _, p := range pins {
			p.Release()
		}
	}()
	// Tell the client to go ahead, so a refusal above is never lost in a reset.
	if err := w.status(StatusOK, ""); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	rd := &wireReader{r: br}
	var last *HashAndFormat
	for {
		kind, err := rd.byte()
		if err != nil {
			return unexpected(err)
		}
		switch kind {
		case itemEnd:
			if req.Tag != "" {
				if last == nil {
					w.status(StatusBadRequest, "put: nothing to tag")
					return nil
				}
				if err := s.store.SetTag(req.Tag, *last); err != nil {
					s.replyErr(w, err)
					return nil
				}
			}
			return w.status(StatusOK, "")
		case itemPin:
			h, err := rd.hash()
			if err != nil {
				return unexpected(err)
			}
			var p *TempPin
			ok := false
			if canRead {
				p, ok = s.store.Pin(h)
			}
			b := appendStatus(nil, StatusOK, "")
			if ok {
				pins = append(pins, p)
				last = &HashAndFormat{Hash: h}
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
			w.Write(b)
			if err := w.Flush(); err != nil {
				return err
			}
		case itemBlob:
			f, err := rd.byte()
			if err != nil {
				return unexpected(err)
			}
			size, err := rd.u64()
			if err != nil {
				return unexpected(err)
			}
			format := Format(f)
			if format > FormatCollection || size > 1<<62 || (format != FormatRaw && size > maxMetaSize) {
				w.status(StatusBadRequest, fmt.Sprintf("put: bad item (format %d, size %d)", f, size))
				return nil
			}
			h, pin, err := s.store.Import(ctx, io.LimitReader(br, int64(size)), int64(size))
			if err != nil {
				return err
			}
			pins = append(pins, pin)
			if !canRead {
				sent[h] = true
				// Before checkFormat, whose answer depends on what else the store holds.
				if err := s.store.children(HashAndFormat{h, format}, func(c Hash) error {
					if sent[c] {
						return nil
					}
					return fmt.Errorf("%w: child %s of %s was not uploaded on this stream (without scope %s a %s may list only blobs uploaded with it)",
						ErrNotFound, c, h, core.ScopeFSRead, format)
				}); err != nil {
					s.replyErr(w, err)
					return nil
				}
			}
			if err := s.store.checkFormat(HashAndFormat{h, format}, &pins); err != nil {
				s.replyErr(w, err)
				return nil
			}
			last = &HashAndFormat{h, format}
			b := appendStatus(nil, StatusOK, "")
			w.Write(append(b, h[:]...))
			if err := w.Flush(); err != nil {
				return err
			}
		default:
			w.status(StatusBadRequest, fmt.Sprintf("put: unknown item type %d", kind))
			return nil
		}
	}
}

// maxMetaSize bounds a collection or hash sequence blob.
const maxMetaSize = 256 << 20
