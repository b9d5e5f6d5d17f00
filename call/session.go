package call

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/core"
)

// ErrAborted is returned by a call or subscription that [Session.Abort] ended.
var ErrAborted = errors.New("call: aborted")

// maxQueued bounds the outputs a subscription buffers for a slow consumer; past it the
// subscription is aborted and fails with INTERNAL.
const maxQueued = 4096

// Session is one connection speaking alknet/call, on either end. It serves the
// operations of its registry to the other side and calls the other side's operations:
// the server's handler runs one per connection, and a client gets one from [Dial] or
// [NewClient]. It implements [Caller].
//
// On a multi-stream transport (QUIC, coretest.Pipe) each outgoing call opens its own
// stream; on a single-stream one (TLS over TCP, an SSH channel) every call, in both
// directions, shares the one stream, correlated by id.
//
// A peer that stops reading cannot hold a writer forever. A call or subscription
// returns when its context ends even while its request is blocked being written
// (TIMEOUT and context.DeadlineExceeded at a deadline, context.Canceled when
// cancelled). A request cut part-written leaves its stream unable to carry whole
// frames, so that stream fails: on QUIC it is the call's own stream and nothing else
// is affected; on a single-stream transport it is the connection's one stream, so
// every call on the session fails with INTERNAL "stream failed: ..." (or "connection
// closed") and the session ends: dial again. Every write, on either side, must also
// make progress within the default timeout ([Config].DefaultTimeout, 30 s), else its
// stream fails the same way; so a server's replies to a client that stopped reading
// end its handlers instead of hanging them.
type Session struct {
	conn     core.Conn
	reg      *Registry
	peer     core.Peer // the other side, as seen by our handlers
	timeout  int64     // default timeout, nanoseconds
	maxCalls int       // the other side's calls that may run at once
	maxReq   int       // the largest request frame we read
	log      *slog.Logger
	resolve  func(context.Context, string) *core.Identity
	multi    atomic.Bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	done     chan struct{}
	ready    chan struct{} // closed when the shared stream is known (single-stream transports)
	readyOne sync.Once

	mu       sync.Mutex
	closed   bool
	shared   *wstream
	streams  map[*wstream]struct{}
	pending  map[string]*pending // our calls, by id
	running  map[string]*running // the other side's calls, by id
	answered map[string]bool     // our calls on a shared stream that got their output
	active   int                 // the other side's calls whose handler has not returned
	draining bool                // the server is shutting down: refuse the other side's new calls

	// The request budget: bytes of incoming request frames being read, or read and
	// awaiting the validation of their input.
	bmu        sync.Mutex
	budget     int
	reading    int
	validating int
	waiting    int           // readers waiting for budget
	freed      chan struct{} // closed (and replaced) when budget is returned while some wait
}

// sessionConfig is what Server and Dial pass to newSession.
type sessionConfig struct {
	reg     *Registry
	cfg     Config
	log     *slog.Logger
	resolve func(context.Context, string) *core.Identity
	peer    *core.Identity // replaces the conn's peer identity when set (client side)
}

func newSession(ctx context.Context, c core.Conn, sc sessionConfig) *Session {
	if sc.reg == nil {
		sc.reg = NewRegistry()
	}
	if sc.log == nil {
		sc.log = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		conn: c, reg: sc.reg, peer: c.Peer(), timeout: int64(sc.cfg.timeout()), maxCalls: sc.cfg.maxCalls(), log: sc.log, resolve: sc.resolve,
		maxReq: sc.cfg.maxRequest(), budget: RequestBudgetFrames * sc.cfg.maxRequest(), freed: make(chan struct{}),
		done: make(chan struct{}), ready: make(chan struct{}),
		streams: make(map[*wstream]struct{}), pending: make(map[string]*pending), running: make(map[string]*running), answered: make(map[string]bool),
	}
	s.multi.Store(c.Transport() == core.TransportQUIC || c.Transport() == core.TransportPipe)
	if sc.peer != nil {
		s.peer.Identity = sc.peer
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	return s
}

// serve accepts streams until the connection ends, then fails everything pending.
func (s *Session) serve() {
	defer s.shutdown()
	for {
		st, err := s.conn.AcceptStream(s.ctx)
		if err != nil {
			return
		}
		s.addStream(st, false)
	}
}

// Peer is the other side of the connection.
func (s *Session) Peer() core.Peer { return s.conn.Peer() }

// Conn is the underlying connection.
func (s *Session) Conn() core.Conn { return s.conn }

// Done is closed once the session has ended and its goroutines have returned.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close ends the connection: calls in flight fail with INTERNAL, handlers are
// cancelled. It waits until the session's goroutines have returned and is safe to call
// more than once.
func (s *Session) Close() error {
	s.conn.Close(core.CodeOK, "")
	s.cancel()
	<-s.done
	return nil
}

// errShuttingDown is the terminal error of the other side's calls that a server
// shutdown ends or refuses. The wire has no code of its own for it: INTERNAL is the
// spec's class for a connection that goes away, and the message says why.
var errShuttingDown = &Error{Code: CodeInternal, Message: "server shutting down"}

// stopCalls starts a shutdown of the serving side: the other side's new calls are
// refused with errShuttingDown, and its running subscriptions (with all set, all of
// its calls) are answered with it and cancelled. It does not wait: the answers go out
// on goroutines counted in active, so closeIfIdle waits for them.
func (s *Session) stopCalls(all bool) {
	s.mu.Lock()
	s.draining = true
	var stop []*running
	for _, r := range s.running {
		if all || r.sub {
			stop = append(stop, r)
		}
	}
	// r is still in running, so its handler holds a count in wg: adding is safe.
	s.active += len(stop)
	s.wg.Add(len(stop))
	s.mu.Unlock()
	for _, r := range stop {
		r.stopping.Store(true)
		r.cancel()
		// The answer may wait for a slow reader; Shutdown must not.
		go func() {
			defer func() {
				s.mu.Lock()
				s.active--
				s.mu.Unlock()
				s.wg.Done()
			}()
			r.terminal(TypeError, nil)
		}()
	}
}

// closeIfIdle closes the connection if none of the other side's calls is running, and
// reports whether the session is over.
func (s *Session) closeIfIdle() bool {
	s.mu.Lock()
	idle := s.active == 0 || s.closed
	s.mu.Unlock()
	if idle {
		// End the accept loop; the handler returns and the endpoint closes the
		// connection after the last replies have gone out.
		s.cancel()
	}
	return idle
}

func (s *Session) shutdown() {
	s.mu.Lock()
	s.closed = true
	streams := make([]*wstream, 0, len(s.streams))
	for ws := range s.streams {
		streams = append(streams, ws)
	}
	s.mu.Unlock()
	s.cancel()
	for _, ws := range streams {
		ws.close()
	}
	s.wg.Wait()
	// Only now fail our calls still waiting: a reply that arrived just before the
	// connection closed (a server answers its last call, then closes) has been read
	// and handed over by the stream's reader.
	s.mu.Lock()
	pend := s.pending
	s.pending = map[string]*pending{}
	s.mu.Unlock()
	for _, p := range pend {
		p.push(event{err: Errorf(CodeInternal, "connection closed")}, true)
	}
	close(s.done)
}

// readers recycles the read buffers of streams: on QUIC every call has its own.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}

// maxUnflushed bounds the bytes queued on a stream while a write is in progress; past
// it writers wait, so a peer that stops reading slows its producers down.
const maxUnflushed = 1 << 20

// writeChunk is the most one transport write carries: each chunk gets the stall
// bound as its deadline, so the bound is on progress, not on the size of a write.
const writeChunk = 256 << 10

// wstream is one stream of the session, with its reader and a write queue.
//
// Writes to a peer that stops reading are bounded twice. Every transport write must
// make progress within stall (the session's default timeout), else the stream fails.
// And a request's writer (start) passes its caller's context: it stops waiting for
// room in the queue when the context ends, and if the context ends while its frame is
// still being written, the write is interrupted. Half a frame leaves the stream unable
// to carry whole frames, so in both cases the stream fails: it is closed, and every
// call on it fails with INTERNAL "stream failed: ...". Frames queued whole are never
// cut: once the caller's own frame is out, the rest is left to a goroutine.
type wstream struct {
	s        core.Stream
	own      bool // opened by us for one outgoing call
	ctx      context.Context
	cancel   context.CancelFunc
	handlers sync.WaitGroup // the other side's calls running on this stream
	ended    chan struct{}  // closed when the stream's reader has retired it
	stall    time.Duration  // a transport write that makes no progress this long fails the stream
	// late: our calls on this shared stream ended before their last frame (aborted, or
	// a subscription answered through Call), so replies larger than a request may
	// still come.
	late    atomic.Bool
	peerErr atomic.Pointer[Error] // a call.error without id: why the other side ends the stream

	wmu      sync.Mutex
	drained  *sync.Cond // signalled when a flush round ends
	queue    []byte     // frames waiting for the writer in progress
	spare    []byte
	flushing bool
	closing  bool  // close the stream when the flush in progress ends
	werr     error // set once writes fail; later writes return it
	failed   *Error

	dmu     sync.Mutex // orders write deadlines between a flush and its interrupt
	current *int       // the write the context interrupt may cut, if any
}

// close closes the stream once the write in progress, if any, is done (bounded by
// the stall bound); later writes fail.
func (ws *wstream) close() {
	ws.wmu.Lock()
	for ws.flushing {
		ws.drained.Wait()
	}
	if ws.werr == nil {
		ws.werr = errStreamClosed
	}
	ws.wmu.Unlock()
	ws.s.Close()
}

// closeLater is close without the wait: a write in progress closes the stream when it
// ends. A call that is over must not wait for a peer that does not read.
func (ws *wstream) closeLater() {
	ws.wmu.Lock()
	if ws.werr == nil {
		ws.werr = errStreamClosed
	}
	if ws.flushing {
		ws.closing = true
		ws.wmu.Unlock()
		return
	}
	ws.wmu.Unlock()
	ws.s.Close()
}

var errStreamClosed = errors.New("call: stream closed")

// write queues a frame. Concurrent writers are combined: whoever finds no write in
// progress writes everything queued, in rounds, so many small frames share one system
// call. A frame queued behind a write in progress returns at once; a later write
// reports the failure if the stream breaks. Waits are bounded by the stall bound.
func (ws *wstream) write(b []byte) error { return ws.send(nil, b) }

// send is write bounded by ctx too (nil: by the stall bound only); see wstream. It
// returns ctx.Err() if ctx ended first.
func (ws *wstream) send(ctx context.Context, b []byte) error {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if ctx != nil && ws.flushing && len(ws.queue) >= maxUnflushed {
		stop := context.AfterFunc(ctx, func() {
			ws.wmu.Lock()
			ws.drained.Broadcast()
			ws.wmu.Unlock()
		})
		defer stop()
	}
	for ws.flushing && len(ws.queue) >= maxUnflushed && ws.werr == nil {
		if ctx != nil && ctx.Err() != nil {
			return ctx.Err() // nothing of b was queued: the stream is intact
		}
		ws.drained.Wait()
	}
	if ws.werr != nil {
		return ws.werr
	}
	ws.queue = append(ws.queue, b...)
	if ws.flushing {
		return nil
	}
	ws.flushing = true
	return ws.flush(ctx)
}

// sendAsync queues a small control frame (call.aborted) without waiting at all: past
// the queue bound, and on a goroutine if no write is in progress.
func (ws *wstream) sendAsync(b []byte) {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if ws.werr != nil {
		return
	}
	ws.queue = append(ws.queue, b...)
	if !ws.flushing {
		ws.flushing = true
		go ws.flushRest()
	}
}

func (ws *wstream) flushRest() {
	ws.wmu.Lock()
	ws.flush(nil)
	ws.wmu.Unlock()
}

// flush writes the queue in rounds until it is empty; ws.wmu is held and
// ws.flushing set. ctx (may be nil) is the caller's: it may cut the first round, which
// holds the caller's frame; later rounds go to a goroutine rather than keep the caller.
func (ws *wstream) flush(ctx context.Context) error {
	var res error // the outcome of the first round, which holds the caller's frame
	for first := true; len(ws.queue) > 0 && ws.failed == nil; first = false {
		if !first && ctx != nil && ctx.Done() != nil {
			go ws.flushRest() // whole frames of others; ws.flushing stays set
			return res
		}
		out := ws.queue
		ws.queue = ws.spare[:0]
		ws.wmu.Unlock()
		err := ws.writeOut(ctx, out)
		ws.wmu.Lock()
		if cap(out) <= 64<<10 {
			ws.spare = out[:0]
		} else {
			ws.spare = nil
		}
		if err != nil {
			ws.fail(err)
			var ie interrupted
			switch {
			case !first:
			case errors.As(err, &ie):
				res = ie.ctxErr // the caller's frame was cut: report why it stopped
			default:
				res = ws.failed
			}
		}
		ws.drained.Broadcast()
	}
	ws.flushing = false
	ws.drained.Broadcast()
	if ws.closing || ws.failed != nil {
		// The stream failed (its reader and calls must learn it) or a call that is
		// over asked for it to close: no write is in progress now.
		ws.s.Close()
	}
	return res
}

// interrupted is the error of a write cut because its caller's context ended.
type interrupted struct{ ctxErr error }

func (e interrupted) Error() string { return "write interrupted: " + e.ctxErr.Error() }
func (e interrupted) Unwrap() error { return e.ctxErr }

// fail records that the stream can carry no more frames; ws.wmu is held.
func (ws *wstream) fail(err error) {
	ws.queue = nil
	reason := err.Error()
	var ie interrupted
	switch {
	case errors.As(err, &ie):
		reason = "a request was abandoned part-written when its caller's context ended (" + ie.ctxErr.Error() + ")"
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason = fmt.Sprintf("no write progress for %v: the other side is not reading", ws.stall)
	}
	ws.failed = Errorf(CodeInternal, "stream failed: %s", reason)
	ws.werr = ws.failed
}

// writeOut writes out in chunks, each due within the stall bound. If ctx ends first,
// the write is cut and the error is interrupted{ctx.Err()}.
func (ws *wstream) writeOut(ctx context.Context, out []byte) error {
	tok := new(int)
	var cut atomic.Bool
	if ctx != nil && ctx.Done() != nil {
		ws.dmu.Lock()
		ws.current = tok
		ws.dmu.Unlock()
		stop := context.AfterFunc(ctx, func() {
			ws.dmu.Lock()
			defer ws.dmu.Unlock()
			if ws.current == tok {
				cut.Store(true)
				ws.s.SetWriteDeadline(time.Unix(1, 0))
			}
		})
		defer func() {
			stop()
			ws.dmu.Lock()
			ws.current = nil
			ws.dmu.Unlock()
		}()
	}
	for len(out) > 0 {
		ws.dmu.Lock()
		if !cut.Load() {
			ws.s.SetWriteDeadline(time.Now().Add(ws.stall))
		}
		ws.dmu.Unlock()
		n, err := ws.s.Write(out[:min(len(out), writeChunk)])
		out = out[n:]
		if err != nil {
			if cut.Load() {
				return interrupted{ctx.Err()}
			}
			return err
		}
	}
	return nil
}

func (s *Session) addStream(st core.Stream, own bool) *wstream {
	ws := &wstream{s: st, own: own, ended: make(chan struct{}), stall: s.defaultTimeout()}
	ws.drained = sync.NewCond(&ws.wmu)
	ws.ctx, ws.cancel = context.WithCancel(s.ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		st.Close()
		ws.cancel()
		return nil
	}
	s.streams[ws] = struct{}{}
	if s.shared == nil { // the one stream of a single-stream transport
		s.shared = ws
		s.readyOne.Do(func() { close(s.ready) })
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.read(ws)
	return ws
}

// read handles one stream's frames until it ends.
func (s *Session) read(ws *wstream) {
	defer s.wg.Done()
	br := readers.Get().(*bufio.Reader)
	br.Reset(ws.s)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	for {
		held := 0 // budget taken by this frame, returned once its request is validated
		body, err := readFrame(br, func(n int) error {
			var err error
			held, err = s.admit(ws, n)
			return err
		})
		if held > 0 {
			s.readDone(held, err == nil)
			if err != nil {
				held = 0
			}
		}
		if err == nil {
			var env Envelope
			env, err = ParseEnvelope(body)
			if err == nil {
				if env.Type == TypeRequested && len(body) > s.maxReq {
					// Read only because a reply was possible on this stream: refuse
					// the request itself, the stream goes on.
					s.unhold(held)
					ws.write(frame(TypeError, env.ID, errorPayload(Errorf(CodeInvalidInput, "bad frame: %s", s.tooLarge(len(body))))))
					continue
				}
				s.handle(ws, env, held)
				continue
			}
			if pe := frameErrorReport(body); pe != nil {
				// The other side refused one of our frames and ends the stream: our
				// calls on it fail with its reason (see failPending).
				s.unhold(held)
				ws.peerErr.Store(pe)
				continue
			}
		}
		s.unhold(held)
		var fe *FrameError
		switch {
		case errors.As(err, &fe):
			s.log.Debug("call: bad frame ends the stream", "peer", s.conn.Peer().Name(), "err", fe.Msg)
			// Tell the other side why, then end the stream: its calls fail, ours stop.
			ws.write(frame(TypeError, fe.ID, errorPayload(&Error{Code: CodeInvalidInput, Message: "bad frame: " + fe.Msg})))
			s.endStream(ws, false)
		case errors.Is(err, io.EOF) && s.multi.Load():
			// The other side finished writing (a half-close): its calls still answer.
			s.endStream(ws, true)
		default:
			s.endStream(ws, false)
		}
		return
	}
}

// frameErrorReport returns the error in body if it is a call.error with an empty id,
// which is how a peer reports a bad frame before it ends the stream (ParseEnvelope
// refuses the empty id); otherwise nil.
func frameErrorReport(body []byte) *Error {
	var env struct {
		Type    string          `json:"type"`
		ID      *string         `json:"id"`
		Payload json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(body, &env) != nil || env.Type != TypeError || env.ID == nil || *env.ID != "" || len(env.Payload) == 0 {
		return nil
	}
	return parseError(env.Payload)
}

// admit decides, from its length n alone, whether the next frame on ws may be read;
// it returns the request budget the frame holds. A frame within the request size
// limit takes budget (see hold); a larger one is read only as a possible reply to one
// of our calls on ws, outside the budget, and is otherwise a *FrameError.
func (s *Session) admit(ws *wstream, n int) (int, error) {
	if n > s.maxReq {
		if s.expectsReply(ws) {
			return 0, nil
		}
		return 0, &FrameError{Msg: s.tooLarge(n)}
	}
	if err := s.hold(ws.ctx, n); err != nil {
		return 0, err
	}
	return n, nil
}

func (s *Session) tooLarge(n int) string {
	return fmt.Sprintf("frame length %d exceeds the request size limit of %d bytes", n, s.maxReq)
}

// expectsReply reports whether the other side may send a reply on ws.
func (s *Session) expectsReply(ws *wstream) bool {
	if ws.late.Load() {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pending {
		if p.ws == ws {
			return true
		}
	}
	return false
}

// hold takes n bytes of the request budget for a frame about to be read. A frame is
// always admitted when nothing is held, so a budget smaller than a frame cannot stall.
//
// While the budget is short, the frame waits (unread: backpressure) only for bytes
// held by requests already read, whose validation returns them without any help from
// the network. If it could fit only once other streams' frames still being read have
// arrived, it is refused instead: waiting for them can deadlock a QUIC connection,
// whose flow-control window the unread waiting streams would fill, so the frames
// being read could never complete.
func (s *Session) hold(ctx context.Context, n int) error {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	for {
		switch used := s.reading + s.validating; {
		case used == 0 || used+n <= s.budget:
			s.reading += n
			return nil
		case s.reading > 0 && s.reading+n > s.budget:
			return &FrameError{Msg: fmt.Sprintf("frame length %d exceeds what this connection may send at once: %d request bytes are being read, of a budget of %d", n, s.reading, s.budget)}
		}
		freed := s.freed
		s.waiting++
		s.bmu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
		}
		s.bmu.Lock()
		s.waiting--
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// readDone records that a frame holding n bytes of budget has been read (ok) and now
// awaits handling, or failed and holds nothing.
func (s *Session) readDone(n int, ok bool) {
	s.bmu.Lock()
	s.reading -= n
	if ok {
		s.validating += n
	}
	s.wake()
	s.bmu.Unlock()
}

// unhold returns n bytes of the request budget held by a frame that has been read.
func (s *Session) unhold(n int) {
	if n == 0 {
		return
	}
	s.bmu.Lock()
	s.validating -= n
	s.wake()
	s.bmu.Unlock()
}

// wake wakes the readers waiting for budget; s.bmu is held.
func (s *Session) wake() {
	if s.waiting > 0 {
		close(s.freed)
		s.freed = make(chan struct{})
	}
}

// endStream retires a stream. After a clean end of input it lets the other side's
// calls on it finish and answer first; otherwise it cancels them.
func (s *Session) endStream(ws *wstream, clean bool) {
	if !clean {
		ws.cancel()
	}
	s.failPending(ws)
	ws.handlers.Wait()
	ws.cancel()
	ws.close()
	s.mu.Lock()
	delete(s.streams, ws)
	s.mu.Unlock()
	close(ws.ended)
}

// failPending fails our calls waiting for replies on ws.
func (s *Session) failPending(ws *wstream) {
	s.mu.Lock()
	var failed []*pending
	for id, p := range s.pending {
		if p.ws == ws {
			delete(s.pending, id)
			failed = append(failed, p)
		}
	}
	closed := s.closed
	s.mu.Unlock()
	err := Errorf(CodeInternal, "stream closed before the reply")
	ws.wmu.Lock()
	broke := ws.failed
	ws.wmu.Unlock()
	switch pe := ws.peerErr.Load(); {
	case pe != nil: // the other side said why, say a request was too large
		err = pe
	case broke != nil: // our writes broke the stream: say how
		err = broke
	case closed: // the whole connection is going: say so
		err = Errorf(CodeInternal, "connection closed")
	}
	for _, p := range failed {
		p.push(event{err: err}, true)
	}
}

// handle acts on one envelope from ws, which holds held bytes of the request budget.
func (s *Session) handle(ws *wstream, env Envelope, held int) {
	if env.Type == TypeRequested {
		s.dispatch(ws, env, held)
		return
	}
	s.unhold(held)
	switch env.Type {
	case TypeResponded, TypeCompleted, TypeError:
		s.mu.Lock()
		p := s.pending[env.ID]
		if p == nil {
			// A late frame for a finished or aborted call. If it is an output on a
			// shared stream, the other side may still be producing (a subscription
			// called through Call): ask it once to stop.
			stop := env.Type == TypeResponded && s.answered[env.ID]
			if stop {
				delete(s.answered, env.ID)
			}
			s.mu.Unlock()
			if stop {
				ws.sendAsync(frame(TypeAborted, env.ID, []byte("{}")))
			}
			return
		}
		var ev event
		terminal := true
		switch env.Type {
		case TypeResponded:
			out, err := parseResponse(env.Payload)
			ev = event{out: out, err: err}
			terminal = !p.sub || err != nil
		case TypeCompleted:
			ev = event{done: true}
			if !p.sub {
				ev = event{err: Errorf(CodeInvalidOperationType, "operation is a subscription: use Subscribe")}
			}
		case TypeError:
			ev = event{err: parseError(env.Payload)}
		}
		if terminal {
			delete(s.pending, env.ID)
		}
		s.mu.Unlock()
		if !p.push(ev, terminal) {
			// The consumer fell too far behind: give up on the subscription.
			s.abortPending(p, Errorf(CodeInternal, "subscription dropped: the consumer fell %d outputs behind", maxQueued))
		}
	case TypeAborted:
		s.mu.Lock()
		r := s.running[env.ID]
		p := s.pending[env.ID]
		if p != nil && r == nil {
			delete(s.pending, env.ID)
		}
		s.mu.Unlock()
		if r != nil {
			r.abort()
		} else if p != nil {
			p.push(event{err: Errorf(CodeInternal, "aborted by the other side")}, true)
		}
	default:
		s.log.Debug("call: ignoring unknown envelope type", "type", env.Type)
	}
}

// running is a call from the other side that a handler is serving.
type running struct {
	s        *Session
	id       string
	ws       *wstream
	cancel   context.CancelFunc
	sub      bool // a subscription; guarded by s.mu
	aborted  atomic.Bool
	finished atomic.Bool
	stopping atomic.Bool // ended by a server shutdown: its last frame is errShuttingDown
}

func (r *running) abort() {
	r.aborted.Store(true)
	r.forget()
	r.cancel()
}

// forget frees the call's id, so the caller may reuse it once it has the reply.
func (r *running) forget() {
	r.s.mu.Lock()
	if r.s.running[r.id] == r {
		delete(r.s.running, r.id)
	}
	r.s.mu.Unlock()
}

// terminal sends the call's last frame, once, unless the call was aborted. A call
// that a shutdown stopped ends with errShuttingDown whatever its handler returned.
func (r *running) terminal(typ string, payload []byte) {
	if r.aborted.Load() || !r.finished.CompareAndSwap(false, true) {
		return
	}
	if r.stopping.Load() {
		typ, payload = TypeError, errorPayload(errShuttingDown)
	}
	r.forget()
	r.ws.write(frame(typ, r.id, payload))
}

// dispatch starts serving a request whose frame holds held bytes of the request
// budget; they are returned once its input has been validated.
func (s *Session) dispatch(ws *wstream, env Envelope, held int) {
	op, input, token, perr := parseRequest(env.Payload)
	if perr != nil {
		s.unhold(held)
		ws.write(frame(TypeError, env.ID, errorPayload(perr)))
		return
	}
	ctx, cancel := context.WithCancel(ws.ctx)
	r := &running{s: s, id: env.ID, ws: ws, cancel: cancel}
	s.mu.Lock()
	var refuse *Error
	switch _, dup := s.running[env.ID]; {
	case s.draining:
		refuse = errShuttingDown
	case dup || s.closed:
		refuse = Errorf(CodeInvalidInput, "request id %q is already in use", env.ID)
	case s.active >= s.maxCalls:
		refuse = Errorf(CodeInternal, "too many calls in flight on this connection (limit %d)", s.maxCalls)
	}
	if refuse != nil {
		s.mu.Unlock()
		cancel()
		s.unhold(held)
		ws.write(frame(TypeError, env.ID, errorPayload(refuse)))
		return
	}
	s.running[env.ID] = r
	s.active++
	ws.handlers.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	go s.serveRequest(ctx, r, op, input, token, held)
}

func (s *Session) serveRequest(ctx context.Context, r *running, op string, input json.RawMessage, token string, held int) {
	// The raw request counts against the budget until its input is validated: the
	// handler's own use of it is bounded by the calls that may run at once.
	unhold := sync.OnceFunc(func() { s.unhold(held) })
	defer func() {
		unhold()
		r.cancel()
		r.forget()
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
		r.ws.handlers.Done()
		s.wg.Done()
	}()
	peer := s.peer
	if token != "" && s.resolve != nil {
		if id := s.resolve(ctx, token); id != nil {
			peer.Identity = id
		}
	}
	e, cerr := s.reg.resolve(op, peer, true)
	if cerr == nil {
		input, cerr = e.validate(input)
	}
	unhold()
	if cerr != nil {
		r.terminal(TypeError, errorPayload(cerr))
		return
	}
	ctx = context.WithValue(ctx, infoKey{}, &callInfo{reg: s.reg, peer: peer, id: r.id, remote: s, log: s.log})
	if e.op.Type == OpSubscription {
		// A shutdown ends subscriptions at once (they would never let it finish);
		// one that began draining before it knew this one is a subscription gets
		// stopped here.
		s.mu.Lock()
		r.sub = true
		draining := s.draining
		s.mu.Unlock()
		if draining {
			r.stopping.Store(true)
			r.terminal(TypeError, nil)
			return
		}
		cerr := e.runStream(ctx, s.log, input, func(out json.RawMessage) error {
			if r.aborted.Load() || r.finished.Load() {
				return context.Canceled
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			f := frame(TypeResponded, r.id, outputPayload(out))
			if len(f)-4 > MaxFrameSize {
				return Errorf(CodeInternal, "%s: an output of %d bytes exceeds the 64 MiB frame limit", e.op.Name, len(out))
			}
			return r.ws.write(f)
		})
		if cerr != nil {
			r.terminal(TypeError, errorPayload(cerr))
		} else {
			r.terminal(TypeCompleted, []byte("{}"))
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.defaultTimeout())
	defer cancel()
	// Answer TIMEOUT at the deadline even if the handler ignores its context.
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.terminal(TypeError, errorPayload(timeoutError(e.op.Name)))
		}
	})
	out, cerr := e.runOnce(ctx, s.log, input)
	stop()
	if cerr != nil {
		r.terminal(TypeError, errorPayload(cerr))
		return
	}
	if len(out)+len(r.id)+64 > MaxFrameSize {
		r.terminal(TypeError, errorPayload(Errorf(CodeInternal, "%s: an output of %d bytes exceeds the 64 MiB frame limit", e.op.Name, len(out))))
		return
	}
	r.terminal(TypeResponded, outputPayload(out))
}

func (s *Session) defaultTimeout() time.Duration { return time.Duration(atomic.LoadInt64(&s.timeout)) }

// event is one thing that happened to a pending call.
type event struct {
	out  json.RawMessage
	done bool // subscription completed
	err  error
}

// pending is one of our calls waiting for replies.
type pending struct {
	id     string
	ws     *wstream
	sub    bool
	notify chan struct{}

	mu       sync.Mutex
	queue    []event
	finished bool
}

// push queues ev; it reports false if the queue overflowed.
func (p *pending) push(ev event, terminal bool) bool {
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return true
	}
	if !terminal && len(p.queue) >= maxQueued {
		p.mu.Unlock()
		return false
	}
	p.queue = append(p.queue, ev)
	p.finished = terminal
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
	return true
}

// next waits for the next event.
func (p *pending) next(ctx context.Context) (event, error) {
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			ev := p.queue[0]
			p.queue[0] = event{}
			p.queue = p.queue[1:]
			p.mu.Unlock()
			return ev, nil
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-ctx.Done():
			return event{}, ctx.Err()
		}
	}
}

// start sends a call.requested and registers the call.
func (s *Session) start(ctx context.Context, op string, input json.RawMessage, sub bool) (*pending, error) {
	id, _ := ctx.Value(idKey{}).(string)
	if id == "" {
		id = newID()
	}
	token, _ := ctx.Value(tokenKey{}).(string)
	if len(input) > 0 && !json.Valid(input) {
		return nil, Errorf(CodeInvalidInput, "input is not valid JSON")
	}
	ws, err := s.streamFor(ctx)
	if err != nil {
		return nil, err
	}
	p := &pending{id: id, ws: ws, sub: sub, notify: make(chan struct{}, 1)}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		s.release(ws)
		return nil, Errorf(CodeInternal, "connection closed")
	case s.pending[id] != nil:
		s.mu.Unlock()
		s.release(ws)
		return nil, Errorf(CodeInvalidInput, "request id %q is already in use", id)
	}
	s.pending[id] = p
	s.mu.Unlock()
	f := frame(TypeRequested, id, buildRequest(op, input, token))
	if len(f)-4 > MaxFrameSize {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		s.release(ws)
		return nil, Errorf(CodeInvalidInput, "an input of %d bytes exceeds the 64 MiB frame limit", len(input))
	}
	if err := ws.send(ctx, f); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// The caller gave up while waiting to write: see wstream for what
			// that did to the stream.
			s.mu.Lock()
			delete(s.pending, id)
			s.mu.Unlock()
			s.release(ws)
			return nil, err
		}
		if ws.own {
			// The other side may have refused the request (too large, say) and
			// stopped reading: its reason follows on the stream, which then ends.
			select {
			case <-ws.ended:
			case <-s.done:
			case <-ctx.Done():
			}
		}
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		s.release(ws)
		if pe := ws.peerErr.Load(); pe != nil {
			return nil, pe
		}
		return nil, Errorf(CodeInternal, "send request: %v", err)
	}
	return p, nil
}

// streamFor returns the stream a new call goes on: a new one on multi-stream
// transports, else the shared one.
func (s *Session) streamFor(ctx context.Context) (*wstream, error) {
	if s.multi.Load() {
		st, err := s.conn.OpenStream(ctx)
		if err == nil {
			if ws := s.addStream(st, true); ws != nil {
				return ws, nil
			}
			return nil, Errorf(CodeInternal, "connection closed")
		}
		if !errors.Is(err, core.ErrSingleStream) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, Errorf(CodeInternal, "open stream: %v", err)
		}
		s.multi.Store(false)
	}
	select {
	case <-s.ready:
	case <-s.done:
		return nil, Errorf(CodeInternal, "connection closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared == nil || s.closed {
		return nil, Errorf(CodeInternal, "connection closed")
	}
	return s.shared, nil
}

// release closes a per-call stream once its call is over. Closing both directions
// (not just ours) means a callee still writing, say a subscription answered through
// Call, gets an error and stops.
func (s *Session) release(ws *wstream) {
	if ws.own {
		ws.closeLater()
	}
}

// abortPending gives up on a call: it sends call.aborted and fails the call locally.
func (s *Session) abortPending(p *pending, err error) {
	s.mu.Lock()
	_, live := s.pending[p.id]
	delete(s.pending, p.id)
	s.mu.Unlock()
	if live {
		if !p.ws.own {
			p.ws.late.Store(true)
		}
		p.ws.sendAsync(frame(TypeAborted, p.id, []byte("{}")))
	}
	p.push(event{err: err}, true)
	s.release(p.ws)
}

// finish forgets a call that ended normally.
func (s *Session) finish(p *pending) {
	s.mu.Lock()
	delete(s.pending, p.id)
	s.mu.Unlock()
	s.release(p.ws)
}

// Call calls op on the other side and waits for its output. Without a deadline on ctx
// it waits at most the configured default timeout (30 s), then sends call.aborted and
// fails with TIMEOUT. When ctx's own deadline passes first it also sends call.aborted,
// and the error is both TIMEOUT and context.DeadlineExceeded (errors.Is matches
// either); a cancelled ctx gives ctx.Err(). This holds while the request is still
// being written to a peer that stopped reading, too; see [Session] for what cutting
// it off does to the stream. Use it for queries and mutations; for a subscription use
// Subscribe (the wire does not say an operation's type: a subscription answered
// through Call returns its first output).
func (s *Session) Call(ctx context.Context, op string, input json.RawMessage) (json.RawMessage, error) {
	_, own := ctx.Deadline()
	if !own {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.defaultTimeout())
		defer cancel()
	}
	p, err := s.start(ctx, op, input, false)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = deadlineError(op, own)
		}
		return nil, err
	}
	ev, err := p.next(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = deadlineError(op, own)
		}
		s.abortPending(p, err)
		return nil, err
	}
	s.finish(p)
	if ev.err != nil {
		return nil, ev.err
	}
	if !p.ws.own {
		// Remember the id for a while: more outputs for it mean the operation is a
		// subscription, which handle then stops.
		p.ws.late.Store(true)
		s.mu.Lock()
		if len(s.answered) >= 1024 {
			clear(s.answered)
		}
		s.answered[p.id] = true
		s.mu.Unlock()
	}
	return ev.out, nil
}

// deadlineError is the error of a call that got no reply before its deadline: a
// retryable TIMEOUT, which also matches context.DeadlineExceeded when the deadline was
// the caller's own (own), as [Caller] promises ctx.Err() for a context that ended.
func deadlineError(op string, own bool) error {
	te := &Error{Code: CodeTimeout, Message: op + ": no reply before the deadline", Retryable: true}
	if own {
		return fmt.Errorf("%w: %w", te, context.DeadlineExceeded)
	}
	return te
}

// Subscribe subscribes to op on the other side. The sequence yields each output and
// ends after call.completed, or with one (nil, err) on call.error or when the
// connection closes. Leaving the loop early or cancelling ctx sends call.aborted; a
// ctx that ends while the request is still being written ends the sequence with
// ctx.Err() (see [Session]).
func (s *Session) Subscribe(ctx context.Context, op string, input json.RawMessage) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		p, err := s.start(ctx, op, input, true)
		if err != nil {
			yield(nil, err)
			return
		}
		for {
			ev, err := p.next(ctx)
			if err != nil {
				s.abortPending(p, err)
				yield(nil, err)
				return
			}
			switch {
			case ev.err != nil:
				s.finish(p)
				yield(nil, ev.err)
				return
			case ev.done:
				s.finish(p)
				return
			}
			if !yield(ev.out, nil) {
				s.abortPending(p, ErrAborted)
				return
			}
		}
	}
}

// Abort sends call.aborted for our call or subscription with this id (see [WithID])
// and makes it fail with [ErrAborted]. An unknown id is ignored.
func (s *Session) Abort(id string) error {
	s.mu.Lock()
	p := s.pending[id]
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	s.abortPending(p, ErrAborted)
	return nil
}

var _ Caller = (*Session)(nil)
