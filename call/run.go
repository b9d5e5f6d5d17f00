package call

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// DefaultTimeout is the deadline of a query or mutation when neither the caller's
// context nor the configuration sets one. Subscriptions have none.
const DefaultTimeout = 30 * time.Second

// callInfo travels in a handler's context.
type callInfo struct {
	reg    *Registry
	peer   core.Peer
	id     string
	parent string
	remote Caller // the session the request arrived on; nil in-process
	log    *slog.Logger
}

type infoKey struct{}
type idKey struct{}
type tokenKey struct{}

func infoFrom(ctx context.Context) *callInfo {
	ci, _ := ctx.Value(infoKey{}).(*callInfo)
	return ci
}

// PeerFrom returns the caller of the operation whose handler ctx belongs to. In a
// composed call it is the original caller. ok is false outside a handler.
func PeerFrom(ctx context.Context) (peer core.Peer, ok bool) {
	if ci := infoFrom(ctx); ci != nil {
		return ci.peer, true
	}
	return core.Peer{}, false
}

// RequestID returns the id of the request whose handler ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if ci := infoFrom(ctx); ci != nil {
		return ci.id
	}
	return ""
}

// ParentID returns the id of the request that composed the current one, or "".
func ParentID(ctx context.Context) string {
	if ci := infoFrom(ctx); ci != nil {
		return ci.parent
	}
	return ""
}

// Remote returns a Caller for the other side of the connection the current request
// arrived on, so a server handler can call operations the client registered (and the
// reverse). It is nil for in-process calls.
func Remote(ctx context.Context) Caller {
	if ci := infoFrom(ctx); ci != nil && ci.remote != nil {
		return ci.remote
	}
	return nil
}

// WithID makes the next call or subscription started with ctx on a [Session] use id
// on the wire, so that it can be aborted with [Session.Abort].
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}

// WithToken attaches an auth_token to calls started with ctx on a [Session]. A callee
// whose token resolver knows it uses that identity for the request; otherwise the
// connection's identity applies.
func WithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

// newID returns a random UUID v4.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// runOnce runs a query or mutation handler, mapping panics and errors.
func (e *entry) runOnce(ctx context.Context, log *slog.Logger, input json.RawMessage) (out json.RawMessage, cerr *Error) {
	defer func() {
		if p := recover(); p != nil {
			logger(log).Error("call: operation panicked", "op", e.op.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			out, cerr = nil, Errorf(CodeInternal, "operation %s failed", e.op.Name)
		}
	}()
	out, err := e.op.Once(ctx, input)
	if err != nil {
		return nil, e.failure(ctx, err)
	}
	return out, nil
}

// runStream runs a subscription handler, mapping panics and errors.
func (e *entry) runStream(ctx context.Context, log *slog.Logger, input json.RawMessage, emit func(json.RawMessage) error) (cerr *Error) {
	defer func() {
		if p := recover(); p != nil {
			logger(log).Error("call: operation panicked", "op", e.op.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			cerr = Errorf(CodeInternal, "operation %s failed", e.op.Name)
		}
	}()
	if err := e.op.Stream(ctx, input, emit); err != nil {
		return e.failure(ctx, err)
	}
	return nil
}

// failure maps a handler's error: a context that ran out is TIMEOUT.
func (e *entry) failure(ctx context.Context, err error) *Error {
	var ce *Error
	if !errors.As(err, &ce) && errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return timeoutError(e.op.Name)
	}
	return e.sanitize(err)
}

func timeoutError(op string) *Error {
	return &Error{Code: CodeTimeout, Message: op + ": deadline exceeded", Retryable: true}
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

// Policy says what happens to a composed call when its parent is aborted.
type Policy int

const (
	// AbortDependents (the default) cancels the child with its parent.
	AbortDependents Policy = iota
	// ContinueRunning lets a child that has started finish after its parent is
	// aborted. A child not yet started when the parent is aborted does not start.
	ContinueRunning
)

// Local returns a Caller that calls r in-process with the rules of the wire: internal
// operations are NOT_FOUND and peer's scopes are checked. The HTTP gateway uses it
// with the peer it authenticated.
func (r *Registry) Local(peer core.Peer) Caller {
	return &localCaller{reg: r, peer: peer, wire: true}
}

// Compose returns a Caller for composition from inside a handler: it reaches the
// handler's own registry, internal operations included, and runs children with the
// caller's identity and without re-checking access. Children inherit ctx, so aborting
// the parent cancels them, unless policy is ContinueRunning. Outside a handler it
// returns a Caller whose calls fail with INTERNAL.
func Compose(ctx context.Context, policy Policy) Caller {
	ci := infoFrom(ctx)
	if ci == nil {
		return &localCaller{}
	}
	return &localCaller{reg: ci.reg, peer: ci.peer, parent: ci.id, log: ci.log, remote: ci.remote, detach: policy == ContinueRunning}
}

// Invoke calls op in-process from inside a handler, with the default policy:
// Compose(ctx, AbortDependents).Call(ctx, op, input).
func Invoke(ctx context.Context, op string, input json.RawMessage) (json.RawMessage, error) {
	return Compose(ctx, AbortDependents).Call(ctx, op, input)
}

type localCaller struct {
	reg    *Registry
	peer   core.Peer
	wire   bool
	parent string
	detach bool
	remote Caller
	log    *slog.Logger
}

func (l *localCaller) prepare(ctx context.Context, op string, input json.RawMessage) (context.Context, *entry, json.RawMessage, error) {
	if l.reg == nil {
		return nil, nil, nil, Errorf(CodeInternal, "call: Compose used outside an operation handler")
	}
	e, cerr := l.reg.resolve(op, l.peer, l.wire)
	if cerr != nil {
		return nil, nil, nil, cerr
	}
	in, cerr := e.validate(input)
	if cerr != nil {
		return nil, nil, nil, cerr
	}
	if err := ctx.Err(); err != nil { // a child not yet started never starts
		return nil, nil, nil, err
	}
	if l.detach {
		ctx = context.WithoutCancel(ctx)
	}
	ctx = context.WithValue(ctx, infoKey{}, &callInfo{reg: l.reg, peer: l.peer, id: newID(), parent: l.parent, remote: l.remote, log: l.log})
	return ctx, e, in, nil
}

func (l *localCaller) Call(ctx context.Context, op string, input json.RawMessage) (json.RawMessage, error) {
	ctx, e, in, err := l.prepare(ctx, op, input)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = deadlineError(op, true)
		}
		return nil, err
	}
	if e.op.Type == OpSubscription {
		return nil, Errorf(CodeInvalidOperationType, "%s is a subscription: use Subscribe", e.op.Name)
	}
	// A detached child (ContinueRunning) has lost the parent's deadline: it gets the
	// default one, which is not the caller's.
	_, own := ctx.Deadline()
	if !own {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	out, cerr := e.runOnce(ctx, l.log, in)
	if cerr != nil {
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			return nil, ctx.Err()
		case own && cerr.Code == CodeTimeout && errors.Is(ctx.Err(), context.DeadlineExceeded):
			// The caller's deadline: report it as ctx.Err() too, as the wire client does.
			return nil, fmt.Errorf("%w: %w", cerr, context.DeadlineExceeded)
		}
		return nil, cerr
	}
	return out, nil
}

func (l *localCaller) Subscribe(ctx context.Context, op string, input json.RawMessage) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		ctx, e, in, err := l.prepare(ctx, op, input)
		if err != nil {
			yield(nil, err)
			return
		}
		if e.op.Type != OpSubscription {
			yield(nil, Errorf(CodeInvalidOperationType, "%s is a %s: use Call", e.op.Name, e.op.Type))
			return
		}
		parent := ctx
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var mu sync.Mutex
		stopped := false
		cerr := e.runStream(ctx, l.log, in, func(out json.RawMessage) error {
			mu.Lock()
			defer mu.Unlock()
			if stopped {
				return context.Canceled
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if !yield(out, nil) {
				stopped = true
				cancel()
				return context.Canceled
			}
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		stopped = true
		switch {
		case cerr != nil && parent.Err() != nil:
			yield(nil, parent.Err()) // the caller gave up
		case cerr != nil:
			yield(nil, cerr)
		}
	}
}
