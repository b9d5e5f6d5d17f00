package coretest

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// pipeWindow bounds the bytes buffered in one direction of a pipe stream, so a fast
// writer blocks as it would on a real transport.
const pipeWindow = 256 << 10

// half is one direction of a pipe stream: a bounded buffer with end-of-file and read
// deadlines.
type half struct {
	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte
	eof      bool      // the writer sent end-of-file
	rclosed  bool      // the reader went away
	err      error     // set when the stream is torn down
	rdl, wdl time.Time // reader's and writer's deadlines
	rtimer   *time.Timer
	wtimer   *time.Timer
}

func newHalf() *half {
	h := &half{}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *half) read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.buf) == 0 {
		switch {
		case h.err != nil:
			return 0, h.err
		case h.eof:
			return 0, io.EOF
		case expired(h.rdl):
			return 0, os.ErrDeadlineExceeded
		}
		h.cond.Wait()
	}
	n := copy(p, h.buf)
	h.buf = h.buf[n:]
	h.cond.Broadcast()
	return n, nil
}

func expired(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }

func (h *half) write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for len(p) > 0 {
		switch {
		case h.err != nil:
			return n, h.err
		case h.eof:
			return n, io.ErrClosedPipe
		case h.rclosed:
			return n, errors.New("coretest: stream reset by peer")
		}
		if expired(h.wdl) {
			return n, os.ErrDeadlineExceeded
		}
		room := pipeWindow - len(h.buf)
		if room <= 0 {
			h.cond.Wait()
			continue
		}
		k := min(room, len(p))
		h.buf = append(h.buf, p[:k]...)
		p = p[k:]
		n += k
		h.cond.Broadcast()
	}
	return n, nil
}

// setDeadline sets the reader's or the writer's deadline and wakes whoever waits, now
// and again when it passes.
func (h *half) setDeadline(field *time.Time, timer **time.Timer, t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*field = t
	if *timer != nil {
		(*timer).Stop()
		*timer = nil
	}
	if !t.IsZero() {
		*timer = time.AfterFunc(time.Until(t), func() {
			h.mu.Lock()
			h.cond.Broadcast()
			h.mu.Unlock()
		})
	}
	h.cond.Broadcast()
}

func (h *half) set(f func()) {
	h.mu.Lock()
	f()
	h.cond.Broadcast()
	h.mu.Unlock()
}

// pipeStream is one end of an in-memory stream.
type pipeStream struct {
	in, out *half
}

func newStreamPair() (*pipeStream, *pipeStream) {
	ab, ba := newHalf(), newHalf()
	return &pipeStream{in: ba, out: ab}, &pipeStream{in: ab, out: ba}
}

func (s *pipeStream) Read(p []byte) (int, error)  { return s.in.read(p) }
func (s *pipeStream) Write(p []byte) (int, error) { return s.out.write(p) }
func (s *pipeStream) CloseWrite() error {
	s.out.set(func() { s.out.eof = true })
	return nil
}
func (s *pipeStream) Close() error {
	s.out.set(func() { s.out.eof = true })
	s.in.set(func() {
		s.in.rclosed = true
		if s.in.err == nil {
			s.in.err = io.ErrClosedPipe
		}
	})
	return nil
}
func (s *pipeStream) SetReadDeadline(t time.Time) error {
	s.in.setDeadline(&s.in.rdl, &s.in.rtimer, t)
	return nil
}
func (s *pipeStream) SetWriteDeadline(t time.Time) error {
	s.out.setDeadline(&s.out.wdl, &s.out.wtimer, t)
	return nil
}
func (s *pipeStream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// pipeConn is one side of an in-memory multi-stream connection.
type pipeConn struct {
	alpn   string
	peer   core.Peer
	accept chan core.Stream // streams the other side opened
	remote *pipeConn
	done   chan struct{}
	once   *sync.Once

	mu      sync.Mutex
	streams []*pipeStream
}

// Pipe returns two ends of an in-memory multi-stream [core.Conn] on alpn, with
// Transport "pipe". client.Peer() describes the server and server.Peer() describes the
// client: pass the peer the handler under test should see (for example one with an
// Identity, or core.Peer{} for an anonymous client). Streams opened on one end are
// accepted on the other. Closing either end closes both.
func Pipe(alpn string, clientSees, serverSees core.Peer) (client, server core.Conn) {
	done := make(chan struct{})
	once := new(sync.Once)
	c := &pipeConn{alpn: alpn, peer: clientSees, accept: make(chan core.Stream, 64), done: done, once: once}
	s := &pipeConn{alpn: alpn, peer: serverSees, accept: make(chan core.Stream, 64), done: done, once: once}
	c.remote, s.remote = s, c
	return c, s
}

func (c *pipeConn) AcceptStream(ctx context.Context) (core.Stream, error) {
	select {
	case s := <-c.accept:
		return s, nil
	case <-c.done:
		return nil, core.ErrConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *pipeConn) OpenStream(ctx context.Context) (core.Stream, error) {
	a, b := newStreamPair()
	c.track(a)
	c.remote.track(b)
	select {
	case c.remote.accept <- b:
		return a, nil
	case <-c.done:
		return nil, core.ErrConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *pipeConn) track(s *pipeStream) {
	c.mu.Lock()
	c.streams = append(c.streams, s)
	c.mu.Unlock()
}

func (c *pipeConn) ALPN() string      { return c.alpn }
func (c *pipeConn) Peer() core.Peer   { return c.peer }
func (c *pipeConn) Transport() string { return core.TransportPipe }

func (c *pipeConn) Close(code uint64, reason string) error {
	c.once.Do(func() {
		close(c.done)
		for _, side := range []*pipeConn{c, c.remote} {
			side.mu.Lock()
			for _, s := range side.streams {
				s.in.set(func() { s.in.err = core.ErrConnClosed })
				s.out.set(func() { s.out.err = core.ErrConnClosed })
			}
			side.mu.Unlock()
		}
	})
	return nil
}

// StreamPipe returns the two ends of one in-memory [core.Stream] with half-close and
// deadlines.
func StreamPipe() (core.Stream, core.Stream) { return newStreamPair() }
